"""``freeze_grow``: old modules and old tasks' routing frozen, a new task gets new module(s) and its own router row.

Capacity is allocated up front (``agent.modules.count`` modules) and a per-task module mask on the router
(:meth:`modrl.routers.Router.set_module_mask`) decides which modules each task may route to. Task ``t`` trained at
stage ``s`` may use every module granted at stages ``<= s``; later grants extend only later tasks' rows, so the
softmax an old task computes keeps its shape and its values: old behaviour is preserved bit for bit.

What is frozen from stage 1 on: every actor parameter outside the library and the router (the features extractor
and the action head, which all tasks share), the modules granted earlier, and every router row but the new task's.
The critic keeps training: it does not decide actions. Frozen entries are held by :class:`~modrl.updates.guard.
ParamGuard`, so neither gradients nor optimiser momentum can move them.

Assimilation (optional): at a stage after the first, the new task first routes over the old modules only, training
just its router row; if its training success reaches ``assimilation_threshold`` after ``assimilation_fraction`` of
the stage it keeps doing so and no module is added, otherwise it grows. (In the spirit of "assimilate or
accommodate", Mendez & Eaton 2021, "Lifelong Learning of Compositional Structures".)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from modrl.modules import ModuleLibrary
from modrl.routers import LearnedRouter, Router

from .base import UPDATE_RULES, ConsolidationData, StageProgress, UpdateRule

#: Key of the router's ``(num_tasks, K)`` bool module mask in the rule state (see :func:`router_mask_of`).
MASK_KEY = "module_mask"


class GrowPhase(str, Enum):
    """Where a freeze_grow stage is: the rule's state machine.

    A stage starts :attr:`GROWN` (no assimilation, or nothing to assimilate into) or :attr:`ASSIMILATING`; the
    latter ends :attr:`ASSIMILATED` or :attr:`GROWN_AFTER_TRYING`. The values are the strings the rule state
    (``meta["phase"]``, saved in continual checkpoints) and ``continual.json`` (``rule_phase``) hold: keep them.
    """

    GROWN = "grown"
    """Granted new module(s) at the stage's start."""
    ASSIMILATING = "assimilating"
    """Routing over the old modules only, until the decision at ``assimilation_fraction`` of the stage."""
    ASSIMILATED = "assimilated"
    """Kept the old modules: no module added (also when the stage ended before the decision)."""
    GROWN_AFTER_TRYING = "grown_after_trying"
    """Tried the old modules, fell short of ``assimilation_threshold``, and was granted new module(s)."""


#: Every phase, in the order of :class:`GrowPhase`.
PHASES: tuple[GrowPhase, ...] = tuple(GrowPhase)


