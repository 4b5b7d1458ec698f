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

EXIT_ERROR = 1
EXIT_USAGE = 2


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

    evaluate = sub.add_parser(
        "eval",
        help="evaluate a trained run per task",
        description="Evaluate a run's latest checkpoint on every task of its suite with fixed evaluation seeds "
        "(disjoint from training seeds). Prints a table and writes JSON under RUN_DIR/eval/.",
    )
    evaluate.add_argument("run_dir", type=Path, help="a run directory made by 'modrl train'")
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes per task (default: 100)")
    evaluate.add_argument(
        "--stochastic", action="store_true", help="sample actions instead of the deterministic policy"
    )

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modrl`` console script; returns the process exit code."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from . import commands  # heavy imports (torch, SB3) only once arguments parse

    handler = {"train": commands.train, "eval": commands.evaluate, "list": commands.list_registries}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
