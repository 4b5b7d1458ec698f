"""MLP skill head: an independent small network per skill."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from modrl.config import check

from .base import ACTIVATIONS, SKILLS, Activation, SkillModule, make_activation


class MLPSkill(SkillModule):
    """``in_dim -> hidden[0] -> ... -> out_dim`` with the activation after every layer, the last included.

    The output is a latent that SB3's action and value heads read, hence the final activation.

    Args:
        in_dim: Input feature size (``>= 1``).
        out_dim: Output latent size (``>= 1``).
        hidden: Hidden layer sizes, each ``>= 1``; empty means a single ``in_dim -> out_dim`` layer.
        activation: ``"tanh"`` or ``"relu"``.

    Shapes:
        ``(B, in_dim)`` float32 -> ``(B, out_dim)`` float32.
    """

    kind: ClassVar[str] = "mlp"

    def __init__(self, *, in_dim: int, out_dim: int, hidden: Sequence[int], activation: Activation) -> None:
        super().__init__()
        check(in_dim >= 1, "in_dim", f"must be >= 1, got {in_dim}")
        check(out_dim >= 1, "out_dim", f"must be >= 1, got {out_dim}")
        check(all(h >= 1 for h in hidden), "hidden", f"every size must be >= 1, got {list(hidden)}")
        check(activation in ACTIVATIONS, "activation", f"must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        layers: list[nn.Module] = []
        sizes = [in_dim, *self.hidden, out_dim]
        for fan_in, fan_out in itertools.pairwise(sizes):
            layers += [nn.Linear(fan_in, fan_out), make_activation(activation)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_dim)`` -> ``(B, out_dim)``."""
        return self.net(x)

    def spec(self) -> dict[str, Any]:
        """``{"kind": "mlp", "in_dim", "out_dim", "hidden", "activation"}``."""
        return {
            "kind": self.kind,
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "hidden": list(self.hidden),
            "activation": self.activation,
        }


SKILLS.add(MLPSkill.kind, MLPSkill)
