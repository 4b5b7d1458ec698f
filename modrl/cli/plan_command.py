"""``modrl plan``: print the symbolic plan of one episode and, with ``--execute``, run it with the scripted skills or,
with ``--options LIBRARY_DIR``, with learned options (scripted skills for the steps no option serves; with
``--no-fallback`` none, and every plan uses only the skills the options serve).

Heavy imports (gymnasium, minigrid, the planner) happen inside :func:`run`, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .errors import EXIT_ERROR, fail

NAME = "plan"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``plan`` sub-command to ``sub``."""
    parser = sub.add_parser(
        "plan",
        help="print the symbolic plan for one episode (and run it with scripted skills)",
        description="Reset one episode, read its symbolic state, and print the initial predicates, the goals and a "
        "shortest plan over the declared operators (goto, pickup, drop, open/unlock, putnext). With --execute, run "
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
    parser.add_argument("--algorithm", choices=["astar", "bfs"], default="astar", help="search (default: astar)")
    parser.add_argument("--max-nodes", type=int, default=100_000, help="search node bound (default: 100000)")
    parser.add_argument("--max-replans", type=int, default=20, help="re-plans allowed (default: 20)")
    parser.add_argument(
        "--fail-skill", type=int, action="append", default=[], metavar="N",
        help="make the N-th skill execution (0-based) fail, to watch a re-plan (repeatable)",
    )
    parser.add_argument("--logdir", type=Path, help="with --execute: write the plans and the timeline to TensorBoard")
    parser.add_argument("--options", type=Path, metavar="LIBRARY_DIR",
                        help="with --execute: run the skills with the learned options of this library (e.g. "
                        "RUN_DIR/options of modrl options train); scripted skills run the steps no option serves")
    parser.add_argument("--ensemble", nargs="+", type=Path, metavar="LIBRARY_DIR",
                        help="with --options: more libraries trained for the same skills; each skill acts with the "
                        "mean of the action probabilities of every library's option (as modrl eval --ensemble)")
    parser.add_argument("--option-steps", type=int, default=100, metavar="N",
                        help="with --options: step cap of one option call (default: 100)")
    parser.add_argument("--loop-limit", type=int, default=3, metavar="N",
                        help="with --options: an option call that sees one observation N times is stuck; it ends, "
                        "--escape-steps random moves follow, then a re-plan (default: 3; 0: off)")
    parser.add_argument("--escape-steps", type=int, default=3, metavar="N",
                        help="with --options: random moves after a stuck option call (default: 3)")
    parser.add_argument("--cycle-limit", type=int, default=3, metavar="N",
                        help="with --options: the same random moves follow a call that ends as planned in a planning "
                        "state such calls have ended in N times (default: 3; 0: off; as modrl eval --cycle-limit)")
    parser.add_argument("--no-fallback", action="store_true",
                        help="with --options: no scripted skills; plan only over the skills the options serve")


def _make_env(target: str) -> Any:
    import gymnasium as gym

    from modrl.envs import TaskEnv, get_suite, parse_task
    from modrl.registry import UnknownNameError

    if target in gym.registry:
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
    from modrl.config import ConfigError
    from modrl.envs.operators import goals_for_env, planning_domain
    from modrl.envs.predicates import env_planning_state
    from modrl.planner import NoPlan, SearchConfig, plan

    if args.seed < 0:
        return fail(f"--seed must be >= 0, got {args.seed}")
    if args.no_fallback and args.options is None:
        return fail("--no-fallback needs --options")
    if args.ensemble and args.options is None:
        return fail("--ensemble needs --options (the first library of the ensemble)")
    if args.loop_limit != 0 and args.loop_limit < 2:
        return fail(f"--loop-limit must be 0 (off) or >= 2, got {args.loop_limit}")
    if args.escape_steps < 0:
        return fail(f"--escape-steps must be >= 0, got {args.escape_steps}")
    if args.cycle_limit != 0 and args.cycle_limit < 2:
        return fail(f"--cycle-limit must be 0 (off) or >= 2, got {args.cycle_limit}")
    try:
        search = SearchConfig(algorithm=args.algorithm, max_nodes=args.max_nodes)
        env = _make_env(args.target)
        library = None
        if args.options is not None:
            from modrl.agents.options.router import load_library
            from modrl.agents.planning.skills import wrap_for_library

            library = load_library(str(args.options))
            if args.ensemble:
                from modrl.options import ensemble_library

                library = ensemble_library([library, *(load_library(str(path)) for path in args.ensemble)])
            env = wrap_for_library(env, library)
        env.reset(seed=args.seed)
        state = env_planning_state(env)
        goals = goals_for_env(env, state)
        runner = _runner(args, env, library)
    except (ConfigError, ValueError) as exc:
        return fail(str(exc))
    allowed = getattr(runner, "allowed", None)
    domain = planning_domain()
    print(f"env: {env.spec.id if env.spec else type(env.unwrapped).__name__} | seed {args.seed}")
    print(f"mission: {env.unwrapped.mission}")
    print(f"initial predicates ({len(state)}):")
    for atom in sorted(state):
        print(f"  {atom}")
    derived = sorted(domain.closure(state) - state)
    print(f"derived: {', '.join(derived) or '-'}")
    print("goals, in order:")
    for i, goal in enumerate(goals):
        print(f"  {i}. {goal}")
    if allowed is not None:
        print("planning over the skills the options serve only (--no-fallback)")
    found = plan(domain, state, goals, search, allowed=allowed)
    if isinstance(found, NoPlan):
        print(f"no plan ({found.reason.value}): {found.message}")
        return EXIT_ERROR
    print(f"plan ({len(found)} steps, {found.algorithm}, {found.expanded} nodes expanded):")
    for i, step in enumerate(found.steps):
        print(f"  {i}. {step.symbol:36s} [{step.name}]")
    if not args.execute:
        return 0
    return _execute(args, runner, domain, goals, search)


def _runner(args: argparse.Namespace, env: Any, library: Any) -> Any:
    """The skill executor: the scripted skills, or the learned options of ``--options`` (``library``, with the
    scripted skills as fallback unless ``--no-fallback``)."""
    from modrl.envs.scripted_skills import ScriptedSkills

    skills = ScriptedSkills(env)
    if library is None:
        return skills
    from modrl.agents.planning.skills import learned_skills

    return learned_skills(env, library, fallback=None if args.no_fallback else skills,
                          max_skill_steps=args.option_steps, seed=args.seed, loop_limit=args.loop_limit or None,
                          escape_steps=args.escape_steps, cycle_limit=args.cycle_limit or None)


def _execute(args: argparse.Namespace, runner: Any, domain: Any, goals: Any, search: Any) -> int:
    from modrl.config import ConfigError
    from modrl.planner import InjectedFailures, MonitorConfig, Outcome, SkillExecutor, execute

    try:
        config = MonitorConfig(search=search, max_replans=args.max_replans)
    except ConfigError as exc:
        return fail(str(exc))
    executor: SkillExecutor = InjectedFailures(runner, args.fail_skill) if args.fail_skill else runner
    trace = execute(domain, goals, executor, config, allowed=getattr(runner, "allowed", None))
    print("\nexecution:")
    for i, step in enumerate(trace.steps):
        for record in trace.plans[1:]:
            if record.after_skills == i:
                print(f"  re-plan ({record.reason}): {' -> '.join(record.skills) or record.no_plan}")
        extra = f"  unexpected: {', '.join(step.mismatches)}" if step.mismatches else ""
        print(f"  [{i}] {step.skill:36s} {step.status.value:8s} {step.steps:3d} steps  goals {step.stage}/"
              f"{len(trace.goals)}{extra}")
    for record in trace.plans[1:]:
        if record.after_skills == len(trace.steps):
            print(f"  re-plan ({record.reason}): {' -> '.join(record.skills) or record.no_plan}")
    reward = "env solved" if runner.episode_success else "env not solved"
    if args.options is not None:
        print(f"skills run by learned options: {runner.usage['option']}, by scripted skills: "
              f"{runner.usage['fallback']}")
    print(f"outcome: {trace.outcome.value} ({reward}; {trace.replans} re-plan(s), {trace.total_steps} steps)")
    if args.logdir is not None:
        from torch.utils.tensorboard import SummaryWriter

        from modrl.planner import log_trace

        writer = SummaryWriter(log_dir=str(args.logdir))
        log_trace(writer, trace, step=0)
        writer.close()
        print(f"TensorBoard: tensorboard --logdir {args.logdir}")
    return 0 if trace.outcome is Outcome.SUCCESS else EXIT_ERROR

