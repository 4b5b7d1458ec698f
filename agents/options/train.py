"""Training path 1: options from subtask completion events, one after another with a success-threshold curriculum.

Each option is trained by SB3's PPO, unchanged, on single-subtask episodes (:class:`modrl.envs.subtask_env.SubtaskEnv`)
with :class:`~modrl.agents.options.policy.OptionActorCriticPolicy`, whose actor is the option itself. A
:class:`CurriculumCallback` feeds finished episodes to a :class:`modrl.options.SuccessCurriculum` and stops PPO once
training success passes the threshold (or the stage's frame budget is spent), as policy sketches move on (Andreas et
al., 2017). With a ``demos`` section, each option is first behaviour-cloned on oracle demonstrations of its training
tasks (:mod:`modrl.agents.options.demos`) and PPO then fine-tunes it. The trained option gets its effect predicate as
termination, is frozen, added to an :class:`~modrl.options.OptionLibrary` and saved alone; it is then evaluated on its
training arguments and, zero-shot, on the held-out arguments of the test split (parameterised options only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from modrl.agents.options.config import OptionsTrainConfig
from modrl.agents.options.demos import DemoStats, warm_start
from modrl.agents.options.policy import OptionActorCriticPolicy
from modrl.agents.options.train_results import OptionResult, OptionTaskEval, fmt_rate, split_mean, write_results
from modrl.config import ConfigError, to_dict
from modrl.envs import get_suite, parse_task
from modrl.envs.grammar import VERBS, Subtask, Verb
from modrl.envs.subgoal_reward import SubgoalReward
from modrl.envs.subtask_env import LAYOUT_VERBS, SubtaskEnv, Targets
from modrl.envs.subtask_symbols import argument_slots, effect_predicate, symbol_predicate
from modrl.options import Option, OptionConfig, OptionLibrary, SuccessCurriculum, option_inputs
from modrl.options.library import LIBRARY_DIR
from modrl.seeds import EVAL_SEED_BASE
from modrl.telemetry import TelemetryWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class OptionJob:
    """One option to train: its name, its training and held-out tasks, whether it takes arguments, and where its
    episodes' targets come from (``layout``: objects of the training tasks' rooms, see
    :class:`~modrl.envs.subtask_env.SubtaskEnv`)."""

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    parameterised: bool
    targets: Targets = "task"


def option_jobs(config: OptionsTrainConfig) -> list[OptionJob]:
    """The options of ``config`` in curriculum order (``ConfigError`` naming ``options`` for one with no tasks); their
    training tasks follow ``config.env.train_tasks``. A parameterised option with ``env.targets: layout`` trains in
    the layouts of every such task whose rooms hold an object its verb accepts (for ``open``: the tasks with doors)."""
    suite = get_suite(config.env.suite)
    split = suite.split(config.env.train_split)
    single = [t for t in split if len(parse_task(t)) == 1]
    train = single if config.env.train_tasks == "single" else list(split)
    test = [t for t in suite.split(config.env.test_split) if len(parse_task(t)) == 1] if config.env.test_split else []
    jobs = []
    for name in config.options:
        if config.mode == "per_symbol" or (config.mode == "mixed" and name not in VERBS):
            if name not in single:
                raise ConfigError(
                    f"options: {name!r} is not a single-subtask task of split "
                    f"{config.env.train_split!r} of suite {suite.name!r}"
                    + (f" nor a verb ({', '.join(VERBS)})" if config.mode == "mixed" else "")
                )
            tasks = tuple(t for t in train if parse_task(t).subtasks[0].name == name)
            jobs.append(OptionJob(name=name, train=tasks, test=(), parameterised=False))
            continue
        if name not in VERBS:
            raise ConfigError(f"options: {name!r} is not a verb ({', '.join(VERBS)}); parameterised options are verbs")
        if config.env.targets == "layout":
            if name not in LAYOUT_VERBS:
                raise ConfigError(
                    f"options: {name!r} cannot train on layout targets (env.targets: layout takes "
                    f"{', '.join(LAYOUT_VERBS)})"
                )
            mine = [t for t in train if name != "open" or any(o.type == "door" for o in parse_task(t).objects)]
        else:
            mine = [t for t in train if parse_task(t).subtasks[0].verb == name]
        if not mine:
            raise ConfigError(f"options: split {config.env.train_split!r} of suite {suite.name!r} has no {name} task")
        held = tuple(t for t in test if parse_task(t).subtasks[0].verb == name)
        jobs.append(OptionJob(name=name, train=tuple(mine), test=held, parameterised=True, targets=config.env.targets))
    return jobs


def option_config(config: OptionsTrainConfig, job: OptionJob, *, num_actions: int = 7) -> OptionConfig:
    """The :class:`OptionConfig` of ``job`` with ``config.net``'s sizes."""
    net = config.net
    slots = argument_slots(cast(Verb, job.name)) if job.parameterised else ()
    side = config.env.view_size or 7
    return OptionConfig(
        image_shape=(side, side, 3),
        map_view=config.env.map_view,
        num_actions=num_actions,
        embed_dim=net.embed_dim,
        channels=net.channels,
        features_dim=net.features_dim,
        hidden=net.hidden,
        arg_slots=slots,
        arg_dim=net.arg_dim,
    )


