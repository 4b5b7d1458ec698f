"""Configs of ``modrl options train`` (an option library from subtask events) and ``modrl options route`` (a
call-and-return controller over a saved library): strict frozen dataclasses loaded from YAML like the experiment
config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from modrl.agents.common.config import AlgoConfig, check_cloning_fields
from modrl.config import MAX_VIEW_SIZE, ConfigError, apply_overrides, check, check_bool, from_dict, load_yaml
from modrl.options import CurriculumConfig
from modrl.seeds import MAX_SEED


@dataclass(frozen=True, kw_only=True)
class OptionNetConfig:
    """Sizes of each option network (see :class:`modrl.options.OptionConfig`) and of the critic PPO trains with it."""

    embed_dim: int = 8
    channels: tuple[int, ...] = (16, 32)
    features_dim: int = 64
    hidden: tuple[int, ...] = (64,)
    arg_dim: int = 8
    critic_hidden: tuple[int, ...] = (64,)

    def __post_init__(self) -> None:
        for name in ("embed_dim", "features_dim", "arg_dim"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("channels", "hidden", "critic_hidden"):
            check(all(v >= 1 for v in getattr(self, name)), name, "sizes must be >= 1")
        check(1 <= len(self.channels) <= 3, "channels", f"needs 1 to 3 convolutions, got {len(self.channels)}")


@dataclass(frozen=True, kw_only=True)
class EpisodeConfig:
    """What every option-training env config has: env count, episode limit, and smaller rooms for generated suites."""

    n_envs: int = 4
    max_episode_steps: int | None = None
    #: Smaller training rooms (null: the suite's own): TaskEnv ``room_size`` and ``num_distractors``.
    room_size: int | None = None
    num_distractors: int | None = None

    def __post_init__(self) -> None:
        check(self.n_envs >= 1, "n_envs", f"must be >= 1, got {self.n_envs}")
        check(self.max_episode_steps is None or self.max_episode_steps >= 1, "max_episode_steps", "must be >= 1")
        check(self.room_size is None or self.room_size >= 5, "room_size", f"must be >= 5, got {self.room_size}")
        check(self.num_distractors is None or self.num_distractors >= 0, "num_distractors", "must be >= 0")

    def task_kwargs(self) -> dict[str, int]:
        """The TaskEnv arguments set here."""
        values = {"room_size": self.room_size, "num_distractors": self.num_distractors}
        return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True, kw_only=True)
class SubtaskEnvConfig(EpisodeConfig):
    """The single-subtask training episodes (:class:`modrl.envs.subtask_env.SubtaskEnv`)."""

    suite: str = "colour-type"
    train_split: str = "train"
    #: Split whose tasks are the held-out arguments of a parameterised option (null: no held-out evaluation).
    test_split: str | None = "test"
    #: Which train-split tasks an option trains on: ``single``, the single-subtask tasks of its symbol (or verb);
    #: ``first_subtask``, also every longer task that starts with it (trained on that first subtask alone, in the
    #: longer task's layout: its rooms, doors and distractors).
    train_tasks: Literal["single", "first_subtask"] = "single"
    #: Where a parameterised option's episode targets come from: ``task``, the training task's first subtask;
    #: ``layout``, any object of the training task's layout the verb accepts (``goto``, ``pickup``, ``open`` only;
    #: :class:`modrl.envs.subtask_env.SubtaskEnv`), so e.g. ``open`` learns every door colour of the train rooms.
    targets: Literal["task", "layout"] = "task"
    #: What the options see: null, MiniGrid's 7x7 egocentric view; an odd N, the N x N egocentric view of the whole
    #: grid (:class:`modrl.envs.wrappers.FullView`: nothing hidden, privileged like the planner's state), so an option
    #: finds an object in another room without memory. The planner and ``modrl eval --planner`` give a library's
    #: options the view they were trained with.
    view_size: int | None = None
    #: With ``view_size`` N: the N x N view shows the cells the agent has seen so far in the episode instead of the
    #: whole grid (:class:`modrl.envs.own_view.MapView`; unknown cells unseen): memory, nothing privileged.
    map_view: bool = False
    #: Run up to N random scripted skills (go to, pick up, drop, open) before the option takes over in PPO training
    #: and evaluation episodes, so it learns from the states other skills leave (0: start where the task starts).
    prefix_skills: int = 0
    #: PPO training only (evaluation is unshaped): reward added the first time in an episode each subgoal of the
    #: option's subtask holds, read from the suite's predicates (:class:`modrl.envs.subgoal_reward.SubgoalReward`;
    #: ``putnext``: carrying the object to move, then carrying it beside the target; other verbs: the object in a
    #: cell around the agent). 0: no shaping.
    subgoal_reward: float = 0.0
    #: PPO training of ``putnext`` options only: probability that an episode starts with the object to move already
    #: in hand (a start-state curriculum), annealed as ``start_carrying x max(0, 1 - success / curriculum.threshold)``
    #: by the option's training success over the episodes that started as the task does (only those count for the
    #: curriculum). 0: every episode starts as the task does.
    start_carrying: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 <= self.prefix_skills <= 10, "prefix_skills", f"must be in [0, 10], got {self.prefix_skills}")
        for name in ("subgoal_reward", "start_carrying"):
            value = getattr(self, name)
            check(0.0 <= value <= 1.0, name, f"must be in [0, 1], got {value}")
        check(
            self.view_size is None or (7 <= self.view_size <= MAX_VIEW_SIZE and self.view_size % 2 == 1),
            "view_size",
            f"must be null or an odd integer in [7, {MAX_VIEW_SIZE}], got {self.view_size}",
        )
        check_bool(self.map_view, "map_view")
        check(not self.map_view or self.view_size is not None, "map_view", "needs view_size (the map image's side)")
        check(
            not self.map_view or (self.prefix_skills == 0 and self.start_carrying == 0),
            "map_view",
            "cannot be combined with prefix_skills or start_carrying yet (their scripted steps bypass the map)",
        )


#: Most demonstration episodes, epochs or batch size a ``demos`` section may ask for (a typo is refused early).
MAX_DEMO_SIZE = 100_000


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """Behaviour-cloning warm start of each option from oracle demonstrations (:mod:`modrl.agents.options.demos`).

    ``episodes: 0`` (the default) turns it off: PPO starts from a random option as before.
    """

    #: Successful demonstrations to collect per option, on its training tasks (0: no warm start).
    episodes: int = 0
    #: Passes of behaviour cloning over the demonstrations.
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    #: Also fit the critic to the demonstrations' discounted returns (weight ``value_coef``), so PPO's fine-tuning
    #: does not start from a random critic.
    fit_value: bool = True
    value_coef: float = 0.5
    #: Clip each minibatch's gradient to this global norm, as SB3's PPO does (``null``: no clipping). Without it,
    #: cloning from some seeds never left the action prior (the sequences suite's ``putnext`` skill, 8 384 pairs:
    #: accuracy 0.50 for 40 epochs; clipped at 0.5, 0.95 after 6).
    max_grad_norm: float | None = 0.5
    #: ``episodes``: the oracle solves the option's own training episodes; ``segments``: it solves every train-split
    #: task containing the option's subtask, and the steps of that subtask are kept (states after other subtasks).
    source: Literal["episodes", "segments"] = "episodes"

    def __post_init__(self) -> None:
        check_cloning_fields(self, MAX_DEMO_SIZE)

    @property
    def enabled(self) -> bool:
        """Whether options are warm-started from demonstrations."""
        return self.episodes > 0


@dataclass(frozen=True, kw_only=True)
class OptionsTrainConfig:
    """``modrl options train``: options trained one after another from subtask completion events.

    ``mode: parameterised`` trains one option per verb in ``options`` (e.g. ``pickup``) over every task of the train
    split with that verb, its argument the object's (colour, type); ``per_symbol`` trains one option per task name in
    ``options`` (e.g. ``pickup-red-key``); ``mixed`` takes both (a verb is parameterised, a task name per-symbol: a
    planner resolves a step to the per-symbol option first). ``options`` is also the curriculum order. With
    ``demos.episodes > 0`` every option is first behaviour-cloned from oracle demonstrations on its training tasks,
    then fine-tuned by PPO.
    """

    name: str = "options"
    seed: int = 0
    torch_threads: int = 1
    mode: Literal["parameterised", "per_symbol", "mixed"] = "parameterised"
    options: tuple[str, ...] = ("goto", "pickup", "open")
    env: SubtaskEnvConfig = field(default_factory=SubtaskEnvConfig)
    net: OptionNetConfig = field(default_factory=OptionNetConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    demos: DemoConfig = field(default_factory=DemoConfig)
    #: Evaluation episodes per task (train and held-out arguments), stochastic and deterministic.
    eval_episodes: int = 10

    def __post_init__(self) -> None:
        check(0 <= self.seed < MAX_SEED, "seed", f"must be in [0, {MAX_SEED}), got {self.seed}")
        check(self.torch_threads >= 1, "torch_threads", f"must be >= 1, got {self.torch_threads}")
        check(
            len(self.options) >= 1 and len(set(self.options)) == len(self.options),
            "options",
            f"needs at least one option, each once, got {list(self.options)}",
        )
        check(self.eval_episodes >= 0, "eval_episodes", f"must be >= 0, got {self.eval_episodes}")


@dataclass(frozen=True, kw_only=True)
class RouteEnvConfig:
    """The tasks the controller learns on (a split of a generated suite, mission tokens on)."""

    suite: str = "sequences"
    split: str = "train"
    n_envs: int = 4
    max_episode_steps: int | None = None

    def __post_init__(self) -> None:
        check(self.n_envs >= 1, "n_envs", f"must be >= 1, got {self.n_envs}")
        check(self.max_episode_steps is None or self.max_episode_steps >= 1, "max_episode_steps", "must be >= 1")


@dataclass(frozen=True, kw_only=True)
class RouteConfig:
    """``modrl options route``: a PPO controller over the frozen options of a library (call-and-return, SMDP).

    The high-level action is an option call (option + argument words): every subtask of the suite that an option of
    the library serves. ``gamma_option`` discounts rewards inside a call; PPO's own ``algo.gamma`` discounts once
    per decision (the per-macro-step approximation, see :mod:`modrl.agents.options.ppo_controller`).
    """

    name: str = "router"
    seed: int = 0
    torch_threads: int = 1
    #: Directory holding the option library (``library.json``), e.g. ``RUN_DIR/options`` of ``modrl options train``.
    library: str = ""
    env: RouteEnvConfig = field(default_factory=RouteEnvConfig)
    max_option_steps: int = 32
    max_decisions: int = 16
    gamma_option: float = 0.99
    #: End a call when one observation recurs this many times in it (the option is stuck; the controller picks again);
    #: ``null``: calls run to their effect, ``max_option_steps`` or the episode end.
    loop_limit: int | None = None
    hidden: int = 64
    features_dim: int = 64
    algo: AlgoConfig = field(default_factory=lambda: AlgoConfig(n_steps=32, batch_size=64))
    total_timesteps: int = 20_000
    eval_episodes: int = 10

    def __post_init__(self) -> None:
        check(0 <= self.seed < MAX_SEED, "seed", f"must be in [0, {MAX_SEED}), got {self.seed}")
        check(bool(self.library), "library", "give the option library directory")
        for name in ("torch_threads", "max_option_steps", "max_decisions", "hidden", "features_dim", "total_timesteps"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(0 <= self.gamma_option <= 1, "gamma_option", f"must be in [0, 1], got {self.gamma_option}")
        check(
            self.loop_limit is None or self.loop_limit >= 2,
            "loop_limit",
            f"must be >= 2 (or null: off), got {self.loop_limit}",
        )
        check(self.eval_episodes >= 0, "eval_episodes", f"must be >= 0, got {self.eval_episodes}")


def load_options_config(source: Path | str | Mapping[str, Any], overrides: Sequence[str] = ()) -> OptionsTrainConfig:
    """An :class:`OptionsTrainConfig` from YAML (or a mapping) plus ``key.sub=value`` overrides, suite checked."""
    data = source if isinstance(source, Mapping) else load_yaml(source)
    config = from_dict(OptionsTrainConfig, apply_overrides(data, overrides))
    check_split(
        config.env.suite, [config.env.train_split] + ([config.env.test_split] if config.env.test_split else []), "env"
    )
    check_options_budget(config)
    return config


def check_options_budget(config: OptionsTrainConfig) -> None:
    """Refuse (``ConfigError``, the estimate in the message) option networks too large to train: the largest option
    (``putnext``'s four arguments) on the view ``env.view_size`` with PPO's critic, batch and rollout buffer
    (:func:`modrl.agents.common.budget.estimate_option`, :func:`modrl.budget.check_budget`)."""
    from modrl.agents.common.budget import estimate_option
    from modrl.budget import check_budget
    from modrl.envs.subtask_symbols import argument_slots
    from modrl.options import OptionConfig

    net, side = config.net, config.env.view_size or 7
    largest = OptionConfig(  # as modrl.agents.options.train.option_config builds putnext's
        image_shape=(side, side, 3),
        embed_dim=net.embed_dim,
        channels=net.channels,
        features_dim=net.features_dim,
        hidden=net.hidden,
        arg_slots=argument_slots("putnext"),
        arg_dim=net.arg_dim,
    )
    estimate = estimate_option(
        largest,
        critic_hidden=config.net.critic_hidden,
        batch=config.algo.batch_size,
        rollout=config.algo.n_steps * config.env.n_envs,
    )
    check_budget(estimate, "net" if side == 7 else f"net (on the {side}x{side} view of env.view_size)")


def load_route_config(source: Path | str | Mapping[str, Any], overrides: Sequence[str] = ()) -> RouteConfig:
    """A :class:`RouteConfig` from YAML (or a mapping) plus overrides; the suite and split are checked."""
    data = source if isinstance(source, Mapping) else load_yaml(source)
    config = from_dict(RouteConfig, apply_overrides(data, overrides))
    check_split(config.env.suite, [config.env.split], "env")
    return config


def check_split(suite_name: str, splits: Sequence[str], where: str) -> None:
    from modrl.envs import get_suite

    try:
        suite = get_suite(suite_name)
    except KeyError as exc:
        raise ConfigError(f"{where}.suite: {exc}") from None
    for split in splits:
        if split not in suite.splits:
            raise ConfigError(
                f"{where}: suite {suite.name!r} has no split {split!r}; its splits: {', '.join(suite.splits)}"
            )
