"""The planner with scripted skills on every registered MiniGrid and BabyAI env id: supported or why not, success,
planning time.

For each id and seeds ``0 .. N-1`` (the seeds of ``modrl plan ID --seed S --execute``, so a failure replays with that
command), one episode: goals from the env (:func:`modrl.envs.goals.goals_for_env`: BabyAI's instruction objects,
else the mission), then plan, execute with the scripted skills, monitor and re-plan (``modrl plan``'s settings:
``--search``, by default ``modrl plan``'s, 100 000 nodes per search, 20 re-plans). An episode over ``--time-limit``
CPU seconds is stopped and counted as a failure. An episode no policy can solve is ``unsolvable`` and left out of
the success rate (counted beside it): either the first search, from the initial state before any action, proves the
goals unreachable (h_max or the goal-count bound infinite there; full view only, see
:func:`modrl.agents.planning.episode.proven_unsolvable`), or the goals say the env's verifier cannot be satisfied
(``not solvable: ...``). Planning time is the episode's CPU time outside the skills (every
search, re-plan and monitor check): CPU time, not wall time, so that other jobs on a shared machine neither inflate it
nor stop episodes early. Writes a
Markdown table (default ``experiments/results/planner_coverage.md``), rewritten after every id (a ``## Notes`` section
at its end is kept), and prints a line per episode:

    python experiments/planner/coverage.py                                   # every id, 20 seeds
    python experiments/planner/coverage.py --seeds 3 --ids BabyAI-GoTo ObstructedMaze --time-limit 60
    python experiments/planner/coverage.py --merge babyai.md minigrid.md rerun.md    # later rows replace earlier
    python experiments/planner/coverage.py --ids GoToImpUnlock --update               # re-make these rows in --out
    python experiments/planner/coverage.py --view own --ids MiniGrid- --seeds 5       # from the agent's own view

``--view own`` plans from the agent's own view (:mod:`modrl.envs.own_view`; default out
``experiments/results/planner_coverage_own_view.md``) instead of the full grid.

``--library RUN_DIR`` runs the plans with a learned option library instead (``RUN_DIR/options`` of ``modrl options
skills`` or ``modrl options train``, or the library directory itself; default out
``experiments/results/planner_coverage_learned.md``, with ``--view own`` ``..._learned_own_view.md``): the options
alone, no scripted fallback, the planner planning only over the steps they serve (``modrl plan ID --seed S --execute
--options RUN_DIR/options --no-fallback`` replays one; ``--stochastic`` samples the options' actions, as
``--stochastic`` of ``modrl eval``). Whether the library covers an episode is derived from the planner's domain for
its goals (:func:`modrl.envs.operators.planning_domain`) and the library's option names: the first search plans over
the operators whose skill an option serves; where it finds no plan, a search over the whole domain says which
skills the plan needs that no option serves (:func:`missing_skills`), and the episode is ``no learned skill for X``
(listed, not dropped; not run). The table sets the scripted-skill success of the same id beside (read from
``--scripted``, by default this script's scripted table of the same view):

    python experiments/planner/coverage.py --library RUN_DIR --stochastic --ids DoorKey Unlock KeyCorridor
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid and BabyAI ids)
import torch

from modrl.agents.planning.episode import PlannerRun, PlannerRunConfig, start_planner_episode
from modrl.agents.planning.library import find_library, load_libraries
from modrl.config import ConfigError
from modrl.envs.goals import UnsupportedTask
from modrl.options import OptionLibrary
from modrl.planner import GroundOperator, Outcome, Plan, SkillResult, plan
from modrl.runs import RunDirError

OUT = Path("experiments/results/planner_coverage.md")
OUT_OWN_VIEW = Path("experiments/results/planner_coverage_own_view.md")
OUT_LEARNED = Path("experiments/results/planner_coverage_learned.md")
OUT_LEARNED_OWN_VIEW = Path("experiments/results/planner_coverage_learned_own_view.md")
NOTES = "\n## Notes\n"
"""What follows this heading in ``--out`` (written by hand) is kept when the table is rewritten."""


UNSOLVABLE_GOALS = "unsupported: not solvable: "
"""The start of :func:`episode`'s outcome when the goals say no policy meets the env's verifier (OpenDoorsOrder's
Debug levels): such a seed is ``unsolvable`` too."""


NOT_NEEDED = {"close": "full", "explore": "own"}
"""Skills of the planner's domain a learned library need not serve, by the view where that holds: ``close`` (the
domain has it for goals that open a door, to re-open one already open; plans over the library's skills do without it,
or find no plan, a failure of the table) and, from the own view, ``explore`` (run by the scripted ``explore`` skill,
no option explores: an assist, named in the table)."""


def missing_skills(steps: Iterable[GroundOperator], library: OptionLibrary, view: str) -> list[str]:
    """The skills of ``steps`` (a plan over the whole domain) that no option of ``library`` is named for (sorted), but
    those of :data:`NOT_NEEDED`."""
    free = {skill for skill, where in NOT_NEEDED.items() if where in ("full", view)}
    return sorted({step.skill for step in steps} - set(library.names) - free)


def _learned_start(run: PlannerRun, library: OptionLibrary) -> Plan | str | None:
    """The first plan of a learned-options episode over the steps the options serve; where there is none, ``"no
    learned skill for X"`` when a plan over the whole domain needs skills no option serves, else ``None`` (the
    episode runs and fails as planned)."""
    state = run.runner.observe()
    found = plan(run.domain, state, run.goals, run.config.search, allowed=run.allowed)
    if isinstance(found, Plan):
        return found
    full = plan(run.domain, state, run.goals, run.config.search)
    missing = missing_skills(full.steps, library, run.config.view) if isinstance(full, Plan) else []
    return f"no learned skill for {', '.join(missing)}" if missing else None


class _Timeout(Exception):
    """The episode ran past ``--time-limit``."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Timeout


