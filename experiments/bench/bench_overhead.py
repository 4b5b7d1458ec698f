"""Overhead of ``modrl train`` over a plain SB3 script with the identical model and settings, measured in one run.

Three variants of the same config, each trained in a fresh subprocess (imports excluded from the timing), one at a
time and interleaved round by round (sb3, env, train, sb3, env, train, ...) so machine-load drift hits all alike:

* ``sb3``: plain SB3. ``DummyVecEnv`` of ``Monitor(task env)`` seeded like modrl's, and the PPO/A2C model
  :func:`modrl.agents.common.builders.build_model` makes from the config (same policy, extractor and
  hyper-parameters), trained with a bare ``model.learn``.
* ``env``: the same, but on modrl's vector env (every slot wrapped for exact resume and env-error capture).
* ``train``: :func:`modrl.agents.common.training.run_training`, the function ``modrl train`` calls (callbacks,
  telemetry, guards, exact-resume bookkeeping, checkpoints), into a temporary run directory; the final
  evaluation ``modrl train`` runs afterwards is not included.

Each variant is timed (after every import) from building the vector env to the end of training (``run_training``
includes its final checkpoint), wall-clock and process CPU seconds. Prints the per-round ratios train/sb3 and
env/sb3 and their medians (the issue's target: train/sb3 >= 0.95). On a machine shared with other work the wall-clock
of one variant can swing by 2x between rounds; ``--concurrent`` runs a round's variants at the same time instead (one
process per core, so both see the same load), and its cpu-seconds ratio is the steadier number. ``--profile VARIANT``
runs one variant under cProfile instead and prints its top functions.

    python experiments/bench/bench_overhead.py --frames 20000 --repeats 5
    python experiments/bench/bench_overhead.py --frames 20000 --repeats 3 --variants sb3,train --concurrent
    python experiments/bench/bench_overhead.py --frames 20000 --profile train
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gymnasium as gym
    from stable_baselines3.common.vec_env import VecEnv

    from modrl.agents.common.config import ExperimentConfig

os.environ.setdefault("OMP_NUM_THREADS", "1")

VARIANTS = ("sb3", "env", "train")


def _plain_vec_env(config: ExperimentConfig) -> VecEnv:
    from functools import partial

    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from modrl.agents.common.builders import env_options
    from modrl.envs import get_suite, make_split_env, make_suite_env, task_for_env_index

    suite = get_suite(config.env.suite)
    options = env_options(config)

    def task_env(task: int) -> gym.Env:
        return Monitor(make_suite_env(suite, task, **options))

    def split_env() -> gym.Env:
        return Monitor(make_split_env(suite, config.env.split, **options))

    if config.env.split is None:
        makers = [partial(task_env, task_for_env_index(i, suite.num_tasks)) for i in range(config.env.n_envs)]
    else:
        makers = [split_env for _ in range(config.env.n_envs)]
    venv = DummyVecEnv(makers)
    venv.seed(config.seed)
    return venv


def run_variant(variant: str, config: ExperimentConfig) -> int:
    """Train ``config`` the ``variant`` way; returns the frames trained."""
    from modrl.agents.common.builders import build_model, make_vec_env

    if variant == "train":
        from modrl.agents.common.training import run_training

        with tempfile.TemporaryDirectory() as tmp:
            return run_training(config, Path(tmp)).steps
    venv = _plain_vec_env(config) if variant == "sb3" else make_vec_env(config)
    try:
        model = build_model(config, venv)
        model.learn(config.train.total_timesteps)
        return model.num_timesteps
    finally:
        venv.close()


def _config(args: argparse.Namespace) -> ExperimentConfig:
    """The config to train; also imports everything any variant needs, so no variant's timing includes imports."""
    import torch.utils.tensorboard  # noqa: F401  (run_training's TensorBoard writers import it lazily)

    import modrl.agents.common.training  # noqa: F401
    from modrl.agents.common.config import load_experiment_config

    # MiniGrid envs on both sides: the plain SB3 script steps DummyVecEnv, so modrl must too (env.engine's default
    # 'auto' would pick the batched engine, another comparison: experiments/bench/bench_train_engine.py).
    fixed = ["env.engine=minigrid", f"train.total_timesteps={args.frames}"]
    return load_experiment_config(args.config, [*fixed, *args.overrides])


