"""A differentiable task-module mutual information: the specialisation term a learned router may add to its loss.

``I(task; module) = H(sum_t p(t) p(module | t)) - sum_t p(t) H(p(module | t))`` over a batch, with ``p(t)`` the share
of the batch's decisions from task ``t`` and ``p(module | t)`` the mean routing probabilities of those decisions.
Maximising it asks for two things at once: each task's routing sharp (low conditional entropy) and the tasks spread
over the modules (high marginal entropy: no collapse onto one module). This is the mutual-information loss of
Mod-Squad (Chen et al. 2023, "Mod-Squad: Designing Mixtures of Experts As Modular Multi-Task Learners"), here on the
task ids a modrl router already receives. :func:`modrl.routing_health.routing_health` reports the same quantity
(normalised) from a run's evaluation, so the term optimises what the health line measures.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Probabilities are clamped to this before the logarithm (a masked module has probability 0).
_TINY = 1e-12


def _entropy(p: Tensor) -> Tensor:
    return -(p * torch.log(p.clamp_min(_TINY))).sum(dim=-1)


def task_module_mi(probs: Tensor, task_ids: Tensor, num_tasks: int) -> Tensor:
    """The batch's ``I(task; module)`` in nats, differentiable in ``probs``.

    Args:
        probs: ``(B, K)`` routing probabilities (rows summing to 1).
        task_ids: ``(B,)`` integer task ids in ``[0, num_tasks)``.
        num_tasks: Number of task ids.

    Returns:
        ``()`` tensor in ``[0, log(min(tasks in the batch, K))]``; 0 for an empty batch or one with a single task.
    """
    if probs.ndim != 2 or task_ids.shape != probs.shape[:1]:
        shapes = f"{tuple(probs.shape)} and {tuple(task_ids.shape)}"
        raise ValueError(f"probs must be (B, K) and task_ids (B,), got {shapes}")
    if probs.shape[0] == 0:
        return probs.new_zeros(())
    onehot = nn.functional.one_hot(task_ids.long(), num_tasks).to(probs.dtype)  # (B, T)
    counts = onehot.sum(dim=0)
    seen = counts > 0
    conditional = (onehot.T @ probs)[seen] / counts[seen, None]  # (T seen, K): p(module | task)
    task_share = counts[seen] / probs.shape[0]
    marginal = task_share @ conditional
    return _entropy(marginal) - (task_share * _entropy(conditional)).sum()
