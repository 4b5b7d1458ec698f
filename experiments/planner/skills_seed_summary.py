"""The planner over skill libraries of ``modrl options skills``, one per training seed: IQM [95% bootstrap CI] across
library seeds of the planner's success (mean over the split's tasks, and per task), each skill's calling-state success,
and the calls per operator that ended as planned.

Each seed's library is a run directory (``modrl options merge ... --run-dir LIB_S``) evaluated by
``modrl eval LIB_S --planner ...`` (which writes ``LIB_S/eval/planner-<split>[-stochastic].json``); the skills' own
run directories (``modrl options skills ... --run-dir RUN``, with ``results.json``) are given per seed with
``--skills``::

    python experiments/planner/skills_seed_summary.py LIB_0 LIB_1 ... --eval planner-test-stochastic.json \\
        --skills 'RUNS_{seed}/*'

``--skills`` is a glob pattern with ``{seed}`` standing for the library's index in the list (0, 1, ...). A library
without the named evaluation file, or a seed with no skill results, is refused (exit 2): every row is over the same
seeds. Prints markdown.
"""

from __future__ import annotations

import argparse
import glob
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


def planner_seed(path: Path) -> tuple[dict[str, float], dict[str, tuple[int, int]]]:
    """Per task success, and calls / as-planned per operator summed over the tasks, of one ``modrl eval --planner``
    JSON."""
    data = read_json_object(path)
    tasks = data.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise InputError(f"{path}: no 'tasks' (write it with modrl eval --planner)")
    success: dict[str, float] = {}
    operators: dict[str, tuple[int, int]] = {}
    try:
        for task in tasks:
            success[str(task["task"])] = float(task["success_rate"])
            for name, (calls, planned) in task.get("operators", {}).items():
                before = operators.get(name, (0, 0))
                operators[name] = (before[0] + int(calls), before[1] + int(planned))
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: a task lacks or mistypes {error}") from None
    return success, operators


def skill_seed(paths: list[Path]) -> dict[str, dict[str, float]]:
    """Per skill: PPO frames, calling-state success (train / test envs, sampled / greedy), wall seconds."""
    rows: dict[str, dict[str, float]] = {}
    for path in paths:
        data = read_json_object(path)
        try:
            for skill in data["skills"]:
                train, test = skill["train_success"], skill.get("test_success") or [float("nan")] * 2
                rows[str(skill["skill"])] = {
                    "frames": float(skill["finetune_frames"]),
                    "train sampled": float(train[0]),
                    "train greedy": float(train[1]),
                    "test sampled": float(test[0]),
                    "test greedy": float(test[1]),
                    "seconds": float(skill["seconds"]),
                }
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise InputError(f"{path}: a skill lacks or mistypes {error}") from None
    return rows


def summary(libraries: list[Path], eval_name: str, skills_pattern: str | None) -> str:
    """The markdown tables (see the module docstring)."""
    seeds = [planner_seed(lib / "eval" / eval_name) for lib in libraries]
    tasks = list(seeds[0][0])
    if any(list(s) != tasks for s, _ in seeds):
        raise InputError("the evaluations name different tasks")
    lines = [f"Over {len(libraries)} library seeds: {', '.join(str(lib) for lib in libraries)} (`{eval_name}`).", ""]
    lines += ["| planner success | IQM [95% CI] | per seed |", "|---|---|---|"]
    means = [float(np.mean(list(s.values()))) for s, _ in seeds]
    lines.append(f"| mean of {len(tasks)} tasks | **{_cell(means)}** | {' '.join(f'{m:.2f}' for m in means)} |")
    for task in tasks:
        values = [s[task] for s, _ in seeds]
        lines.append(f"| {task} | {_cell(values)} | {' '.join(f'{v:.2f}' for v in values)} |")
    operators = sorted({name for _, ops in seeds for name in ops})
    lines += ["", "| operator | calls (all seeds) | ended as planned | per seed |", "|---|---:|---:|---|"]
    for name in operators:
        parts = [ops.get(name, (0, 0)) for _, ops in seeds]
        calls, planned = sum(c for c, _ in parts), sum(p for _, p in parts)
        per_seed = " ".join(f"{p / c:.2f}" if c else "-" for c, p in parts)
        lines.append(f"| {name} | {calls} | {planned / calls:.2f} | {per_seed} |")
    if skills_pattern:
        lines += _skills_table(len(libraries), skills_pattern)
    return "\n".join(lines)


def _skills_table(count: int, pattern: str) -> list[str]:
    per_seed = []
    for seed in range(count):
        paths = sorted(Path(p) / "results.json" for p in glob.glob(pattern.format(seed=seed)))
        paths = [p for p in paths if p.is_file()]
        if not paths:
            raise InputError(f"no skill results.json matches {pattern.format(seed=seed)!r}")
        per_seed.append(skill_seed(paths))
    skills = sorted({name for rows in per_seed for name in rows})
    keys = ("train sampled", "train greedy", "test sampled", "test greedy")
    lines = ["", "| skill | PPO frames | " + " | ".join(keys) + " | wall s (mean) |", "|---|---:|" + "---|" * 5]
    for skill in skills:
        rows = [rows[skill] for rows in per_seed if skill in rows]
        if len(rows) != count:
            raise InputError(f"skill {skill!r} is missing from some seeds")
        frames = int(np.mean([r["frames"] for r in rows]))
        cells = [_cell([r[k] for r in rows]) if not np.isnan(rows[0][k]) else "-" for k in keys]
        lines.append(f"| {skill} | {frames:,} | {' | '.join(cells)} | {np.mean([r['seconds'] for r in rows]):.0f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("libraries", nargs="+", type=Path, help="library run directories, one per seed")
    parser.add_argument("--eval", default="planner-test-stochastic.json", help="evaluation file under LIB/eval/")
    parser.add_argument("--skills", help="glob of each seed's skill run directories, {seed} for the seed's index")
    args = parser.parse_args(argv)
    try:
        print(summary(args.libraries, args.eval, args.skills))
    except (InputError, ReportError) as error:
        print(f"modrl: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
