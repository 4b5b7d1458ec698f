"""Config of ``modrl options skills`` (:mod:`modrl.agents.options.skill_cloning`): :class:`SkillCloningConfig`, its
loader, and the :class:`~modrl.options.OptionConfig` every skill option of a config has."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modrl.agents.common.config import AlgoConfig
from modrl.agents.options.config import DemoConfig, OptionNetConfig, check_split
from modrl.config import MAX_VIEW_SIZE, apply_overrides, check, check_bool, from_dict, load_yaml
from modrl.envs.skill_env import MAX_SEED_POOL, SKILL_NAMES, SKILL_SLOTS
from modrl.envs.wrappers import IMAGE_HIGH, MARKED_IMAGE_HIGH
from modrl.options import OptionConfig
from modrl.seeds import MAX_SEED


@dataclass(frozen=True, kw_only=True)
class SkillCloningConfig:
    """``modrl options skills``: what to record and how to clone it (see the module docstring)."""

    name: str = "skills"
    seed: int = 0
    torch_threads: int = 1
    suite: str = "minigrid-hard"
    split: str = "train"
    #: ``false``: record no demonstrations and clone nothing; each option starts from a random network and learns by PPO
    #: alone (``finetune_steps`` frames) in calling-state episodes, rewarded when the call's effects are observed. The
    #: scripted skills still run each training episode's plan up to the call (the calling states; a training-time
    #: assist), as they do for fine-tuning.
    demonstrations: bool = True
    #: Planner episodes recorded per task of the split.
    episodes: int = 100
    #: Side of the whole-grid view the options read (odd).
    view_size: int = 25
    #: The view carries a fourth channel marking the object the planner's step names
    #: (:func:`modrl.envs.wrappers.full_view_image`): the options then know which of two red doors is meant.
    target_marker: bool = False
    #: The options read the step's words ``(colour, type)`` as arguments; ``false``: only the marker says which object
    #: (needs ``target_marker``; an ``open`` that only ever opened doors then opens a box it is pointed at).
    words: bool = True
    #: Probability that a demonstrated call is cloned with its marked object's type and colour redrawn (in the image,
    #: and in the words when the options read them), the same for every frame of the call: the option learns to act on
    #: the marked cell whatever is there (an ``open`` that only saw doors then opens a box). Needs ``target_marker``.
    target_noise: float = 0.0
    #: Before each recorded planner episode and each DAgger calling state, run between 0 and this many random scripted
    #: steps (:func:`modrl.envs.skill_env.random_skill_steps`: go to, pick up, drop, open, put next to, on any object;
    #: recorded as demonstrations too), so the options also learn in states the train tasks' plans rarely reach -- an
    #: object carried or moved by an earlier step, as in longer test sequences (0: none).
    random_steps: int = 0
    skills: tuple[str, ...] = SKILL_NAMES
    net: OptionNetConfig = field(default_factory=OptionNetConfig)
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    #: Gradient-norm clip of cloning (``null``: none; see :class:`~modrl.agents.options.config.DemoConfig`).
    max_grad_norm: float | None = 0.5
    #: Fraction of each skill's recorded calls (the last ones) kept out of cloning to measure accuracy on.
    validation: float = 0.1
    #: DAgger rounds per skill after cloning: the option runs in calling-state episodes of the train envs, the
    #: scripted skill labels every state it visits with its own next action, and the option is cloned again on all
    #: demonstrations so far (0: none).
    dagger_rounds: int = 0
    #: Calling-state episodes per DAgger round.
    dagger_episodes: int = 100
    #: Cloning passes over all demonstrations after each DAgger round (``None``: ``epochs``; the option starts from its
    #: last weights, so fewer passes usually do).
    dagger_epochs: int | None = None
    #: DAgger rounds over whole planner episodes after every skill is cloned (:mod:`modrl.agents.planning.dagger`): the
    #: planner runs train episodes with the learned options (sampled, the stuck-option escape on), the scripted skills
    #: label every state the options visit, every skill is cloned again on all its demonstrations (0: none).
    planner_dagger_rounds: int = 0
    #: Planner episodes per such round, spread over the train tasks.
    planner_dagger_episodes: int = 200
    #: PPO frames per skill after cloning, in calling-state episodes of the train envs (0: cloning only).
    finetune_steps: int = 0
    #: PPO's calling-state episodes draw their env seeds from ``0 .. seed_pool - 1`` per train env and plan each seed
    #: once (:class:`~modrl.envs.skill_env.SkillStepEnv`; 0: a fresh seed, planned afresh, every episode). Planning is
    #: most of a reset's cost and a trained call lasts a few steps. With ``random_steps`` a pooled seed's random steps
    #: are the same every time it is drawn (:func:`~modrl.envs.skill_env.pool_rng`).
    seed_pool: int = 0
    #: PPO only: a ``putnext`` call gains this bonus the first time the object to move is in hand (a shaping reward of
    #: training; evaluation and ``is_success`` ignore it; :class:`~modrl.envs.skill_env.SkillStepEnv`). 0: none.
    subgoal_reward: float = 0.0
    #: PPO only: a calling-state episode that sees one observation this many times is cut as a failure, as the
    #: planner's ``--loop-limit`` cuts a stuck call (:class:`~modrl.envs.skill_env.SkillStepEnv`; 0: off, else >= 2).
    loop_limit: int = 0
    #: PPO only: in this share of the ``putnext`` calls that start without the object to move in hand, the scripted
    #: skill fetches it before the option takes over (a start-state curriculum, training only;
    #: :class:`~modrl.envs.skill_env.SkillStepEnv`'s ``held_start``). 0: none.
    putnext_held_start: float = 0.0
    #: Where PPO's calling states come from: ``full``, the calls of plans over the full grid; ``own``, the calls the
    #: planner makes when it plans from the agent's own view, exploration first
    #: (:class:`~modrl.agents.planning.own_calls.OwnViewSkillStepEnv`; needs ``random_steps: 0``). Recording, DAgger and
    #: the calling-state evaluation use full-grid plans either way.
    calling_view: str = "full"
    n_envs: int = 8
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    #: Step limit of one skill call (fine-tuning and evaluation episodes).
    max_skill_steps: int = 100
    #: Calling-state evaluation episodes per skill, on the train envs and on ``eval_split``'s (0: none).
    eval_episodes: int = 20
    eval_split: str | None = "test"

    def __post_init__(self) -> None:
        check(0 <= self.seed < MAX_SEED, "seed", f"must be in [0, {MAX_SEED}), got {self.seed}")
        check(self.torch_threads >= 1, "torch_threads", f"must be >= 1, got {self.torch_threads}")
        check(1 <= self.episodes <= 100_000, "episodes", f"must be in [1, 100000], got {self.episodes}")
        check(
            7 <= self.view_size <= MAX_VIEW_SIZE and self.view_size % 2 == 1,
            "view_size",
            f"must be an odd integer in [7, {MAX_VIEW_SIZE}], got {self.view_size}",
        )
        unknown = [s for s in self.skills if s not in SKILL_NAMES]
        check(
            bool(self.skills) and not unknown and len(set(self.skills)) == len(self.skills),
            "skills",
            f"pick each of {', '.join(SKILL_NAMES)} at most once, got {list(self.skills)}",
        )
        check(
            self.words or self.target_marker,
            "words",
            "false needs target_marker: true (else nothing says which object a call means)",
        )
        check(0 <= self.target_noise <= 1, "target_noise", f"must be in [0, 1], got {self.target_noise}")
        check(self.target_noise == 0 or self.target_marker, "target_noise", "needs target_marker: true")
        check(0 <= self.random_steps <= 20, "random_steps", f"must be in [0, 20], got {self.random_steps}")
        check(
            0 <= self.seed_pool <= MAX_SEED_POOL, "seed_pool", f"must be in [0, {MAX_SEED_POOL}], got {self.seed_pool}"
        )
        check(self.calling_view in ("full", "own"), "calling_view", f"must be full or own, got {self.calling_view!r}")
        check(self.calling_view == "full" or self.random_steps == 0, "calling_view", "own needs random_steps: 0")
        check(
            self.loop_limit == 0 or 2 <= self.loop_limit <= 1000,
            "loop_limit",
            f"must be 0 or in [2, 1000], got {self.loop_limit}",
        )
        check(
            self.loop_limit == 0 or self.finetune_steps >= 1,
            "loop_limit",
            "cuts PPO episodes: needs finetune_steps >= 1",
        )
        check(0 <= self.subgoal_reward <= 1, "subgoal_reward", f"must be in [0, 1], got {self.subgoal_reward}")
        check(
            0 <= self.putnext_held_start <= 1,
            "putnext_held_start",
            f"must be in [0, 1], got {self.putnext_held_start}",
        )
        check(
            self.putnext_held_start == 0 or (self.finetune_steps >= 1 and self.calling_view == "full"),
            "putnext_held_start",
            "sets up PPO's full-grid calling states: needs finetune_steps >= 1 and calling_view: full",
        )
        check(
            self.subgoal_reward == 0 or self.finetune_steps >= 1,
            "subgoal_reward",
            "shapes PPO only: needs finetune_steps >= 1",
        )
        check(0 <= self.validation < 1, "validation", f"must be in [0, 1), got {self.validation}")
        check(0 <= self.dagger_rounds <= 100, "dagger_rounds", f"must be in [0, 100], got {self.dagger_rounds}")
        check(
            1 <= self.dagger_episodes <= 1_000_000,
            "dagger_episodes",
            f"must be in [1, 1000000], got {self.dagger_episodes}",
        )
        check(
            0 <= self.planner_dagger_rounds <= 100,
            "planner_dagger_rounds",
            f"must be in [0, 100], got {self.planner_dagger_rounds}",
        )
        check(
            1 <= self.planner_dagger_episodes <= 1_000_000,
            "planner_dagger_episodes",
            f"must be in [1, 1000000], got {self.planner_dagger_episodes}",
        )
        check(
            self.dagger_epochs is None or self.dagger_epochs >= 1,
            "dagger_epochs",
            f"must be >= 1 (or null: epochs), got {self.dagger_epochs}",
        )
        check(
            0 <= self.finetune_steps <= 100_000_000, "finetune_steps", f"must be in [0, 1e8], got {self.finetune_steps}"
        )
        self._check_no_demonstrations()
        check(self.n_envs >= 1, "n_envs", f"must be >= 1, got {self.n_envs}")
        check(self.max_skill_steps >= 1, "max_skill_steps", f"must be >= 1, got {self.max_skill_steps}")
        check(self.eval_episodes >= 0, "eval_episodes", f"must be >= 0, got {self.eval_episodes}")
        _ = self.clone  # range checks of the cloning settings

    def _check_no_demonstrations(self) -> None:
        """``demonstrations: false`` needs PPO frames and refuses the settings that only act on demonstrations."""
        check_bool(self.demonstrations, "demonstrations")
        if self.demonstrations:
            return
        without = "with demonstrations: false"
        check(self.finetune_steps >= 1, "finetune_steps", f"must be >= 1 {without} (PPO is all it learns)")
        for key in ("dagger_rounds", "planner_dagger_rounds"):
            check(getattr(self, key) == 0, key, f"must be 0 {without} (DAgger clones the scripted labels)")
        check(self.target_noise == 0, "target_noise", f"must be 0 {without} (it acts on cloning only)")

    @property
    def clone(self) -> DemoConfig:
        """The behaviour-cloning settings (the critic is fitted to the calls' returns when PPO fine-tunes next)."""
        return DemoConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            max_grad_norm=self.max_grad_norm,
            fit_value=self.finetune_steps > 0,
        )