class Timed:
    """The skills (scripted, or a library's options), with the CPU seconds spent in them (what is not planning)."""

    def __init__(self, inner: object) -> None:
        self.inner, self.seconds = inner, 0.0

    def observe(self) -> frozenset[str]:
        start = time.process_time()
        try:
            return self.inner.observe()  # type: ignore[attr-defined,no-any-return]
        finally:
            self.seconds += time.process_time() - start

    def execute(self, step: GroundOperator) -> SkillResult:
        start = time.process_time()
        try:
            return self.inner.execute(step)  # type: ignore[attr-defined,no-any-return]
        finally:
            self.seconds += time.process_time() - start


@dataclass
class IdResult:
    """One env id's episodes."""

    env_id: str
    unsupported: Counter[str] = field(default_factory=Counter)
    unsolvable: dict[str, list[int]] = field(default_factory=dict)
    """Why no policy can solve an episode -> the seeds of such episodes (out of the success rate)."""
    outcomes: Counter[str] = field(default_factory=Counter)
    successes: int = 0
    episodes: int = 0
    planning: list[float] = field(default_factory=list)
    replans: list[int] = field(default_factory=list)


def episode(
    env_id: str, seed: int, limit: float, config: PlannerRunConfig, library: OptionLibrary | None = None
) -> tuple[str, bool, float, int]:
    """``(outcome, env solved, planning CPU seconds, re-plans)``; ``outcome`` is ``unsupported: why`` when the env's
    task has no goals (or, with ``library``, a plan needs skills no option serves: :func:`missing_skills`),
    ``unsolvable: why`` when the first search proved the goals unreachable before any action
    (:attr:`PlannerRun.proven_unsolvable <modrl.agents.planning.episode.PlannerRun.proven_unsolvable>`), ``timeout``
    past ``limit`` CPU seconds."""
    env = gym.make(env_id)
    signal.setitimer(signal.ITIMER_PROF, limit)
    start = time.process_time()
    timed: Timed | None = None
    try:
        try:
            run = start_planner_episode(env, seed=seed, config=config, library=library)
        except Exception as exc:  # an env that cannot be reset here (a missing extra): say why, go on
            return f"unsupported: the env cannot be reset: {type(exc).__name__}: {exc}", False, 0.0, 0
        start = time.process_time()  # the reset (BabyAI's rejection sampling) is not planning
        timed = Timed(run.runner)
        try:
            run.goals  # noqa: B018  (reads them; raises when the task is not expressible)
        except UnsupportedTask as exc:
            return f"unsupported: {exc}", False, 0.0, 0
        initial = None if library is None else _learned_start(run, library)
        if isinstance(initial, str):
            return f"unsupported: {initial}", False, 0.0, 0
        trace = run.execute(timed, initial=initial)
        solved = bool(run.runner.episode_success)
        outcome, replans = trace.outcome.value, trace.replans
        if trace.outcome is Outcome.SUCCESS and not solved:
            outcome = "goals reached, env not solved"
        if run.proven_unsolvable is not None:
            outcome = f"unsolvable: {run.proven_unsolvable}"
    except _Timeout:
        outcome, solved, replans = "timeout", False, -1
    except Exception as exc:  # a crash is a result of this table too
        outcome, solved, replans = f"error: {type(exc).__name__}: {exc}", False, -1
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        env.close()
    planning = time.process_time() - start - (timed.seconds if timed is not None else 0.0)
    return outcome, solved, planning, replans


