"""``modrl`` command line: train, eval, list.

The CLI is the one part of modrl allowed to import everything (core, ``modrl.envs``, ``modrl.agents``): it parses
and validates, wires agents to envs, and prints.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported (DESIGN.md section 6)

def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modrl",
        description="Modular reinforcement learning on MiniGrid: train modular agents (skill modules chosen by a "
        "learned router) and their parameter-matched baselines, evaluate them, list what is registered.",
        epilog="Run 'modrl COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train an agent from a YAML config into a new run directory",
        description="Train an agent from a YAML experiment config. Each run gets its own directory (config, "
        "metadata, checkpoints, TensorBoard logs, evaluation results); an existing directory is never overwritten. "
        "Ctrl-C / SIGTERM stop cleanly with a checkpoint; --resume continues from the last complete one.",
    )
    train.add_argument(
        "config", nargs="?", type=Path, help="experiment YAML (e.g. experiments/configs/quickstart.yaml)"
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

    evaluate = sub.add_parser(
        "eval",
        help="evaluate a trained run per task (or the planner with a run's options: --planner)",
        description="Evaluate a run's latest checkpoint on every task of its suite with fixed evaluation seeds "
        "(disjoint from training seeds). Prints a table and writes JSON under RUN_DIR/eval/. With --planner, evaluate "
        "the planner (declared operators, A*, execution monitoring and re-planning) on every task of a suite split, "
        "its skills run by the options of a 'modrl options train' run (RUN_DIR/options, or a library directory "
        "itself), or by the scripted skills (--scripted --suite NAME, no RUN_DIR: the upper bound); results go to "
        "RUN_DIR/eval/planner-SPLIT[-stochastic][-fallback].json.",
    )
    evaluate.add_argument(
        "run_dir", nargs="?", type=Path, help="a run directory made by 'modrl train' (with --planner: by 'modrl "
        "options train|critic|sketch', or its option library directory)"
    )
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes per task (default: 100)")
    evaluate.add_argument(
        "--split", help="evaluate one split of the suite (e.g. test) or all, side by side (default: all; with "
        "--planner: test if the suite has one, else train)"
    )
    evaluate.add_argument(
        "--stochastic", action="store_true", help="sample actions instead of the deterministic policy (with "
        "--planner: sample the options' actions)"
    )
    from . import planner_eval_command  # argparse only at import, like plan_command

    planner_eval_command.add_planner_arguments(evaluate)

    _add_experiment_parsers(sub)
    from .options_command import add_options_parser  # the options helper's sub-parsers (modrl options ...)

    add_options_parser(sub)
    from . import plan_command  # argparse only at import; the planner is imported when the command runs

    plan_command.add_parser(sub)
    from .continual_command import add_continual_parser  # light: the command's heavy imports happen when it runs

    add_continual_parser(sub)

    suite = sub.add_parser("suite", help="show a task suite: tasks, env ids, train/test splits")
    suite_sub = suite.add_subparsers(dest="suite_command", required=True, metavar="SUITE_COMMAND")
    show = suite_sub.add_parser(
        "show",
        help="print a suite's tasks and splits",
        description="Print a suite's tasks (name and gymnasium env id) per split and what its test split holds out.",
    )
    show.add_argument("name", help="suite name (see 'modrl list suites')")

    listing = sub.add_parser(
        "list",
        help="list registered routers, modules, aggregations, agents, algorithms and suites",
        description="List what can be named in a config.",
    )
    listing.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["all", "routers", "modules", "aggregations", "agents", "algorithms", "suites"],
        help="which registry to list (default: all)",
    )
    return parser


def _add_experiment_parsers(sub: argparse._SubParsersAction) -> None:
    sweep = sub.add_parser(
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
        "--backend", choices=["local", "ray"], default=None, help="local processes (default) or a Ray cluster"
    )
    sweep.add_argument("--workers", type=int, help="trials at a time (default: the sweep file's, else one per core)")
    sweep.add_argument("--ray-address", help="address of a running Ray cluster (default: start a local instance)")

    report = sub.add_parser(
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modrl`` console script; returns the process exit code."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from . import (  # heavy imports (torch, SB3) after parsing
        commands,
        continual_command,
        experiment_commands,
        options_command,
        plan_command,
    )

    handler = {
        "train": commands.train,
        "eval": commands.evaluate,
        "list": commands.list_registries,
        "sweep": experiment_commands.sweep,
        "report": experiment_commands.report,
        "suite": commands.suite_show,
        "options": options_command.options,
        "continual": continual_command.run,
        "plan": plan_command.run,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
