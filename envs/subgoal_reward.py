"""Subgoal rewards for training an option by RL alone: a bonus, read from the suite's own predicates, the first time
in an episode each subgoal of a :class:`~modrl.envs.subtask_env.SubtaskEnv` episode's subtask holds (neither a
scripted skill nor a demonstration)."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

from modrl.config import check, short_repr
from modrl.envs.predicates import env_predicates
from modrl.envs.subtask_env import SubtaskEnv
from modrl.envs.subtask_symbols import subgoal_conjunctions


class SubgoalReward(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Training-time shaping of a :class:`SubtaskEnv` from the suite's own predicates: ``bonus`` is added the first
    time in an episode each subgoal of the episode's subtask (:func:`subgoal_conjunctions`) holds, so an episode
    gains at most ``bonus x len(subgoals)`` (it cannot be farmed by undoing and redoing a subgoal). Subgoals that
    already hold at reset earn nothing. ``is_success`` is unchanged (it is read from the subtask's completion event);
    evaluation envs are not wrapped.

    Args:
        env: A :class:`SubtaskEnv` (possibly wrapped).
        bonus: Reward per subgoal, in ``[0, 1]``.
    """

    def __init__(self, env: gym.Env[Any, Any], *, bonus: float) -> None:
        check(
            isinstance(bonus, (int, float)) and not isinstance(bonus, bool) and 0.0 <= bonus <= 1.0,
            "bonus",
            f"must be in [0, 1], got {short_repr(bonus)}",
        )
        check(isinstance(env.unwrapped, SubtaskEnv), "env", "subgoal rewards need a SubtaskEnv")
        gym.utils.RecordConstructorArgs.__init__(self, bonus=bonus)
        gym.Wrapper.__init__(self, env)
        self.bonus = float(bonus)
        self._left: list[frozenset[str]] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env; the subgoals that do not hold yet are the ones left to reward."""
        obs, info = self.env.reset(seed=seed, options=options)
        base = self.env.unwrapped
        assert isinstance(base, SubtaskEnv)
        now = env_predicates(base.current_env)  # type: ignore[arg-type]
        self._left = [goal for goal in subgoal_conjunctions(base.current_subtask) if not goal <= now]
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env; the reward gains ``bonus`` per subgoal that holds for the first time."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        now = info.get("predicates", frozenset())
        reached = [goal for goal in self._left if goal <= now]
        if reached:
            self._left = [goal for goal in self._left if goal not in reached]
        return obs, float(reward) + self.bonus * len(reached), terminated, truncated, info
