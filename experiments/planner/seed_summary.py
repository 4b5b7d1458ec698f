"""Planner success and per-option success over library seeds: IQM [95% bootstrap CI] across seeds.

One option library per training seed (``modrl options train ... --set seed=S --run-dir RUN_S``) and one planner
evaluation of each (``eval_planner.py ... --options RUN_S/options --out RUN_S/planner.json``). Each seed contributes
one number per row (its mean success over the split's tasks), so the interval is over library seeds::

    python experiments/planner/seed_summary.py RUN_0 RUN_1 RUN_2 RUN_3 RUN_4 --planner planner.json \\
        [--planner planner-greedy.json] [--mark putnext]

A run without one of the named planner files, or without ``results.json``, is refused (exit 2): every row is over
the same seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from modrl.report.files import ReportError, read_json_object
from modrl.stats import summarize


class InputError(Exception):
    """A run directory or file that cannot be summarised."""


def _cell(values: list[float]) -> str:
    s = summarize(np.asarray(values, dtype=float))
    return f"{s.iqm:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"


def planner_rates(data: dict, path: Path, mark: str | None) -> dict[str, float]:
    """Mean success over all tasks, and over the tasks whose name contains ``mark`` / does not (when given)."""
    tasks = data.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise InputError(f"{path}: no 'tasks' (write it with eval_planner.py --out)")
    try:
        per_task = {name: float(np.mean([run["success"] for run in runs])) for name, runs in tasks.items()}
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: a task's runs lack or mistype {error}") from None
    rates = {"all": float(np.mean(list(per_task.values())))}
    if mark:
        for label, keep in ((f"with {mark}", True), (f"without {mark}", False)):
            chosen = [v for name, v in per_task.items() if (mark in name) == keep]
            if chosen:
                rates[label] = float(np.mean(chosen))
    return rates


def option_rows(data: dict, path: Path) -> dict[str, dict[str, float]]:
    """Per option: frames, training success when its curriculum ended, sampled and greedy evaluation success."""
    options = data.get("options")
    if not isinstance(options, list) or not options:
        raise InputError(f"{path}: no 'options' (a modrl options train results.json)")
    rows = {}
    try:
        for option in options:
            rows[option["name"]] = {
                "frames": float(option["stage"]["steps"]),
                "passed": float(option["stage"]["passed"]),
                "sampled": float(option["train_success"]),
                "greedy": float(option["train_success_det"]),
            }
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: an option entry lacks or mistypes {error}") from None
    return rows


def summary(runs: list[Path], planner_files: list[str], mark: str | None) -> str:
    """The markdown tables: planner rows (one per planner file), then per-option rows."""
    lines = [f"{len(runs)} library seeds: " + ", ".join(str(r) for r in runs), ""]
    lines += ["| planner evaluation | tasks | success, IQM [95% CI] over seeds | per seed |", "|---|---|---|---|"]
    for name in planner_files:
        per_seed = [planner_rates(read_json_object(run / name), run / name, mark) for run in runs]
        for group in per_seed[0]:
            values = [rates[group] for rates in per_seed]
            seeds = " ".join(f"{v:.2f}" for v in values)
            lines.append(f"| {name} | {group} | {_cell(values)} | {seeds} |")
    per_run = [option_rows(read_json_object(run / "results.json"), run / "results.json") for run in runs]
    names = list(per_run[0])
    for run, rows in zip(runs, per_run, strict=True):
        if list(rows) != names:
            raise InputError(f"{run}: options {list(rows)} differ from {names}")
    lines += ["", "| option | frames, mean | passed the curriculum | eval sampled | eval greedy |"]
    lines.append("|---|---|---|---|---|")
    for name in names:
        column = {key: [rows[name][key] for rows in per_run] for key in ("frames", "passed", "sampled", "greedy")}
        lines.append(
            f"| {name} | {np.mean(column['frames']) / 1000:.0f} k | {int(sum(column['passed']))}/{len(runs)} | "
            f"{_cell(column['sampled'])} | {_cell(column['greedy'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="modrl options train run directories, one per seed")
    parser.add_argument(
        "--planner", action="append", default=[], help="eval_planner.py --out file name inside each run directory"
    )
    parser.add_argument("--mark", help="also split the planner's tasks by whether their name contains this")
    args = parser.parse_args(argv)
    try:
        print(summary(args.runs, args.planner, args.mark))
    except (InputError, ReportError) as error:
        print(f"modrl: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
