"""``modrl train``: validate a config, create (or lock and resume) a run directory, train, evaluate."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .device_option import add_device_argument, device_or_fail
from .errors import EXIT_ERROR, EXIT_USAGE, fail, one_line
from .hints import runnable, tensorboard_line

if TYPE_CHECKING:
    from modrl.agents.common.config import ExperimentConfig

NAME = "train"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``modrl train`` on the top-level sub-parsers."""
    train = subparsers.add_parser(
        "train",
        help="train an agent from a YAML config into a new run directory",
        description="Train an agent from a YAML experiment config. Each run gets its own directory (config, "
        "metadata, checkpoints, TensorBoard logs, evaluation results); an existing directory is never overwritten. "
        "Ctrl-C / SIGTERM stop cleanly with a checkpoint; --resume continues from the last complete one.",
    )
    train.add_argument(
        "config",
        nargs="?",
        type=Path,
        help="experiment YAML, or the name of a shipped one (e.g. quickstart: 'modrl list configs' lists them)",
    )
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set agent.router.kind=topk --set train.total_timesteps=20000",
    )
    train.add_argument(
        "--run-dir", type=Path, help="exact run directory to create (refused if it exists and is not empty)"
    )
    train.add_argument(
        "--runs-root", type=Path, default=Path("runs"), help="where new run directories go (default: runs)"
    )
    train.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue RUN_DIR from its last complete checkpoint"
    )
    train.add_argument(
        "--allow-config-change",
        action="store_true",
        help="with --resume and CONFIG/--set: continue the run with a changed config (recorded in meta.json); the "
        "agent, task set and spaces must still match its checkpoints",
    )
    add_device_argument(train)


def _resolve_config(args: argparse.Namespace) -> tuple[ExperimentConfig, Path | None, ExperimentConfig | None]:
    """The config to train, the run directory when resuming, and the stored config when a resume changes it.

    A changed config on resume is refused unless ``--allow-config-change`` is given.
    """
    from modrl.agents.common.config import load_experiment_config
    from modrl.config import ConfigError, to_dict
    from modrl.runs import read_run_config
    from modrl.shipped import resolve_config

    if args.resume is None:
        if args.config is None:
            raise ConfigError("give a CONFIG file to train (or --resume RUN_DIR)")
        return load_experiment_config(resolve_config(args.config), args.overrides), None, None
    if args.run_dir is not None:
        raise ConfigError("--run-dir and --resume cannot be combined: a resumed run keeps its directory")
    stored = load_experiment_config(read_run_config(args.resume))
    if args.config is None and not args.overrides:
        return stored, args.resume, None
    source = resolve_config(args.config) if args.config is not None else to_dict(stored)
    wanted = load_experiment_config(source, args.overrides)
    if wanted == stored:
        return stored, args.resume, None
    if not args.allow_config_change:
        raise ConfigError(
            f"the config differs from the one {args.resume} was started with; resume without CONFIG/--set, or pass "
            "--allow-config-change to continue the run with the new config (recorded in its meta.json)"
        )
    return wanted, args.resume, stored


def run(args: argparse.Namespace) -> int:
    """``modrl train``: validate the config, create (or lock and resume) the run directory, train, evaluate."""
    from modrl.config import ConfigError, to_dict
    from modrl.runs import (
        RunDirError,
        RunDirOSError,
        create_run_dir,
        discard_new_run_dir,
        lock_run_dir,
        write_run_metadata,
    )

    device = device_or_fail(args)
    if isinstance(device, int):
        return device
    try:
        config, resume_dir, previous = _resolve_config(args)
    except (ConfigError, RunDirError) as exc:
        return fail(one_line(str(exc)))
    if config.train.workers > 1 and device != "cpu":
        return fail(f"train.workers: {config.train.workers} processes train data-parallel on the CPU; use --device cpu")
    if resume_dir is None:
        try:
            run_dir = create_run_dir(root=args.runs_root, name=config.name, explicit=args.run_dir)
        except RunDirError as exc:
            return fail(str(exc))
    else:
        run_dir = resume_dir
    started = resume_dir is not None
    try:
        with lock_run_dir(run_dir):
            if not started:  # written under the lock, so a failure here leaves no run marked running
                write_run_metadata(
                    run_dir,
                    config=to_dict(config),
                    seed=config.seed,
                    argv=["modrl", *sys.argv[1:]],
                    imports=args.imports,
                    device=device,
                )
                started = True
            return _train_locked(config, run_dir, resume=resume_dir is not None, previous=previous, device=device)
    except RunDirError as exc:
        if not started:
            discard_new_run_dir(run_dir)
        return fail(one_line(str(exc)), EXIT_ERROR if isinstance(exc, RunDirOSError) else EXIT_USAGE)


