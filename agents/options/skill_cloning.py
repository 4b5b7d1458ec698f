"""Skill options behaviour-cloned from the planner's own demonstrations on simpler stock tasks (``modrl options
skills``).

The stock hard tasks (KeyCorridorS4R3, ObstructedMaze-1Dlh, BlockedUnlockPickup) are sequences of a handful of
skills -- go to, pick up, drop, open (a door, a locked door with its key, a box) -- in larger layouts. Here each skill
is one parameterised option, its argument the object's ``(colour, type)``, learned only from the **train** split of a
suite (``minigrid-hard``: Unlock, DoorKey-8x8, UnlockPickup, KeyCorridorS3R1-3, KeyCorridor with S4 rooms in one and
two rows, ObstructedMaze-1Dl):

1. :func:`~modrl.agents.planning.recording.record_skill_demos` lets the planner (:func:`modrl.planner.execute`, declared
   operators, A*) solve train episodes with the scripted skills (:class:`modrl.envs.scripted_skills.ScriptedSkills`)
   and cuts every executed step into a demonstration of its skill: the observations the agent had before each
   primitive action and the actions. Episodes are seeded from :data:`~modrl.seeds.DEMO_SEED_BASE` up
   (disjoint from evaluation seeds); only episodes the planner solved and steps that ended done are kept.
2. :func:`train_skill_library` clones one option per skill on its demonstrations
   (:func:`~modrl.agents.options.demos.behaviour_clone`, the action-frequency prior included), optionally runs DAgger
   rounds (``dagger_rounds``, :func:`~modrl.agents.planning.rollouts.dagger_demos`: the option acts in calling states of
   the train envs, the scripted skill labels each visited state with its next action, the option is cloned again on
   everything); then, with ``planner_dagger_rounds``, DAgger over whole planner episodes of the train tasks run with
   all the learned options at once (:mod:`modrl.agents.planning.dagger`: the states the options leave each other in);
   optionally fine-tunes each option with PPO (``finetune_steps``) in calling-state episodes of the train envs
   (:class:`modrl.envs.skill_env.SkillStepEnv`: the planner's scripted prefix, then the option until the step's
   effects hold), evaluates it in calling states of the train envs and of the ``eval_split`` envs (a diagnostic: which
   skill fails where), and saves the library. With ``demonstrations: false`` nothing is recorded or cloned: each option
   is PPO alone from a random network in those calling-state episodes.

The options read the whole grid (:class:`modrl.envs.wrappers.FullView`, ``view_size``), privileged like the planner's
own state, so they find what the planner names without memory; with ``target_marker`` a fourth channel marks the
step's object itself (the planner knows which of two red doors it means; the words alone do not say).
A library made here runs under the planner with
``modrl eval RUN_DIR --planner --split test``; the planner calls a skill option for a step by
its skill name (:func:`modrl.agents.planning.skills.call_resolver`) and ends the call when the step's effects are
observed (:class:`modrl.planner.option_executor.OptionExecutor`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure as configure_logger

from modrl._io import atomic_write_json, atomic_write_text
from modrl.agents.common.callbacks import EpisodeStatsCallback, ProgressCallback
from modrl.agents.options.demos import (
    behaviour_clone,
    demo_accuracy,
    discounted_returns,
)
from modrl.agents.options.policy import OptionActorCriticPolicy
from modrl.agents.options.skill_cloning_config import SkillCloningConfig
from modrl.agents.options.skill_ppo import check_skills_called, skill_model
from modrl.agents.options.skill_results import (
    PlannerDaggerRound,
    SkillCloneResult,
    fmt_pair,
    fmt_rate,
    format_skill_results,
)
from modrl.agents.planning.dagger import planner_dagger_demos
from modrl.agents.planning.demo_set import DemoSet
from modrl.agents.planning.library import library_predicates
from modrl.agents.planning.recording import SkillRecording, record_skill_demos, split_calls
from modrl.agents.planning.rollouts import concat_demos, dagger_demos, evaluate_skill, redraw_targets
from modrl.envs import get_suite
from modrl.envs.skill_env import SKILL_NAMES, EnvSpec, NoSkillCalls
from modrl.options import Option, OptionLibrary
from modrl.options.library import LIBRARY_DIR
from modrl.seeds import DEMO_SEED_BASE

log = logging.getLogger(__name__)

#: DAgger round ``r`` resets its calling-state episodes with seeds from ``DEMO_SEED_BASE + r * DAGGER_SEED_STRIDE``.
DAGGER_SEED_STRIDE = 100_000
#: Planner DAgger round ``r`` (from 0) uses the seeds of DAgger round ``PLANNER_DAGGER_ROUND0 + r``.
PLANNER_DAGGER_ROUND0 = 1_000


def split_envs(suite_name: str, split: str) -> list[EnvSpec]:
    """The :data:`~modrl.envs.skill_env.EnvSpec` of every task of a suite split (its id and ``gym.make`` arguments)."""
    suite = get_suite(suite_name)
    specs = [suite.tasks[suite.task_index(name)] for name in suite.split(split)]
    return [(spec.env_id, dict(spec.kwargs)) if spec.kwargs else spec.env_id for spec in specs]


def _returns(demos: DemoSet, gamma: float, max_steps: int) -> DemoSet:
    """``demos`` with each call's discounted return of :class:`SkillStepEnv`'s reward (at the call's last step)."""
    parts = []
    for length in demos.lengths:
        rewards = np.zeros(length, np.float32)
        rewards[-1] = 1.0 - 0.9 * min(length, max_steps) / max_steps
        parts.append(discounted_returns(rewards, gamma))
    return replace(demos, returns=np.concatenate(parts))


@dataclass
class _Skill:
    """One skill's option while the library is being learned."""

    index: int
    model: PPO
    policy: OptionActorCriticPolicy
    demos: DemoSet
    fit: DemoSet
    noise: np.random.Generator
    before: float | None
    history: list[dict[str, float]]
    validation: float | None
    began: float
    dagger_pairs: int = 0
    on_policy: tuple[float, ...] = ()
    planner_pairs: int = 0


def train_skill_library(config: SkillCloningConfig, run_dir: Path) -> tuple[SkillRecording, list[SkillCloneResult]]:
    """Record the train split's demonstrations, clone one option per demonstrated skill (with ``dagger_rounds``, DAgger
    in its calling states), then with ``planner_dagger_rounds`` DAgger over whole planner episodes of every skill at
    once, then fine-tune each option with PPO in calling-state episodes of the train envs (``finetune_steps``),
    evaluate it in calling states of the train and test envs, save the library in ``run_dir/options`` and write
    ``results.json`` / ``results.md``."""
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    train_ids = split_envs(config.suite, config.split)
    test_ids = split_envs(config.suite, config.eval_split) if config.eval_split else []
    recording = _record(config, train_ids)
    library = OptionLibrary()
    skills: dict[str, _Skill] = {}
    for skill, demos in recording.demos.items():
        # Seeded by the skill's place in SKILL_NAMES, not in this run: a run of some of the skills clones them exactly
        # as a run of all does (skills can be trained in separate processes and their options put together).
        skills[skill] = state = _clone_skill(config, skill, SKILL_NAMES.index(skill), demos, train_ids)
        _add(library, skill, state.policy.option, run_dir)
    if not config.demonstrations:
        check_skills_called(config, train_ids)
        for skill in config.skills:
            skills[skill] = state = _fresh_skill(config, skill, SKILL_NAMES.index(skill), train_ids)
            _add(library, skill, state.policy.option, run_dir)
    rounds = [
        _planner_dagger_round(config, library, skills, train_ids, round_, run_dir)
        for round_ in range(config.planner_dagger_rounds)
    ]
    results: list[SkillCloneResult] = []
    for skill, state in skills.items():
        if config.finetune_steps:
            library.unfreeze([skill])
            episodes = EpisodeStatsCallback([skill], default_task=skill)  # the progress line's training success
            progress = ProgressCallback(episodes, total_timesteps=config.finetune_steps, every_s=30.0)
            # SB3's own scalars (rollout/success_rate, train/entropy_loss, ...) for the run's TensorBoard line
            state.model.set_logger(configure_logger(str(run_dir / "tb" / skill), ["tensorboard"]))
            try:
                state.model.learn(config.finetune_steps, callback=[episodes, progress])
                state.model.logger.dump(state.model.num_timesteps)  # the last update's train/* (SB3 leaves them)
            finally:
                state.model.logger.close()
            _add(library, skill, state.policy.option, run_dir)
        venv = state.model.get_env()
        if venv is not None:
            venv.close()
        option = state.policy.option
        result = SkillCloneResult(
            skill=skill,
            calls=len(state.demos.lengths),
            pairs=state.demos.size,
            accuracy_before=state.before,
            accuracy=state.history[-1]["accuracy"] if state.history else None,
            validation_accuracy=state.validation,
            dagger_pairs=state.dagger_pairs,
            dagger_success=state.on_policy,
            planner_dagger_pairs=state.planner_pairs,
            finetune_frames=int(state.model.num_timesteps) if config.finetune_steps else 0,
            train_success=_success(config, option, train_ids, skill),
            test_success=_success(config, option, test_ids, skill),
            seconds=time.perf_counter() - state.began,
        )
        results.append(result)
        log.info(
            "%s: %d calls (%d pairs), cloning accuracy %s -> %s (held-out calls %s), %d PPO frames; "
            "calling-state success train %s, test %s",
            skill,
            result.calls,
            result.pairs,
            fmt_rate(state.before),
            fmt_rate(result.accuracy),
            fmt_rate(result.validation_accuracy),
            result.finetune_frames,
            fmt_pair(result.train_success),
            fmt_pair(result.test_success),
        )
        atomic_write_json(
            run_dir / "results.json",
            {
                "recording": {k: v for k, v in asdict(recording).items() if k != "demos"},
                "planner_dagger": [asdict(r) for r in rounds],
                "skills": [asdict(r) for r in results],
            },
        )
        atomic_write_text(run_dir / "results.md", format_skill_results(recording, results, rounds) + "\n")
    return recording, results


def _record(config: SkillCloningConfig, train_ids: Sequence[EnvSpec]) -> SkillRecording:
    """The scripted planner's demonstrations of the train split, or none with ``demonstrations: false``."""
    if not config.demonstrations:
        return SkillRecording(demos={}, calls={}, episodes=0, solved=0, frames=0)
    start = time.perf_counter()
    recording = record_skill_demos(
        train_ids,
        episodes=config.episodes,
        view_size=config.view_size,
        skills=config.skills,
        marker=config.target_marker,
        random_steps=config.random_steps,
    )
    log.info(
        "recorded %d planner episodes (%d solved, %d frames) in %.0fs: %s",
        recording.episodes,
        recording.solved,
        recording.frames,
        time.perf_counter() - start,
        ", ".join(f"{s} {n} calls" for s, n in recording.calls.items()),
    )
    return recording


def _fresh_skill(config: SkillCloningConfig, skill: str, index: int, train_ids: Sequence[EnvSpec]) -> _Skill:
    """``skill``'s option from a random network (seeded as :func:`_clone_skill` seeds it), for PPO alone."""
    model = skill_model(config, skill, train_ids, seed=config.seed + 1000 * index)
    policy = model.policy
    assert isinstance(policy, OptionActorCriticPolicy)
    empty = DemoSet(
        observations={},
        actions=np.zeros(0, np.int64),
        returns=np.zeros(0, np.float32),
        tasks=(),
        seeds=(),
        task_seeds=(),
        lengths=(),
        attempts=0,
        frames=0,
    )
    return _Skill(
        index=index,
        model=model,
        policy=policy,
        demos=empty,
        fit=empty,
        noise=np.random.default_rng(config.seed + index),
        before=None,
        history=[],
        validation=None,
        began=time.perf_counter(),
    )


def _add(library: OptionLibrary, skill: str, option: Option, run_dir: Path) -> None:
    """Put ``skill``'s option in the library (with its predicate termination) unless it is there, freeze it, and save
    the library."""
    if skill not in library:
        option.termination_predicate = library_predicates([skill])[skill]
        library.add(skill, option)
    library.freeze([skill])
    library.save(run_dir / LIBRARY_DIR)


def _clone_skill(
    config: SkillCloningConfig, skill: str, index: int, demos: DemoSet, train_ids: Sequence[EnvSpec]
) -> _Skill:
    """Clone ``skill``'s option on its demonstrations, then its calling-state DAgger rounds."""
    began = time.perf_counter()
    fit, held = split_calls(_returns(demos, config.algo.gamma, config.max_skill_steps), config.validation)
    model = skill_model(config, skill, train_ids, seed=config.seed + 1000 * index)
    policy = model.policy
    assert isinstance(policy, OptionActorCriticPolicy)
    before = demo_accuracy(policy, fit)
    noise = np.random.default_rng(config.seed + index)
    history = behaviour_clone(
        policy,
        redraw_targets(fit, config.target_noise, noise),
        config.clone,
        seed=config.seed + index,
        tag=f"modrl/demos/{skill}",
    )
    state = _Skill(
        index=index,
        model=model,
        policy=policy,
        demos=demos,
        fit=fit,
        noise=noise,
        before=before,
        history=history,
        validation=None if held is None else demo_accuracy(policy, held),
        began=began,
    )
    log.info(
        "%s: cloned on %d pairs (%d calls), accuracy %.2f -> %.2f (held-out calls %s) in %.0fs",
        skill,
        fit.size,
        len(fit.lengths),
        before,
        history[-1]["accuracy"],
        fmt_rate(state.validation),
        time.perf_counter() - began,
    )
    on_policy: list[float] = []
    for round_ in range(config.dagger_rounds):
        extra, rate = dagger_demos(
            policy.option,
            train_ids,
            skill,
            view_size=config.view_size,
            max_steps=config.max_skill_steps,
            episodes=config.dagger_episodes,
            seed_base=DEMO_SEED_BASE + DAGGER_SEED_STRIDE * (round_ + 1),
            marker=config.target_marker,
            random_steps=config.random_steps,
        )
        on_policy.append(rate)
        if extra is not None:
            state.dagger_pairs += extra.size
            _reclone(config, state, extra, seed=config.seed + index + 7919 * (round_ + 1), tag=skill)
        log.info(
            "%s DAgger round %d: option's success %.2f in %d calling-state episodes, %d labelled states "
            "added (%d pairs in all), cloning accuracy %.2f",
            skill,
            round_ + 1,
            rate,
            config.dagger_episodes,
            0 if extra is None else extra.size,
            state.fit.size,
            state.history[-1]["accuracy"],
        )
    state.on_policy = tuple(on_policy)
    return state


def _reclone(config: SkillCloningConfig, state: _Skill, extra: DemoSet, *, seed: int, tag: str) -> None:
    """Add ``extra`` (labelled states) to the skill's demonstrations and clone its option again on all of them
    (``dagger_epochs`` passes, from its current weights)."""
    state.fit = concat_demos(state.fit, _returns(extra, config.algo.gamma, config.max_skill_steps))
    state.history = behaviour_clone(
        state.policy,
        redraw_targets(state.fit, config.target_noise, state.noise),
        replace(config.clone, epochs=config.dagger_epochs or config.epochs),
        seed=seed,
        tag=f"modrl/demos/{tag}",
    )


def _planner_dagger_round(
    config: SkillCloningConfig,
    library: OptionLibrary,
    skills: Mapping[str, _Skill],
    train_ids: Sequence[EnvSpec],
    round_: int,
    run_dir: Path,
) -> PlannerDaggerRound:
    """One round of DAgger over planner episodes (:mod:`modrl.agents.planning.dagger`); returns its summary."""
    began = time.perf_counter()
    outcome = planner_dagger_demos(
        library,
        train_ids,
        list(skills),
        episodes=config.planner_dagger_episodes,
        seed_base=DEMO_SEED_BASE + DAGGER_SEED_STRIDE * (PLANNER_DAGGER_ROUND0 + round_),
        view_size=config.view_size,
        marker=config.target_marker,
        max_skill_steps=config.max_skill_steps,
    )
    for skill, extra in outcome.demos.items():
        state = skills[skill]
        state.planner_pairs += extra.size
        library.unfreeze([skill])
        _reclone(
            config, state, extra, seed=config.seed + state.index + 104_729 * (round_ + 1), tag=f"{skill}/planner_dagger"
        )
        _add(library, skill, state.policy.option, run_dir)
    pairs = {skill: extra.size for skill, extra in outcome.demos.items()}
    log.info(
        "planner DAgger round %d: the planner with the options solved %.2f of %d train episodes (%d steps); "
        "labelled states added: %s; %.0fs",
        round_ + 1,
        outcome.success,
        config.planner_dagger_episodes,
        outcome.steps,
        ", ".join(f"{k} {v}" for k, v in pairs.items()) or "none",
        time.perf_counter() - began,
    )
    return PlannerDaggerRound(
        round=round_ + 1, train_success=outcome.success, episodes=config.planner_dagger_episodes, pairs=pairs
    )


def _success(
    config: SkillCloningConfig, option: Option, env_ids: Sequence[EnvSpec], skill: str
) -> tuple[float, float] | None:
    if not config.eval_episodes or not env_ids:
        return None
    try:
        return tuple(
            evaluate_skill(
                option,
                env_ids,
                skill,
                view_size=config.view_size,  # type: ignore[return-value]
                max_steps=config.max_skill_steps,
                episodes=config.eval_episodes,
                deterministic=det,
                marker=config.target_marker,
            )
            for det in (False, True)
        )
    except NoSkillCalls:  # the planner never calls this skill in these envs
        return None
