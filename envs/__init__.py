"""MiniGrid task suites, the task grammar, splits, predicates, the oracle and SB3-ready wrappers (as :mod:`modrl.envs`).

Importing this package imports ``minigrid``, which registers the stock ``MiniGrid-*`` and ``BabyAI-*`` gymnasium ids,
and registers the generated suites and their ``ModRL-<suite>-<task>-v0`` ids (:mod:`modrl.envs.catalog`).
"""

from __future__ import annotations

from modrl.envs.catalog import env_id  # importing the catalog registers the generated suites
from modrl.envs.goals import goals_for_env, mission_goals
from modrl.envs.grammar import ObjectRef, Subtask, Task, parse_task
from modrl.envs.mission import MissionTokens, MissionVocabulary
from modrl.envs.multitask import SplitTaskEnv, make_split_env, make_suite_env
from modrl.envs.operators import goal_predicates, planning_domain
from modrl.envs.oracle import Demonstration, demonstrate
from modrl.envs.predicates import env_planning_state, env_predicates, planning_state, symbolic_state
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.splits import SPLITS, Split, get_split
from modrl.envs.suites import DEFAULT_SUITE, SUITES, Suite, TaskSpec, get_suite
from modrl.envs.task_env import TaskEnv
from modrl.envs.wrappers import IMAGE_HIGH, SuccessInfo, TaskObservation, make_task_env, task_for_env_index

__all__ = [
    "DEFAULT_SUITE",
    "IMAGE_HIGH",
    "SPLITS",
    "SUITES",
    "Demonstration",
    "MissionTokens",
    "MissionVocabulary",
    "ObjectRef",
    "ScriptedSkills",
    "Split",
    "SplitTaskEnv",
    "Subtask",
    "SuccessInfo",
    "Suite",
    "Task",
    "TaskEnv",
    "TaskObservation",
    "TaskSpec",
    "demonstrate",
    "env_id",
    "env_planning_state",
    "env_predicates",
    "get_split",
    "get_suite",
    "goal_predicates",
    "goals_for_env",
    "make_split_env",
    "make_suite_env",
    "make_task_env",
    "mission_goals",
    "parse_task",
    "planning_domain",
    "planning_state",
    "symbolic_state",
    "task_for_env_index",
]
