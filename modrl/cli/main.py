"""``modrl`` command line: one module per command, each with ``add_parser(subparsers)`` and ``run(args) -> int``.

The CLI is the one part of modrl allowed to import everything (core, ``modrl.envs``, ``modrl.agents``): it parses
and validates, wires agents to envs, and prints. Command modules import only argparse at import time; their heavy
imports (torch, SB3, minigrid) happen inside ``run``, so ``modrl --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import (
    continual_command,
    eval_command,
    export_command,
    list_command,
    options_command,
    plan_command,
    report_command,
    show_command,
    suite_command,
    sweep_command,
    train_command,
)
from .errors import fail
from .imports import add_import_argument, import_modules, leaf_parsers, missing_imports

#: The sub-commands, in the order ``modrl --help`` lists them.
COMMANDS = (
    train_command,
    eval_command,
    show_command,
    sweep_command,
    report_command,
    options_command,
    plan_command,
    continual_command,
    export_command,
    suite_command,
    list_command,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``modrl`` parser with every command of :data:`COMMANDS` registered."""
    parser = argparse.ArgumentParser(
        prog="modrl",
        description="Modular reinforcement learning on MiniGrid: train modular agents (modules chosen by a "
        "learned router) and their parameter-matched baselines, evaluate them, list what is registered.",
        epilog="Run 'modrl COMMAND --help' for a command's options.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    for leaf in leaf_parsers(parser):
        add_import_argument(leaf)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modrl`` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    # One OpenMP thread unless the user asked for more: set before a command imports torch, and inherited by the
    # processes a sweep starts (a second busy thread per process ran 7-14x slower on a 2-core machine).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    problem = import_modules(args.imports)
    if problem is None:
        existing = getattr(args, "resume", None) or (getattr(args, "run_dir", None) if args.command == "eval" else None)
        problem = missing_imports(Path(existing), args.imports) if isinstance(existing, (str, Path)) else None
    if problem is not None:
        return fail(problem)
    run = {command.NAME: command.run for command in COMMANDS}[args.command]
    try:
        return run(args)
    except BrokenPipeError:
        # The reader went away (``modrl list | head``): what it read is all it wanted. Point stdout at devnull so
        # the interpreter's final flush does not raise again, and end quietly like other Unix tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
