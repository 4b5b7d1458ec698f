"""Configs of ``modrl options critic`` (option-critic, training path 3) and ``modrl options sketch`` (sketch-guided
modules, training path 2): strict frozen dataclasses loaded from YAML like the other option configs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from modrl.agents.common.config import AlgoConfig
from modrl.agents.options.config import EpisodeConfig, OptionNetConfig, check_split
from modrl.config import ConfigError, apply_overrides, check, from_dict, load_yaml
from modrl.options import CurriculumConfig
from modrl.seeds import MAX_SEED


@dataclass(frozen=True, kw_only=True)
class HierEnvConfig(EpisodeConfig):
    """The episodes: a split of a suite (one task drawn per episode), or the listed tasks of that split.

    ``room_size`` / ``num_distractors`` shrink the rooms of generated suites (``null``: the suite's own).
    """

    suite: str = "minigrid-tiny"
    split: str = "train"
    #: Only these tasks of the split (empty: all of them).
    tasks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        check(len(set(self.tasks)) == len(self.tasks), "tasks", f"lists a task twice: {list(self.tasks)}")


@dataclass(frozen=True, kw_only=True)
class HierAlgoConfig(AlgoConfig):
    """PPO hyper-parameters of the hand-written loops (clipped surrogate, GAE, Adam, one rollout per update): the
    fields and checks of :class:`~modrl.agents.common.config.AlgoConfig`, with larger batches and fewer epochs by
    default."""

    learning_rate: float = 5e-4
    batch_size: int = 256
    n_epochs: int = 4


@dataclass(frozen=True, kw_only=True)
class OptionCriticConfig:
    """``modrl options critic``: K options (policy + learned β) and a policy over options, trained end to end.

    ``termination_reg`` is the margin ξ added to the termination advantage (Bacon et al., 2017): β is pushed down
    unless switching gains more than ξ. ``deliberation_cost`` is the reward charged for every switch (Harb et al.,
    2018, "When waiting is not an option"). Both keep options from collapsing to one step; 0 turns them off.
    """

    name: str = "option-critic"
    seed: int = 0
    torch_threads: int = 1
    num_options: int = 4
    env: HierEnvConfig = field(default_factory=HierEnvConfig)
    net: OptionNetConfig = field(default_factory=OptionNetConfig)
    task_dim: int = 8
    algo: HierAlgoConfig = field(default_factory=HierAlgoConfig)
    option_ent_coef: float = 0.01
    termination_reg: float = 0.01
    deliberation_cost: float = 0.0
    termination_coef: float = 1.0
    total_timesteps: int = 100_000
    eval_episodes: int = 10

    def __post_init__(self) -> None:
        check(0 <= self.seed < MAX_SEED, "seed", f"must be in [0, {MAX_SEED}), got {self.seed}")
        for name in ("torch_threads", "num_options", "task_dim", "total_timesteps"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("option_ent_coef", "termination_reg", "deliberation_cost", "termination_coef", "eval_episodes"):
            check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class SketchConfig:
    """``modrl options sketch``: one module per sketch entry, the sketch fixes the active one, each learns to STOP.

    ``mode: per_symbol`` has one module per subtask symbol (``pickup-blue-key``), as in Andreas et al. (2017);
    ``parameterised`` one module per verb conditioned on the object. Reward is the task's own, at its end, plus
    ``subtask_reward`` for every subtask event (0: task end only). Stopping the last module ends the episode unsolved.
    The curriculum stages are sketch lengths (short sketches first), each passed at ``curriculum.threshold``.
    """

    name: str = "sketch"
    seed: int = 0
    torch_threads: int = 1
    mode: Literal["per_symbol", "parameterised"] = "per_symbol"
    env: HierEnvConfig = field(default_factory=lambda: HierEnvConfig(suite="sequences"))
    net: OptionNetConfig = field(default_factory=OptionNetConfig)
    algo: HierAlgoConfig = field(default_factory=HierAlgoConfig)
    subtask_reward: float = 0.0
    #: Initial logit of every STOP head (negative: modules start by rarely stopping).
    stop_bias: float = -2.0
    curriculum: CurriculumConfig = field(default_factory=lambda: CurriculumConfig(max_steps=100_000))
    total_timesteps: int = 100_000
    eval_episodes: int = 10
    #: Also evaluate, zero-shot, the tasks of this split whose every subtask has a module (null: none).
    eval_split: str | None = "test"

    def __post_init__(self) -> None:
        check(0 <= self.seed < MAX_SEED, "seed", f"must be in [0, {MAX_SEED}), got {self.seed}")
        for name in ("torch_threads", "total_timesteps"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(self.subtask_reward >= 0, "subtask_reward", f"must be >= 0, got {self.subtask_reward}")
        check(self.eval_episodes >= 0, "eval_episodes", f"must be >= 0, got {self.eval_episodes}")


def _load(cls: type[Any], source: Path | str | Mapping[str, Any], overrides: Sequence[str]) -> Any:
    data = source if isinstance(source, Mapping) else load_yaml(source)
    config = from_dict(cls, apply_overrides(data, overrides))
    check_split(config.env.suite, [config.env.split], "env")
    from modrl.envs import get_suite

    split = get_suite(config.env.suite).split(config.env.split)
    unknown = [t for t in config.env.tasks if t not in split]
    if unknown:
        raise ConfigError(f"env.tasks: not tasks of split {config.env.split!r}: {', '.join(unknown)}")
    return config


def load_option_critic_config(
    source: Path | str | Mapping[str, Any], overrides: Sequence[str] = ()
) -> OptionCriticConfig:
    """An :class:`OptionCriticConfig` from YAML (or a mapping) plus ``key.sub=value`` overrides; suite checked."""
    config: OptionCriticConfig = _load(OptionCriticConfig, source, overrides)
    return config


def load_sketch_config(source: Path | str | Mapping[str, Any], overrides: Sequence[str] = ()) -> SketchConfig:
    """A :class:`SketchConfig` from YAML (or a mapping) plus overrides; the suite must be a generated one."""
    config: SketchConfig = _load(SketchConfig, source, overrides)
    from modrl.envs import get_suite

    if config.eval_split is not None:
        check_split(config.env.suite, [config.eval_split], "eval_split")
    if any(not spec.env_id.startswith("ModRL-") for spec in get_suite(config.env.suite).tasks):
        raise ConfigError(
            f"env.suite: {config.env.suite!r} has tasks without a sketch; sketch-guided training needs "
            "a generated suite (sequences, colour-type, verb-object)"
        )
    return config
