"""Frames/s of ``modrl train`` with ``train.workers`` processes against one process, measured in the same run.

Each side trains the same config through :func:`modrl.agents.common.training.run_training` (what ``modrl train``
runs: callbacks, telemetry, guards, checkpoints, and with workers the processes' start, the merged episodes and
the checkpointed worker states), alternating the worker counts for ``--repeats`` rounds. Reported: frames per
wall-clock second (the processes run at once, so CPU time would hide what a second core buys), median over the
rounds, and the ratio to the first worker count. Run it on an otherwise idle machine: two busy processes slow each
other down, and a third would take a core from the run.

The recipe is the speed panel's ``fast`` one (64 envs x 32 steps, minibatch 512, 3 epochs, lr 2e-3) with, by
default, 128 envs and minibatch 1024 (each of 2 processes then runs the fast recipe's shape). Throughput only: a run
with 2 workers is a different run from one process (advantages are normalised per process's share of a minibatch).

    OMP_NUM_THREADS=1 python experiments/bench/bench_train_workers.py --frames 409600 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from modrl.agents.common.config import load_experiment_config
from modrl.agents.common.training import run_training
from modrl.shipped import resolve_config

RECIPE = ["env.engine=auto", "algo.n_steps=32", "algo.n_epochs=3", "algo.learning_rate=0.002"]


def train_once(args: argparse.Namespace, workers: int, root: Path) -> float:
    """Frames per wall-clock second of one ``run_training`` of ``args.frames`` frames over ``workers`` processes."""
    overrides = [
        *RECIPE,
        f"agent.kind={args.agent}",
        f"env.n_envs={args.envs}",
        f"algo.batch_size={args.batch_size}",
        f"train.workers={workers}",
        f"train.total_timesteps={args.frames}",
        f"train.checkpoint_every={args.frames}",  # one checkpoint, at the end
    ]
    config = load_experiment_config(resolve_config(args.config), overrides)
    run_dir = Path(tempfile.mkdtemp(prefix=f"workers{workers}-", dir=root))
    start = time.perf_counter()
    outcome = run_training(config, run_dir)
    return outcome.steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="quickstart", help="config file or shipped name (default: quickstart)")
    parser.add_argument("--agent", default="modular", choices=["modular", "monolithic"])
    parser.add_argument("--frames", type=int, default=409_600, help="frames per run, all processes together")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds (median reported)")
    parser.add_argument("--envs", type=int, default=128, help="env slots, all processes together")
    parser.add_argument("--batch-size", type=int, default=1024, help="minibatch, all processes together")
    args = parser.parse_args(argv)
    fps: dict[int, list[float]] = {w: [] for w in args.workers}
    with tempfile.TemporaryDirectory(prefix="bench-train-workers-") as tmp:
        for round_ in range(args.repeats):
            for workers in args.workers:
                fps[workers].append(train_once(args, workers, Path(tmp)))
                print(f"round {round_}  train.workers={workers}: {fps[workers][-1]:,.0f} frames/s", flush=True)
    base = statistics.median(fps[args.workers[0]])
    print(f"\n{args.agent}, {args.envs} envs, minibatch {args.batch_size}, {args.frames:,} frames per run")
    print(f"train.workers  frames/s (median)  ratio to {args.workers[0]}")
    for workers in args.workers:
        median = statistics.median(fps[workers])
        print(f"{workers:>13}  {median:>17,.0f}  {median / base:>8.2f}x")


if __name__ == "__main__":
    main()
