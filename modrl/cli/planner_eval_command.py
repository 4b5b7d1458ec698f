"""``modrl eval --planner``: the planner (declared operators, search, monitoring and re-planning) on a suite split, its
skills run by the options of a ``modrl options train`` run or by the scripted skills
(:mod:`modrl.agents.planning.evaluation`).

Each episode runs in the planner-episode harness (:mod:`modrl.agents.planning.episode`), whose
:class:`~modrl.agents.planning.episode.PlannerRunConfig` checks the flag values; libraries are found and loaded by
:mod:`modrl.agents.planning.library`. This module parses, checks which flags go together, builds the config, calls
and prints. Heavy imports happen inside :func:`run`, so building the parser stays cheap; none is of
stable_baselines3.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from modrl._io import atomic_write_json
from modrl.config import ConfigError
from modrl.runs import RunDirError

from .errors import EXIT_ERROR, fail, one_line

if TYPE_CHECKING:
    from modrl.agents.planning.episode import PlannerRunConfig


def add_planner_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``modrl eval``'s planner-mode flags (the ``planner mode`` group) to ``parser``."""
    planner = parser.add_argument_group("planner mode")
    planner.add_argument("--planner", action="store_true", help="evaluate the planner executing plans with skills")
    planner.add_argument(
        "--scripted", action="store_true", help="run the skills with the scripted skills (no RUN_DIR; needs --suite)"
    )
    planner.add_argument(
        "--suite",
        metavar="NAME_OR_CONFIG",
        help="suite to evaluate on: a registered name, or an experiment config file (YAML) whose env.ids or "
        "env.suite name it (your own env ids: add --import MODULE); default: the run's, from its config.yaml",
    )
    planner.add_argument("--option-steps", type=int, metavar="N", help="step cap of one option call (default: 100)")
    planner.add_argument(
        "--max-nodes",
        type=int,
        metavar="N",
        help="node expansions per (re-)plan before 'no plan' (default: 100000; "
        "a lower bound makes hopeless re-plans after failed skills cheap)",
    )
    planner.add_argument(
        "--max-replans",
        type=int,
        metavar="N",
        help="re-plans per episode after the first plan (default: 20; each "
        "failed, stuck or timed-out skill call re-plans, so options get another try)",
    )
    planner.add_argument(
        "--loop-limit",
        type=int,
        metavar="N",
        help="an option call that sees one observation N times is stuck: it "
        "ends, random moves follow (--escape-steps) and the planner re-plans (default: 3; 0: off)",
    )
    planner.add_argument(
        "--escape-steps",
        type=int,
        metavar="N",
        help="random moves (turn left / turn right / forward) after a stuck option call (default: 3)",
    )
    planner.add_argument(
        "--cycle-limit",
        type=int,
        metavar="N",
        help="the same random moves follow an option call that ends as "
        "planned in a planning state such calls have ended in N times in the episode (e.g. a drop that sets the "
        "ball back where it blocks the door; default: 3; 0: off)",
    )
    planner.add_argument(
        "--ensemble",
        nargs="+",
        type=Path,
        metavar="RUN",
        help="more option runs (or library directories) trained for "
        "the same skills: each skill acts with the mean of the action probabilities of every library's option (an "
        "option ensemble; RUN_DIR's results path)",
    )
    planner.add_argument(
        "--fallback-scripted",
        action="store_true",
        help="the scripted skills run the steps no option serves "
        "(counted in the table; default: such a step fails and the planner re-plans)",
    )
    planner.add_argument(
        "--view",
        choices=["full", "own"],
        help="what the planner reads: 'full' the whole grid (privileged; the default), 'own' the agent's own view "
        "(a map of the cells seen so far, with exploration; the scripted skills read the map, and with options "
        "and no --fallback-scripted a scripted explore skill runs the exploration steps)",
    )
    planner.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write the JSON here (default: RUN_DIR/eval/...; with --scripted: print only)",
    )


#: ``modrl eval`` flags that only planner mode reads: (attribute, flag).
_PLANNER_FLAGS = (
    ("scripted", "--scripted"),
    ("suite", "--suite"),
    ("option_steps", "--option-steps"),
    ("max_nodes", "--max-nodes"),
    ("max_replans", "--max-replans"),
    ("loop_limit", "--loop-limit"),
    ("escape_steps", "--escape-steps"),
    ("ensemble", "--ensemble"),
    ("cycle_limit", "--cycle-limit"),
    ("fallback_scripted", "--fallback-scripted"),
    ("view", "--view"),
    ("out", "--out"),
)


