"""MiniGrid task suites and SB3-ready wrappers (installed as :mod:`modrl.envs`).

Importing this package imports ``minigrid``, which registers the stock ``MiniGrid-*`` gymnasium ids.
"""

from __future__ import annotations

from modrl.envs.suites import DEFAULT_SUITE, SUITES, Suite, TaskSpec, get_suite
from modrl.envs.wrappers import IMAGE_HIGH, SuccessInfo, TaskObservation, make_task_env, task_for_env_index

__all__ = [
    "DEFAULT_SUITE",
    "IMAGE_HIGH",
    "SUITES",
    "SuccessInfo",
    "Suite",
    "TaskObservation",
    "TaskSpec",
    "get_suite",
    "make_task_env",
    "task_for_env_index",
]
