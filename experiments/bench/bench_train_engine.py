"""Training frames/s of ``modrl train``'s PPO on MiniGrid vs the batched engine (``env.engine``), in the same run.

Both sides train the same config (the quick start by default) from the same seed through
``modrl.agents.common.training.run_training`` (callbacks, telemetry, guards, checkpoints: what ``modrl train`` runs),
alternating minigrid / fast for ``--repeats`` rounds per env count. The two engines are step-for-step identical, so
both sides train the very same run (``tests/test_fast_vec_env.py`` proves the weights end bit-identical); only the
time differs. Reported per side: the median frames per CPU-second and the median share of CPU time spent collecting
rollouts (env steps plus the policy's forward passes), and the ratio fast / minigrid. CPU time of this process (one
process, one torch thread: run with ``OMP_NUM_THREADS=1``), so other load on a shared machine does not count.

    OMP_NUM_THREADS=1 python experiments/bench/bench_train_engine.py --envs 6 64 --frames 6144 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from modrl.agents.common.config import load_experiment_config
from modrl.agents.common.training import run_training
from modrl.shipped import resolve_config

ENGINES = ("minigrid", "fast")


class RolloutClock:
    """Seconds spent in SB3's ``collect_rollouts`` (class-level patch, this bench only)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        original = OnPolicyAlgorithm.collect_rollouts

        def timed(model: OnPolicyAlgorithm, *args: Any, **kwargs: Any) -> bool:
            start = time.process_time()
            try:
                return original(model, *args, **kwargs)
            finally:
                self.seconds += time.process_time() - start

        OnPolicyAlgorithm.collect_rollouts = timed  # type: ignore[method-assign]


def train_once(config_name: str, engine: str, envs: int, frames: int, root: Path, clock: RolloutClock) -> tuple:
    """``(frames/s, rollout share)`` of one training run of ``frames`` frames."""
    overrides = [f"env.engine={engine}", f"env.n_envs={envs}", f"train.total_timesteps={frames}"]
    overrides.append(f"train.checkpoint_every={frames}")  # one checkpoint, at the end, as a short run has
    config = load_experiment_config(resolve_config(config_name), overrides)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{engine}-{envs}-", dir=root))
    clock.seconds = 0.0
    start = time.process_time()
    outcome = run_training(config, run_dir)
    elapsed = time.process_time() - start
    return outcome.steps / elapsed, clock.seconds / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="quickstart", help="config file or shipped config name")
    parser.add_argument("--envs", type=int, nargs="+", default=[6, 64], help="env counts to measure")
    parser.add_argument("--frames", type=int, default=6144, help="frames per training run (rounded up by SB3)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds per env count (median reported)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clock = RolloutClock()
    print(f"config {args.config}, {args.frames} frames per run, median of {args.repeats} alternating rounds")
    header = f"{'envs':>5} {'minigrid fr/s':>14} {'fast fr/s':>10} {'ratio':>6} {'rollout share minigrid/fast':>29}"
    print(header + "  ratio per round")
    with tempfile.TemporaryDirectory(prefix="bench-train-engine-") as tmp:
        for envs in args.envs:
            results: dict[str, list[tuple[float, float]]] = {engine: [] for engine in ENGINES}
            for _ in range(args.repeats):
                for engine in ENGINES:
                    results[engine].append(train_once(args.config, engine, envs, args.frames, Path(tmp), clock))
            fps = {engine: statistics.median(r[0] for r in results[engine]) for engine in ENGINES}
            share = {engine: statistics.median(r[1] for r in results[engine]) for engine in ENGINES}
            ratios = [f[0] / m[0] for m, f in zip(results["minigrid"], results["fast"], strict=True)]
            print(
                f"{envs:>5} {fps['minigrid']:>14,.0f} {fps['fast']:>10,.0f} {statistics.median(ratios):>5.2f}x "
                f"{share['minigrid']:>18.0%} / {share['fast']:.0%}  " + " ".join(f"{r:.2f}" for r in ratios)
            )


if __name__ == "__main__":
    main()