def termination_for(job: OptionJob) -> Callable[..., bool]:
    """The effect predicate that ends ``job``'s option."""
    if job.parameterised:
        return effect_predicate(cast(Verb, job.name))
    return symbol_predicate(parse_task(job.name).subtasks[0])


class CurriculumCallback(BaseCallback):
    """Feeds finished episodes and frames to the curriculum; stops PPO when the stage is over.

    Episodes that started with the object in hand (``info["assisted_start"]``, ``env.start_carrying``) are not
    counted: the curriculum measures success from the task's own starts. With ``start_envs`` (the training
    :class:`SubtaskEnv` s) and ``start_carrying > 0``, every rollout end anneals their start-in-hand probability to
    ``start_carrying x max(0, 1 - success / threshold)``.

    Writes ``modrl/curriculum/<option>/success`` (training success over the window), ``modrl/curriculum/stage`` and,
    when annealing, ``modrl/curriculum/<option>/start_carrying`` at every rollout end, at the global frame count
    (earlier stages' frames + this one's).
    """

    def __init__(
        self,
        curriculum: SuccessCurriculum,
        writer: TelemetryWriter | None,
        *,
        frames_before: int,
        start_envs: Sequence[SubtaskEnv] = (),
        start_carrying: float = 0.0,
    ) -> None:
        super().__init__()
        self.curriculum = curriculum
        self.writer = writer
        self.frames_before = frames_before
        self.start_envs = tuple(start_envs)
        self.start_carrying = start_carrying

    def _on_step(self) -> bool:
        for index in np.flatnonzero(self.locals["dones"]):
            info = self.locals["infos"][index]
            if not info.get("assisted_start", False):
                self.curriculum.record_episode(bool(info.get("is_success", False)))
        self.curriculum.add_steps(self.training_env.num_envs)
        return not self.curriculum.should_advance()

    def start_probability(self) -> float:
        """The start-in-hand probability for the current training success (``start_carrying`` before any)."""
        rate = self.curriculum.success_rate() or 0.0
        return self.start_carrying * max(0.0, 1.0 - rate / self.curriculum.config.threshold)

    def _on_rollout_end(self) -> None:
        annealing = bool(self.start_envs) and self.start_carrying > 0
        if annealing:
            probability = self.start_probability()
            for env in self.start_envs:
                env.set_start_carrying(probability)
        rate = self.curriculum.success_rate()
        if self.writer is not None and rate is not None:
            step = self.frames_before + self.curriculum.steps
            self.writer.log_scalar(f"modrl/curriculum/{self.curriculum.current}/success", rate, step)
            self.writer.log_scalar("modrl/curriculum/stage", self.curriculum.index, step)
            if annealing:
                name = f"modrl/curriculum/{self.curriculum.current}/start_carrying"
                self.writer.log_scalar(name, self.start_probability(), step)


