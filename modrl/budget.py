"""Resource budget: refuse a configuration whose network cannot fit, before anything is created.

Every width of a config is bounded on its own (:data:`modrl.config.MAX_WIDTH`), but products are what cost memory:
two consecutive layers of 65,536 are 4.3 billion parameters (17 GB as float32). An agent's builder estimates its
parameter count and activation memory (:class:`ResourceEstimate`); :func:`check_budget` refuses it, with the
estimate in the message, when the parameters exceed :data:`MAX_PARAMETERS` (a fixed policy, the same on every
machine) or the memory to train them exceeds the memory available now (``MemAvailable`` of ``/proc/meminfo``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from modrl.config import ConfigError

#: Most parameters a trained network may have: far above anything that learns MiniGrid (the default agent has
#: ~50 k), low enough that a typo in two widths is refused instead of allocated.
MAX_PARAMETERS = 100_000_000
#: Bytes per parameter while training: float32 weights, gradients and Adam's two moments.
TRAIN_BYTES_PER_PARAMETER = 16
#: Bytes per activation value kept for one sample: float32 forward value plus its gradient.
BYTES_PER_ACTIVATION = 8


@dataclass(frozen=True)
class ResourceEstimate:
    """What a network costs, estimated from its config before it is built.

    Attributes:
        parameters: Trainable parameters.
        activations: Activation values per sample in one forward pass.
        batch: Samples in one gradient step.
        storage: Bytes held beside the network while training, e.g. a rollout buffer's observations.
    """

    parameters: int
    activations: int
    batch: int
    storage: int = 0

    @property
    def train_bytes(self) -> int:
        """Memory to train: parameters with gradients and optimiser state, one batch of activations, the storage."""
        return (
            self.parameters * TRAIN_BYTES_PER_PARAMETER
            + self.activations * self.batch * BYTES_PER_ACTIVATION
            + self.storage
        )

    def describe(self) -> str:
        """``about 1,234 parameters, 1.2 MB to train (weights, ... a batch of 64 activations)``."""
        stored = f", a {_bytes(self.storage)} rollout buffer" if self.storage else ""
        return (
            f"about {self.parameters:,} parameters, {_bytes(self.train_bytes)} to train "
            f"(weights, gradients, Adam state{stored} and a batch of {self.batch} activations)"
        )


def available_memory_bytes() -> int | None:
    """Memory available to a new process now (``MemAvailable``), ``None`` where the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_budget(estimate: ResourceEstimate, what: str) -> None:
    """Raise :class:`ConfigError` ``"<what>: ..."`` with the estimate if it breaks the parameter limit or does not
    fit the memory available now."""
    if estimate.parameters > MAX_PARAMETERS:
        raise ConfigError(
            f"{what}: {estimate.describe()}; the limit is {MAX_PARAMETERS:,} parameters "
            "(check the layer widths and the image size)"
        )
    available = available_memory_bytes()
    if available is not None and estimate.train_bytes > available:
        raise ConfigError(
            f"{what}: {estimate.describe()}, more than the {_bytes(available)} of memory available "
            "(reduce the layer widths or the batch)"
        )


def _bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:,.1f} TB"
