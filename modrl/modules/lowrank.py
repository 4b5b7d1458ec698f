"""Low-rank (LoRA-style) module: a small trainable delta on a linear layer shared by the whole library.

Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models": ``y = W x + (alpha / r) B A x`` with ``A``
random and ``B`` zero at initialisation, so a new module starts out computing exactly what the shared layer does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from modrl.config import check

from .base import ACTIVATIONS, MODULE_KINDS, RoutedModule, make_activation
from .config import Activation


class LowRankModule(RoutedModule):
    """``y = act(base(x) + (x @ A.T) @ B.T * alpha / rank)``.

    ``base`` belongs to the :class:`~modrl.modules.ModuleLibrary` (``library.shared[base_name]``); it is deliberately
    *not* a registered submodule here, so this module's ``parameters()`` and ``state_dict()`` hold only its own
    ``A`` (``down``, ``(rank, in_dim)``) and ``B`` (``up``, ``(out_dim, rank)``), and freezing or saving the module
    never touches the shared layer. Moving the library (``.to(device)``) moves the base in place, which this module
    sees because it holds the same object.

    Args:
        base: The shared ``nn.Linear(in_dim, out_dim)``.
        base_name: Its name in the library's ``shared`` dict (recorded in :meth:`spec`).
        rank: Rank ``r`` of the delta (``>= 1``).
        alpha: Scale numerator; the delta is multiplied by ``alpha / rank`` (``> 0``).
        activation: ``"tanh"`` or ``"relu"``, applied to the sum.

    Shapes:
        ``(B, in_dim)`` float32 -> ``(B, out_dim)`` float32.
    """

    kind: ClassVar[str] = "lowrank"

    def __init__(
        self, *, base: nn.Linear, base_name: str, rank: int, alpha: float = 1.0, activation: Activation
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        check(rank >= 1, "rank", f"must be >= 1, got {rank}")
        check(alpha > 0 and math.isfinite(alpha), "alpha", f"must be a finite number > 0, got {alpha}")
        check(activation in ACTIVATIONS, "activation", f"must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        # object.__setattr__ bypasses nn.Module registration: the library owns (and saves, freezes) the base.
        object.__setattr__(self, "base", base)
        self.base_name = base_name
        self.in_dim = base.in_features
        self.out_dim = base.out_features
        self.rank = rank
        self.alpha = float(alpha)
        self.activation = activation
        device, dtype = base.weight.device, base.weight.dtype
        self.down = nn.Parameter(torch.empty(rank, self.in_dim, device=device, dtype=dtype))
        self.up = nn.Parameter(torch.zeros(self.out_dim, rank, device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))
        self.act = make_activation(activation)

    base: nn.Linear

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_dim)`` -> ``(B, out_dim)``."""
        delta = (x @ self.down.T) @ self.up.T
        return self.act(self.base(x) + delta * (self.alpha / self.rank))

    def spec(self) -> dict[str, Any]:
        """``{"kind": "lowrank", "base_name", "rank", "alpha", "activation", "in_dim", "out_dim"}``.

        ``in_dim``/``out_dim`` are not constructor arguments (they come from the base); :meth:`from_spec` checks
        them against the base it finds.
        """
        return {
            "kind": self.kind,
            "base_name": self.base_name,
            "rank": self.rank,
            "alpha": self.alpha,
            "activation": self.activation,
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
        }

    def shared_dependencies(self) -> dict[str, nn.Module]:
        """``{base_name: base}``."""
        return {self.base_name: self.base}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, shared: Mapping[str, nn.Module]) -> LowRankModule:
        """Rebuild from :meth:`spec` on ``shared[spec["base_name"]]``.

        Raises:
            ValueError: Wrong kind, missing keys, the base is absent, not an ``nn.Linear``, or of another shape.
        """
        kwargs = dict(spec)
        if kwargs.pop("kind", None) != cls.kind:
            raise ValueError(f"spec kind {spec.get('kind')!r} does not match {cls.__name__} ({cls.kind!r})")
        try:
            in_dim, out_dim, base_name = kwargs.pop("in_dim"), kwargs.pop("out_dim"), kwargs.pop("base_name")
        except KeyError as exc:
            raise ValueError(f"lowrank spec lacks {exc.args[0]!r}") from None
        base = shared.get(base_name)
        if base is None:
            raise ValueError(
                f"needs shared layer {base_name!r}, which the library lacks (shared: {sorted(shared) or 'none'})"
            )
        if not isinstance(base, nn.Linear):
            raise ValueError(f"shared layer {base_name!r} is a {type(base).__name__}, not an nn.Linear")
        if (base.in_features, base.out_features) != (in_dim, out_dim):
            raise ValueError(
                f"shared layer {base_name!r} maps {base.in_features} -> {base.out_features}, "
                f"the module was saved for {in_dim} -> {out_dim}"
            )
        try:
            return cls(base=base, base_name=base_name, **kwargs)
        except TypeError as exc:
            raise ValueError(f"spec does not fit {cls.__name__}: {exc}") from None


MODULE_KINDS.add(LowRankModule.kind, LowRankModule)


class AdapterModule(LowRankModule):
    """A bottleneck adapter (Houlsby et al. 2019) on the shared layer: ``y = act(base(x) + up(relu(down(x))) *
    alpha / rank)``, the low-rank delta with a ReLU in its bottleneck (``rank`` is the bottleneck width).

    Everything else is :class:`LowRankModule`'s: the library owns the base, ``up`` starts at zero (a new adapter
    computes what the shared layer does), the spec and file format are the same with ``kind: "adapter"``.
    """

    kind: ClassVar[str] = "adapter"

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_dim)`` -> ``(B, out_dim)``."""
        delta = torch.relu(x @ self.down.T) @ self.up.T
        return self.act(self.base(x) + delta * (self.alpha / self.rank))


MODULE_KINDS.add(AdapterModule.kind, AdapterModule)
