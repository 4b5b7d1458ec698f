"""A set of demonstrations flattened to (observation, action) pairs: what behaviour cloning reads
(:mod:`modrl.agents.options.demos`, :mod:`modrl.agents.options.skill_cloning`) and what the planner's recordings and
DAgger rounds produce (:mod:`modrl.agents.planning.recording`, :mod:`modrl.agents.planning.dagger`). Needs numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class DemoSet:
    """Successful demonstrations of one option, flattened to ``N`` (observation, action) pairs.

    Attributes:
        observations: The option's observation before each action, per key: ``image`` ``(N, 7, 7, 3) uint8``,
            ``direction`` ``(N,) int64`` (and ``args`` ``(N, n_slots) int64`` for a parameterised option).
        actions: ``(N,) int64`` the oracle's actions.
        returns: ``(N,) float32`` discounted return from each step to the episode's end.
        tasks: The task of each episode. seeds: Each episode's :class:`SubtaskEnv` reset seed.
        task_seeds: Each episode's task-env seed. lengths: Each episode's number of steps.
        attempts: Episodes tried (failed and skipped ones included). frames: Env steps taken by all attempts.
    """

    observations: dict[str, np.ndarray]
    actions: np.ndarray
    returns: np.ndarray
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    task_seeds: tuple[int, ...]
    lengths: tuple[int, ...]
    attempts: int
    frames: int

    @property
    def size(self) -> int:
        """Number of (observation, action) pairs ``N``."""
        return int(self.actions.shape[0])
