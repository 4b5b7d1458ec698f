"""Implementations of the ``modrl`` sub-commands (argument parsing lives in :mod:`modrl.cli.main`)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from modrl._io import atomic_write_json
from modrl.agents.common.config import ExperimentConfig, load_experiment_config
from modrl.checkpoint import CheckpointError
from modrl.config import ConfigError, to_dict
from modrl.runs import (
    RunDirError,
    RunStatus,
    create_run_dir,
    lock_run_dir,
    read_run_config,
    record_config_change,
    set_status,
    write_run_metadata,
)

from .errors import EXIT_ERROR, fail, one_line


def _resolve_config(args: argparse.Namespace) -> tuple[ExperimentConfig, Path | None, ExperimentConfig | None]:
    """The config to train, the run directory when resuming, and the stored config when a resume changes it.

    A changed config on resume is refused unless ``--allow-config-change`` is given.
    """
    if args.resume is None:
        if args.config is None:
            raise ConfigError("give a CONFIG file to train (or --resume RUN_DIR)")
        return load_experiment_config(args.config, args.overrides), None, None
    if args.run_dir is not None:
        raise ConfigError("--run-dir and --resume cannot be combined: a resumed run keeps its directory")
    stored = load_experiment_config(read_run_config(args.resume))
    if args.config is None and not args.overrides:
        return stored, args.resume, None
    wanted = load_experiment_config(args.config if args.config is not None else to_dict(stored), args.overrides)
    if wanted == stored:
        return stored, args.resume, None
    if not args.allow_config_change:
        raise ConfigError(
            f"the config differs from the one {args.resume} was started with; resume without CONFIG/--set, or pass "
            "--allow-config-change to continue the run with the new config (recorded in its meta.json)"
        )
    return wanted, args.resume, stored


def train(args: argparse.Namespace) -> int:
    """``modrl train``: validate the config, create (or lock and resume) the run directory, train, evaluate."""
    try:
        config, resume_dir, previous = _resolve_config(args)
    except (ConfigError, RunDirError) as exc:
        return fail(one_line(str(exc)))
    if resume_dir is None:
        try:
            run_dir = create_run_dir(root=args.runs_root, name=config.name, explicit=args.run_dir)
            write_run_metadata(run_dir, config=to_dict(config), seed=config.seed, argv=["modrl", *sys.argv[1:]])
        except RunDirError as exc:
            return fail(str(exc))
    else:
        run_dir = resume_dir
    try:
        with lock_run_dir(run_dir):
            return _train_locked(config, run_dir, resume=resume_dir is not None, previous=previous)
    except RunDirError as exc:
        return fail(str(exc))


def _train_locked(config: ExperimentConfig, run_dir: Path, *, resume: bool, previous: ExperimentConfig | None) -> int:
    from modrl.agents.common.guards import EnvWorkerError, NonFiniteError
    from modrl.agents.common.training import TENSORBOARD, TrainStatus, run_training

    print(f"run directory: {run_dir}")
    print(
        f"agent: {config.agent.kind} ({config.agent.algo}, router {config.agent.router.kind}, "
        f"{config.agent.skills.count} {config.agent.skills.kind} modules) | suite: {config.env.suite} | "
        f"{config.env.n_envs} envs | {config.train.total_timesteps} steps | seed {config.seed}"
    )
    started = time.monotonic()
    begun = not resume  # a refused resume (wrong task, no usable checkpoint) leaves the run directory untouched

    def on_start(resumed_from: int | None) -> None:
        nonlocal begun
        if previous is not None:
            record_config_change(run_dir, old=to_dict(previous), new=to_dict(config), argv=["modrl", *sys.argv[1:]])
        if resume:
            set_status(run_dir, RunStatus.RUNNING, resumed=True)
        begun = True

    try:
        outcome = run_training(config, run_dir, resume=resume, on_start=on_start)
    except (CheckpointError, NonFiniteError, EnvWorkerError) as exc:
        if begun:
            set_status(run_dir, RunStatus.FAILED, error=str(exc))
        return fail(str(exc), EXIT_ERROR)
    except Exception as exc:
        if begun:
            set_status(run_dir, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    elapsed = time.monotonic() - started
    if outcome.status is TrainStatus.INTERRUPTED:
        set_status(run_dir, RunStatus.INTERRUPTED, step=outcome.steps, checkpoint=str(outcome.checkpoint))
        print(f"interrupted at step {outcome.steps}; checkpoint {outcome.checkpoint}")
        print(f"resume with: modrl train --resume {run_dir}")
        return 128 + (outcome.signal or signal.SIGINT)
    print(f"training finished: {outcome.steps} steps in {elapsed:.0f}s; checkpoint {outcome.checkpoint}")
    if config.train.eval_episodes > 0:
        _evaluate_and_report(run_dir, episodes=config.train.eval_episodes, deterministic=True)
    set_status(run_dir, RunStatus.COMPLETED, step=outcome.steps, train_seconds=round(elapsed, 1))
    print(f"\nTensorBoard: tensorboard --logdir {run_dir / TENSORBOARD}")
    return 0


def _evaluate_and_report(run_dir: Path, *, episodes: int, deterministic: bool, split: str = "all") -> Path:
    from modrl.agents.common.evaluation import evaluate_policy, format_report, load_run_policy

    config, policy, checkpoint = load_run_policy(run_dir)
    splits = None if split == "all" else [split]
    report = evaluate_policy(
        policy, config, episodes=episodes, deterministic=deterministic, step=checkpoint.step, splits=splits
    )
    print()
    print(format_report(report))
    out_dir = run_dir / "eval"
    out_dir.mkdir(exist_ok=True)
    mode = "det" if deterministic else "stoch"
    # Only evaluations of every split carry the plain name that `modrl report` reads.
    suffix = "" if split == "all" else f"-split-{split}"
    path = out_dir / f"step-{checkpoint.step:012d}-{mode}-{episodes}ep{suffix}.json"
    atomic_write_json(path, report.to_dict())
    print(f"results written to {path}")
    return path


def evaluate(args: argparse.Namespace) -> int:
    """``modrl eval``: evaluate a run's latest checkpoint per task, or with ``--planner`` the planner over a run's
    option library (or the scripted skills)."""
    if args.episodes < 1:
        return fail(f"--episodes must be >= 1, got {args.episodes}")
    from . import planner_eval_command

    if args.planner:
        return planner_eval_command.run(args)
    given = planner_eval_command.planner_only_flags(args)
    if given:
        return fail(f"{given[0]} needs --planner (modrl eval RUN_DIR --planner ...)")
    if args.run_dir is None:
        return fail("give RUN_DIR, a run directory made by 'modrl train'")
    if not (args.run_dir / "config.yaml").is_file():
        return fail(f"{args.run_dir} is not a run directory (no config.yaml)")
    try:
        _evaluate_and_report(
            args.run_dir, episodes=args.episodes, deterministic=not args.stochastic, split=args.split or "all"
        )
    except (CheckpointError, ConfigError, RunDirError, FileNotFoundError, ValueError) as exc:
        return fail(str(exc), EXIT_ERROR)
    return 0


def list_registries(args: argparse.Namespace) -> int:
    """``modrl list``: what can be named in a config."""
    from modrl.agents.common.builders import ALGOS
    from modrl.agents.common.policies import AGENTS
    from modrl.composition import AGGREGATIONS
    from modrl.envs import SUITES, get_suite
    from modrl.routers import ROUTERS
    from modrl.skills import SKILLS

    sections = {
        "routers": ("agent.router.kind", ROUTERS.names()),
        "modules": ("agent.skills.kind", SKILLS.names()),
        "aggregations": ("agent.aggregation", AGGREGATIONS.names()),
        "agents": ("agent.kind", AGENTS.names()),
        "algorithms": ("agent.algo", ALGOS.names()),
    }
    for name, (key, values) in sections.items():
        if args.what in ("all", name):
            print(f"{name} ({key}): {', '.join(values)}")
    if args.what in ("all", "suites"):
        print("suites (env.suite; 'modrl suite show NAME' lists tasks and splits):")
        for name in SUITES.names():
            suite = get_suite(name)
            splits = ", ".join(f"{split} {len(tasks)}" for split, tasks in suite.splits.items())
            print(f"  {name} v{suite.version}: {suite.num_tasks} tasks ({splits}) - {suite.description}")
    return 0


def suite_show(args: argparse.Namespace) -> int:
    """``modrl suite show NAME``: a suite's tasks (env ids, missions) and its train/test splits."""
    from modrl.envs import get_suite

    try:
        suite = get_suite(args.name)
    except KeyError as exc:
        return fail(str(exc))
    print(f"suite {suite.name} v{suite.version}: {suite.description}")
    for split, names in suite.splits.items():
        print(f"\n{split} split ({len(names)} tasks):")
        by_name = {task.name: task for task in suite.tasks}
        for name in names:
            print(f"  {name:48s} {by_name[name].env_id}")
    held_out = _held_out(suite.name)
    if held_out:
        print(f"\nheld out of training: {held_out}")
    return 0


def _held_out(suite_name: str) -> str:
    from modrl.envs.splits import SPLITS

    if suite_name not in SPLITS:
        return ""
    split = SPLITS.get(suite_name)
    return f"{', '.join(map(str, split.held_out))} (split fingerprint {split.fingerprint})"