def _train_locked(
    config: ExperimentConfig, run_dir: Path, *, resume: bool, previous: ExperimentConfig | None, device: str
) -> int:
    from modrl.agents.common.guards import EnvWorkerError, NonFiniteError
    from modrl.agents.common.training import TENSORBOARD, TrainStatus, run_training
    from modrl.checkpoint import CheckpointError
    from modrl.config import to_dict
    from modrl.runs import RunStatus, record_config_change, set_status

    from .eval_command import evaluate_and_report

    print(f"run directory: {run_dir}")
    print(
        f"agent: {config.agent.kind} ({config.agent.algo}, router {config.agent.router.kind}, "
        f"{config.agent.modules.count} {config.agent.modules.kind} modules) | suite: {config.env.suite} | "
        f"{config.env.n_envs} envs | {config.train.total_timesteps} steps | seed {config.seed} | device {device}"
        + (f" | {config.train.workers} processes" if config.train.workers > 1 else "")
    )
    if config.pretrain.enabled and not resume:
        print(f"pre-training: behaviour cloning on {config.pretrain.episodes} oracle episodes of the training tasks")
    started = time.monotonic()
    begun = not resume  # a refused resume (wrong task, no usable checkpoint) leaves the run directory untouched

    def on_start(resumed_from: int | None) -> None:
        nonlocal begun
        if previous is not None:
            record_config_change(run_dir, old=to_dict(previous), new=to_dict(config), argv=["modrl", *sys.argv[1:]])
        if resume:
            set_status(run_dir, RunStatus.RUNNING, resumed=True, device=device)
        begun = True

    try:
        outcome = run_training(config, run_dir, resume=resume, on_start=on_start, device=device)
    except (CheckpointError, NonFiniteError, EnvWorkerError) as exc:
        if begun:
            set_status(run_dir, RunStatus.FAILED, error=str(exc))
        return fail(str(exc), EXIT_ERROR)
    except Exception as exc:
        if begun:
            set_status(run_dir, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    elapsed = time.monotonic() - started
    if outcome.checkpoint is None:  # stopped during oracle pre-training: nothing to resume from yet
        set_status(run_dir, RunStatus.INTERRUPTED, step=0)
        print("interrupted during oracle pre-training (before the first checkpoint)")
        print(
            "start it again (pre-training is repeated from the beginning) with: "
            f"{runnable('modrl')} train --resume {run_dir}"
        )
        return 128 + (outcome.signal or signal.SIGINT)
    frames: dict[str, object] = {}
    if outcome.pretrain is not None:
        stats = outcome.pretrain
        frames = {"frames": {"rl": outcome.steps, "demo": stats.demo_frames}}
        print(
            f"pre-training: {stats.episodes} oracle episodes, {stats.demo_frames} demo frames ({stats.pairs} pairs); "
            f"behaviour cloning accuracy {stats.accuracy_before:.3f} -> {stats.accuracy:.3f} (loss {stats.bc_loss:.4f})"
        )
    if outcome.status is TrainStatus.INTERRUPTED:
        set_status(run_dir, RunStatus.INTERRUPTED, step=outcome.steps, checkpoint=str(outcome.checkpoint), **frames)
        print(f"interrupted at step {outcome.steps}; checkpoint {outcome.checkpoint}")
        print(f"resume with: {runnable('modrl')} train --resume {run_dir}")
        return 128 + (outcome.signal or signal.SIGINT)
    demo = "" if outcome.pretrain is None else f" (+ {outcome.pretrain.demo_frames} oracle demo frames)"
    print(f"training finished: {outcome.steps} RL steps{demo} in {elapsed:.0f}s; checkpoint {outcome.checkpoint}")
    if config.train.eval_episodes > 0:
        evaluate_and_report(
            run_dir, episodes=config.train.eval_episodes, deterministic=True, hparams=True, device=device
        )
    set_status(run_dir, RunStatus.COMPLETED, step=outcome.steps, train_seconds=round(elapsed, 1), **frames)
    print("\n" + tensorboard_line(run_dir / TENSORBOARD, run_dir.name))
    return 0
