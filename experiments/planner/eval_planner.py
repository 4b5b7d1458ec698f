"""Success of the planner on a suite split, executing its plans with scripted skills or with learned options.

A thin wrapper over :func:`modrl.agents.planning.evaluation.evaluate_planner` (what ``modrl eval --planner`` runs): for
every task of the split and every seed, plan to the task's goals (A*), execute with monitoring and re-planning (at
most 5 re-plans), and count the env's own success. With ``--options LIBRARY_DIR`` the plan's skills are run by the
learned options only (no scripted fallback: a skill no option serves fails, and the planner re-plans). Prints success
per task and the mean; ``--out`` writes JSON.

    python experiments/planner/eval_planner.py --suite sequences --split test --seeds 10
    python experiments/planner/eval_planner.py --suite sequences --split test --seeds 10 --options RUN/options
    python experiments/planner/eval_planner.py --suite sequences --split test --seeds 10 --view own

``--view own`` plans from the agent's own view (a map of the cells seen so far, with exploration;
:mod:`modrl.envs.own_view`) instead of the full grid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from modrl.agents.planning.evaluation import PlannerEvalConfig, PlannerTaskResult, evaluate_planner
from modrl.seeds import EVAL_SEED_BASE


def _print_task(result: PlannerTaskResult) -> None:
    print(f"{result.task:90s} {result.success_rate:.2f}  re-plans {result.mean_replans:.1f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="sequences")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seeds", type=int, default=10, help=f"episodes per task (seeds {EVAL_SEED_BASE} + k)")
    parser.add_argument("--options", type=Path, help="an option library directory (modrl options train RUN/options)")
    parser.add_argument("--option-steps", type=int, default=100, help="step cap of one option call")
    parser.add_argument("--stochastic", action="store_true", help="sample the options' actions (default: greedy)")
    parser.add_argument(
        "--view",
        choices=["full", "own"],
        default="full",
        help="what the planner reads: the full grid (privileged; default) or the agent's own view (a map of the "
        "cells seen so far, with exploration)",
    )
    parser.add_argument(
        "--search",
        choices=["wastar", "gbfs", "astar", "bfs"],
        default="wastar",
        help="search mode (default: wastar, modrl plan's)",
    )
    parser.add_argument("--max-replans", type=int, default=20, help="re-plans allowed per episode (default: 20)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = PlannerEvalConfig(
        suite=args.suite,
        split=args.split,
        episodes=args.seeds,
        library=None if args.options is None else str(args.options),
        deterministic=not args.stochastic or args.options is None,
        option_steps=args.option_steps,
        view=args.view,
        max_replans=args.max_replans,
        algorithm=args.search,
    )
    report = evaluate_planner(config, on_task=_print_task)
    view = "full grid" if args.view == "full" else "own view"
    print(
        f"{args.suite}/{args.split} ({view}) with {report.skills_label}: mean success {report.mean_success:.3f} over "
        f"{len(report.tasks)} tasks x {args.seeds} seeds"
    )
    if args.out:
        tasks = {
            t.task: [
                {"success": r.success, "replans": r.replans, "steps": r.steps, "outcome": r.outcome.value}
                for r in t.runs
            ]
            for t in report.tasks
        }
        result = {
            "skills": report.skills_label,
            "view": args.view,
            "mean_success": report.mean_success,
            "tasks": tasks,
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
