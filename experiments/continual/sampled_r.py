"""R with sampled actions for finished ``modrl continual`` runs, beside the greedy R they recorded.

A continual run evaluates every task greedily after each stage (``continual.json``'s ``R``). Greedy actions
understate some learned tasks: a policy at 0.87 sampled training success can score 0.02 greedy when its argmax loops.
This script loads each stage's consolidated commit (the policy that row of R was evaluated with, acting as the rule
says: PackNet's per-task masks, freeze-grow's router mask) and evaluates every task of the sequence with **sampled**
actions, ``--episodes`` per task on the seeds the run's own evaluation uses (``EVAL_SEED_BASE + k``; each sampled
episode draws from torch's generator seeded with its env seed, so the table repeats itself exactly). It writes
``RUN/R_sampled.json`` (``R``, forgetting, backward transfer, final mean success; forward transfer is a training
curve statistic and does not depend on how R is evaluated) and prints, per rule, mean [95% bootstrap CI] over the
runs (seeds) beside the greedy numbers, and the mean diagonal and last row of both matrices.

Works on run directories (the stage checkpoints are needed, not only ``continual.json``):

    OMP_NUM_THREADS=1 python experiments/continual/sampled_r.py runs/ct5full/ct5-*-s* --episodes 20 --out table.md
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from modrl._io import atomic_write_json
from modrl.agents.common.builders import env_options
from modrl.agents.common.evaluation import run_episode
from modrl.agents.common.policies import ModularActorCriticPolicy
from modrl.agents.continual.store import load_continual_policy
from modrl.continual import continual_metrics
from modrl.envs import get_suite, make_suite_env
from modrl.seeds import EVAL_SEED_BASE
from modrl.stats import summarize

OUTPUT = "R_sampled.json"


def sampled_matrix(run_dir: Path, stages: int, episodes: int) -> list[list[float]]:
    """Row ``i``: sampled success on every task of the sequence with stage ``i``'s consolidated policy."""
    rows = []
    for stage in range(stages):
        loaded = load_continual_policy(run_dir, stage=stage)
        suite = get_suite(loaded.config.env.suite)
        options = env_options(loaded.config.experiment())
        policy = loaded.policy
        modular = policy.modular if isinstance(policy, ModularActorCriticPolicy) else None
        row = []
        for name in loaded.config.sequence.tasks:
            task = suite.task_index(name)
            env = make_suite_env(suite, task, **options)
            with loaded.rule.acting_as(task):
                successes = [run_episode(env, policy, modular, EVAL_SEED_BASE + k, False)[2] for k in range(episodes)]
            env.close()
            row.append(float(np.mean(successes)))
        rows.append(row)
    return rows


def evaluate_run(run_dir: Path, episodes: int, *, force: bool) -> dict[str, Any]:
    """``RUN/R_sampled.json`` (computed unless it exists with the same episode count, or ``force``)."""
    out = run_dir / OUTPUT
    if out.is_file() and not force:
        cached = json.loads(out.read_text())
        if cached.get("episodes") == episodes:
            return cached
    recorded = json.loads((run_dir / "continual.json").read_text())
    if not recorded.get("complete"):
        raise SystemExit(f"{run_dir}: the run is not complete (every stage's row of R is needed)")
    matrix = sampled_matrix(run_dir, len(recorded["tasks"]), episodes)
    metrics = continual_metrics(matrix)
    result = {
        "tasks": recorded["tasks"],
        "rule": recorded["rule"].get("kind"),
        "episodes": episodes,
        "R": matrix,
        "R_greedy": recorded["R"],
        "sampled": {k: metrics.to_dict()[k] for k in ("average_success", "average_forgetting", "backward_transfer")},
        "greedy": {k: (recorded.get("metrics") or {}).get(k) for k in ("average_success", "average_forgetting")},
    }
    atomic_write_json(out, result)
    return result


def _cell(values: list[float]) -> str:
    s = summarize(values)
    return f"{s.mean:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"


def table(results: list[dict[str, Any]]) -> str:
    """Per rule: final mean success and average forgetting, sampled and greedy; mean diagonal and last row."""
    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        by_rule[str(result["rule"])].append(result)
    lines = [
        "| rule | runs | final mean success, sampled | greedy | average forgetting, sampled | greedy |",
        "|---|---:|---|---|---|---|",
    ]
    for rule, runs in sorted(by_rule.items()):
        cells = [
            _cell([r["sampled"]["average_success"] for r in runs]),
            _cell([float(np.mean(r["R_greedy"][-1])) for r in runs]),
            _cell([r["sampled"]["average_forgetting"] for r in runs]),
            _cell([r["greedy"]["average_forgetting"] for r in runs if r["greedy"]["average_forgetting"] is not None]),
        ]
        lines.append(f"| {rule} | {len(runs)} | " + " | ".join(cells) + " |")
    lines += ["", "| rule | diagonal, sampled (greedy) | last row, sampled (greedy) |", "|---|---|---|"]
    for rule, runs in sorted(by_rule.items()):
        sampled, greedy = np.mean([r["R"] for r in runs], 0), np.mean([r["R_greedy"] for r in runs], 0)
        diagonal = " ".join(f"{s:.2f} ({g:.2f})" for s, g in zip(np.diag(sampled), np.diag(greedy), strict=True))
        last = " ".join(f"{s:.2f} ({g:.2f})" for s, g in zip(sampled[-1], greedy[-1], strict=True))
        lines.append(f"| {rule} | {diagonal} | {last} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished modrl continual run directories")
    parser.add_argument("--episodes", type=int, default=20, help="sampled episodes per task and stage (default 20)")
    parser.add_argument("--force", action="store_true", help="recompute runs that already have R_sampled.json")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = []
    for run_dir in args.runs:
        results.append(evaluate_run(run_dir, args.episodes, force=args.force))
        print(f"{run_dir}: final mean success sampled {results[-1]['sampled']['average_success']:.3f}", flush=True)
    text = table(results)
    print("\n" + text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
