"""The continual-training configuration: one agent, a sequence of tasks, a local-update rule.

``modrl continual CONFIG.yaml`` reads a file shaped like :class:`ContinualConfig`. The ``env``, ``agent`` and
``algo`` sections are the experiment config's (:mod:`modrl.agents.common.config`); ``sequence`` names the tasks (of
``env.suite``) in training order and the budget of each stage; ``rule`` is a :class:`modrl.updates.UpdateRuleConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modrl.agents.common.config import ExperimentConfig, RunConfig, TrainConfig
from modrl.agents.common.config_checks import check_run_fields
from modrl.config import ConfigError, apply_overrides, check, from_dict, load_yaml
from modrl.updates import UpdateRuleConfig

if TYPE_CHECKING:
    from modrl.envs import Suite


@dataclass(frozen=True, kw_only=True)
class SequenceConfig:
    """The tasks in training order, the budget per stage, evaluation and checkpointing.

    Attributes:
        tasks: Task names of ``env.suite``, each at most once.
        steps_per_task: Environment steps per stage (rounded up to whole rollouts by the algorithm).
        eval_episodes: Deterministic evaluation episodes per task after every stage (fixed seeds).
        checkpoint_every: Steps between checkpoints inside a stage (a stage's end is always checkpointed).
        keep_checkpoints: Checkpoints kept (>= 2, so a kill while writing one always leaves a complete pair).
        reference: ``scratch`` also trains every task alone from a fresh agent with the same budget, for forward
            transfer; ``none`` skips it (forward transfer is then not reported).
        reference_dir: With ``reference: scratch``, a directory caching the from-scratch references between runs: a
            reference depends only on the seed, env, agent, algo, budget and the task's stage (not on the rule), so
            the runs of every rule with one seed share it (:mod:`modrl.agents.continual.reference`).
    """

    tasks: tuple[str, ...] = ()
    steps_per_task: int = 100_000
    eval_episodes: int = 20
    checkpoint_every: int = 20_000
    keep_checkpoints: int = 2
    reference: Literal["none", "scratch"] = "none"
    reference_dir: str | None = None

    def __post_init__(self) -> None:
        check(len(self.tasks) >= 1, "tasks", "name at least one task of env.suite")
        duplicates = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        check(not duplicates, "tasks", f"each task may appear once, repeated: {duplicates}")
        check(self.steps_per_task >= 1, "steps_per_task", f"must be >= 1, got {self.steps_per_task}")
        check(self.eval_episodes >= 1, "eval_episodes", f"must be >= 1, got {self.eval_episodes}")
        check(self.checkpoint_every >= 1, "checkpoint_every", f"must be >= 1, got {self.checkpoint_every}")
        check(self.keep_checkpoints >= 2, "keep_checkpoints", f"must be >= 2, got {self.keep_checkpoints}")
        check(
            self.reference_dir is None or self.reference == "scratch",
            "reference_dir",
            "caches from-scratch references; set sequence.reference: scratch too",
        )
        check(
            self.reference_dir is None or bool(self.reference_dir.strip()),
            "reference_dir",
            "give a directory path or null",
        )


@dataclass(frozen=True, kw_only=True)
class ContinualConfig(RunConfig):
    """A whole continual run (the top level of a ``modrl continual`` YAML file)."""

    name: str = "continual"
    sequence: SequenceConfig = field(default_factory=lambda: SequenceConfig(tasks=("empty5",)))
    rule: UpdateRuleConfig = field(default_factory=UpdateRuleConfig)

    def experiment(self) -> ExperimentConfig:
        """The equivalent single-run config (used to build the model; ``train`` covers the whole sequence)."""
        total = self.sequence.steps_per_task * len(self.sequence.tasks)
        train = TrainConfig(
            total_timesteps=total,
            checkpoint_every=self.sequence.checkpoint_every,
            keep_checkpoints=self.sequence.keep_checkpoints,
            eval_episodes=0,
        )
        return ExperimentConfig(
            name=self.name,
            seed=self.seed,
            torch_threads=self.torch_threads,
            env=self.env,
            agent=self.agent,
            algo=self.algo,
            train=train,
        )


def load_continual_config(source: Path | str | Mapping[str, Any], overrides: Sequence[str] = ()) -> ContinualConfig:
    """Load a :class:`ContinualConfig` from YAML (or a mapping) plus ``key.sub=value`` overrides, strictly."""
    data = source if isinstance(source, Mapping) else load_yaml(source)
    config = from_dict(ContinualConfig, apply_overrides(data, overrides))
    _check_cross_fields(config)
    return config


def _check_cross_fields(config: ContinualConfig) -> None:
    suite = check_run_fields(config)
    unknown = [t for t in config.sequence.tasks if t not in suite.task_names]
    if unknown:
        raise ConfigError(
            f"sequence.tasks: suite {suite.name!r} has no task {unknown[0]!r}; its tasks: {', '.join(suite.task_names)}"
        )
    if config.env.split is not None:
        raise ConfigError("env.split: a continual run trains one task per stage; leave env.split null")
    for key, unused in (("event_reward", config.env.event_reward > 0), ("strict", config.env.strict)):
        if unused:
            raise ConfigError(f"env.{key}: a continual run's stages train on the tasks as they are; leave it unset")
    if config.env.engine == "fast":
        _check_fast_engine(config, suite)
    if config.rule.kind == "freeze_grow":
        _check_freeze_grow(config)


def _check_fast_engine(config: ContinualConfig, suite: Suite) -> None:
    """``env.engine: fast`` needs the batched engine to cover every task of the sequence."""
    from modrl.agents.continual.parts import stage_engine_reason

    options = config.experiment().env.suite_env_kwargs()  # what the runner's stage envs get
    for name in config.sequence.tasks:
        reason = stage_engine_reason(suite, suite.task_index(name), options)
        if reason is not None:
            raise ConfigError(f"env.engine: fast cannot run task {name} ({reason}); use minigrid or auto")


def _check_freeze_grow(config: ContinualConfig) -> None:
    agent = config.agent
    if agent.kind != "modular":
        raise ConfigError("rule.kind: freeze_grow needs agent.kind=modular (a skill library and a router)")
    if agent.router.kind in ("fixed", "uniform") or agent.router.condition != "task" or agent.router.hidden != 0:
        raise ConfigError(
            "agent.router: freeze_grow needs one router row per task: kind soft/gumbel/topk, condition task, hidden 0"
        )
    needed = config.rule.modules_per_task * (1 if config.rule.assimilation else len(config.sequence.tasks))
    if agent.modules.count < needed:
        raise ConfigError(
            f"agent.modules.count: freeze_grow grants {config.rule.modules_per_task} module(s) per task; "
            f"{len(config.sequence.tasks)} tasks need at least {needed} modules, got {agent.modules.count}"
        )
    if agent.router.kind == "topk" and agent.router.k > config.rule.modules_per_task:
        raise ConfigError(
            "agent.router.k: the first task routes over rule.modules_per_task modules; k may not exceed it"
        )
