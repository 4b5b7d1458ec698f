"""``modrl plan``: print the symbolic plan of one episode and, with ``--execute``, run it with the scripted skills or,
with ``--options LIBRARY_DIR``, with learned options (scripted skills for the steps no option serves; with
``--no-fallback`` none, and every plan uses only the skills the options serve).

The episode runs in the planner-episode harness (:mod:`modrl.agents.planning.episode`), which checks the flag values
(:class:`~modrl.agents.planning.episode.PlannerRunConfig`); this module parses, builds the config, calls and prints.
Heavy imports (gymnasium, minigrid, the planner) happen inside :func:`run`, so building the parser stays cheap. No
stable_baselines3 is imported, with or without ``--options``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EXIT_ERROR, fail
from .hints import runnable

NAME = "plan"

if TYPE_CHECKING:
    from modrl.agents.planning.episode import PlannerRun
    from modrl.planner import Plan


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``plan`` sub-command to ``sub``."""
    parser = sub.add_parser(
        "plan",
        help="print the symbolic plan for one episode (and run it with scripted skills)",
        description="Reset one episode, read its symbolic state, and print the initial predicates, the goals and a "
        "plan over the declared operators (goto, pickup, drop, open/unlock, putnext). With --execute, run "
        "the plan with the scripted skills, monitoring each step and re-planning when the world differs.",
    )
    parser.add_argument(
        "target",
        metavar="TASK_OR_ENV_ID",
        help="a gymnasium id (ModRL-sequences-<task>-v0, MiniGrid-UnlockPickup-v0, ...), SUITE/TASK "
        "(sequences/open-red-door_then_pickup-blue-key) or a grammar task name (pickup-red-key)",
    )
    parser.add_argument("--seed", type=int, default=0, help="reset seed (default: 0)")
    parser.add_argument("--execute", action="store_true", help="run the plan with the scripted skills")
    parser.add_argument(
        "--search",
        "--algorithm",
        dest="algorithm",
        choices=["wastar", "gbfs", "astar", "bfs"],
        default="wastar",
        help="search: wastar (weighted A* with the h_FF heuristic, the default), gbfs (greedy best-first, h_FF), "
        "astar or bfs (shortest plans, slower on long door chains)",
    )
    parser.add_argument(
        "--weight", type=float, default=2.0, help="with --search wastar: the weight on the heuristic (default: 2)"
    )
    parser.add_argument("--max-nodes", type=int, default=100_000, help="search node bound (default: 100000)")
    parser.add_argument("--max-replans", type=int, default=20, help="re-plans allowed (default: 20)")
    parser.add_argument(
        "--fail-skill",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="make the N-th skill execution (0-based) fail, to watch a re-plan (repeatable)",
    )
    parser.add_argument("--logdir", type=Path, help="with --execute: write the plans and the timeline to TensorBoard")
    parser.add_argument(
        "--options",
        type=Path,
        metavar="LIBRARY_DIR",
        help="with --execute: run the skills with the learned options of this library (e.g. "
        "RUN_DIR/options of modrl options train); scripted skills run the steps no option serves",
    )
    parser.add_argument(
        "--ensemble",
        nargs="+",
        type=Path,
        metavar="LIBRARY_DIR",
        help="with --options: more libraries trained for the same skills; each skill acts with the "
        "mean of the action probabilities of every library's option (as modrl eval --ensemble)",
    )
    parser.add_argument(
        "--option-steps",
        type=int,
        default=100,
        metavar="N",
        help="with --options: step cap of one option call (default: 100)",
    )
    parser.add_argument(
        "--loop-limit",
        type=int,
        default=3,
        metavar="N",
        help="with --options: an option call that sees one observation N times is stuck; it ends, "
        "--escape-steps random moves follow, then a re-plan (default: 3; 0: off)",
    )
    parser.add_argument(
        "--escape-steps",
        type=int,
        default=3,
        metavar="N",
        help="with --options: random moves after a stuck option call (default: 3)",
    )
    parser.add_argument(
        "--cycle-limit",
        type=int,
        default=3,
        metavar="N",
        help="with --options: the same random moves follow a call that ends as planned in a planning "
        "state such calls have ended in N times (default: 3; 0: off; as modrl eval --cycle-limit)",
    )
    parser.add_argument(
        "--view",
        choices=["full", "own"],
        default="full",
        help="what the planner reads: 'full' the whole grid (privileged; the default), 'own' the agent's own view "
        "(a map of the cells seen so far, unknown cells unknown, with exploration operators; the scripted skills "
        "read the map too)",
    )
    parser.add_argument(
        "--no-fallback",
        action="store_true",
        help="with --options: no scripted skills; plan only over the skills the options serve",
    )


def _make_env(target: str) -> Any:
    import gymnasium as gym

    from modrl.envs import TaskEnv, get_suite, parse_task
    from modrl.registry import UnknownNameError

    if target in gym.registry or ":" in target:  # gymnasium's MODULE:ID imports MODULE first
        return gym.make(target)
    if "/" in target:
        suite_name, _, task = target.partition("/")
        try:
            suite = get_suite(suite_name)
            spec = suite.tasks[suite.task_index(task)]
        except (KeyError, UnknownNameError) as exc:
            raise ValueError(str(exc).strip("'\"")) from None
        return gym.make(spec.env_id, **spec.kwargs)
    try:
        return TaskEnv(parse_task(target))
    except ValueError as exc:
        raise ValueError(f"{target!r} is not a registered env id, SUITE/TASK, or task name ({exc})") from None