def _ids(filters: list[str]) -> list[str]:
    every = sorted(i for i in gym.registry if i.startswith(("MiniGrid-", "BabyAI-")))
    return [i for i in every if not filters or any(f in i for f in filters)]


def run_id(
    env_id: str, seeds: int, limit: float, config: PlannerRunConfig, library: OptionLibrary | None = None
) -> IdResult:
    """Every seed of one id, a progress line per episode."""
    result = IdResult(env_id=env_id)
    for seed in range(seeds):
        outcome, solved, planning, replans = episode(env_id, seed, limit, config, library)
        if outcome.startswith(UNSOLVABLE_GOALS):
            result.unsolvable.setdefault(outcome.removeprefix("unsupported: "), []).append(seed)
        elif outcome.startswith("unsupported: "):
            result.unsupported[outcome.removeprefix("unsupported: ")] += 1
        else:
            if outcome.startswith("unsolvable: "):
                result.unsolvable.setdefault(outcome.removeprefix("unsolvable: "), []).append(seed)
            result.episodes += 1
            result.successes += solved
            result.outcomes[outcome] += 1
            result.planning.append(planning)
            result.replans.append(replans)
        print(f"{env_id} seed {seed}: {outcome}, solved {solved}, planning {planning:.2f} s", flush=True)
    return result


def _success(successes: int, seeds: int, unsolvable: int) -> str:
    """The success cell: the rate over the seeds some policy can solve, and how many no policy can."""
    if not unsolvable:
        return f"{successes / seeds:.2f} ({successes}/{seeds})"
    solvable = seeds - unsolvable
    rate = f"{successes / solvable:.2f}" if solvable else "-"
    return f"{rate} ({successes}/{solvable} solvable; {unsolvable} unsolvable)"


def _failures(r: IdResult) -> str:
    """The failures cell: outcomes but success, unsolvable seeds, seeds without goals."""
    failures = ", ".join(
        f"{k} {v}" for k, v in r.outcomes.most_common() if k != "success" and not k.startswith("unsolvable: ")
    )
    if r.unsolvable:
        failures += ("; " if failures else "") + "; ".join(
            f"unsolvable on seed(s) {', '.join(map(str, v))}: {k}" for k, v in r.unsolvable.items()
        )
    if r.unsupported:
        failures += ("; " if failures else "") + "; ".join(
            f"unsupported on {v} seed(s): {k}" for k, v in r.unsupported.items()
        )
    return failures.replace("|", "/")


def _row(r: IdResult, seeds: int) -> str:
    if not r.episodes:
        reason = "; ".join([*r.unsupported, *r.unsolvable])
        return f"| {r.env_id} | no: {reason.replace('|', '/')} | | | | | |"
    median, worst = statistics.median(r.planning), max(r.planning)
    replans = sum(max(x, 0) for x in r.replans) / len(r.replans)
    return (
        f"| {r.env_id} | yes | {_success(r.successes, seeds, sum(map(len, r.unsolvable.values())))} | {median:.2f} | "
        f"{worst:.2f} | {replans:.1f} | {_failures(r)} |"
    )


