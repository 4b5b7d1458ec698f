"""Data-parallel training over processes: gradients averaged across a ``torch.distributed`` group after every
backward pass, so processes that start from the same weights and take the same optimizer steps keep the same weights.

What multi-GPU RL libraries do with ``DistributedDataParallel``, reduced to what an SB3 algorithm needs: SB3's
``PPO.train`` calls ``loss.backward()``, then clips the gradient norm, then steps the optimizer, in one method with
no hook between. :class:`GradientAverager` hooks the parameters instead (``register_post_accumulate_grad_hook``) and
queues one callback at the end of the backward pass (the autograd engine's ``queue_callback``, the mechanism
``DistributedDataParallel`` uses), which replaces every gradient by its mean over the group in one flattened
``all_reduce``. So clipping and the optimizer see the mean gradient, as one process computing the whole minibatch
would (up to summation order), with no algorithm subclass and no copy of SB3's loop.

Every process must run the same number of backward passes (the ``all_reduce`` is collective); a parameter that gets
no gradient in one process's pass counts as zero there.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn


class GradientAverager:
    """Average the gradients of ``module``'s trainable parameters over ``group`` after every backward pass.

    Args:
        module: The module whose parameters' gradients are averaged (e.g. an SB3 policy).
        group: The process group (``None``: the default group, which must be initialised).
    """

    def __init__(self, module: nn.Module, group: dist.ProcessGroup | None = None) -> None:
        self.group = group
        self.world = dist.get_world_size(group)
        self.params = [p for p in module.parameters() if p.requires_grad]
        self._queued = False
        self._handles = [p.register_post_accumulate_grad_hook(self._on_grad) for p in self.params]

    def _on_grad(self, param: torch.Tensor) -> None:
        if not self._queued:
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._average)

    def _average(self) -> None:
        self._queued = False
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, group=self.group)
        flat /= self.world
        for param, chunk in zip(self.params, _split_like(flat, self.params), strict=True):
            if param.grad is None:
                param.grad = chunk.clone()
            else:
                param.grad.copy_(chunk)

    def remove(self) -> None:
        """Remove the hooks (gradients are no longer averaged)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _split_like(flat: torch.Tensor, params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    out, offset = [], 0
    for param in params:
        n = param.numel()
        out.append(flat[offset : offset + n].view_as(param))
        offset += n
    return out


def broadcast_parameters(module: nn.Module, src: int = 0, group: dist.ProcessGroup | None = None) -> None:
    """Copy process ``src``'s parameters and buffers of ``module`` to every process of ``group``."""
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=src, group=group)