def _subtask_env(
    config: OptionsTrainConfig, job: OptionJob, tasks: Sequence[str], *, start_carrying: float = 0.0
) -> SubtaskEnv:
    return SubtaskEnv(
        tasks,
        suite=config.env.suite,
        parameterised=job.parameterised,
        max_episode_steps=config.env.max_episode_steps,
        task_kwargs=config.env.task_kwargs(),
        targets=job.targets,
        verb=cast(Verb, job.name) if job.targets == "layout" else None,
        view_size=config.env.view_size,
        prefix_skills=config.env.prefix_skills,
        start_carrying=start_carrying,
        map_view=config.env.map_view,
    )


def training_env(config: OptionsTrainConfig, job: OptionJob, made: list[SubtaskEnv]) -> gym.Env[Any, Any]:
    """One PPO training env of ``job``: its :class:`SubtaskEnv` (appended to ``made``) with the training-only aids
    of ``config.env`` (``start_carrying`` for ``putnext`` options, ``subgoal_reward``), under SB3's ``Monitor``."""
    verb = cast(Verb, job.name) if job.parameterised else parse_task(job.name).subtasks[0].verb
    start = config.env.start_carrying if verb == "putnext" else 0.0
    env = _subtask_env(config, job, job.train, start_carrying=start)
    made.append(env)
    bonus = config.env.subgoal_reward
    return Monitor(SubgoalReward(env, bonus=bonus) if bonus > 0 else env)


def _num_actions(venv: DummyVecEnv) -> int:
    space = venv.action_space
    assert isinstance(space, spaces.Discrete), space
    return int(space.n)


def train_option(
    config: OptionsTrainConfig,
    job: OptionJob,
    curriculum: SuccessCurriculum,
    *,
    seed: int,
    writer: TelemetryWriter | None = None,
    frames_before: int = 0,
    device: str = "cpu",
) -> tuple[Option, DemoStats | None]:
    """Train ``job``'s option (behaviour cloning first when ``config.demos`` is on, then PPO until the curriculum ends
    its stage) on ``device``; returns the trained option (moved to the CPU, where evaluation, the library and the
    planner use it) and its warm start's stats."""
    algo = config.algo
    made: list[SubtaskEnv] = []
    venv = DummyVecEnv([lambda: training_env(config, job, made) for _ in range(config.env.n_envs)])
    venv.seed(seed)
    try:
        model = PPO(
            OptionActorCriticPolicy,
            venv,
            seed=seed,
            device=device,
            verbose=0,
            **algo.ppo_kwargs(),
            policy_kwargs=dict(
                option=to_dict(option_config(config, job, num_actions=_num_actions(venv))),
                critic_hidden=list(config.net.critic_hidden),
            ),
        )
        demos = _warm_start(config, job, model, seed=seed, writer=writer) if config.demos.enabled else None
        callback = CurriculumCallback(
            curriculum, writer, frames_before=frames_before, start_envs=made, start_carrying=config.env.start_carrying
        )
        model.learn(config.curriculum.max_steps, callback=callback)
    finally:
        venv.close()
    policy = model.policy.to("cpu")
    assert isinstance(policy, OptionActorCriticPolicy)
    return policy.option, demos


def job_subtasks(job: OptionJob) -> Callable[[Subtask], bool]:
    """Whether a subtask is one ``job``'s option performs (its symbol, or for a parameterised option its verb)."""
    if job.parameterised:
        return lambda sub: sub.verb == job.name
    return lambda sub: sub.name == job.name


def segment_tasks(config: OptionsTrainConfig, job: OptionJob) -> tuple[str, ...]:
    """The train-split tasks that contain one of ``job``'s subtasks anywhere (``demos.source: segments``)."""
    wanted = job_subtasks(job)
    split = get_suite(config.env.suite).split(config.env.train_split)
    return tuple(t for t in split if any(wanted(sub) for sub in parse_task(t).subtasks))


def _warm_start(
    config: OptionsTrainConfig, job: OptionJob, model: PPO, *, seed: int, writer: TelemetryWriter | None
) -> DemoStats:
    # Layout targets are not any task's subtask: their demonstrations are whole episodes of the option's own env.
    segments = config.demos.source == "segments" and job.targets == "task"
    env = (
        SubtaskEnv(
            segment_tasks(config, job),
            suite=config.env.suite,
            parameterised=False,
            max_episode_steps=config.env.max_episode_steps,
            task_kwargs=config.env.task_kwargs(),
            view_size=config.env.view_size,
            map_view=config.env.map_view,
        )
        if segments
        else _subtask_env(config, job, job.train)
    )
    slots = argument_slots(cast(Verb, job.name)) if segments and job.parameterised else ()
    try:
        return warm_start(
            model.policy,
            env,
            config.demos,
            gamma=config.algo.gamma,
            seed=seed,
            writer=writer,
            name=job.name,
            segment=job_subtasks(job) if segments else None,
            slots=slots,
        )
    finally:
        env.close()


