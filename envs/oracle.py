"""The oracle: solve a :class:`~modrl.envs.task_env.TaskEnv` episode with BabyAI's bot and record the demonstration.

:class:`SequenceBot` is the narrowest subclass of ``minigrid.utils.baby_ai_bot.BabyAIBot`` (minigrid 3.2) that
understands :class:`~modrl.envs.task_env.SubtaskSequence`: it pushes the plan of each subtask, last first, onto the
bot's stack, exactly as BabyAI's bot does for the two operands of ``BeforeInstr``. Everything else (exploration,
blockers, doors, dropping) is BabyAI's bot. :func:`demonstrate` runs it through any wrapper stack (for example
:func:`modrl.envs.make_task_env`'s) and returns what the wrapped env observed, as arrays, for imitation learning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from minigrid.utils.baby_ai_bot import BabyAIBot

from modrl.config import check
from modrl.envs.suites import TaskSpec
from modrl.envs.task_env import SubtaskSequence, TaskEnv, is_task_env


class SequenceBot(BabyAIBot):
    """BabyAI's bot, extended to :class:`~modrl.envs.task_env.SubtaskSequence` instructions.

    Args:
        env: A (possibly wrapped) :class:`~modrl.envs.task_env.TaskEnv`, freshly reset.
    """

    def __init__(self, env: gym.Env) -> None:
        if not isinstance(env.unwrapped, TaskEnv):
            raise TypeError(f"SequenceBot solves TaskEnv episodes, got {type(env.unwrapped).__name__}")
        super().__init__(env)

    def _process_instr(self, instr: Any) -> None:
        if isinstance(instr, SubtaskSequence):
            for part in reversed(instr.instrs):
                super()._process_instr(part)
            return
        super()._process_instr(instr)


def has_oracle(task: TaskSpec) -> bool:
    """Whether :class:`SequenceBot` can solve ``task``: its registered env is a :class:`~modrl.envs.task_env.TaskEnv`
    (read from the gymnasium registry; no env is built). Stock MiniGrid envs (``MiniGrid-Empty-5x5-v0``...) have
    no oracle here."""
    return is_task_env(task.env_id)


@dataclass(frozen=True, kw_only=True)
class Demonstration:
    """One oracle episode as seen through the env's wrappers.

    Attributes:
        task: The task name.
        seed: The reset seed.
        observations: Each observation key stacked over time, ``(T + 1, ...)``: the reset observation, then one per
            step (e.g. ``image`` ``(T + 1, 7, 7, 3) uint8``).
        actions: ``(T,) int64`` the bot's actions.
        rewards: ``(T,) float32``.
        events: Per step, the subtask symbols completed on that step.
        success: The episode ended with the task done (terminated with a positive reward).
    """

    task: str
    seed: int
    observations: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    events: tuple[tuple[str, ...], ...]
    success: bool

    @property
    def length(self) -> int:
        """Number of steps ``T``."""
        return int(self.actions.shape[0])


def demonstrate(env: gym.Env, *, seed: int) -> Demonstration:
    """Reset ``env`` with ``seed`` and let :class:`SequenceBot` act until the episode ends.

    Args:
        env: A :class:`~modrl.envs.task_env.TaskEnv`, possibly wrapped (observations are recorded as the outermost
            wrapper returns them; they must be a dict of arrays/ints, or an array).
        seed: Reset seed.

    Returns:
        The recorded :class:`Demonstration`; ``success`` is ``False`` if the episode was truncated.
    """
    check(isinstance(seed, int) and seed >= 0, "seed", f"must be an integer >= 0, got {seed!r}")
    obs, info = env.reset(seed=seed)
    bot = SequenceBot(env)
    observations, actions, rewards, events = [obs], [], [], []
    success = False
    while True:
        action = int(bot.replan())
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(float(reward))
        events.append(tuple(info["events"]))
        if terminated or truncated:
            success = bool(terminated and float(reward) > 0)
            break
    return Demonstration(
        task=env.unwrapped.task.name,  # type: ignore[attr-defined]
        seed=seed,
        observations=_stack(observations),
        actions=np.asarray(actions, dtype=np.int64),
        rewards=np.asarray(rewards, dtype=np.float32),
        events=tuple(events),
        success=success,
    )


def _stack(observations: list[Any]) -> dict[str, np.ndarray]:
    if isinstance(observations[0], dict):
        return {key: np.stack([np.asarray(o[key]) for o in observations]) for key in observations[0]}
    return {"obs": np.stack([np.asarray(o) for o in observations])}