def load_skill_cloning_config(
    source: Path | str | Mapping[str, Any], overrides: Sequence[str] = ()
) -> SkillCloningConfig:
    """A :class:`SkillCloningConfig` from YAML (or a mapping) plus ``key=value`` overrides; the suite and split
    checked."""
    data = source if isinstance(source, Mapping) else load_yaml(source)
    config = from_dict(SkillCloningConfig, apply_overrides(data, overrides))
    check_split(config.suite, [config.split, *([config.eval_split] if config.eval_split else [])], "suite")
    check_skills_budget(config)
    return config


def check_skills_budget(config: SkillCloningConfig) -> None:
    """Refuse (``ConfigError``, the estimate in the message) skill options too large to clone and fine-tune on the
    ``view_size`` view (:func:`modrl.agents.common.budget.estimate_option`, :func:`modrl.budget.check_budget`)."""
    from modrl.agents.common.budget import estimate_option
    from modrl.budget import check_budget

    estimate = estimate_option(
        skill_option_config(config),
        critic_hidden=config.net.critic_hidden,
        batch=max(config.batch_size, config.algo.batch_size),
        rollout=config.algo.n_steps * config.n_envs if config.finetune_steps else 0,
    )
    side = config.view_size
    check_budget(estimate, f"net (on the {side}x{side} view of view_size)")


def skill_option_config(config: SkillCloningConfig, num_actions: int = 7) -> OptionConfig:
    """The :class:`OptionConfig` every skill option of ``config`` has."""
    net = config.net
    side = config.view_size
    high = MARKED_IMAGE_HIGH if config.target_marker else IMAGE_HIGH
    return OptionConfig(
        image_shape=(side, side, len(high)),
        image_high=tuple(int(v) for v in high),
        num_actions=num_actions,
        embed_dim=net.embed_dim,
        channels=net.channels,
        features_dim=net.features_dim,
        hidden=net.hidden,
        arg_slots=SKILL_SLOTS if config.words else (),
        arg_dim=net.arg_dim,
    )
