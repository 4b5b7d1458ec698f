"""``modrl sweep``: a grid of ``modrl train`` trials (config keys x seeds), run locally or on Ray, resumable."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import EXIT_ERROR, fail
from .hints import runnable

NAME = "sweep"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``modrl sweep`` on the top-level sub-parsers."""
    sweep = subparsers.add_parser(
        "sweep",
        help="run a grid of trainings (config keys x seeds) locally or on Ray",
        description=(
            "Expand SWEEP.yaml (base config, grid of config keys, seeds, fixed overrides) into trials, validate "
            "every trial's config first, then run them as 'modrl train' processes: one worker per CPU core by "
            "default, each with one torch thread. Finished trials are recorded as they finish; --resume re-runs "
            "only what is left (unfinished trials continue from their checkpoints). A failed trial is reported and "
            "does not stop the others."
        ),
    )
    sweep.add_argument("spec", nargs="?", type=Path, help="sweep YAML (e.g. experiments/sweeps/quickstart.yaml)")
    sweep.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the sweep file, e.g. --set seeds=[0,1] or --set set.train.total_timesteps=20000",
    )
    sweep.add_argument("--sweep-dir", type=Path, help="exact sweep directory to create (refused if it exists)")
    sweep.add_argument(
        "--runs-root",
        type=Path,
        default=Path("runs/sweeps"),
        help="where new sweep directories go (default: runs/sweeps)",
    )
    sweep.add_argument("--resume", type=Path, metavar="SWEEP_DIR", help="run what is left of an existing sweep")
    sweep.add_argument(
        "--backend",
        choices=["local", "ray", "tune"],
        default=None,
        help="local processes (default), Ray tasks, or Ray Tune's Tuner (search spaces, scheduler: asha/pbt)",
    )
    sweep.add_argument(
        "--workers",
        type=int,
        help="trials at a time (default: the sweep file's, else one per core; one per N cores for train.workers: N)",
    )
    sweep.add_argument("--ray-address", help="address of a running Ray cluster (default: start a local instance)")


def _validate_trial(base: Path, overrides: Sequence[str]) -> None:
    """Build the trial's ExperimentConfig exactly as ``modrl train`` would; raises ConfigError naming the key."""
    from modrl.agents.common.config import load_experiment_config

    load_experiment_config(base, overrides)


class _ProgressPrinter:
    """One progress line per change (or every 30 s): trials done / running / failed and the ETA."""

    def __init__(self) -> None:
        self._last: tuple[int, int, int] | None = None
        self._last_time = 0.0

    def __call__(self, progress) -> None:
        key = (progress.done, progress.running, progress.failed)
        now = time.monotonic()
        if key == self._last and now - self._last_time < 30:
            return
        self._last, self._last_time = key, now
        print(f"[sweep] {progress.line()} | {progress.skipped} complete before this run", flush=True)
        for line in progress.trial_lines:  # what the running trials report themselves
            print(f"[sweep]   {line}", flush=True)


def run(args: argparse.Namespace) -> int:
    """``modrl sweep``: validate every trial, create (or resume) the sweep directory, run the trials."""
    from modrl.config import ConfigError
    from modrl.runs import RunDirError
    from modrl.sweep import SweepError, expand, load_sweep_spec, open_sweep_dir, run_sweep, validate_trials

    if args.resume is not None:
        if args.spec is not None or args.overrides or args.sweep_dir is not None:
            return fail("--resume DIR takes no SWEEP.yaml, --set or --sweep-dir: a sweep resumes as it was defined")
        if not (args.resume / "trials.json").is_file():
            return fail(f"{args.resume} is not a sweep directory (no trials.json)")
        sweep_dir = args.resume
    else:
        if args.spec is None:
            return fail("give a SWEEP.yaml (or --resume SWEEP_DIR)")
        try:
            spec = load_sweep_spec(args.spec, args.overrides)
            trials = expand(spec)
            validate_trials(trials, _validate_trial, spec.base)
            # An explicit --sweep-dir holding the same trials is continued: re-running the command finishes it.
            sweep_dir, reused = open_sweep_dir(spec, root=args.runs_root, explicit=args.sweep_dir)
        except (ConfigError, RunDirError, SweepError) as exc:
            return fail(str(exc))
        print(f"sweep directory: {sweep_dir} ({len(trials)} trials{', continuing' if reused else ''})")
    try:
        result = run_sweep(
            sweep_dir,
            backend=args.backend,
            workers=args.workers,
            ray_address=args.ray_address,
            on_progress=_ProgressPrinter(),
        )
    except (SweepError, ImportError) as exc:
        return fail(str(exc), EXIT_ERROR)
    stopped = f", {len(result.stopped)} stopped early by the scheduler" if result.stopped else ""
    print(f"sweep finished: {result.completed} completed, {len(result.failed)} failed{stopped}")
    for trial_id in result.failed:
        print(f"  failed: {trial_id} (log: {sweep_dir / 'logs' / (trial_id + '.log')})")
    if result.failed or result.interrupted or result.not_started:
        print(f"re-run what is left with: {runnable('modrl')} sweep --resume {sweep_dir}")
    print(f"report: modrl report {sweep_dir}")
    if result.signal is not None:
        return 128 + result.signal
    return 0 if not result.failed and not result.interrupted else EXIT_ERROR