class FreezeGrow(UpdateRule):
    """Freeze-and-grow over a pre-allocated skill library.

    Args:
        modules_per_task: Modules granted to a task that grows.
        assimilation: Try the old modules first (see the module docstring).
        assimilation_threshold: Training success that counts as solved by the old modules.
        assimilation_fraction: Fraction of the stage spent trying.
    """

    config_fields: ClassVar[tuple[str, ...]] = (
        "modules_per_task",
        "assimilation",
        "assimilation_threshold",
        "assimilation_fraction",
    )

    def __init__(
        self,
        *,
        modules_per_task: int = 1,
        assimilation: bool = False,
        assimilation_threshold: float = 0.8,
        assimilation_fraction: float = 0.25,
    ) -> None:
        super().__init__()
        self.modules_per_task = int(modules_per_task)
        self.assimilation = bool(assimilation)
        self.assimilation_threshold = float(assimilation_threshold)
        self.assimilation_fraction = float(assimilation_fraction)
        self.used = 0  # modules granted so far: indices [0, used)
        self.rows: dict[int, Tensor] = {}  # task id -> its frozen (K,) mask row, once its stage ended
        self.phase = GrowPhase.GROWN

    # ---- structure --------------------------------------------------------------------------------------------
    @property
    def library(self) -> ModuleLibrary:
        assert self.parts.library is not None
        return self.parts.library

    @property
    def router(self) -> Router:
        assert self.parts.router is not None
        return self.parts.router

    def _attach(self) -> None:
        parts = self.parts
        if parts.library is None or parts.router is None:
            raise ValueError("freeze_grow needs a modular agent (a skill library and a router)")
        router = parts.router
        if not (isinstance(router, LearnedRouter) and isinstance(router.logits_net.net, nn.Embedding)):
            raise ValueError(
                "freeze_grow needs one router row per task: a learned router (soft, gumbel, topk) with "
                f"condition 'task' and hidden 0; got {type(router).__name__} with condition {router.condition!r}"
            )
        names = set(parts.named_parameters("actor"))
        if not any(name.endswith("logits_net.net.weight") for name in names):
            raise ValueError("freeze_grow: the router's logits table is not among the actor's parameters")

    def _grant(self) -> None:
        capacity = len(self.library)
        if self.used + self.modules_per_task > capacity:
            raise ValueError(
                f"freeze_grow: no free module left for stage {self.stage} ({self.used} of {capacity} in use); "
                f"raise agent.modules.count to at least {self.used + self.modules_per_task}"
            )
        self.used += self.modules_per_task

    def _allowed_row(self) -> Tensor:
        row = torch.zeros(len(self.library), dtype=torch.bool)
        row[: max(self.used, 1)] = True
        return row

    def _apply(self) -> None:
        """Set the router mask and the frozen entries for the current state."""
        router, library = self.router, self.library
        current = self.tasks[-1] if self.in_stage else None
        mask = self._allowed_row().expand(router.num_tasks, -1).clone()
        for task, row in self.rows.items():
            mask[task] = row
        router.set_module_mask(mask)
        frozen: dict[str, Tensor] = {}
        module_ids = {id(p): k for k, name in enumerate(library.names) for p in library.get(name).parameters()}
        router_ids = {id(p) for p in router.parameters()}
        first = self.stage <= 0
        for name, param in self.parts.named_parameters("actor").items():
            if id(param) in module_ids:
                k = module_ids[id(param)]
                trainable = self.in_stage and self._trainable_module(k)
                frozen[name] = torch.full_like(param, not trainable, dtype=torch.bool)
            elif id(param) in router_ids:
                rows = torch.ones_like(param, dtype=torch.bool)
                if current is not None:
                    rows[current] = False  # the embedding table: one row per task
                frozen[name] = rows
            elif not first or not self.in_stage:  # extractor, action head, shared library layers
                frozen[name] = torch.ones_like(param, dtype=torch.bool)
        assert self.guard is not None
        self.guard.set_frozen(frozen)

    def _router_mask(self) -> Tensor | None:
        """The ``(num_tasks, K)`` module mask the router acts with now (``None`` before the first stage)."""
        router = self.router
        assert isinstance(router, LearnedRouter)  # checked in _attach
        return router.logits_net.module_mask

    def _trainable_module(self, k: int) -> bool:
        if self.phase in (GrowPhase.ASSIMILATING, GrowPhase.ASSIMILATED):
            return False
        return self.used - self.modules_per_task <= k < self.used

    # ---- hooks --------------------------------------------------------------------------------------------
    def _begin_stage(self, task_id: int) -> None:
        if task_id in self.rows:
            raise ValueError(f"freeze_grow: task {task_id} was already trained and is frozen")
        if self.assimilation and self.used > 0:
            self.phase = GrowPhase.ASSIMILATING
        else:
            self.phase = GrowPhase.GROWN
            self._grant()
        self._apply()

    def _after_update(self, progress: StageProgress) -> None:
        if self.phase is not GrowPhase.ASSIMILATING or progress.fraction < self.assimilation_fraction:
            return
        if progress.success is not None and progress.success >= self.assimilation_threshold:
            self.phase = GrowPhase.ASSIMILATED
        else:
            self.phase = GrowPhase.GROWN_AFTER_TRYING
            self._grant()
        self._apply()

    def _end_stage(self, data: ConsolidationData | None) -> None:
        if self.phase is GrowPhase.ASSIMILATING:  # the stage ended before the decision: keep the old modules
            self.phase = GrowPhase.ASSIMILATED
        self.rows[self.tasks[-1]] = self._allowed_row()
        self.in_stage = False  # _apply freezes everything outside a stage
        self._apply()

    def _state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {f"row/{task}": row for task, row in self.rows.items()}
        mask = self._router_mask()
        if mask is not None:  # what the router acts with: readable without rebuilding the rule
            tensors[MASK_KEY] = mask
        return tensors, {"used": self.used, "phase": self.phase.value}  # a plain string: the checkpoint format

    def _load_state(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> None:
        self.used = int(meta["used"])
        try:
            self.phase = GrowPhase(meta["phase"])
        except ValueError:
            raise ValueError(f"freeze_grow: unknown phase {meta['phase']!r} in the rule state") from None
        rows = {key: value for key, value in tensors.items() if key.startswith("row/")}
        self.rows = {int(key.split("/", 1)[1]): value.to(torch.bool) for key, value in rows.items()}
        self._apply()
        stored = tensors.get(MASK_KEY)
        mask = self._router_mask()
        if stored is not None and (mask is None or not torch.equal(stored.to(torch.bool), mask)):
            raise ValueError(
                "freeze_grow: the stored router module mask disagrees with the rows and grants it came "
                "from (a corrupted or hand-edited rule state)"
            )

    def _inactive(self) -> int:
        unused = self.library.names[self.used :]
        return sum(p.numel() for name in unused for p in self.library.get(name).parameters())


def router_mask_of(tensors: Mapping[str, Tensor]) -> Tensor | None:
    """The router module mask saved in a freeze_grow rule state's tensors (``None`` for other rules).

    Code that loads a continual policy without rebuilding its rule applies it with
    :meth:`modrl.routers.Router.set_module_mask`; :func:`modrl.agents.continual.store.load_continual_policy` does
    this (and more) by restoring the rule itself.
    """
    mask = tensors.get(MASK_KEY)
    return mask.to(torch.bool) if mask is not None else None


UPDATE_RULES.add("freeze_grow", FreezeGrow)
