"""Which part of the task does a router's allocation follow: the verb, the colour or the object type?

For each run (its newest greedy evaluation, ``eval/step-*-det-*ep.json``, with per-task mean routing weights) every
task's module is the one with its largest mean weight. Task names are ``verb-colour-type`` (the colour-type and
verb-object suites). For each part, over the run's **train** tasks:

* **consistency**: the fraction of train tasks routed to the most common module of the train tasks that share their
  part value (1.00: the part decides the module);
* **information**: ``I(part; module) / H(module)``, the share of the routing's information the part accounts for
  (0 when the module does not depend on the part; undefined, ``-``, when every task is on one module);

and over the **held-out** tasks, **held-out agreement**: the fraction routed to the most common module of their part
value among the train tasks (a value no train task has counts as a miss). A router factored over words that routes by
verb shows consistency and information 1.00 for ``verb`` and sends every held-out task to its verb's module.

    python experiments/generalisation/routing_parts.py SWEEP/trials/t00[5-9]*/ [--out parts.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

PARTS = ("verb", "colour", "type")


class PartsError(ValueError):
    """A run without a usable evaluation or a task name that is not ``verb-colour-type``."""


def task_modules(run_dir: Path) -> list[tuple[str, str, int]]:
    """``(task, split, module with the largest mean weight)`` per task of the run's newest greedy evaluation."""
    files = sorted((run_dir / "eval").glob("step-*-det-*ep.json"), key=lambda f: int(f.name.split("-")[1]))
    if not files:
        raise PartsError(f"{run_dir}: no greedy evaluation (eval/step-*-det-*ep.json)")
    rows = json.loads(files[-1].read_text())["tasks"]
    if any(not row.get("module_usage") for row in rows):
        raise PartsError(f"{files[-1]}: no routing weights (a monolithic run?)")
    return [(row["task"], row["split"], int(np.argmax(row["module_usage"]))) for row in rows]


def part_of(task: str, part: str) -> str:
    """The ``part`` (``verb``, ``colour`` or ``type``) of a ``verb-colour-type`` task name."""
    words = task.split("-")
    if len(words) != len(PARTS):
        raise PartsError(f"task {task!r} is not named verb-colour-type")
    return words[PARTS.index(part)]


def _entropy(counts: Sequence[int]) -> float:
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def part_scores(rows: Sequence[tuple[str, str, int]], part: str) -> dict[str, float | None]:
    """``consistency``, ``information`` and ``held_out_agreement`` of one run for ``part`` (None: not defined)."""
    train = [(part_of(task, part), module) for task, split, module in rows if split == "train"]
    test = [(part_of(task, part), module) for task, split, module in rows if split != "train"]
    by_value: dict[str, Counter[int]] = {}
    for value, module in train:
        by_value.setdefault(value, Counter())[module] += 1
    majority = {value: counts.most_common(1)[0][0] for value, counts in by_value.items()}
    consistency = sum(majority[v] == m for v, m in train) / len(train) if train else None
    h_module = _entropy(list(Counter(m for _, m in train).values())) if train else 0.0
    h_given = sum(sum(c.values()) / len(train) * _entropy(list(c.values())) for c in by_value.values()) if train else 0
    information = (h_module - h_given) / h_module if h_module > 0 else None
    agreement = sum(majority.get(v) == m for v, m in test) / len(test) if test else None
    return {"consistency": consistency, "information": information, "held_out_agreement": agreement}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(runs: Mapping[str, Sequence[tuple[str, str, int]]]) -> str:
    """The Markdown table: one row per run and part, then the mean over runs per part."""
    lines = [
        "| run | part | consistency (train) | information (train) | held-out agreement |",
        "|---|---|---:|---:|---:|",
    ]
    scores = {name: {part: part_scores(rows, part) for part in PARTS} for name, rows in runs.items()}
    for name, per_part in scores.items():
        for part, s in per_part.items():
            cells = [_fmt(s[k]) for k in ("consistency", "information", "held_out_agreement")]
            lines.append(f"| {name} | {part} | " + " | ".join(cells) + " |")
    for part in PARTS:
        means = []
        for key in ("consistency", "information", "held_out_agreement"):
            values = [s[part][key] for s in scores.values() if s[part][key] is not None]
            means.append(_fmt(float(np.mean(values))) if values else "-")
        lines.append(f"| mean of {len(scores)} | {part} | " + " | ".join(means) + " |")
    return "\n".join(lines)


def _label(run: Path) -> str:
    """The run directory's name; a long sweep trial id (``t005-agent=...``) cut to its first field (``t005``)."""
    return run.name if len(run.name) <= 40 else run.name.split("-")[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (modular agents with a greedy evaluation)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    try:
        text = table({_label(run): task_modules(run) for run in args.runs})
    except (PartsError, OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"modrl: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
