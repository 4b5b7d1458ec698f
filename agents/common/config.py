"""The experiment configuration: one frozen dataclass per section, loaded strictly from YAML.

``modrl train CONFIG.yaml`` reads a file shaped like :class:`ExperimentConfig`; every key is optional and defaults
to the values below. Unknown keys, wrong types and out-of-range values are refused with the dotted key named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from modrl.agents.common.config_checks import check_cross_fields
from modrl.config import (
    MAX_EPISODE_STEPS,
    apply_overrides,
    check,
    check_int,
    check_sizes,
    from_dict,
    load_yaml,
)
from modrl.modules import ModulesConfig
from modrl.routers import RouterConfig
from modrl.safe_load import short_repr
from modrl.seeds import MAX_SEED


@dataclass(frozen=True, kw_only=True)
class EnvConfig:
    """Which tasks to train on and how many envs run side by side.

    Without ``split`` env slot i runs task i mod #tasks (all tasks of the suite); with ``split`` (e.g. ``train``)
    every slot draws a task of that split per episode, and the other splits stay unseen until evaluation.
    """

    suite: str = "minigrid-basic"
    split: str | None = None
    n_envs: int = 6
    max_episode_steps: int | None = None
    #: Add the mission as token ids (``obs["mission"]``, :class:`modrl.envs.MissionTokens`); the extractor encodes it.
    mission_tokens: bool = False
    #: ``dummy`` steps the envs in this process (fastest for MiniGrid); ``subproc`` runs one worker process per env
    #: (a crash or hang in a worker is reported by env index, :mod:`modrl.agents.common.guards`).
    vec_env: Literal["dummy", "subproc"] = "dummy"
    #: Which engine steps the envs: ``minigrid`` (MiniGrid's own envs, one by one), ``fast`` (the batched numpy
    #: engine, :mod:`modrl.envs.fast`, step-for-step identical; only for suites it covers, without ``split`` and
    #: ``subproc``), or ``auto`` (``fast`` wherever it covers the config, else ``minigrid`` with a log line saying why).
    #: ``modrl train`` only: continual runs, options and planners step MiniGrid (``fast`` is refused there).
    engine: Literal["minigrid", "fast", "auto"] = "auto"
    #: Your own tasks: a suite of these registered gymnasium ids (MiniGrid envs; register yours in a module and pass
    #: ``--import MODULE``), one task each, instead of a named suite. ``suite`` is then set to its name, ``ids-<hash>``.
    ids: tuple[str, ...] = ()
    #: Training-time shaping: this much reward per subtask completed (the suites' event stream, see
    #: :class:`modrl.envs.wrappers.SubtaskEventReward`); evaluation scores the unshaped reward. 0 = off.
    event_reward: float = 0.0
    #: Training-time: BabyAI's strict pick-up and open in the training envs (a wrong pick-up or door ends the episode,
    #: reward 0; :class:`modrl.envs.TaskEnv`); evaluation runs the tasks as they are. Generated suites only.
    strict: bool = False

    def suite_env_kwargs(self, *, training: bool = False) -> dict[str, Any]:
        """Keyword arguments of :func:`modrl.envs.make_suite_env` / ``make_split_env`` this section sets; ``training``
        adds the training-time ones (``strict``), which evaluation envs never get."""
        kwargs: dict[str, Any] = {"max_episode_steps": self.max_episode_steps, "mission_tokens": self.mission_tokens}
        return {**kwargs, "strict": self.strict} if training else kwargs

    def __post_init__(self) -> None:
        check(0.0 <= self.event_reward <= 1.0, "event_reward", f"must be in [0, 1], got {self.event_reward}")
        if self.ids:
            from modrl.envs.suites import ids_suite_name

            name = ids_suite_name(self.ids)
            given = self.suite not in (EnvConfig.suite, name)
            check(not given, "suite", f"give env.suite or env.ids, not both (env.ids makes suite {name!r})")
            object.__setattr__(self, "suite", name)
        else:
            from_ids = self.suite.startswith("ids-")  # modrl.envs.suites.IDS_PREFIX (not imported for every config)
            check(not from_ids, "suite", f"{self.suite!r} is a suite made from env.ids: give the ids (env.ids)")
        check_sizes(self.n_envs, "n_envs", high=1024)
        check(
            self.max_episode_steps is None or 1 <= self.max_episode_steps <= MAX_EPISODE_STEPS,
            "max_episode_steps",
            f"must be in [1, {MAX_EPISODE_STEPS}] or null, got {short_repr(self.max_episode_steps)}",
        )


@dataclass(frozen=True, kw_only=True)
class ExtractorConfig:
    """Observation encoder for Minigrid's 7x7x3 category image + direction (+ task one-hot appended).

    ``embed`` looks each (object, colour, state) index up in a learned table; ``conv`` feeds the raw category indices
    to the convolution as numbers. Neither divides by 255: the values are categories, not pixels.
    """

    kind: Literal["embed", "conv"] = "embed"
    embed_dim: int = 8
    channels: tuple[int, ...] = (16, 32)
    features_dim: int = 64
    #: How mission token ids are encoded when the env provides them (``env.mission_tokens``): ``bow`` is a
    #: position-weighted bag of words (order-aware, cheap), ``gru`` runs a GRU over the words.
    mission_encoder: Literal["bow", "gru"] = "bow"
    mission_dim: int = 32
    #: Condition every convolution on the mission (FiLM, as in BabyAI 1.1): a per-channel scale and shift computed
    #: from the mission features, starting as the identity. Needs ``env.mission_tokens: true``.
    film: bool = False

    def __post_init__(self) -> None:
        check_sizes(self.embed_dim, "embed_dim")
        check_sizes(self.mission_dim, "mission_dim")
        check(1 <= len(self.channels) <= 3, "channels", f"needs 1 to 3 conv layers, got {len(self.channels)}")
        check_sizes(self.channels, "channels")
        check_sizes(self.features_dim, "features_dim")


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """The policy: a modular one (router + modules + aggregation) or the parameter-matched monolithic baseline."""

    #: ``modules`` was called ``skills`` before the glossary gave "skill" to the planner: old files still load.
    renamed_keys: ClassVar[dict[str, str]] = {"skills": "modules"}

    kind: Literal["modular", "monolithic"] = "modular"
    algo: Literal["ppo", "a2c"] = "ppo"
    extractor: ExtractorConfig = field(default_factory=ExtractorConfig)
    modules: ModulesConfig = field(default_factory=ModulesConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    #: ``param_mix`` mixes the modules' parameters, not their outputs (Polytropon; ``lowrank``/``adapter`` modules).
    aggregation: Literal["weighted_sum", "hard_select", "param_mix"] = "weighted_sum"
    #: What a router conditioned on ``obs`` reads: the observation ``features`` (image, direction and, with
    #: ``env.mission_tokens``, the mission), the encoded ``mission`` alone (task-level routing that still applies
    #: to task ids never trained on), or the mission's bag of ``words`` (with a linear router, ``router.hidden: 0``,
    #: a task's allocation is the mean of its words' allocations: factored over the task's parts, so a held-out
    #: combination of known words gets one). ``mission`` and ``words`` need ``env.mission_tokens: true``.
    router_input: Literal["features", "mission", "words"] = "features"
    latent_dim: int = 64
    critic_hidden: tuple[int, ...] = (64,)
    #: Hidden width of the monolithic baseline's policy MLP; null = matched to the modular agent's parameter count.
    monolithic_hidden: int | None = None
    #: Monolithic policy MLP input: all ``features`` (SB3's stock actor) or ``observation`` (the modules' input).
    monolithic_input: Literal["features", "observation"] = "features"

    def __post_init__(self) -> None:
        check_sizes(self.latent_dim, "latent_dim")
        check_sizes(self.critic_hidden, "critic_hidden")
        if self.monolithic_hidden is not None:
            check_sizes(self.monolithic_hidden, "monolithic_hidden")


@dataclass(frozen=True, kw_only=True)
class AlgoConfig:
    """SB3 algorithm hyper-parameters (batch_size, n_epochs and clip_range are PPO-only)."""

    learning_rate: float = 2.5e-4
    n_steps: int = 128
    batch_size: int = 64
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    clip_range: float = 0.2
    max_grad_norm: float = 0.5
    #: PPO: torch's fused CPU Adam kernel (same update rule; measured ~13% faster PPO updates for both agents).
    fused_adam: bool = True

    def __post_init__(self) -> None:
        check(self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
        for name in ("n_steps", "batch_size", "n_epochs"):
            check_sizes(getattr(self, name), name, high=1_000_000)
        for name in ("gamma", "gae_lambda"):
            value = getattr(self, name)
            check(0.0 <= value <= 1.0, name, f"must be in [0, 1], got {value}")
        for name in ("ent_coef", "vf_coef", "clip_range", "max_grad_norm"):
            value = getattr(self, name)
            check(value >= 0, name, f"must be >= 0, got {value}")

    def ppo_kwargs(self) -> dict[str, Any]:
        """SB3 ``PPO(...)`` keyword arguments of these hyper-parameters (``fused_adam`` aside: it is a policy
        ``optimizer_kwargs`` entry, set by :func:`modrl.agents.common.builders.build_model`)."""
        names = ("learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "ent_coef", "vf_coef")
        return {name: getattr(self, name) for name in (*names, "clip_range", "max_grad_norm")}


#: Largest training budget (and checkpoint interval) in env steps: years of CPU time on MiniGrid.
MAX_TIMESTEPS = 10**12
#: Most training processes ``train.workers`` may ask for.
MAX_TRAIN_WORKERS = 64

#: Most evaluation episodes per task (``train.eval_episodes``, ``modrl eval --episodes``).
MAX_EVAL_EPISODES = 100_000


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Budget, checkpointing and the evaluation run at the end of training.

    ``total_timesteps: 0`` (RL frames) is a pre-training-only run: it needs a ``pretrain`` section.
    ``stop_success``: end training early once the sampled training success (mean over tasks of each task's last 100
    episodes, at least 20 finished per task) reaches this value; ``null`` (default) trains the whole budget.
    ``eval_every``: evaluate every split of the suite (held-out tasks included) at the first rollout end past each
    multiple of this many frames, ``eval_every_episodes`` episodes per task, greedy or (``eval_every_stochastic``)
    sampled, into ``RUN/eval_curve.jsonl`` and TensorBoard (SB3's ``EvalCallback``, on modrl's evaluation); 0
    (default) is off.
    ``workers``: processes that train the run together, data-parallel (:mod:`modrl.agents.common.workers`): each
    steps ``env.n_envs / workers`` env slots and computes the gradient of ``algo.batch_size / workers`` samples per
    minibatch, averaged across processes before every optimizer step; 1 (default) is one process.
    """

    total_timesteps: int = 100_000
    checkpoint_every: int = 20_000
    keep_checkpoints: int = 2
    eval_episodes: int = 20
    stop_success: float | None = None
    eval_every: int = 0
    eval_every_episodes: int = 10
    eval_every_stochastic: bool = False
    workers: int = 1

    def __post_init__(self) -> None:
        check(
            self.stop_success is None or 0.0 < self.stop_success <= 1.0,
            "stop_success",
            f"must be null or in (0, 1], got {short_repr(self.stop_success)}",
        )
        check(
            isinstance(self.total_timesteps, int) and 0 <= self.total_timesteps <= MAX_TIMESTEPS,
            "total_timesteps",
            f"must be in [0, {MAX_TIMESTEPS}] (0: pre-training only), got {short_repr(self.total_timesteps)}",
        )
        check_sizes(self.checkpoint_every, "checkpoint_every", high=MAX_TIMESTEPS)
        check_sizes(self.keep_checkpoints, "keep_checkpoints", high=1000)
        check(
            0 <= self.eval_episodes <= MAX_EVAL_EPISODES,
            "eval_episodes",
            f"must be in [0, {MAX_EVAL_EPISODES}], got {short_repr(self.eval_episodes)}",
        )
        check_int(self.eval_every, "eval_every", low=0, high=MAX_TIMESTEPS)
        check_int(self.eval_every_episodes, "eval_every_episodes", low=1, high=MAX_EVAL_EPISODES)
        check_int(self.workers, "workers", low=1, high=MAX_TRAIN_WORKERS)


