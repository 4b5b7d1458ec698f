"""``modrl continual``: train one agent on a sequence of tasks with a local-update rule, and report R."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from .device_option import add_device_argument, device_or_fail
from .errors import EXIT_ERROR, EXIT_USAGE, fail
from .hints import runnable

NAME = "continual"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``modrl continual`` on the top-level sub-parsers."""
    parser = subparsers.add_parser(
        "continual",
        help="train on a sequence of tasks with a local-update rule; report R, forgetting and transfer",
        description="Train one agent on the tasks of sequence.tasks one after another, protecting what earlier "
        "tasks learned with rule.kind (none, freeze_grow, ewc, l2, packnet). After every stage all tasks are "
        "evaluated on fixed seeds: R[i][j] = success on task j after stage i. Writes continual.json, R.md, R.png "
        "and TensorBoard logs; Ctrl-C / SIGTERM stop with a checkpoint, --resume continues where it stopped.",
    )
    parser.add_argument("config", nargs="?", type=Path, help="continual YAML (e.g. experiments/continual/keys.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set rule.kind=ewc --set sequence.steps_per_task=20000",
    )
    parser.add_argument("--run-dir", type=Path, help="exact run directory to create (refused if not empty)")
    parser.add_argument(
        "--runs-root",
        type=Path,
        default=Path("runs/continual"),
        help="where new run directories go (default: runs/continual)",
    )
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue RUN_DIR where it stopped")
    parser.add_argument(
        "--reference-dir",
        type=Path,
        metavar="DIR",
        help="forward transfer with from-scratch references cached in DIR and shared by runs of any rule with the "
        "same seed, env, agent, algo and budget (sets sequence.reference=scratch); with --resume of a finished run, "
        "adds forward transfer to it (recorded in meta.json)",
    )
    add_device_argument(parser)


def _config_and_dir(args: argparse.Namespace) -> tuple[object, Path, bool, dict | None]:
    """``(config, run_dir, resume, old config to record a change from or None)``."""
    from modrl.agents.continual.config import load_continual_config
    from modrl.config import ConfigError, to_dict
    from modrl.runs import create_run_dir, read_run_config

    reference = (
        []
        if args.reference_dir is None
        else ["sequence.reference=scratch", f"sequence.reference_dir={args.reference_dir}"]
    )
    if args.resume is not None:
        if args.config is not None or args.overrides or args.run_dir is not None:
            raise ConfigError("--resume RUN_DIR takes no CONFIG, --set or --run-dir: a run resumes as it was started")
        old = read_run_config(args.resume)
        config = load_continual_config(old, reference)
        changed = bool(reference) and to_dict(config) != to_dict(load_continual_config(old))
        return config, args.resume, True, (old if changed else None)
    if args.config is None:
        raise ConfigError("give a CONFIG file (or --resume RUN_DIR)")
    config = load_continual_config(args.config, [*args.overrides, *reference])
    run_dir = create_run_dir(root=args.runs_root, name=config.name, explicit=args.run_dir)
    return config, run_dir, False, None  # its metadata is written under the run's lock (run)


def run(args: argparse.Namespace) -> int:
    """``modrl continual``: validate, create (or lock and resume) the run directory, run the stages, print R."""
    from modrl.config import ConfigError, to_dict
    from modrl.runs import (
        RunDirError,
        RunDirOSError,
        discard_new_run_dir,
        lock_run_dir,
        record_config_change,
        write_run_metadata,
    )

    device = device_or_fail(args)
    if isinstance(device, int):
        return device
    try:
        config, run_dir, resume, old = _config_and_dir(args)
    except (ConfigError, RunDirError) as exc:
        return fail(str(exc))
    started = resume
    try:
        with lock_run_dir(run_dir):
            if not started:  # written under the lock, so a failure here leaves no run marked running
                seed = getattr(config, "seed", 0)
                argv = ["modrl", *sys.argv[1:]]
                write_run_metadata(
                    run_dir, config=to_dict(config), seed=seed, argv=argv, imports=args.imports, device=device
                )
                started = True
            if old is not None:
                record_config_change(run_dir, old=old, new=to_dict(config), argv=["modrl", *sys.argv[1:]])
            return _run_locked(config, run_dir, resume=resume, device=device)
    except RunDirError as exc:
        if not started:
            discard_new_run_dir(run_dir)
        return fail(str(exc), EXIT_ERROR if isinstance(exc, RunDirOSError) else EXIT_USAGE)


def _run_locked(config: object, run_dir: Path, *, resume: bool, device: str) -> int:
    from modrl.agents.continual.config import ContinualConfig
    from modrl.agents.continual.runner import ContinualStatus, run_continual
    from modrl.checkpoint import CheckpointError
    from modrl.runs import RunStatus, set_status
    from modrl.safe_load import read_json

    assert isinstance(config, ContinualConfig)
    sequence = config.sequence
    print(f"run directory: {run_dir}")
    print(
        f"rule: {config.rule.kind} | agent: {config.agent.kind} | suite: {config.env.suite} | tasks: "
        f"{' -> '.join(sequence.tasks)} | {sequence.steps_per_task} steps each | seed {config.seed}"
    )
    if resume:
        set_status(run_dir, RunStatus.RUNNING, resumed=True, device=device)
    started = time.monotonic()
    try:
        outcome = run_continual(config, run_dir, resume=resume, device=device)
    except (CheckpointError, RuntimeError, ValueError) as exc:
        set_status(run_dir, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return fail(str(exc), EXIT_ERROR)
    except Exception as exc:
        set_status(run_dir, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    if outcome.status is ContinualStatus.INTERRUPTED:
        set_status(run_dir, RunStatus.INTERRUPTED, step=outcome.steps, stages_done=outcome.stages_done)
        print(f"interrupted at step {outcome.steps} after {outcome.stages_done} evaluated stage(s)")
        print(f"resume with: {runnable('modrl')} continual --resume {run_dir}")
        return 128 + (outcome.signal or signal.SIGINT)
    record = read_json(run_dir / "continual.json")
    print()
    print((run_dir / "R.md").read_text(encoding="utf-8"))
    metrics = record["metrics"]
    for key in ("average_success", "average_forgetting", "backward_transfer", "forward_transfer"):
        value = metrics.get(key)
        print(f"{key}: {'-' if value is None else f'{value:.3f}'}")
    elapsed = round(time.monotonic() - started, 1)
    set_status(run_dir, RunStatus.COMPLETED, step=outcome.steps, train_seconds=elapsed)
    print(f"results: {run_dir / 'continual.json'}, {run_dir / 'R.png'}")
    print(f"report: modrl report {run_dir} | compare rules and seeds: modrl report {run_dir.parent}")
    return 0
