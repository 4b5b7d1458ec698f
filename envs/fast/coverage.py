"""Which of modrl's task envs the batched engine can stand in for, with the reason when it cannot.

The engine re-implements MiniGrid's stepping (:func:`~modrl.envs.fast.layout.unsupported_reason`) and, in the vector
env over it (``modrl.agents.common.fast_vec_env``), modrl's observation and info wrappers. A task env as
:func:`modrl.envs.make_suite_env` builds it is covered when both hold; anything else gets a reason, so callers can
name the fallback. A split (:class:`~modrl.envs.SplitTaskEnv`, a task drawn per episode) is covered for generated
suites (every task a :class:`~modrl.envs.TaskEnv`) whose tasks are all covered.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker

from modrl.envs.fast.layout import unsupported_reason
from modrl.envs.mission import MissionTokens
from modrl.envs.multitask import SplitTaskEnv, make_suite_env
from modrl.envs.suites import Suite
from modrl.envs.task_env import TaskEnv
from modrl.envs.wrappers import SuccessInfo, TaskObservation

#: The wrappers the fast vector env re-implements; a task env wrapped in anything else is refused.
KNOWN_WRAPPERS = (TaskObservation, SuccessInfo, MissionTokens, OrderEnforcing, PassiveEnvChecker)


def find_wrapper(env: gym.Env, kind: type) -> Any:
    """The outermost wrapper of class ``kind`` around ``env`` (``env`` itself included), or ``None``."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, kind):
            return env
        env = env.env
    return None


def first_task_env(env: gym.Env) -> gym.Env:
    """``env``, or for a :class:`~modrl.envs.SplitTaskEnv` the wrapped env of its split's first task."""
    return env.task_env(env.task_ids[0]) if isinstance(env, SplitTaskEnv) else env


def task_env_reason(env: gym.Env) -> str | None:
    """Why the engine cannot stand in for the task env ``env`` (``make_suite_env``'s, or ``make_split_env``'s: then
    its first task is looked at, every other when first drawn), or ``None`` if it can."""
    if isinstance(env, SplitTaskEnv):
        return task_env_reason(first_task_env(env))
    layer = env
    while isinstance(layer, gym.Wrapper):
        if not isinstance(layer, KNOWN_WRAPPERS):
            return f"wrapper {type(layer).__name__} is not implemented by the fast engine"
        layer = layer.env
    if find_wrapper(env, TaskObservation) is None or find_wrapper(env, SuccessInfo) is None:
        return "needs modrl's TaskObservation and SuccessInfo wrappers"
    return unsupported_reason(env)


def suite_reason(
    suite: Suite, *, max_episode_steps: int | None = None, mission_tokens: bool = False, split: str | None = None
) -> str | None:
    """Why the engine cannot run every task of ``suite`` (``task NAME: reason`` of the first task it cannot), or
    ``None`` if it can. Builds each task env once (``make_suite_env`` with these options) to look at it.

    With ``split`` only that split's tasks are looked at, and each must also be a generated task
    (:class:`~modrl.envs.TaskEnv`): the engine draws a split's tasks per episode for generated suites only.
    """
    indices = range(suite.num_tasks) if split is None else suite.split_indices(split)
    for index in indices:
        task = suite.tasks[index]
        env = make_suite_env(suite, index, max_episode_steps=max_episode_steps, mission_tokens=mission_tokens)
        try:
            reason = task_env_reason(env)
            if reason is None and split is not None and not isinstance(env.unwrapped, TaskEnv):
                reason = (
                    f"env.split {split!r} draws a task per episode (SplitTaskEnv), which the fast engine runs for "
                    "generated task suites only"
                )
        finally:
            env.close()
        if reason is not None:
            return reason if reason.startswith("env.split") else f"task {task.name}: {reason}"
    return None
