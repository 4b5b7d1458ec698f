"""The planner's first search per episode, every search mode on one fixed panel of env ids x seeds, in one run.

For each env id and seed: reset (``modrl plan ID --seed S`` shows the same episode), read the goals
(:func:`modrl.envs.goals.goals_for_env`), then for each ``--algorithms`` mode ground the operators and search once
from the initial state (:func:`modrl.planner.plan`, ``--max-nodes`` per search). Prints, per id and mode, the median
and worst planning CPU time (grounding + search; CPU time, so other jobs on a shared machine inflate it less),
the median grounding time, median and worst nodes expanded, median plan length, searches without a plan (``none``:
node bound hit, or no plan exists), and the ratios of the median time and of the total plan length (over the episodes
both modes solved) against A* measured in the same run on the same episodes (``time x`` below 1: faster than A*;
``length x`` above 1: longer plans). A last line sums the panel.

    python experiments/bench/bench_planner.py                                   # the panel, seeds 0-4, every mode
    python experiments/bench/bench_planner.py --ids MiniGrid-ObstructedMaze-Full-v1 --seeds 3 --algorithms astar gbfs
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid and BabyAI ids)

from modrl.agents.planning.episode import PlannerRunConfig, start_planner_episode
from modrl.envs.operators import planning_domain
from modrl.planner import Goal, NoPlan, SearchConfig, plan
from modrl.planner.search import ALGORITHMS

PANEL = (
    "MiniGrid-DoorKey-16x16-v0",
    "MiniGrid-MultiRoom-N6-v0",
    "MiniGrid-KeyCorridorS6R3-v0",
    "MiniGrid-LockedRoom-v0",
    "MiniGrid-ObstructedMaze-1Q-v1",
    "MiniGrid-ObstructedMaze-2Q-v1",
    "MiniGrid-ObstructedMaze-Full-v0",
    "MiniGrid-ObstructedMaze-Full-v1",
    "BabyAI-GoToImpUnlock-v0",
    "BabyAI-Unlock-v0",
    "BabyAI-UnblockPickup-v0",
    "BabyAI-Synth-v0",
    "BabyAI-SynthSeq-v0",
    "BabyAI-MiniBossLevel-v0",
    "BabyAI-BossLevelNoUnlock-v0",
    "BabyAI-BossLevel-v0",
)
"""Ids whose first searches were the slowest in ``experiments/results/planner_coverage.md`` (A*), and a few easy
ones."""


@dataclass
class Cell:
    """One id's searches with one mode."""

    seconds: list[float] = field(default_factory=list)
    grounding: list[float] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)
    lengths: list[int | None] = field(default_factory=list)
    """Plan length per episode, ``None`` where no plan was found."""


def search_once(
    state: frozenset[str], goals: tuple[Goal, ...], config: SearchConfig
) -> tuple[float, float, int, int | None]:
    """``(planning CPU s, grounding CPU s, nodes expanded, plan length or None)`` of one search from ``state``, with
    a fresh domain (its closure cache empty, so no mode profits from another's)."""
    domain = planning_domain(goals)
    start = time.process_time()
    domain.ground(state)
    grounding = time.process_time() - start
    start = time.process_time()
    found = plan(domain, state, goals, config)
    seconds = time.process_time() - start
    return seconds, grounding, found.expanded, None if isinstance(found, NoPlan) else len(found)


def _fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def report(env_id: str, cells: dict[str, Cell]) -> None:
    """Print one id's lines (one per mode)."""
    base = cells.get("astar")
    for mode, cell in cells.items():
        both = [(a, b) for a, b in zip(cell.lengths, base.lengths if base else cell.lengths, strict=True) if a and b]
        length_x = sum(a for a, _ in both) / sum(b for _, b in both) if base and both else None
        time_x = statistics.median(cell.seconds) / statistics.median(base.seconds) if base else None
        found = [n for n in cell.lengths if n is not None]
        print(
            f"{env_id:34s} {mode:6s} {statistics.median(cell.seconds):8.2f} {max(cell.seconds):8.2f} "
            f"{statistics.median(cell.grounding):7.2f} {statistics.median(cell.nodes):8.0f} {max(cell.nodes):8d} "
            f"{statistics.median(found) if found else float('nan'):6.1f} {len(cell.lengths) - len(found):5d} "
            f"{_fmt_ratio(time_x):>7s} {_fmt_ratio(length_x):>8s}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", nargs="+", default=list(PANEL), help="env ids (default: the panel)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 per id (default: 5)")
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=["astar", "wastar", "gbfs"])
    parser.add_argument("--max-nodes", type=int, default=20_000, help="node bound per search (default: 20000)")
    parser.add_argument("--weight", type=float, default=SearchConfig().weight, help="wastar's weight")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    modes = list(dict.fromkeys(args.algorithms))
    print(f"seeds 0-{args.seeds - 1}, node bound {args.max_nodes}, wastar weight {args.weight:g}; CPU seconds")
    print(
        f"{'env id':34s} {'mode':6s} {'median s':>8s} {'worst s':>8s} {'ground':>7s} {'nodes':>8s} {'max nod':>8s} "
        f"{'length':>6s} {'none':>5s} {'time x':>7s} {'length x':>8s}"
    )
    total: dict[str, Cell] = {m: Cell() for m in modes}
    for env_id in args.ids:
        cells = {m: Cell() for m in modes}
        for seed in range(args.seeds):
            env = gym.make(env_id)
            run = start_planner_episode(env, seed=seed, config=PlannerRunConfig())
            state, goals = run.runner.observe(), run.goals
            for mode in modes:
                config = SearchConfig(algorithm=mode, max_nodes=args.max_nodes, weight=args.weight)
                seconds, grounding, nodes, length = search_once(state, goals, config)
                for cell in (cells[mode], total[mode]):
                    cell.seconds.append(seconds)
                    cell.grounding.append(grounding)
                    cell.nodes.append(nodes)
                    cell.lengths.append(length)
            env.close()
        report(env_id, cells)
    report("ALL", total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
