"""``modrl eval --planner``: the planner (declared operators, A*, monitoring and re-planning) on a suite split, its
skills run by the options of a ``modrl options train`` run or by the scripted skills
(:mod:`modrl.agents.planning.evaluation`).

Heavy imports happen inside :func:`run`, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from modrl._io import atomic_write_json
from modrl.config import ConfigError
from modrl.runs import RunDirError, read_run_config

from .errors import EXIT_ERROR, fail, one_line


def add_planner_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``modrl eval``'s planner-mode flags (the ``planner mode`` group) to ``parser``."""
    planner = parser.add_argument_group("planner mode")
    planner.add_argument("--planner", action="store_true", help="evaluate the planner executing plans with skills")
    planner.add_argument(
        "--scripted", action="store_true", help="run the skills with the scripted skills (no RUN_DIR; needs --suite)"
    )
    planner.add_argument("--suite", help="suite to evaluate on (default: the run's, from its config.yaml)")
    planner.add_argument(
        "--option-steps", type=int, metavar="N", help="step cap of one option call (default: 100)"
    )
    planner.add_argument(
        "--max-nodes", type=int, metavar="N", help="node expansions per (re-)plan before 'no plan' (default: 100000; "
        "a lower bound makes hopeless re-plans after failed skills cheap)"
    )
    planner.add_argument(
        "--max-replans", type=int, metavar="N", help="re-plans per episode after the first plan (default: 20; each "
        "failed, stuck or timed-out skill call re-plans, so options get another try)"
    )
    planner.add_argument(
        "--loop-limit", type=int, metavar="N", help="an option call that sees one observation N times is stuck: it "
        "ends, random moves follow (--escape-steps) and the planner re-plans (default: 3; 0: off)"
    )
    planner.add_argument(
        "--escape-steps", type=int, metavar="N", help="random moves (turn left / turn right / forward) after a stuck "
        "option call (default: 3)"
    )
    planner.add_argument(
        "--cycle-limit", type=int, metavar="N", help="the same random moves follow an option call that ends as "
        "planned in a planning state such calls have ended in N times in the episode (e.g. a drop that sets the "
        "ball back where it blocks the door; default: 3; 0: off)"
    )
    planner.add_argument(
        "--ensemble", nargs="+", type=Path, metavar="RUN", help="more option runs (or library directories) trained for "
        "the same skills: each skill acts with the mean of the action probabilities of every library's option (an "
        "option ensemble; RUN_DIR's results path)"
    )
    planner.add_argument(
        "--fallback-scripted", action="store_true", help="the scripted skills run the steps no option serves "
        "(counted in the table; default: such a step fails and the planner re-plans)"
    )
    planner.add_argument(
        "--out", type=Path, metavar="FILE", help="write the JSON here (default: RUN_DIR/eval/...; with --scripted: "
        "print only)"
    )


#: ``modrl eval`` flags that only planner mode reads: (attribute, flag).
_PLANNER_FLAGS = (("scripted", "--scripted"), ("suite", "--suite"), ("option_steps", "--option-steps"),
                  ("max_nodes", "--max-nodes"), ("max_replans", "--max-replans"), ("loop_limit", "--loop-limit"),
                  ("escape_steps", "--escape-steps"), ("ensemble", "--ensemble"),
                  ("cycle_limit", "--cycle-limit"),
                  ("fallback_scripted", "--fallback-scripted"), ("out", "--out"))


def planner_only_flags(args: argparse.Namespace) -> list[str]:
    """The planner-only flags given in ``args`` (each needs ``--planner``)."""
    return [flag for attr, flag in _PLANNER_FLAGS if getattr(args, attr) not in (None, False)]