def planner_only_flags(args: argparse.Namespace) -> list[str]:
    """The planner-only flags given in ``args`` (each needs ``--planner``)."""
    return [flag for attr, flag in _PLANNER_FLAGS if getattr(args, attr) not in (None, False)]


def _run_config(args: argparse.Namespace) -> PlannerRunConfig:
    """The episodes' config from the planner-mode flags (the defaults of the flags not given).

    Raises:
        PlannerConfigError: A flag value is out of range.
    """
    from modrl.agents.planning.episode import PlannerRunConfig

    given = {
        name: getattr(args, name)
        for name in ("option_steps", "max_nodes", "max_replans", "loop_limit", "escape_steps", "cycle_limit")
    }
    return PlannerRunConfig(
        **{name: value for name, value in given.items() if value is not None},
        deterministic=not args.stochastic,
        fallback=args.fallback_scripted,
        view=args.view or "full",
    )


def _flag_combination_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of planner-mode flags given, or ``None``."""
    if args.split == "all":
        return "--planner evaluates one split: give --split NAME (default: test if the suite has one, else train)"
    if not args.scripted:
        if args.run_dir is None:
            return (
                "--planner needs RUN_DIR (a 'modrl options train' run or its options/ library), or --scripted "
                "--suite NAME for the scripted skills"
            )
        return None
    wrong = [
        flag
        for flag, on in (
            ("RUN_DIR", args.run_dir is not None),
            ("--stochastic", args.stochastic),
            ("--option-steps", args.option_steps is not None),
            ("--loop-limit", args.loop_limit is not None),
            ("--escape-steps", args.escape_steps is not None),
            ("--ensemble", args.ensemble is not None),
            ("--cycle-limit", args.cycle_limit is not None),
            ("--fallback-scripted", args.fallback_scripted),
        )
        if on
    ]
    if wrong:
        return f"--scripted runs the scripted skills, not a run's options: drop {wrong[0]}"
    if args.suite is None:
        return "--scripted needs --suite NAME (e.g. --suite sequences)"
    return None


def _suite_arg(value: str) -> str:
    """``--suite``'s suite name: ``value`` itself, or the suite of the config file it names (``.yaml`` / ``.yml``).

    Raises:
        modrl.config.ConfigError: A config file that is not valid, or a name of an ``env.ids`` suite (those are
            named by their config, which says which ids they hold).
    """
    from modrl.agents.planning.library import config_suite
    from modrl.envs.suites import IDS_PREFIX

    if value.endswith((".yaml", ".yml")):
        return config_suite(Path(value))
    if value.startswith(IDS_PREFIX):
        raise ConfigError(
            f"--suite {value}: a suite made from env.ids is named by its config: give the config file "
            "(--suite CONFIG.yaml, with --import MODULE for your own ids)"
        )
    return value


def run(args: argparse.Namespace) -> int:
    """``modrl eval --planner``: the planner with a run's options (or the scripted skills) on a suite split."""
    from modrl.agents.planning.episode import PlannerConfigError
    from modrl.agents.planning.evaluation import (
        PlannerEvalConfig,
        default_split,
        evaluate_planner,
        format_planner_report,
    )
    from modrl.agents.planning.library import find_library, run_suite
    from modrl.registry import UnknownNameError

    try:
        run_config = _run_config(args)
    except PlannerConfigError as exc:
        return fail(exc.flag_message)
    problem = _flag_combination_error(args)
    if problem is not None:
        return fail(problem)
    library, holder, members = None, None, []
    try:
        if not args.scripted:
            library, holder = find_library(args.run_dir)
            members = [find_library(run)[0] for run in args.ensemble or ()]
        suite = _suite_arg(args.suite) if args.suite else run_suite(holder) if holder is not None else None
        if suite is None:
            return fail(
                f"cannot tell which suite {args.run_dir} was trained on (no env.suite in a config.yaml): "
                "give --suite NAME"
            )
        config = PlannerEvalConfig.of_run(
            run_config,
            suite=suite,
            split=args.split or default_split(suite),
            episodes=args.episodes,
            library=None if library is None else str(library),
            ensemble=tuple(str(m) for m in members),
        )
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
        mode = (
            ("-stochastic" if args.stochastic else "")
            + ("-fallback" if args.fallback_scripted else "")
            + (f"-ensemble{1 + len(members)}" if members else "")
            + ("-own-view" if config.view == "own" else "")
        )
        out = holder / "eval" / f"planner-{config.split}{mode}.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, report.to_dict())
        print(f"results written to {out}")
    return 0