def run(args: argparse.Namespace) -> int:
    """``modrl plan``: see :func:`add_parser`."""
    from modrl.agents.planning.episode import (
        PlannerConfigError,
        PlannerRunConfig,
        proven_unsolvable,
        start_planner_episode,
    )
    from modrl.config import ConfigError
    from modrl.planner import NoPlan, plan

    if args.seed < 0:
        return fail(f"--seed must be >= 0, got {args.seed}")
    bad = [n for n in args.fail_skill if n < 0]
    if bad:
        return fail(f"--fail-skill must be >= 0 (a 0-based skill execution), got {bad[0]}")
    if args.fail_skill and not args.execute:
        return fail("--fail-skill needs --execute (only executed skills can fail)")
    if args.no_fallback and args.options is None:
        return fail("--no-fallback needs --options")
    if args.ensemble and args.options is None:
        return fail("--ensemble needs --options (the first library of the ensemble)")
    try:
        config = PlannerRunConfig(
            option_steps=args.option_steps,
            max_nodes=args.max_nodes,
            max_replans=args.max_replans,
            loop_limit=args.loop_limit,
            escape_steps=args.escape_steps,
            cycle_limit=args.cycle_limit,
            fallback=not args.no_fallback,
            algorithm=args.algorithm,
            weight=args.weight,
            view=args.view,
        )
    except PlannerConfigError as exc:
        return fail(exc.flag_message)
    try:
        env: Any = _make_env(args.target)
        library = None
        if args.options is not None:
            from modrl.agents.planning.library import load_libraries

            library = load_libraries(str(args.options), [str(path) for path in args.ensemble or ()])
        episode = start_planner_episode(env, seed=args.seed, config=config, library=library)
        goals = episode.goals  # first: from the own view, the goals say which objects are still unseen
        state = episode.runner.observe()
    except (ConfigError, ValueError) as exc:
        return fail(str(exc))
    env, domain = episode.env, episode.domain
    view = "full grid" if args.view == "full" else "own view"
    print(f"env: {env.spec.id if env.spec else type(env.unwrapped).__name__} | seed {args.seed} | {view}")
    print(f"mission: {env.unwrapped.mission}")
    if episode.look_steps:
        print(f"looked around for {episode.look_steps} steps before the mission named an object on the map")
    print(f"initial predicates ({len(state)}):")
    for atom in sorted(state):
        print(f"  {atom}")
    derived = sorted(domain.closure(state) - state)
    print(f"derived: {', '.join(derived) or '-'}")
    print("goals, in order:")
    for i, goal in enumerate(goals):
        print(f"  {i}. {goal}")
    if episode.allowed is not None:
        print("planning over the skills the options serve only (--no-fallback)")
    started = time.perf_counter()
    found = plan(domain, state, goals, config.search, allowed=episode.allowed)
    seconds = time.perf_counter() - started
    if isinstance(found, NoPlan):
        unsolvable = proven_unsolvable(found.proof, config.view)
        if unsolvable is not None and not episode.look_steps:
            print(f"no plan (unsolvable): {unsolvable}")
        elif found.proof is not None and config.view == "own":
            print(f"no plan ({found.reason.value}): {found.message} (on the map of the cells seen so far only)")
        else:
            print(f"no plan ({found.reason.value}): {found.message}")
        return EXIT_ERROR
    print(f"plan ({len(found)} steps, {found.algorithm}, {found.expanded} nodes expanded, {seconds:.1f} s):")
    for i, step in enumerate(found.steps):
        print(f"  {i}. {step.symbol:36s} [{step.name}]")
    if not args.execute:
        return 0
    return _execute(args, episode, found)


def _execute(args: argparse.Namespace, episode: PlannerRun, found: Plan) -> int:
    from modrl.planner import InjectedFailures, Outcome

    runner = episode.runner
    trace = episode.execute(InjectedFailures(runner, args.fail_skill) if args.fail_skill else None, initial=found)
    print("\nexecution:")
    for i, step in enumerate(trace.steps):
        for record in trace.plans[1:]:
            if record.after_skills == i:
                print(f"  re-plan ({record.reason}): {' -> '.join(record.skills) or record.no_plan}")
        extra = f"  unexpected: {', '.join(step.mismatches)}" if step.mismatches else ""
        print(
            f"  [{i}] {step.skill:36s} {step.status.value:8s} {step.steps:3d} steps  goals {step.stage}/"
            f"{len(trace.goals)}{extra}"
        )
    for record in trace.plans[1:]:
        if record.after_skills == len(trace.steps):
            print(f"  re-plan ({record.reason}): {' -> '.join(record.skills) or record.no_plan}")
    reward = "env solved" if runner.episode_success else "env not solved"
    if episode.options is not None:
        print(
            f"skills run by learned options: {episode.options.usage['option']}, by scripted skills: "
            f"{episode.options.usage['fallback']}"
        )
    steps = trace.total_steps + episode.look_steps
    print(f"outcome: {trace.outcome.value} ({reward}; {trace.replans} re-plan(s), {steps} steps)")
    if args.logdir is not None:
        from torch.utils.tensorboard import SummaryWriter

        from modrl.planner import log_trace

        writer = SummaryWriter(log_dir=str(args.logdir))
        log_trace(writer, trace, step=0)
        writer.close()
        print(f"TensorBoard: {runnable('tensorboard')} --logdir {args.logdir}")
    return 0 if trace.outcome is Outcome.SUCCESS else EXIT_ERROR
