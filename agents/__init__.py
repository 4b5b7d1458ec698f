"""Trainable agents on MiniGrid and their Stable-Baselines3 integration (installed as ``modrl.agents``).

Sub-packages, one concept each:

- :mod:`modrl.agents.common` -- the modular and monolithic agents through SB3: config, features extractor,
  ``ModularActorCriticPolicy``, model builders, callbacks, training with exact resume, evaluation.
- :mod:`modrl.agents.continual` -- a task sequence under a local-update rule (``modrl continual``).
- :mod:`modrl.agents.options` -- the ways options are trained (subtask events, demonstrations, skill cloning,
  sketches, option-critic) and the PPO router over option calls.
- :mod:`modrl.agents.planning` -- the planner run with a library of learned options: library loading, the
  planner-episode harness, planner evaluation, DAgger and skill recording. Imports no stable_baselines3.

The names below are importable from ``modrl.agents`` itself. They load on first use (PEP 562), so importing
``modrl.agents.planning`` does not pull in stable_baselines3 through this package's ``__init__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> sub-module holding it
_EXPORTS: dict[str, str] = {
    # common: the modular agent and its parameter-matched baseline through SB3
    "ModularActorCriticPolicy": "common.policies",
    "ModularExtractor": "common.policies",
    "ObservationActorPolicy": "common.policies",
    "ObservationMlpExtractor": "common.policies",
    "monolithic_policy_kwargs": "common.policies",
    "AGENTS": "common.policies",
    "MinigridFeaturesExtractor": "common.extractors",
    "MissionEncoder": "common.extractors",
    "ExperimentConfig": "common.config",
    "load_experiment_config": "common.config",
    "ALGOS": "common.builders",
    "build_model": "common.builders",
    "build_policy": "common.builders",
    "TrainStatus": "common.training",
    "run_training": "common.training",
    "EvalReport": "common.evaluation",
    "TaskResult": "common.evaluation",
    "evaluate_policy": "common.evaluation",
    "load_run_policy": "common.evaluation",
    # continual learning
    "ContinualConfig": "continual.config",
    "load_continual_config": "continual.config",
    "ContinualStatus": "continual.runner",
    "run_continual": "continual.runner",
    "ContinualPolicy": "continual.store",
    "load_continual_policy": "continual.store",
    # options
    "OptionsTrainConfig": "options.config",
    "RouteConfig": "options.config",
    "OptionActorCriticPolicy": "options.policy",
    "train_options": "options.train",
    "train_controller": "options.ppo_controller",
    "OptionCriticConfig": "options.critic_config",
    "SketchConfig": "options.critic_config",
    "run_option_critic": "options.critic",
    "run_sketch": "options.sketch",
    "SkillCloningConfig": "options.skill_cloning_config",
    "train_skill_library": "options.skill_cloning",
    # the planner with learned options
    "PlannerEvalConfig": "planning.evaluation",
    "evaluate_planner": "planning.evaluation",
    "learned_skills": "planning.skills",
}

__all__ = [
    "AGENTS",
    "ALGOS",
    "ContinualConfig",
    "ContinualPolicy",
    "ContinualStatus",
    "EvalReport",
    "ExperimentConfig",
    "MinigridFeaturesExtractor",
    "MissionEncoder",
    "ModularActorCriticPolicy",
    "ModularExtractor",
    "ObservationActorPolicy",
    "ObservationMlpExtractor",
    "OptionActorCriticPolicy",
    "OptionCriticConfig",
    "OptionsTrainConfig",
    "PlannerEvalConfig",
    "RouteConfig",
    "SketchConfig",
    "SkillCloningConfig",
    "TaskResult",
    "TrainStatus",
    "build_model",
    "build_policy",
    "evaluate_planner",
    "evaluate_policy",
    "learned_skills",
    "load_continual_config",
    "load_continual_policy",
    "load_experiment_config",
    "load_run_policy",
    "monolithic_policy_kwargs",
    "run_continual",
    "run_option_critic",
    "run_sketch",
    "run_training",
    "train_controller",
    "train_options",
    "train_skill_library",
]

if TYPE_CHECKING:
    from modrl.agents.common.builders import ALGOS, build_model, build_policy
    from modrl.agents.common.config import ExperimentConfig, load_experiment_config
    from modrl.agents.common.evaluation import EvalReport, TaskResult, evaluate_policy, load_run_policy
    from modrl.agents.common.extractors import MinigridFeaturesExtractor, MissionEncoder
    from modrl.agents.common.policies import (
        AGENTS,
        ModularActorCriticPolicy,
        ModularExtractor,
        ObservationActorPolicy,
        ObservationMlpExtractor,
        monolithic_policy_kwargs,
    )
    from modrl.agents.common.training import TrainStatus, run_training
    from modrl.agents.continual.config import ContinualConfig, load_continual_config
    from modrl.agents.continual.runner import ContinualStatus, run_continual
    from modrl.agents.continual.store import ContinualPolicy, load_continual_policy
    from modrl.agents.options.config import OptionsTrainConfig, RouteConfig
    from modrl.agents.options.critic import run_option_critic
    from modrl.agents.options.critic_config import OptionCriticConfig, SketchConfig
    from modrl.agents.options.policy import OptionActorCriticPolicy
    from modrl.agents.options.ppo_controller import train_controller
    from modrl.agents.options.sketch import run_sketch
    from modrl.agents.options.skill_cloning import train_skill_library
    from modrl.agents.options.skill_cloning_config import SkillCloningConfig
    from modrl.agents.options.train import train_options
    from modrl.agents.planning.evaluation import PlannerEvalConfig, evaluate_planner
    from modrl.agents.planning.skills import learned_skills


def __getattr__(name: str) -> Any:
    """Import an exported name from its sub-module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modrl.agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
