"""Can two CPU cores train one PPO agent faster than one? Frames/s of data-parallel PPO, 1 vs N processes, same run.

Issue 18 asks for the modular agent to train at >= 10,000 frames/s on 2 idle cores. One process with one torch
thread trains the fast recipe at ~7,000 frames/s on the batched engine, and a second torch thread in the same process
does not help (measured: the ops are too small to split). This bench measures the other way to spend a second core:
**data-parallel PPO** (what multi-GPU RL libraries do), each of N processes with its own half of the env slots and
its own rollout buffer, gradients averaged across processes before every optimizer step, so all processes keep the
same weights:

* every process builds the same model from the same seed (and checks its weights equal rank 0's after a broadcast);
* process ``r`` steps env slots ``r*n/N .. (r+1)*n/N - 1`` of the single-process run's ``n`` (same slot seeds);
* each minibatch of ``batch/N`` samples per process; at the end of every backward pass the gradients are averaged
  across processes (:class:`modrl.agents.common.data_parallel.GradientAverager`: one flattened ``all_reduce`` per SGD
  step over gloo), so SB3's clipping and the Adam step see the mean gradient of the whole ``batch`` (what one process
  computes, up to summation order and the per-process advantage normalisation of SB3's minibatch).

Reported per world size: frames/s of the whole run (all processes' frames over the slowest process's wall-clock),
the same process-CPU split as a check, and the ratio against 1 process measured in the same run. Throughput only:
whether the data-parallel run learns as well is a separate question (its gradient is the same in expectation).

    OMP_NUM_THREADS=1 python experiments/bench/bench_data_parallel.py --frames 409600 --workers 1 2 --repeats 2
    OMP_NUM_THREADS=1 python experiments/bench/bench_data_parallel.py --envs 128 --batch-size 1024 --frames 409600
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

#: The speed panel's ``fast`` recipe (experiments/bench/speed_panel.py).
FAST = {
    "env.n_envs": 64,
    "env.engine": "auto",
    "algo.n_steps": 32,
    "algo.batch_size": 512,
    "algo.n_epochs": 3,
    "algo.learning_rate": 0.002,
}


def _worker(
    rank: int, world: int, init_file: str, config_name: str, overrides: dict[str, Any], frames: int, results: Any
) -> None:
    from stable_baselines3.common.utils import configure_logger

    from modrl.agents.common.builders import build_model, make_vec_env
    from modrl.agents.common.config import load_experiment_config
    from modrl.agents.common.data_parallel import GradientAverager, broadcast_parameters
    from modrl.shipped import resolve_config

    torch.set_num_threads(1)
    n_envs, batch = overrides["env.n_envs"], overrides["algo.batch_size"]
    if n_envs % world or batch % world:
        raise SystemExit(f"env.n_envs {n_envs} and algo.batch_size {batch} must divide by {world} workers")
    local = {**overrides, "env.n_envs": n_envs // world, "algo.batch_size": batch // world}
    config = load_experiment_config(resolve_config(config_name), [f"{k}={v}" for k, v in local.items()])
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
        # slots r*n/N.. of the single-process run: make_vec_env seeds slot i with config.seed + i
        seed = config.seed + rank * (n_envs // world)
        config = load_experiment_config(
            resolve_config(config_name), [*(f"{k}={v}" for k, v in local.items()), f"seed={seed}"]
        )
    model = build_model(config, make_vec_env(config))
    model.set_logger(configure_logger(0, None, "", False))
    if world > 1:
        broadcast_parameters(model.policy)  # the sampling RNG differs per process; the weights come from rank 0
        GradientAverager(model.policy)
        dist.barrier()
    start_cpu, start = time.process_time(), time.perf_counter()
    model.learn(total_timesteps=frames // world)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    if world > 1:
        flat = torch.cat([p.detach().reshape(-1) for p in model.policy.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        same = all(torch.equal(g, gathered[0]) for g in gathered)
        dist.destroy_process_group()
    else:
        same = True
    results.put((rank, model.num_timesteps, wall, cpu, same))
    assert model.env is not None
    model.env.close()


def measure(world: int, config_name: str, overrides: dict[str, Any], frames: int) -> dict[str, float]:
    """One data-parallel training run of ``frames`` frames over ``world`` processes."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        init_file = str(Path(tmp) / "init")
        procs = [
            ctx.Process(target=_worker, args=(r, world, init_file, config_name, overrides, frames, results))
            for r in range(world)
        ]
        for p in procs:
            p.start()
        rows = [results.get() for _ in procs]
        for p in procs:
            p.join()
            if p.exitcode:
                raise RuntimeError(f"worker exited with {p.exitcode}")
    total = sum(r[1] for r in rows)
    wall = max(r[2] for r in rows)
    if not all(r[4] for r in rows):
        raise RuntimeError("the processes' weights differ after training: the gradient averaging is broken")
    return {"frames": total, "wall_s": wall, "fps": total / wall, "cpu_s": sum(r[3] for r in rows)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="quickstart", help="config file or shipped name (default: quickstart)")
    parser.add_argument("--agent", default="modular", choices=["modular", "monolithic"])
    parser.add_argument("--frames", type=int, default=204_800, help="frames per run, all processes together")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--envs", type=int, default=FAST["env.n_envs"], help="env slots, all processes together")
    parser.add_argument(
        "--batch-size", type=int, default=FAST["algo.batch_size"], help="minibatch, all processes together"
    )
    args = parser.parse_args(argv)
    overrides = {**FAST, "agent.kind": args.agent, "env.n_envs": args.envs, "algo.batch_size": args.batch_size}
    fps: dict[int, list[float]] = {w: [] for w in args.workers}
    for round_ in range(args.repeats):
        for world in args.workers:
            row = measure(world, args.config, overrides, args.frames)
            fps[world].append(row["fps"])
            print(
                f"round {round_}  workers {world}: {row['frames']:,} frames in {row['wall_s']:.1f} s wall = "
                f"{row['fps']:,.0f} frames/s ({row['cpu_s']:.1f} CPU-s, all processes)",
                flush=True,
            )
    base = statistics.median(fps[args.workers[0]])
    print("\nworkers  frames/s (median)  ratio to", args.workers[0])
    for world in args.workers:
        med = statistics.median(fps[world])
        print(f"{world:>7}  {med:>17,.0f}  {med / base:>8.2f}x")


if __name__ == "__main__":
    main()