def _learned_row(r: IdResult, seeds: int, scripted: str) -> str:
    """A row of the learned-options table: the learned success, then ``scripted`` (the scripted-skill table's success
    cell for the id, ``-`` when it has none)."""
    if not r.episodes:
        reason = "; ".join([*r.unsupported, *r.unsolvable])
        return f"| {r.env_id} | no: {reason.replace('|', '/')} | | {scripted} | | | | | |"
    mean, median, worst = statistics.mean(r.planning), statistics.median(r.planning), max(r.planning)
    replans = sum(max(x, 0) for x in r.replans) / len(r.replans)
    success = _success(r.successes, seeds, sum(map(len, r.unsolvable.values())))
    return (
        f"| {r.env_id} | yes | {success} | {scripted} | {mean:.2f} | {median:.2f} | {worst:.2f} | {replans:.1f} | "
        f"{_failures(r)} |"
    )


def scripted_cells(table: Path) -> dict[str, str]:
    """env id -> the success cell of a scripted-skill table this script wrote (``no`` for an id it does not
    support); empty when there is no such file."""
    if not table.is_file():
        return {}
    _, rows = _parts(table.read_text())
    return {k: row.split(" | ")[2] if row.split(" | ")[1] == "yes" else "no" for k, row in rows.items()}


TITLE = "# The planner with scripted skills on every registered MiniGrid and BabyAI id"
COLUMNS = [
    "| env id | supported | success | median planning CPU s | worst planning CPU s | mean re-plans | failures |",
    "|---|---|---|---|---|---|---|",
]
LEARNED_TITLE = "# The planner with learned options on the MiniGrid and BabyAI ids the library's skills cover"
LEARNED_COLUMNS = [
    "| env id | learned skills cover it | success, learned options | success, scripted skills | mean planning CPU s "
    "| median planning CPU s | worst planning CPU s | mean re-plans | failures |",
    "|---|---|---|---|---|---|---|---|---|",
]


def _rate(cell: str) -> float | None:
    """The rate of a success cell (``0.85 (17/20)``), ``None`` for none."""
    found = re.match(r"(\d+\.\d+) \(", cell)
    return None if found is None else float(found[1])


def _learned_summary(rows: list[str]) -> str:
    """The line under the header of a learned-options table, counted from its rows."""
    covered = [r.split(" | ") for r in rows if r.split(" | ")[1] == "yes"]
    learned = [_rate(c[2]) for c in covered]
    scripted = [_rate(c[3]) for c in covered]
    pairs = [(a, b) for a, b in zip(learned, scripted, strict=True) if a is not None and b is not None]
    line = f"Covered (the library's options serve a plan, at least one seed): {len(covered)} of {len(rows)} ids"
    if not pairs:
        return line + "."
    return (
        f"{line}; success >= 0.95 with the learned options: {sum(a >= 0.95 for a, _ in pairs)} of {len(pairs)}; "
        f"mean success over the covered ids: learned options {statistics.mean(a for a, _ in pairs):.3f}, scripted "
        f"skills {statistics.mean(b for _, b in pairs):.3f} (unweighted mean of the rates)."
    )


def _summary(rows: list[str]) -> str:
    """The line under the header, counted from the table's rows (so a merged or updated table says the same)."""
    supported = [r for r in rows if r.split(" | ")[1] == "yes"]
    solved = unsolvable = with_unsolvable = 0
    for row in supported:
        cell = row.split(" | ")[2]
        rate = re.search(r"\((\d+)/(\d+)", cell)
        solved += rate is not None and int(rate[2]) > 0 and int(rate[1]) / int(rate[2]) >= 0.95
        count = re.search(r"; (\d+) unsolvable\)", cell)
        if count is not None:
            unsolvable, with_unsolvable = unsolvable + int(count[1]), with_unsolvable + 1
    return (
        f"Supported (goals for at least one seed): {len(supported)} of {len(rows)} ids; success >= 0.95 (over the "
        f"solvable seeds): {solved} of {len(supported)}; seeds no policy can solve, out of the rates: {unsolvable} "
        f"(on {with_unsolvable} ids)."
    )