def child(args: argparse.Namespace) -> None:
    import torch

    config = _config(args)
    torch.set_num_threads(config.torch_threads)
    wall, cpu = time.perf_counter(), time.process_time()
    frames = run_variant(args.child, config)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"variant": args.child, "frames": frames, "wall_s": wall, "cpu_s": cpu, "fps": frames / wall}))


def profile(args: argparse.Namespace) -> None:
    import torch

    config = _config(args)
    torch.set_num_threads(config.torch_threads)
    profiler = cProfile.Profile()
    profiler.enable()
    run_variant(args.profile, config)
    profiler.disable()
    if args.profile_out:
        profiler.dump_stats(args.profile_out)
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def _round(args: argparse.Namespace, variants: list[str]) -> dict[str, dict]:
    """One measurement of each variant, one after the other or (``--concurrent``) all at the same time."""
    procs = {}
    for variant in variants:
        cmd = [sys.executable, __file__, "--child", variant, "--frames", str(args.frames), "--config", args.config]
        for item in args.overrides:
            cmd += ["--set", item]
        procs[variant] = proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if not args.concurrent:
            proc.wait()
    results = {}
    for variant, proc in procs.items():
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{variant} failed:\n{err}")
        results[variant] = json.loads(out.strip().splitlines()[-1])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20_000, help="training frames per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (sb3, env, train)")
    parser.add_argument("--config", default="experiments/configs/quickstart.yaml", help="experiment config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of sb3,env,train")
    parser.add_argument(
        "--concurrent",
        action="store_true",
        help="run a round's variants at the same time, one process each (pairs them under the same machine load; "
        "meant for two variants on two cores: read the cpu-seconds ratio)",
    )
    parser.add_argument("--profile", choices=VARIANTS, help="run this variant once under cProfile and print its top")
    parser.add_argument("--profile-out", help="with --profile: also write the raw cProfile stats to this file")
    parser.add_argument("--top", type=int, default=30, help="functions listed by --profile")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.profile:
        profile(args)
        return
    variants = [v for v in VARIANTS if v in args.variants.split(",")]
    rounds: list[dict[str, dict]] = []
    for round_index in range(args.repeats):
        results = _round(args, variants)
        for variant, result in results.items():
            print(
                f"round {round_index + 1} {variant:5s} {result['fps']:7.0f} frames/s  {result['wall_s']:6.1f} s wall "
                f"{result['cpu_s']:6.1f} s cpu  ({result['frames']} frames)",
                flush=True,
            )
        rounds.append(results)
    print(f"\n{'variant':8s} {'frames/s median (min, max)':>32s} {'cpu s median':>13s}")
    for variant in variants:
        fps = [r[variant]["fps"] for r in rounds]
        cpu = [r[variant]["cpu_s"] for r in rounds]
        spread = f"({min(fps):7.0f}, {max(fps):7.0f})"
        print(f"{variant:8s} {statistics.median(fps):10.0f} {spread} {statistics.median(cpu):13.1f}")
    if "sb3" in variants:
        for variant in variants[1:]:
            fps_ratio = [r[variant]["fps"] / r["sb3"]["fps"] for r in rounds]
            cpu_ratio = [r[variant]["cpu_s"] / r["sb3"]["cpu_s"] for r in rounds]
            print(f"{variant}/sb3 frames/s ratio, paired per round: {_spread(fps_ratio)}")
            from_cpu = _spread([1 / r for r in cpu_ratio])
            print(f"{variant}/sb3 frames/s ratio from cpu seconds (sb3 cpu / {variant} cpu): {from_cpu}")
            print(f"{variant}/sb3 cpu-seconds ratio, paired per round: {_spread(cpu_ratio)}")
    if "train" in variants and "sb3" in variants:
        print("target: train/sb3 frames/s >= 0.95")


if __name__ == "__main__":
    main()
