"""Start-up of a ``train.workers: 2`` run: workers spawned first (today) vs after the main process's set-up (before).

``run_training`` with ``train.workers > 1`` spawns the workers before it builds its own envs and model
(:meth:`~modrl.agents.common.workers.WorkerGroup.spawn`), so a worker's start (a fresh interpreter importing torch,
SB3 and MiniGrid, then its envs and model) overlaps the main process's set-up; :meth:`~.WorkerGroup.join` then waits
for them. The ``after`` side emulates the earlier order in the same process and code: ``spawn`` does nothing when
``run_training`` calls it and runs inside ``join`` instead. Both sides train the same short run; reported per side:
seconds from calling ``run_training`` to the end of ``join`` (training starts right after), median over alternating
rounds, and the ratio first / after. Needs two idle cores (the overlap uses the second one).

    OMP_NUM_THREADS=1 python experiments/bench/bench_worker_start.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from modrl.agents.common import workers
from modrl.agents.common.config import load_experiment_config
from modrl.agents.common.training import run_training
from modrl.shipped import resolve_config

#: 128 envs x 32 steps on two processes, one rollout: the run ends right after it starts.
OVERRIDES = [
    "train.workers=2",
    "env.n_envs=128",
    "algo.n_steps=32",
    "algo.batch_size=1024",
    "algo.n_epochs=1",
    "train.total_timesteps=4096",
    "train.checkpoint_every=4096",
]


@contextmanager
def spawned_after_set_up() -> Iterator[None]:
    """The order before: ``spawn`` deferred to ``join``, after the main process's envs, model and run directory."""
    spawn, join = workers.WorkerGroup.spawn, workers.WorkerGroup.join

    def late_join(self: workers.WorkerGroup, model: Any, checkpoint: Any) -> None:
        spawn(self)
        join(self, model, checkpoint)

    workers.WorkerGroup.spawn = lambda self: None  # type: ignore[method-assign]
    workers.WorkerGroup.join = late_join  # type: ignore[method-assign]
    try:
        yield
    finally:
        workers.WorkerGroup.spawn, workers.WorkerGroup.join = spawn, join  # type: ignore[method-assign]


def start_up_seconds(config_name: str, root: Path, deferred: bool) -> float:
    """Seconds from calling ``run_training`` to the end of ``WorkerGroup.join`` for one short run (``deferred``: the
    workers spawned after the main process's set-up)."""
    config = load_experiment_config(resolve_config(config_name), OVERRIDES)
    joined: list[float] = []
    join = workers.WorkerGroup.join

    def timed_join(self: workers.WorkerGroup, model: Any, checkpoint: Any) -> None:
        join(self, model, checkpoint)
        joined.append(time.perf_counter())

    workers.WorkerGroup.join = timed_join  # type: ignore[method-assign]
    try:
        with spawned_after_set_up() if deferred else nullcontext():
            start = time.perf_counter()
            run_training(config, Path(tempfile.mkdtemp(prefix="start-", dir=root)))
    finally:
        workers.WorkerGroup.join = join  # type: ignore[method-assign]
    return joined[0] - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="quickstart", help="config file or shipped name (default: quickstart)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds (median reported)")
    args = parser.parse_args(argv)
    sides = {"spawned first": False, "after set-up": True}
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="bench-worker-start-") as tmp:
        for round_ in range(args.repeats):
            for name, deferred in sides.items():
                seconds[name].append(start_up_seconds(args.config, Path(tmp), deferred))
                print(f"round {round_ + 1}: {name}: {seconds[name][-1]:.2f} s", flush=True)
    first, after = (statistics.median(seconds[name]) for name in sides)
    print(f"set-up to training start, median of {args.repeats}: spawned first {first:.2f} s, after {after:.2f} s")
    print(f"ratio spawned first / after set-up: {first / after:.2f}")


if __name__ == "__main__":
    main()
