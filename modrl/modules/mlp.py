"""MLP module head: an independent small network per module."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from modrl.config import check

from .base import ACTIVATIONS, MODULE_KINDS, RoutedModule, make_activation
from .config import Activation


class MLPModule(RoutedModule):
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


def can_stack(modules: Sequence[nn.Module]) -> bool:
    """Whether :func:`stacked_forward` may run ``modules``: two or more plain :class:`MLPModule` of one architecture,
    none with forward hooks (a stacked call bypasses each module's ``forward``, so hooks would not see it)."""
    if len(modules) < 2 or any(type(s) is not MLPModule or s._forward_hooks or s._forward_pre_hooks for s in modules):
        return False
    return len({(s.in_dim, s.out_dim, s.hidden, s.activation) for s in modules}) == 1


def stacked_forward(modules: Sequence[MLPModule], x: Tensor) -> Tensor:
    """Run same-architecture MLP modules together: one batched matmul per layer instead of one per module and layer.

    Weights are stacked on every call (cheap at module sizes), so gradients reach each module's own parameters and a
    frozen module's parameters get none. Same values as the per-module loop up to float rounding; measured on CPU
    (4 modules 64 -> 64 -> 64, batch 64) forward + backward took ~20% less time.

    Args:
        modules: ``K`` modules for which :func:`can_stack` holds.
        x: ``(B, in_dim)`` features.

    Returns:
        ``(B, K, out_dim)``.
    """
    linears = [[m for m in module.net if isinstance(m, nn.Linear)] for module in modules]
    activation = modules[0].net[1]
    hidden = x.expand(len(modules), *x.shape)  # (K, B, in_dim), a view
    for depth in range(len(linears[0])):
        weight = torch.stack([layers[depth].weight for layers in linears])  # (K, out, in)
        bias = torch.stack([layers[depth].bias for layers in linears]).unsqueeze(1)  # (K, 1, out)
        hidden = activation(torch.baddbmm(bias, hidden, weight.transpose(1, 2)))
    return hidden.transpose(0, 1)


MODULE_KINDS.add(MLPModule.kind, MLPModule)
