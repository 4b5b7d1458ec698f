"""Steps/s of Python MiniGrid vs the batched engine (``modrl.envs.fast``), per task, measured in the same run.

For every task of ``--suite`` the engine covers, both sides run ``--envs`` env slots on the same seeds and the same
uniformly random actions for ``--steps`` env steps in total, resetting a slot when its episode ends:

* MiniGrid: the envs modrl trains on (``make_task_env``: MiniGrid + ``SuccessInfo`` + ``TaskObservation``), stepped
  one by one in a plain Python loop (no vector-env overhead: the fastest way to drive them in one process);
* engine: one ``BatchedMiniGrid.step`` per step of all slots (auto-reset inside, layouts from MiniGrid's generator).

With ``--split NAME`` every slot is instead a split env (``make_split_env``: a task of the split drawn per episode, as
``env.split`` trains) and one row is measured for the whole split; each slot's task envs (built on first draw) are
built before the clock starts on both sides, as they are after the first few thousand steps of a run. On modrl's
generated tasks (``TaskEnv``) the MiniGrid side is the env as training builds it, so it also computes
``info["predicates"]`` every step (the planner's symbolic state, which the engine leaves out: nothing in training
reads it).

The two sides take identical trajectories (``tests/test_fast_engine.py`` proves it step by step); the episode counts
are printed as a check. Sides alternate for ``--repeats`` rounds and the median steps per CPU-second of each is
reported with the ratio engine / MiniGrid. One process, one thread: run with ``OMP_NUM_THREADS=1``; CPU time of this
process, so other load on a shared machine does not count.

    OMP_NUM_THREADS=1 python experiments/bench/bench_engine.py --envs 64 --steps 20000 --repeats 3
    OMP_NUM_THREADS=1 python experiments/bench/bench_engine.py --suite colour-type --split train --envs 64
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from modrl.envs import SplitTaskEnv, get_suite, make_split_env, make_task_env
from modrl.envs.fast import BatchedMiniGrid, unsupported_reason


def warm(env: gym.Env) -> gym.Env:
    """``env`` with every task env of a split env built (``SplitTaskEnv`` builds them on first draw)."""
    if isinstance(env, SplitTaskEnv):
        for index in env.task_ids:
            env.task_env(index)
    return env


def run_minigrid(make: Callable[[], gym.Env], seeds: list[int], actions: np.ndarray) -> tuple[float, int]:
    """``(steps/s, episodes ended)`` stepping ``len(seeds)`` wrapped MiniGrid envs one by one."""
    envs = [warm(make()) for _ in seeds]
    for env, seed in zip(envs, seeds, strict=True):
        env.reset(seed=seed)
    episodes = 0
    start = time.process_time()
    for row in actions:
        for env, action in zip(envs, row.tolist(), strict=True):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
                episodes += 1
    return actions.size / (time.process_time() - start), episodes


def run_engine(make: Callable[[], gym.Env], seeds: list[int], actions: np.ndarray) -> tuple[float, int]:
    """``(steps/s, episodes ended)`` stepping all slots per call of the batched engine."""
    engine = BatchedMiniGrid([warm(make()) for _ in seeds])
    engine.reset(seeds)
    episodes = 0
    start = time.process_time()
    for row in actions:
        out = engine.step(row)
        episodes += int(np.count_nonzero(out.terminated | out.truncated))
    return actions.size / (time.process_time() - start), episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="minigrid-basic", help="suite whose tasks are measured")
    parser.add_argument("--envs", type=int, default=64, help="env slots stepped together")
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per measurement (all slots together)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds per task (median reported)")
    parser.add_argument("--split", default=None, help="measure one split env per slot (a task per episode)")
    args = parser.parse_args()
    suite = get_suite(args.suite)
    seeds = list(range(args.envs))
    actions = np.random.default_rng(0).integers(0, 7, size=(max(1, args.steps // args.envs), args.envs))
    print(f"suite {suite.name}, {args.envs} envs, {actions.size} steps per measurement, median of {args.repeats}")
    rows: list[tuple[str, Callable[[], gym.Env]]] = []
    if args.split is not None:
        rows.append((f"split {args.split}", lambda: make_split_env(suite, args.split)))
    for index, task in enumerate(suite.tasks if args.split is None else ()):
        rows.append((task.name, lambda index=index: make_task_env(suite, index)))
    width = max(14, *(len(name) for name, _ in rows))
    print(f"{'task':<{width}} {'MiniGrid/s':>11} {'engine/s':>11} {'ratio':>7} {'episodes':>9}")
    for name, make in rows:
        reason = unsupported_reason(make())
        if reason is not None:
            print(f"{name:<{width}} not covered by the engine ({reason}); MiniGrid is the fallback")
            continue
        reference, engine = [], []
        for _ in range(args.repeats):
            reference.append(run_minigrid(make, seeds, actions))
            engine.append(run_engine(make, seeds, actions))
        if reference[0][1] != engine[0][1]:
            raise SystemExit(f"{name}: MiniGrid ended {reference[0][1]} episodes, the engine {engine[0][1]}")
        ref_rate = statistics.median(r for r, _ in reference)
        engine_rate = statistics.median(r for r, _ in engine)
        ratio = engine_rate / ref_rate
        print(f"{name:<{width}} {ref_rate:>11,.0f} {engine_rate:>11,.0f} {ratio:>6.1f}x {engine[0][1]:>9}")
    print("ratio = engine steps/s / MiniGrid steps/s, same process, same trajectories")


if __name__ == "__main__":
    main()
