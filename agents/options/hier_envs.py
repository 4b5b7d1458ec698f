"""Env slots for the hand-written hierarchical loops (option-critic, sketch-guided): tasks of a suite split, drawn per
episode, stepped one slot at a time so the loop decides when each slot resets.

Observations are MiniGrid's own (``image``, ``direction``, ``mission``): what options read. The task is tracked here
(suite-wide task id), not in the observation, and success is MiniGrid's: the episode terminated with a positive
reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from modrl.agents.options.critic_config import HierEnvConfig
from modrl.envs import get_suite

_SEED_HIGH = 2**31 - 1


@dataclass(frozen=True, kw_only=True)
class StepResult:
    """One slot's step: the env's outputs, with ``success`` = terminated with a positive reward."""

    observation: dict[str, Any]
    reward: float
    done: bool
    success: bool
    info: dict[str, Any]


class Slots(Protocol):
    """What the hierarchical loops need from their envs (:class:`TaskSlots`, or a test double)."""

    task_names: tuple[str, ...]

    @property
    def n_envs(self) -> int:
        """Number of slots."""
        ...

    def reset(
        self, slot: int, allowed: Sequence[int] | None = None, *, task: int | None = None, seed: int | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a new episode in ``slot``."""
        ...

    def step(self, slot: int, action: int) -> StepResult:
        """Step ``slot``'s env."""
        ...

    def task_index(self, slot: int) -> int:
        """Index into ``task_names`` of ``slot``'s current task."""
        ...

    def close(self) -> None:
        """Release the envs."""
        ...


class TaskSlots:
    """``n_envs`` slots; each episode of a slot runs one task drawn uniformly from the allowed ones.

    Args:
        config: Suite, split (or listed tasks), slot count, room overrides, step limit.
        seed: Seeds the task and episode-seed draws.

    Attributes:
        task_names: The candidate tasks. task_ids: Their suite-wide ids. current: Task index (into ``task_names``)
            of each slot's episode.
    """

    def __init__(self, config: HierEnvConfig, *, seed: int) -> None:
        self.suite = get_suite(config.suite)
        self.task_names: tuple[str, ...] = config.tasks or tuple(self.suite.split(config.split))
        self.task_ids = tuple(self.suite.task_index(t) for t in self.task_names)
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.current = [0] * config.n_envs
        self._envs: dict[tuple[int, int], gym.Env[Any, Any]] = {}

    @property
    def n_envs(self) -> int:
        """Number of slots."""
        return self.config.n_envs

    def env(self, slot: int) -> gym.Env[Any, Any]:
        """The env of ``slot``'s current task."""
        return self._task_env(slot, self.current[slot])

    def reset(
        self, slot: int, allowed: Sequence[int] | None = None, *, task: int | None = None, seed: int | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a new episode in ``slot``: task ``task`` or one drawn from ``allowed`` (indices into
        ``task_names``; all by default), reset with ``seed`` or a drawn seed."""
        choices = range(len(self.task_names)) if allowed is None else allowed
        drawn = int(self.rng.choice(np.asarray(choices)))
        episode_seed = int(self.rng.integers(_SEED_HIGH))
        self.current[slot] = drawn if task is None else task
        obs, info = self.env(slot).reset(seed=episode_seed if seed is None else seed)
        return obs, dict(info)

    def step(self, slot: int, action: int) -> StepResult:
        """Step ``slot``'s env."""
        obs, reward, terminated, truncated, info = self.env(slot).step(action)
        return StepResult(
            observation=obs,
            reward=float(reward),
            done=bool(terminated or truncated),
            success=bool(terminated and float(reward) > 0),
            info=dict(info),
        )

    def task_index(self, slot: int) -> int:
        """Index (into ``task_names``) of ``slot``'s current task."""
        return self.current[slot]

    def close(self) -> None:
        """Close every env built."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def _task_env(self, slot: int, index: int) -> gym.Env[Any, Any]:
        env = self._envs.get((slot, index))
        if env is None:
            spec = self.suite.tasks[self.task_ids[index]]
            kwargs: dict[str, Any] = dict(spec.kwargs)
            if spec.env_id.startswith("ModRL-"):
                kwargs.update(self.config.task_kwargs())
            if self.config.max_episode_steps is not None:
                kwargs["max_steps"] = self.config.max_episode_steps
            env = self._envs[(slot, index)] = gym.make(spec.env_id, **kwargs)
        return env


def stack_observations(observations: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``image (N, H, W, C)`` uint8 and ``direction (N,)`` long from N MiniGrid observations."""
    image = torch.as_tensor(np.stack([np.asarray(o["image"]) for o in observations]))
    direction = torch.as_tensor([int(o["direction"]) for o in observations], dtype=torch.long)
    return image, direction
