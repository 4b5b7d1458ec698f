"""Which torch device a command builds or loads its models on: ``auto`` (CUDA if available, else CPU), ``cpu``,
``cuda``.

Checkpoints always hold CPU tensors (safetensors, :mod:`modrl.checkpoint`), so a run trained on one device loads on
any other; the device is a property of a command, not of a run, and is recorded in the run's ``meta.json``.
"""

from __future__ import annotations

from typing import Literal, get_args

DeviceChoice = Literal["auto", "cpu", "cuda"]
#: The values ``--device`` accepts.
DEVICE_CHOICES: tuple[str, ...] = get_args(DeviceChoice)


class DeviceError(ValueError):
    """A device that is not one of :data:`DEVICE_CHOICES`, or CUDA asked for where none is available."""


def resolve_device(choice: str) -> str:
    """The torch device name (``"cpu"`` or ``"cuda"``) for ``choice``.

    Raises:
        DeviceError: ``choice`` is not one of :data:`DEVICE_CHOICES`, or is ``cuda`` and torch sees no CUDA device.
    """
    if choice not in DEVICE_CHOICES:
        raise DeviceError(f"--device must be one of {', '.join(DEVICE_CHOICES)}, got {choice!r}")
    import torch

    available = torch.cuda.is_available()
    if choice == "cuda" and not available:
        raise DeviceError(
            f"--device cuda: torch {torch.__version__} sees no CUDA device (use --device cpu or --device auto)"
        )
    if choice == "auto":
        return "cuda" if available else "cpu"
    return choice
