"""``packnet``: prune and mask per task, so each task owns a subset of the actor's weights.

Mallya & Lazebnik 2018, "PackNet: Adding Multiple Tasks to a Single Network by Iterative Pruning". Every actor weight
tensor (2-D and up: linear, convolution, embedding tables) carries an owner per entry: ``-1`` free, else the stage
that kept it. At stage ``s`` the free entries train (earlier stages' entries are frozen, and used); once
``1 - retrain_fraction`` of the stage has passed (or at its end) the free entries are pruned by magnitude:
``prune_fraction`` of them are released (set to 0, free again for later tasks) and the rest become stage ``s``'s,
which then retrain alone for the remaining steps. Acting for a task trained at stage ``s`` zeroes every entry owned
by a later stage or still free, which reproduces exactly the weights that task had when its stage ended. Biases and
other 1-D parameters are shared: trained at the first stage, frozen after it (as in the paper).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .base import UPDATE_RULES, ConsolidationData, StageProgress, UpdateRule

FREE = -1


class PackNet(UpdateRule):
    """Iterative pruning with per-task weight ownership.

    Args:
        prune_fraction: Fraction of the stage's free weights released for later tasks, in (0, 1).
        retrain_fraction: Fraction of the stage left to retrain the kept weights after pruning, in [0, 1].
    """

    config_fields: ClassVar[tuple[str, ...]] = ("prune_fraction", "retrain_fraction")

    def __init__(self, *, prune_fraction: float = 0.5, retrain_fraction: float = 0.2) -> None:
        super().__init__()
        self.prune_fraction = float(prune_fraction)
        self.retrain_fraction = float(retrain_fraction)
        self.owner: dict[str, Tensor] = {}
        self.pruned = False

    def _packed(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.parts.named_parameters("actor").items() if p.ndim >= 2}

    def _attach(self) -> None:
        packed = self._packed()
        if not packed:
            raise ValueError("packnet: the actor has no weight tensor (2-D or more) to prune")
        self.owner = {name: torch.full(p.shape, FREE, dtype=torch.int16) for name, p in packed.items()}

    def _freeze(self) -> None:
        frozen: dict[str, Tensor] = {}
        for name, param in self.parts.named_parameters("actor").items():
            owner = self.owner.get(name)
            if owner is None:
                if self.stage > 0 or not self.in_stage:
                    frozen[name] = torch.ones_like(param, dtype=torch.bool)
            elif not self.in_stage:
                frozen[name] = torch.ones_like(owner, dtype=torch.bool)
            elif self.pruned:
                frozen[name] = owner != self.stage
            else:
                frozen[name] = owner != FREE
        assert self.guard is not None
        self.guard.set_frozen(frozen)

    def _prune(self) -> None:
        """Release ``prune_fraction`` of each tensor's free entries (smallest magnitudes first); keep the rest."""
        packed = self._packed()
        with torch.no_grad():
            for name, owner in self.owner.items():
                param = packed[name]
                free = (owner == FREE).reshape(-1)
                index = free.nonzero().squeeze(1)
                release = round(self.prune_fraction * index.numel())
                order = param.detach().reshape(-1)[index].abs().argsort(stable=True)
                released, kept = index[order[:release]], index[order[release:]]
                param.view(-1)[released] = 0.0
                owner.view(-1)[kept] = self.stage
        self.pruned = True
        self._freeze()

    def _begin_stage(self, task_id: int) -> None:
        self.pruned = False
        self._freeze()

    def _after_update(self, progress: StageProgress) -> None:
        if not self.pruned and progress.fraction >= 1.0 - self.retrain_fraction:
            self._prune()

    def _end_stage(self, data: ConsolidationData | None) -> None:
        if not self.pruned:
            self._prune()
        self.in_stage = False
        self._freeze()

    @contextmanager
    def _acting_as(self, task_id: int) -> Iterator[None]:
        if task_id not in self.tasks:  # never trained: act with everything learned so far
            yield
            return
        stage = len(self.tasks) - 1 - self.tasks[::-1].index(task_id)
        packed = self._packed()
        saved = {name: packed[name].detach().clone() for name in self.owner}
        with torch.no_grad():
            for name, owner in self.owner.items():
                packed[name].masked_fill_((owner > stage) | (owner == FREE), 0.0)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in saved.items():
                    packed[name].copy_(value)

    def _state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        return {f"owner/{k}": v for k, v in self.owner.items()}, {"pruned": self.pruned}

    def _load_state(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> None:
        owner = {key.split("/", 1)[1]: value.to(torch.int16) for key, value in tensors.items()}
        if set(owner) != set(self.owner) or any(owner[k].shape != v.shape for k, v in self.owner.items()):
            raise ValueError("packnet: the rule state's owner tensors do not match the attached weights")
        self.owner = owner
        self.pruned = bool(meta["pruned"])
        self._freeze()


UPDATE_RULES.add("packnet", PackNet)