def evaluate_option(
    option: Option, env: SubtaskEnv, task: str, *, episodes: int, deterministic: bool, seed_base: int = EVAL_SEED_BASE
) -> float:
    """Success rate of ``option`` on ``episodes`` episodes of ``task`` (episode ``k`` seeded ``seed_base + k``)."""
    option.eval()
    successes = 0
    for k in range(episodes):
        obs, _ = env.reset(seed=seed_base + k, options={"task": task})
        done, info = False, dict[str, Any]()
        while not done:
            args = torch.as_tensor(obs["args"]) if option.parameterised else None
            action, _ = option.act(*option_inputs(obs, args), deterministic=deterministic)
            obs, _, terminated, truncated, info = env.step(int(action[0]))
            done = terminated or truncated
        successes += bool(info.get("is_success", False))
    return successes / episodes if episodes else float("nan")


def _evaluate_job(config: OptionsTrainConfig, job: OptionJob, option: Option) -> dict[str, OptionTaskEval]:
    per_task: dict[str, OptionTaskEval] = {}
    if config.eval_episodes == 0:
        return per_task
    for split, tasks in (("train", job.train), ("test", job.test)):
        if not tasks:
            continue
        env = _subtask_env(config, job, tasks)
        for task in tasks:
            stoch, det = (
                evaluate_option(option, env, task, episodes=config.eval_episodes, deterministic=deterministic)
                for deterministic in (False, True)
            )
            per_task[task] = OptionTaskEval(split=split, stoch=stoch, det=det)
        env.close()
    return per_task


def train_options(
    config: OptionsTrainConfig, run_dir: Path, *, writer: TelemetryWriter | None = None, device: str = "cpu"
) -> list[OptionResult]:
    """Train every option of ``config`` in curriculum order (on ``device``) into ``run_dir/options`` (library saved
    after each option) and write ``results.json`` / ``results.md``; returns the per-option results."""
    torch.set_num_threads(config.torch_threads)
    jobs = option_jobs(config)
    curriculum = SuccessCurriculum([p.name for p in jobs], config.curriculum)
    library = OptionLibrary()
    results: list[OptionResult] = []
    frames = 0
    for index, job in enumerate(jobs):
        log.info("option %d/%d: %s (%d training tasks)", index + 1, len(jobs), job.name, len(job.train))
        start = time.perf_counter()
        option, demos = train_option(
            config, job, curriculum, seed=config.seed + 1000 * index, writer=writer, frames_before=frames, device=device
        )
        stage = curriculum.advance()
        seconds = time.perf_counter() - start
        frames += stage.steps
        option.termination_predicate = termination_for(job)
        library.add(job.name, option)
        library.freeze([job.name])
        library.save(run_dir / LIBRARY_DIR)
        per_task = _evaluate_job(config, job, option)
        result = OptionResult(
            name=job.name,
            stage=stage,
            per_task=per_task,
            demos=demos,
            seconds=seconds,
            train_success=split_mean(per_task, "train", det=False),
            train_success_det=split_mean(per_task, "train", det=True),
            test_success=split_mean(per_task, "test", det=False),
            test_success_det=split_mean(per_task, "test", det=True),
        )
        results.append(result)
        log.info(
            "%s: %s after %d frames (training success %s); eval train %s, held-out %s",
            job.name,
            "passed" if stage.passed else "budget spent",
            stage.steps,
            fmt_rate(stage.success),
            fmt_rate(result.train_success),
            fmt_rate(result.test_success),
        )
        if writer is not None:
            for key in ("train_success", "test_success"):
                value = getattr(result, key)
                if value is not None:
                    writer.log_scalar(f"modrl/options/{job.name}/eval/{key}", value, frames)
        write_results(run_dir, results)
    return results
