"""How to build the module library: :class:`ModulesConfig` and the names a config may give (imports no torch, so
configs load and ``modrl list`` answers without it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from modrl.config import check, check_sizes

ModuleKind = Literal["mlp", "lowrank", "adapter"]
#: The module kinds a config may name; ``modrl.modules.MODULE_KINDS`` registers one class for each (a test checks).
MODULE_KIND_NAMES: tuple[str, ...] = get_args(ModuleKind)
Activation = Literal["tanh", "relu"]
#: The activations a config may name; ``modrl.modules.ACTIVATIONS`` maps each to its torch class (a test checks).
ACTIVATION_NAMES: tuple[str, ...] = get_args(Activation)


@dataclass(frozen=True, kw_only=True)
class ModulesConfig:
    """How to build the initial module library.

    Attributes:
        kind: ``"mlp"`` (independent MLP heads), ``"lowrank"`` (LoRA deltas on one shared linear layer) or
            ``"adapter"`` (bottleneck adapters, a ReLU inside the low-rank delta, on that shared layer).
        count: Number of modules (``>= 1``).
        hidden: MLP hidden sizes (kind ``mlp``), each ``>= 1``.
        rank: Rank of each low-rank delta, or bottleneck width of each adapter (kinds ``lowrank``, ``adapter``).
        activation: ``"tanh"`` or ``"relu"``, after every layer including the last.
    """

    kind: ModuleKind = "mlp"
    count: int = 4
    hidden: tuple[int, ...] = (64,)
    rank: int = 4
    activation: Activation = "tanh"

    def __post_init__(self) -> None:
        check(self.kind in MODULE_KIND_NAMES, "kind", f"must be one of {list(MODULE_KIND_NAMES)}, got {self.kind!r}")
        check_sizes(self.count, "count", high=1024)
        check_sizes(self.hidden, "hidden")
        check_sizes(self.rank, "rank")
        check(self.activation in ACTIVATION_NAMES, "activation", f"must be one of {list(ACTIVATION_NAMES)}")
