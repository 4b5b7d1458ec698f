"""``modrl list``: what can be named in a config (routers, modules, aggregations, agents, algorithms, suites)."""

from __future__ import annotations

import argparse

NAME = "list"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``modrl list`` on the top-level sub-parsers."""
    listing = subparsers.add_parser(
        "list",
        help="list registered routers, modules, aggregations, agents, algorithms, suites and shipped configs",
        description="List what can be named in a config.",
    )
    listing.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["all", "routers", "modules", "aggregations", "agents", "algorithms", "suites", "configs"],
        help="which registry to list (default: all)",
    )


def run(args: argparse.Namespace) -> int:
    """``modrl list``: what can be named in a config, read from the config schema (no torch imported; the registries
    hold one implementation per name, which tests/test_architecture.py checks)."""
    import typing

    from modrl.agents.common.config import AgentConfig
    from modrl.envs import SUITES, get_suite
    from modrl.modules import MODULE_KIND_NAMES
    from modrl.routers import ROUTER_KINDS

    agent = typing.get_type_hints(AgentConfig)
    sections = {
        "routers": ("agent.router.kind", sorted(ROUTER_KINDS)),
        "modules": ("agent.modules.kind", sorted(MODULE_KIND_NAMES)),
        "aggregations": ("agent.aggregation", sorted(typing.get_args(agent["aggregation"]))),
        "agents": ("agent.kind", sorted(typing.get_args(agent["kind"]))),
        "algorithms": ("agent.algo", sorted(typing.get_args(agent["algo"]))),
    }
    for name, (key, values) in sections.items():
        if args.what in ("all", name):
            print(f"{name} ({key}): {', '.join(values)}")
    if args.what in ("all", "configs"):
        from modrl.shipped import shipped_config_names

        print(f"configs ('modrl train NAME'): {', '.join(shipped_config_names())}")
    if args.what in ("all", "suites"):
        print("suites (env.suite; 'modrl suite show NAME' lists tasks and splits):")
        for name in SUITES.names():
            suite = get_suite(name)
            splits = ", ".join(f"{split} {len(tasks)}" for split, tasks in suite.splits.items())
            print(f"  {name} v{suite.version}: {suite.num_tasks} tasks ({splits}) - {suite.description}")
    return 0