def _table(own: bool, learned: bool, head: list[str], rows: list[str], out: Path) -> None:
    """Write the table to ``out`` (``learned``: a learned-options table), keeping what follows :data:`NOTES` there."""
    lines = [
        (LEARNED_TITLE if learned else TITLE) + (", from the agent's own view" if own else ""),
        "",
        *head,
        "",
        _learned_summary(rows) if learned else _summary(rows),
        "",
        *(LEARNED_COLUMNS if learned else COLUMNS),
        *rows,
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    notes = out.read_text().partition(NOTES)[2] if out.exists() else ""
    out.write_text("\n".join(lines) + (NOTES + notes if notes else ""))


def _parts(text: str) -> tuple[list[str], dict[str, str]]:
    """The "Made by" lines and the rows (by env id) of a table this script wrote, merged or not."""
    text = text.partition(NOTES)[0]
    made = [line.removeprefix("- ") for line in text.splitlines() if line.startswith(("Made by ", "- Made by "))]
    rows = {
        line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith(("| BabyAI-", "| MiniGrid-"))
    }
    return made, rows


def _combined(texts: list[str], how: str, out: Path) -> None:
    """One table from several: a later table's row replaces an earlier one's for the same id; every "Made by" line
    is kept, in order, under ``how``."""
    rows: dict[str, str] = {}
    made: list[str] = []
    for text in texts:
        lines, found = _parts(text)
        made += lines
        rows.update(found)
    own = bool(made) and all("--view own" in line for line in made)
    learned = bool(made) and all("--library " in line for line in made)
    if learned != any("--library " in line for line in made):
        raise SystemExit("coverage.py: error: cannot merge a learned-options table with a scripted-skill one")
    _table(own, learned, [how, "", *(f"- {line}" for line in made)], [rows[k] for k in sorted(rows)], out)


def write(results: list[IdResult], args: argparse.Namespace, total: int, started: float) -> None:
    """The Markdown table of ``results`` so far; with ``--update``, their rows in the table ``--out`` held before
    this run (:attr:`args.base`), the others kept."""
    own, learned = args.view == "own", args.library is not None
    options = f" --library {args.library}" + (" --stochastic" if args.stochastic else "") if learned else ""
    replay = f" --options {args.library_dir} --no-fallback" if learned else ""
    made = (
        f"Made by `python experiments/planner/coverage.py --seeds {args.seeds} --time-limit {args.time_limit:g} "
        f"--search {args.search}"
        + (" --view own" if own else "")
        + options
        + (f" --ids {' '.join(args.ids)}" if args.ids else "")
        + f"`: seeds 0-{args.seeds - 1} of each id (`modrl plan ID --seed S --execute"
        + replay
        + (" --view own" if own else "")
        + "` replays one"
        + (" with greedy option actions: `modrl plan` does not sample them" if learned and args.stochastic else "")
        + "), "
        f"{len(results)} of {total} ids done in {(time.time() - started) / 60:.0f} min (wall) on a shared 2-CPU "
        "machine. Planning = CPU seconds outside the skills (searches, re-plans, monitor checks) per episode; an "
        "episode past the CPU-time limit counts as a failure (`timeout`) and its time as the limit. Success is over "
        "the solvable seeds: a seed no policy can solve is `unsolvable` and counted beside the rate -- its first "
        "search, from the initial state before any action, proved the goals unreachable (h_max or the goal-count "
        "bound infinite there; with the full grid only), or its goals say the env's verifier cannot be met."
    )
    if learned:
        made += (
            f" Skills: the options of `{args.library_dir}` alone ({'sampled' if args.stochastic else 'greedy'} "
            "actions), no scripted fallback, plans only over the steps they serve"
            + (" (but `explore`: the scripted skill)" if own else "")
            + "; planning CPU seconds exclude the options' own. Success, scripted skills: the success cell of the "
            f"same id in `{args.scripted}`."
        )
        rows = [_learned_row(r, args.seeds, args.scripted_cells.get(r.env_id, "-")) for r in results]
    else:
        rows = [_row(r, args.seeds) for r in results]
    if args.base is None:
        _table(own, learned, [made], rows, args.out)
        return
    how = (
        f"Updated by `python experiments/planner/coverage.py --update{' --view own' if own else ''}{options} --ids "
        f"{' '.join(args.ids)}` (the rows "
        "of these "
        "ids re-made, the others kept) from these runs (a later line's rows replace an earlier one's):"
    )
    _combined([args.base, f"{made}\n" + "\n".join(rows)], how, args.out)


def merge(tables: list[Path], out: Path) -> None:
    """One table from several written by this script (shards of the ids, or a re-run of some ids with newer code):
    a later table's row replaces an earlier one's for the same id; the "Made by" lines of all are kept, in order."""
    how = (
        f"Merged by `python experiments/planner/coverage.py --merge {' '.join(str(t) for t in tables)}` from "
        "(a later line's rows replace an earlier one's):"
    )
    _combined([table.read_text() for table in tables], how, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0 .. N-1 per id (default: 20)")
    parser.add_argument("--ids", nargs="*", default=[], help="only ids containing one of these strings")
    parser.add_argument("--time-limit", type=float, default=120.0, help="CPU seconds per episode (default: 120)")
    parser.add_argument("--max-nodes", type=int, default=100_000, help="node bound of one search (default: 100000)")
    parser.add_argument(
        "--search",
        choices=["wastar", "gbfs", "astar", "bfs"],
        default=PlannerRunConfig().algorithm,
        help=f"search mode (default: {PlannerRunConfig().algorithm}, modrl plan's)",
    )
    parser.add_argument(
        "--view",
        choices=["full", "own"],
        default="full",
        help="what the planner reads: the full grid (privileged; default) or the agent's own view (with exploration)",
    )
    parser.add_argument(
        "--library",
        type=Path,
        metavar="RUN_DIR",
        help="run the plans with this option library (RUN_DIR/options, or the library directory) instead of the "
        "scripted skills: no scripted fallback, only on the ids whose domain skills it has options for",
    )
    parser.add_argument(
        "--stochastic", action="store_true", help="with --library: sample the options' actions (default: greedy)"
    )
    parser.add_argument(
        "--scripted",
        type=Path,
        help=f"with --library: the scripted-skill table whose success column goes beside (default: {OUT}; with "
        f"--view own: {OUT_OWN_VIEW})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"the Markdown table (default: {OUT}; with --view own: {OUT_OWN_VIEW}; with --library: {OUT_LEARNED}, "
        f"{OUT_LEARNED_OWN_VIEW})",
    )
    parser.add_argument("--merge", nargs="+", type=Path, metavar="TABLE", help="merge tables this script wrote")
    parser.add_argument(
        "--update",
        action="store_true",
        help="re-make only the rows of --ids in the table --out (which must exist), keeping its other rows; its "
        "header then lists how each part was made",
    )
    args = parser.parse_args(argv)
    own = args.view == "own"
    if args.library is None and (args.stochastic or args.scripted is not None):
        parser.error("--stochastic and --scripted need --library")
    if args.out is None:
        if args.library is None:
            args.out = OUT_OWN_VIEW if own else OUT
        else:
            args.out = OUT_LEARNED_OWN_VIEW if own else OUT_LEARNED
    library = None
    if args.library is not None and not args.merge:
        try:
            args.library_dir = find_library(args.library)[0]
            library = load_libraries(str(args.library_dir))
        except (ConfigError, RunDirError, ValueError) as exc:
            parser.error(f"--library {args.library}: {exc}")
        args.scripted = args.scripted or (OUT_OWN_VIEW if own else OUT)
        args.scripted_cells = scripted_cells(args.scripted)
    args.base = None
    if args.update:
        if args.merge or not args.ids:
            parser.error("--update needs --ids (the rows to re-make) and no --merge")
        if not args.out.is_file():
            parser.error(f"--update: {args.out} is not a table to update")
        args.base = args.out.read_text()
    if args.merge:
        merge(args.merge, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
        return 0
    if args.seeds < 1 or args.time_limit <= 0:
        parser.error("--seeds must be >= 1 and --time-limit > 0")
    warnings.filterwarnings("ignore")
    signal.signal(signal.SIGPROF, _alarm)
    torch.set_num_threads(1)
    config = PlannerRunConfig(
        max_nodes=args.max_nodes, algorithm=args.search, view=args.view, deterministic=not args.stochastic
    )
    ids, results, started = _ids(args.ids), [], time.time()
    for k, env_id in enumerate(ids):
        print(f"[{k + 1}/{len(ids)}] {env_id}", flush=True)
        results.append(run_id(env_id, args.seeds, args.time_limit, config, library))
        write(results, args, len(ids), started)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
