"""Checks across the sections of a run config: what no single section can check on its own.

:func:`check_run_fields` is what every run config needs (``modrl train``'s and ``modrl continual``'s);
:func:`check_cross_fields` adds the checks of a ``modrl train`` run (split, batched engine, workers, pre-training).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from modrl.config import ConfigError

if TYPE_CHECKING:
    from modrl.agents.common.config import EnvConfig, ExperimentConfig, RunConfig
    from modrl.envs import Suite


def check_cross_fields(config: ExperimentConfig) -> None:
    """The checks across sections of a ``modrl train`` config (run by
    :func:`~modrl.agents.common.config.load_experiment_config`)."""
    suite = check_run_fields(config)
    if config.env.split is not None:
        if config.env.split not in suite.splits:
            raise ConfigError(
                f"env.split: suite {suite.name!r} has no split {config.env.split!r}; "
                f"its splits: {', '.join(suite.splits)}"
            )
    elif config.env.n_envs < suite.num_tasks:
        raise ConfigError(
            f"env.n_envs: {config.env.n_envs} envs cannot cover the {suite.num_tasks} tasks of suite "
            f"{suite.name!r}; use at least {suite.num_tasks}, or train on a split (env.split=train)"
        )
    if config.env.engine == "fast":  # before a run directory exists; builders.make_vec_env checks it again
        reason = fast_engine_reason(config.env)
        if reason is not None:
            raise ConfigError(f"env.engine: fast cannot run suite {suite.name} ({reason}); use minigrid or auto")
    if config.train.workers > 1:
        _check_workers(config)
    if config.pretrain.enabled:
        _check_oracle(suite, training_tasks(config.env, suite))
    elif config.train.total_timesteps == 0:
        raise ConfigError(
            "train.total_timesteps: 0 RL frames trains nothing; it is for pre-training only runs "
            "(set pretrain.episodes > 0)"
        )


def _check_workers(config: ExperimentConfig) -> None:
    """``train.workers`` > 1 splits the env slots and the minibatch evenly across the processes."""
    workers = config.train.workers
    for key, value in (("env.n_envs", config.env.n_envs), ("algo.batch_size", config.algo.batch_size)):
        if value % workers:
            raise ConfigError(
                f"{key}: {value} does not split evenly across train.workers={workers}; use a multiple of {workers}"
            )
    if config.train.total_timesteps == 0:
        raise ConfigError("train.workers: a pre-training only run (train.total_timesteps: 0) trains in one process")


def training_tasks(env: EnvConfig, suite: Suite) -> tuple[int, ...]:
    """Task ids a run of ``env`` trains on: ``env.split``'s tasks, or every task of the suite without a split."""
    if env.split is None:
        return tuple(range(suite.num_tasks))
    return tuple(suite.task_names.index(name) for name in suite.splits[env.split])


def _check_oracle(suite: Suite, tasks: Sequence[int]) -> None:
    from modrl.envs.oracle import has_oracle

    missing = [suite.tasks[i] for i in tasks if not has_oracle(suite.tasks[i])]
    if missing:
        raise ConfigError(
            f"pretrain.episodes: suite {suite.name!r} has no oracle for task {missing[0].name!r} "
            f"({missing[0].env_id} is not a modrl TaskEnv; {len(missing)} of its {len(tasks)} training tasks have "
            "none): oracle pre-training needs a suite of TaskEnv tasks (e.g. colour-type, sequences); set "
            "pretrain.episodes=0"
        )


def _check_strict(suite: Suite) -> None:
    from modrl.envs.task_env import is_task_env

    stock = [task for task in suite.tasks if not is_task_env(task.env_id)]
    if stock:
        raise ConfigError(
            f"env.strict: task {stock[0].name!r} of suite {suite.name!r} is a stock MiniGrid env ({stock[0].env_id}); "
            "strict pick-up and open are BabyAI instructions of the generated suites (colour-type, verb-object, "
            "sequences)"
        )


def fast_engine_reason(env: EnvConfig) -> str | None:
    """Why the batched engine (``env.engine``) cannot run ``env``'s slots, or ``None`` if it can: worker processes, a
    task it does not cover, or a split of a suite that is not generated (:func:`modrl.envs.fast.coverage.suite_reason`).
    """
    if env.vec_env != "dummy":
        return f"env.vec_env {env.vec_env!r} runs MiniGrid in worker processes; the fast engine is in-process"
    from modrl.envs import get_suite
    from modrl.envs.fast.coverage import suite_reason

    suite = get_suite(env.suite)
    return suite_reason(
        suite, max_episode_steps=env.max_episode_steps, mission_tokens=env.mission_tokens, split=env.split
    )


def check_run_fields(config: RunConfig) -> Suite:
    """The checks across sections that every run config needs; returns the suite ``env.suite`` names.

    Raises:
        ConfigError: Unknown suite, a mission router without mission tokens, a PPO batch larger than a rollout, an
            agent too large to train (:func:`modrl.budget.check_budget`, the estimate in the message).
    """
    from modrl.agents.common.budget import estimate_agent, suite_view_size
    from modrl.budget import check_budget
    from modrl.envs import get_suite  # lazy: keeps config parsing cheap and import order simple
    from modrl.envs.suites import ids_suite

    try:
        suite = ids_suite(config.env.ids) if config.env.ids else get_suite(config.env.suite)
    except KeyError as exc:
        raise ConfigError(f"env.suite: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"env.{exc}") from None
    if config.agent.aggregation == "param_mix" and config.agent.modules.kind not in ("lowrank", "adapter"):
        raise ConfigError(
            "agent.aggregation: 'param_mix' mixes low-rank modules' parameters; set agent.modules.kind to lowrank or "
            f"adapter (got {config.agent.modules.kind!r})"
        )
    if config.env.strict:
        _check_strict(suite)
    if config.agent.extractor.film and not config.env.mission_tokens:
        raise ConfigError("agent.extractor.film: FiLM conditions the image on the mission; set env.mission_tokens=true")
    if config.agent.router_input in ("mission", "words") and not config.env.mission_tokens:
        raise ConfigError(
            f"agent.router_input: {config.agent.router_input!r} needs the mission tokens; set env.mission_tokens=true"
        )
    if config.agent.algo == "ppo" and config.algo.batch_size > config.algo.n_steps * config.env.n_envs:
        raise ConfigError(
            f"algo.batch_size: {config.algo.batch_size} is larger than one rollout "
            f"(algo.n_steps * env.n_envs = {config.algo.n_steps * config.env.n_envs})"
        )
    side = suite_view_size(suite)
    convolutions = len(config.agent.extractor.channels)
    if convolutions >= side:
        raise ConfigError(
            f"agent.extractor.channels: {convolutions} convolutions of 2x2 need an image of more than {convolutions} "
            f"cells a side; suite {suite.name!r} observes {side}x{side}"
        )
    what = "agent" if side == 7 else f"agent (on the suite's {side}x{side} view)"
    check_budget(estimate_agent(config, num_tasks=suite.num_tasks, view_size=side), what)
    return suite
