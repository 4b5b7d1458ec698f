"""``modrl report``: tables (mean, IQM, bootstrap CI), plots and provenance for runs, sweeps and continual runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from .device_option import add_device_argument, device_or_fail
from .errors import EXIT_ERROR, fail

NAME = "report"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``modrl report`` on the top-level sub-parsers."""
    report = subparsers.add_parser(
        "report",
        help="tables (mean, IQM, bootstrap CI), plots and provenance for a run, sweep or continual run(s)",
        description="Aggregate a run or sweep directory into DIR/report/report.md: per-metric tables across seeds "
        "(mean, interquartile mean, 95% bootstrap CI), frames-to-threshold, learning curves, success per task, "
        "module-usage heatmaps, and the exact commands and versions behind the numbers. A continual run gives its R "
        "matrix, forgetting and transfer; a directory of continual runs one comparison table per update rule.",
    )
    report.add_argument(
        "path", type=Path, help="a run, a sweep, a continual run, or a directory of continual runs (one table per rule)"
    )
    report.add_argument("--out", type=Path, help="write the report here instead of PATH/report")
    report.add_argument(
        "--threshold", type=float, default=0.9, help="training success for frames-to-threshold (default: 0.9)"
    )
    report.add_argument(
        "--episodes",
        type=int,
        default=4,
        metavar="N",
        help="for a run with a checkpoint: one greedy episode of each of the first N tasks as a strip of frames "
        "beside the router's weights (as modrl show draws them), in the report; 0: none (default: 4)",
    )
    add_device_argument(report)


def run(args: argparse.Namespace) -> int:
    """``modrl report``: tables, plots and provenance for a run, a sweep, a continual run or a directory of
    continual runs (one comparison table of the update rules)."""
    from modrl.report import build_report, find_continual_runs

    path = args.path
    if not ((path / "config.yaml").is_file() or (path / "trials.json").is_file() or find_continual_runs(path)):
        return fail(
            f"{path} is neither a run directory (config.yaml), a sweep directory (trials.json) nor a directory "
            "holding continual runs (config.yaml + continual.json)"
        )
    if not 0 <= args.episodes <= 100:
        return fail(f"--episodes must be in [0, 100], got {args.episodes}")
    device = device_or_fail(args)
    if isinstance(device, int):
        return device
    extra = _episode_strips(path, args.out or path / "report", args.episodes, device) if args.episodes else []
    try:
        path = build_report(args.path, out_dir=args.out, threshold=args.threshold, extra_sections=extra)
    except (ValueError, OSError) as exc:
        return fail(str(exc), EXIT_ERROR)
    print(f"report written to {path}")
    return 0


def _episode_strips(run_dir: Path, out_dir: Path, tasks: int, device: str) -> list[str]:
    """The report's "Episodes" section for a single training run with a checkpoint (none for sweeps and continual
    runs, or when the run cannot be loaded: a warning says why and the report goes on)."""
    import sys

    from modrl.checkpoint import CheckpointError
    from modrl.config import ConfigError
    from modrl.runs import RunDirError

    if not (run_dir / "config.yaml").is_file() or (run_dir / "continual.json").exists():
        return []
    if not (run_dir / "checkpoints").is_dir():
        return []
    from modrl.agents.common.show import render_strips

    try:
        strips = render_strips(run_dir, out_dir / "episodes", tasks=tasks, device=device)
    except (CheckpointError, ConfigError, RunDirError, OSError, ValueError, KeyError) as exc:
        print(f"modrl: warning: no episode strips in the report: {exc}", file=sys.stderr)
        return []
    lines = [
        "## Episodes",
        "",
        "One greedy episode per task (the first evaluation seed) by the newest checkpoint: frames evenly spaced over "
        "the episode, each beside the router's weight on every module at that step, then the outcome "
        "(`modrl show RUN --task T` plays whole episodes as a GIF).",
    ]
    for task, path, episode in strips:  # path: the task name made file-safe by render_strips
        verdict = "success" if episode.success else "failure"
        lines += ["", f"**{task}**: {verdict}, return {episode.total_return:.2f} in {episode.length} steps", ""]
        lines.append(f"![{task}](episodes/{path.name})")
    return ["\n".join(lines)]
