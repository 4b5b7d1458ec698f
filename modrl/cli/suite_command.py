"""``modrl suite show NAME``: a suite's tasks, env ids and train/test splits."""

from __future__ import annotations

import argparse

from .errors import fail

NAME = "suite"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``modrl suite`` on the top-level sub-parsers."""
    suite = subparsers.add_parser("suite", help="show a task suite: tasks, env ids, train/test splits")
    suite_sub = suite.add_subparsers(dest="suite_command", required=True, metavar="SUITE_COMMAND")
    show = suite_sub.add_parser(
        "show",
        help="print a suite's tasks and splits",
        description="Print a suite's tasks (name and gymnasium env id) per split and what its test split holds out.",
    )
    show.add_argument("name", help="suite name (see 'modrl list suites')")


def run(args: argparse.Namespace) -> int:
    """``modrl suite show NAME``: a suite's tasks (env ids, missions) and its train/test splits."""
    from modrl.envs import get_suite

    try:
        suite = get_suite(args.name)
    except KeyError as exc:
        return fail(str(exc))
    print(f"suite {suite.name} v{suite.version}: {suite.description}")
    for split, names in suite.splits.items():
        print(f"\n{split} split ({len(names)} tasks):")
        by_name = {task.name: task for task in suite.tasks}
        for name in names:
            print(f"  {name:48s} {by_name[name].env_id}")
    held_out = _held_out(suite.name)
    if held_out:
        print(f"\nheld out of training: {held_out}")
    return 0


def _held_out(suite_name: str) -> str:
    from modrl.envs.splits import SPLITS

    if suite_name not in SPLITS:
        return ""
    split = SPLITS.get(suite_name)
    return f"{', '.join(map(str, split.held_out))} (split fingerprint {split.fingerprint})"