def check_cloning_fields(settings: Any, high: int) -> None:
    """Check the behaviour-cloning fields a config section shares (``episodes`` in [0, high], ``epochs`` and
    ``batch_size`` in [1, high], ``learning_rate``, ``value_coef``, ``max_grad_norm``): ``pretrain`` here, option
    demonstrations in ``modrl options train``."""
    episodes = settings.episodes
    check(0 <= episodes <= high, "episodes", f"must be in [0, {high}], got {short_repr(episodes)}")
    for name in ("epochs", "batch_size"):
        value = getattr(settings, name)
        check(1 <= value <= high, name, f"must be in [1, {high}], got {short_repr(value)}")
    check(0 < settings.learning_rate <= 1, "learning_rate", f"must be in (0, 1], got {settings.learning_rate}")
    check(0 <= settings.value_coef <= 100, "value_coef", f"must be in [0, 100], got {settings.value_coef}")
    check(
        settings.max_grad_norm is None or settings.max_grad_norm > 0,
        "max_grad_norm",
        f"must be > 0 (or null: no clipping), got {settings.max_grad_norm}",
    )


#: Most oracle episodes ``pretrain.episodes`` may ask for (and most epochs, and the largest minibatch).
MAX_PRETRAIN_EPISODES = 1_000_000


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    """Behaviour cloning from the oracle before RL (:mod:`modrl.agents.common.pretrain`; BabyAI's imitation baseline
    as a pre-training stage). ``episodes: 0`` (the default) turns it off.

    The oracle (BabyAI's bot, :class:`modrl.envs.oracle.SequenceBot`) solves ``episodes`` episodes of the run's
    training tasks (``env.split``'s tasks, or every task of the suite without a split; never another split), seeded
    ``DEMO_SEED_BASE + j``; the policy is fitted to its actions by cross-entropy (and, with ``fit_value``, its critic
    to the episodes' discounted returns), then PPO/A2C starts from the cloned weights with a fresh optimiser.
    """

    #: Successful oracle episodes to collect (0: no pre-training).
    episodes: int = 0
    #: Passes of behaviour cloning over the demonstrations.
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    #: Also fit the critic to the demonstrations' discounted returns (``algo.gamma``), weight ``value_coef``.
    fit_value: bool = True
    value_coef: float = 0.5
    #: Clip each minibatch's gradient to this global norm (``null``: no clipping).
    max_grad_norm: float | None = 0.5

    def __post_init__(self) -> None:
        check_cloning_fields(self, MAX_PRETRAIN_EPISODES)

    @property
    def enabled(self) -> bool:
        """Whether the run is pre-trained on oracle demonstrations."""
        return self.episodes > 0


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """What every training run's config has (``modrl train``'s :class:`ExperimentConfig`, ``modrl continual``'s
    ``ContinualConfig``): a name, the seed, torch threads, the env, the agent and the algorithm."""

    name: str = "run"
    seed: int = 0
    torch_threads: int = 1
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)

    def __post_init__(self) -> None:
        check(0 <= self.seed < MAX_SEED, "seed", f"must be in [0, {MAX_SEED}), got {self.seed}")
        check(self.torch_threads >= 1, "torch_threads", f"must be >= 1, got {self.torch_threads}")


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig(RunConfig):
    """A whole training run (the top level of a YAML config file)."""

    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)


def load_experiment_config(
    source: Path | str | Mapping[str, Any] | None, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """Load an :class:`ExperimentConfig` from a YAML file (or a mapping) plus ``key.sub=value`` overrides."""
    if source is None:
        data: Mapping[str, Any] = {}
    elif isinstance(source, Mapping):
        data = source
    else:
        data = load_yaml(source)
    config = from_dict(ExperimentConfig, apply_overrides(data, overrides))
    check_cross_fields(config)
    return config
