"""Routing that is not learned: a task -> module table, as in policy sketches (Andreas et al. 2017, "Modular
Multitask Reinforcement Learning with Policy Sketches"), and the uniform mixture (every module, equal weight: the
ablation that asks what a learned router adds)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from modrl.config import check

from .base import ROUTERS, Router, RoutingOutput


class FixedRouter(Router):
    """One-hot routing from a table: task ``i`` always uses module ``table[i]``. No parameters.

    The table is configuration, not state: it is a non-persistent buffer (not in ``state_dict``), so the config
    that built the router stays the single source of truth.

    Args:
        table: Module index per task id (length ``num_tasks``, entries in ``[0, num_modules)``); empty means
            task ``i`` uses module ``i % num_modules``.
        **kwargs: The common :class:`~modrl.routers.Router` arguments; ``condition`` must be ``"task"``.

    Shapes:
        ``weights`` ``(B, K)`` one-hot in ``obs_features``' dtype; ``logits`` ``None``; ``aux_loss`` ``zeros(())``.
    """

    config_fields: ClassVar[tuple[str, ...]] = ("table",)

    def __init__(self, *, table: Sequence[int] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check(self.condition == "task", "condition", f"a fixed router routes by task only, got {self.condition!r}")
        entries = list(table) or [i % self.num_modules for i in range(self.num_tasks)]
        check(
            len(entries) == self.num_tasks,
            "table",
            f"needs one module index per task ({self.num_tasks}), got {len(entries)}",
        )
        check(
            all(0 <= i < self.num_modules for i in entries),
            "table",
            f"module indices must lie in [0, {self.num_modules}), got {entries}",
        )
        self.table: Tensor
        self.register_buffer("table", torch.tensor(entries, dtype=torch.long), persistent=False)

    def _route(self, obs_features: Tensor, task_ids: Tensor) -> RoutingOutput:
        modules = self.table[task_ids.long()]
        weights = nn.functional.one_hot(modules, self.num_modules).to(obs_features.dtype)
        return RoutingOutput(weights=weights, logits=None, aux_loss=obs_features.new_zeros(()))


class UniformRouter(Router):
    """Every decision weighs every module ``1 / K``: the modules' mean, whatever the task or observation. No
    parameters; ``condition`` is accepted and ignored (so a learned router's config becomes this ablation by changing
    ``kind`` alone).

    Shapes:
        ``weights`` ``(B, K)`` all ``1 / K`` in ``obs_features``' dtype; ``logits`` ``None``;
        ``aux_loss`` ``zeros(())``.
    """

    def _route(self, obs_features: Tensor, task_ids: Tensor) -> RoutingOutput:
        weights = obs_features.new_full((obs_features.shape[0], self.num_modules), 1.0 / self.num_modules)
        return RoutingOutput(weights=weights, logits=None, aux_loss=obs_features.new_zeros(()))


ROUTERS.add("fixed", FixedRouter)
ROUTERS.add("uniform", UniformRouter)
