"""``modrl report``: tables (mean, IQM, bootstrap CI), plots and provenance for runs, sweeps and continual runs."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    try:
        path = build_report(args.path, out_dir=args.out, threshold=args.threshold)
    except (ValueError, OSError) as exc:
        return fail(str(exc), EXIT_ERROR)
    print(f"report written to {path}")
    return 0
