"""Holding chosen parameter entries exactly fixed while an optimiser trains the rest.

Freezing a whole tensor is ``requires_grad = False``; freezing part of one (a router row, the weights an earlier
task owns) needs more. :class:`ParamGuard` does both and makes the result exact whatever the optimiser does:

* a gradient hook zeroes the frozen entries' gradient, so they neither move nor count in gradient clipping;
* an optimiser step post-hook copies the frozen entries back from a snapshot after every ``step()``, so Adam's
  momentum (or weight decay) from an earlier stage cannot move them either.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle


class ParamGuard:
    """Keeps the frozen entries of named parameters bit-identical across optimiser steps.

    Args:
        params: Every parameter the guard may freeze, by unique name.
    """

    def __init__(self, params: Mapping[str, nn.Parameter]) -> None:
        self.params = dict(params)
        self._masks: dict[str, Tensor] = {}
        self._values: dict[str, Tensor] = {}
        self._handles: list[RemovableHandle] = []
        for name, param in self.params.items():
            trainable = param.requires_grad
            param.requires_grad_(True)  # a hook can only be registered on a tensor that requires grad
            self._handles.append(param.register_hook(self._grad_hook(name)))
            param.requires_grad_(trainable)

    def _grad_hook(self, name: str) -> Any:
        def hook(grad: Tensor) -> Tensor:
            mask = self._masks.get(name)
            return grad if mask is None else grad.masked_fill(mask, 0.0)

        return hook

    def watch(self, optimizer: torch.optim.Optimizer) -> None:
        """Restore the frozen entries after every ``optimizer.step()``."""
        self._handles.append(optimizer.register_step_post_hook(lambda *_: self.restore()))

    def set_frozen(self, masks: Mapping[str, Tensor]) -> None:
        """Freeze exactly the ``True`` entries of ``masks`` (``{name: bool tensor shaped like the parameter}``).

        Parameters not in ``masks`` become fully trainable. A fully frozen parameter gets ``requires_grad=False``
        (and its ``.grad`` cleared); the frozen entries' current values are the ones kept from now on.
        """
        unknown = sorted(set(masks) - set(self.params))
        if unknown:
            raise KeyError(f"no parameter named {unknown[0]!r} is guarded")
        self._masks.clear()
        self._values.clear()
        for name, param in self.params.items():
            mask = masks.get(name)
            if mask is not None and (mask.shape != param.shape or mask.dtype != torch.bool):
                raise ValueError(f"frozen mask of {name!r} must be bool {tuple(param.shape)}, got {tuple(mask.shape)}")
            if mask is None or not bool(mask.any()):
                param.requires_grad_(True)
                continue
            self._masks[name] = mask.clone()
            self._values[name] = param.detach().clone()
            full = bool(mask.all())
            param.requires_grad_(not full)
            if full:
                param.grad = None

    def frozen_mask(self, name: str) -> Tensor | None:
        """The frozen entries of parameter ``name`` (``None``: none frozen)."""
        return self._masks.get(name)

    def restore(self) -> None:
        """Copy the snapshot back into every frozen entry."""
        with torch.no_grad():
            for name, mask in self._masks.items():
                param = self.params[name]
                param.copy_(torch.where(mask, self._values[name], param))

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Let the caller rewrite parameters in place (e.g. pruning) and snapshot the result afterwards."""
        masks = dict(self._masks)
        yield
        self.set_frozen(masks)

    def counts(self) -> tuple[int, int]:
        """``(trainable, frozen)`` element counts over the guarded parameters."""
        frozen = sum(int(mask.sum()) for mask in self._masks.values())
        total = sum(param.numel() for param in self.params.values())
        return total - frozen, frozen

    def remove(self) -> None:
        """Remove the hooks (the parameters keep their current values and ``requires_grad`` flags)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
