"""``modrl list``: what can be named in a config (routers, modules, aggregations, agents, algorithms, suites)."""

from __future__ import annotations

import argparse

NAME = "list"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``modrl list`` on the top-level sub-parsers."""
    listing = subparsers.add_parser(
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


def run(args: argparse.Namespace) -> int:
    """``modrl list``: what can be named in a config."""
    from modrl.agents.common.builders import ALGOS
    from modrl.agents.common.policies import AGENTS
    from modrl.composition import AGGREGATIONS
    from modrl.envs import SUITES, get_suite
    from modrl.modules import MODULE_KINDS
    from modrl.routers import ROUTERS

    sections = {
        "routers": ("agent.router.kind", ROUTERS.names()),
        "modules": ("agent.modules.kind", MODULE_KINDS.names()),
        "aggregations": ("agent.aggregation", AGGREGATIONS.names()),
        "agents": ("agent.kind", AGENTS.names()),
        "algorithms": ("agent.algo", ALGOS.names()),
    }
    for name, (key, values) in sections.items():
        if args.what in ("all", name):
            print(f"{name} ({key}): {', '.join(values)}")
    if args.what in ("all", "suites"):
        print("suites (env.suite; 'modrl suite show NAME' lists tasks and splits):")
        for name in SUITES.names():
            suite = get_suite(name)
            splits = ", ".join(f"{split} {len(tasks)}" for split, tasks in suite.splits.items())
            print(f"  {name} v{suite.version}: {suite.num_tasks} tasks ({splits}) - {suite.description}")
    return 0