def _planner_flag_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of planner-mode flags, or ``None``."""
    if args.option_steps is not None and args.option_steps < 1:
        return f"--option-steps must be >= 1, got {args.option_steps}"
    if args.max_nodes is not None and args.max_nodes < 1:
        return f"--max-nodes must be >= 1, got {args.max_nodes}"
    if args.max_replans is not None and args.max_replans < 0:
        return f"--max-replans must be >= 0, got {args.max_replans}"
    if args.loop_limit is not None and args.loop_limit != 0 and args.loop_limit < 2:
        return f"--loop-limit must be 0 (off) or >= 2, got {args.loop_limit}"
    if args.escape_steps is not None and args.escape_steps < 0:
        return f"--escape-steps must be >= 0, got {args.escape_steps}"
    if args.cycle_limit is not None and args.cycle_limit != 0 and args.cycle_limit < 2:
        return f"--cycle-limit must be 0 (off) or >= 2, got {args.cycle_limit}"
    if args.split == "all":
        return "--planner evaluates one split: give --split NAME (default: test if the suite has one, else train)"
    if not args.scripted:
        if args.run_dir is None:
            return ("--planner needs RUN_DIR (a 'modrl options train' run or its options/ library), or --scripted "
                    "--suite NAME for the scripted skills")
        return None
    wrong = [flag for flag, on in (("RUN_DIR", args.run_dir is not None), ("--stochastic", args.stochastic),
                                   ("--option-steps", args.option_steps is not None),
                                   ("--loop-limit", args.loop_limit is not None),
                                   ("--escape-steps", args.escape_steps is not None),
                                   ("--ensemble", args.ensemble is not None),
                                   ("--cycle-limit", args.cycle_limit is not None),
                                   ("--fallback-scripted", args.fallback_scripted)) if on]
    if wrong:
        return f"--scripted runs the scripted skills, not a run's options: drop {wrong[0]}"
    if args.suite is None:
        return "--scripted needs --suite NAME (e.g. --suite sequences)"
    return None


def find_library(run_dir: Path) -> tuple[Path, Path]:
    """``(library directory, run directory its results go to)`` for RUN_DIR or a library directory.

    Raises:
        RunDirError: Neither holds an option library; the message says what RUN_DIR is and what to give instead.
    """
    from modrl.options.library import INDEX_FILE

    if (run_dir / INDEX_FILE).is_file():  # a library directory: results go to the run around it, if any
        return run_dir, run_dir.parent if (run_dir.parent / "config.yaml").is_file() else run_dir
    if (run_dir / "options" / INDEX_FILE).is_file():
        return run_dir / "options", run_dir
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such directory")
    config = read_run_config(run_dir) if (run_dir / "config.yaml").is_file() else {}
    if "agent" in config:
        raise RunDirError(f"{run_dir} is a 'modrl train' run and has no options to plan with; --planner evaluates "
                          "the option library of a 'modrl options train' run, or give --scripted --suite NAME")
    hint = f" (its router's library is {config['library']}: give that)" if isinstance(config.get("library"), str) \
        else ""
    raise RunDirError(f"{run_dir} holds no option library (no options/{INDEX_FILE}){hint}; give a 'modrl options "
                      "train' run directory or its options/ directory")


def _run_suite(run_dir: Path) -> str | None:
    """The suite named by ``run_dir``'s ``config.yaml`` (``env.suite``, or ``suite`` for ``modrl options skills``
    runs), if any."""
    if not (run_dir / "config.yaml").is_file():
        return None
    config = read_run_config(run_dir)
    env = config.get("env")
    suite = env.get("suite") if isinstance(env, dict) else config.get("suite")
    return suite if isinstance(suite, str) else None


def run(args: argparse.Namespace) -> int:
    """``modrl eval --planner``: the planner with a run's options (or the scripted skills) on a suite split."""
    from modrl.agents.planning.evaluation import (
        PlannerEvalConfig,
        default_split,
        evaluate_planner,
        format_planner_report,
    )
    from modrl.registry import UnknownNameError

    problem = _planner_flag_error(args)
    if problem is not None:
        return fail(problem)
    library, holder, members = None, None, []
    try:
        if not args.scripted:
            library, holder = find_library(args.run_dir)
            members = [find_library(run)[0] for run in args.ensemble or ()]
        suite = args.suite or (_run_suite(holder) if holder is not None else None)
        if suite is None:
            return fail(f"cannot tell which suite {args.run_dir} was trained on (no env.suite in a config.yaml): "
                        "give --suite NAME")
        config = PlannerEvalConfig(
            suite=suite, split=args.split or default_split(suite), episodes=args.episodes,
            library=None if library is None else str(library), ensemble=tuple(str(m) for m in members),
            deterministic=not args.stochastic,
            fallback_scripted=args.fallback_scripted, option_steps=args.option_steps or 100,
            **({} if args.max_nodes is None else {"max_nodes": args.max_nodes}),
            **({} if args.max_replans is None else {"max_replans": args.max_replans}),
            **({} if args.loop_limit is None else {"loop_limit": args.loop_limit}),
            **({} if args.escape_steps is None else {"escape_steps": args.escape_steps}),
            **({} if args.cycle_limit is None else {"cycle_limit": args.cycle_limit}))
    except (ConfigError, RunDirError, UnknownNameError) as exc:
        return fail(one_line(str(exc)))
    try:
        report = evaluate_planner(config)
    except ValueError as exc:  # a library that does not load
        return fail(one_line(str(exc)), EXIT_ERROR)
    print()
    print(format_planner_report(report))
    out = args.out
    if out is None and holder is not None:
        mode = ("-stochastic" if args.stochastic else "") + ("-fallback" if args.fallback_scripted else "") \
            + (f"-ensemble{1 + len(members)}" if members else "")
        out = holder / "eval" / f"planner-{config.split}{mode}.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, report.to_dict())
        print(f"results written to {out}")
    return 0
