"""Throughput and memory: modular PPO vs the parameter-matched monolithic SB3 PPO baseline, measured in one run.

Each measurement trains in a fresh subprocess (so peak RSS is that process's own), one at a time (so they never
compete for the 2 cores), alternating modular / monolithic for ``--repeats`` rounds. Prints frames/s of each,
the modular / baseline ratio (target >= 0.85) and peak memory.

    python experiments/bench/bench_throughput.py --frames 20000 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def child(kind: str, frames: int, config_path: str | None, overrides: list[str]) -> None:
    import torch

    from modrl.agents.common.builders import build_model, describe_model, make_vec_env
    from modrl.agents.common.config import load_experiment_config

    config = load_experiment_config(config_path, [f"agent.kind={kind}", *overrides])
    torch.set_num_threads(config.torch_threads)
    venv = make_vec_env(config)
    model = build_model(config, venv)
    start = time.perf_counter()
    model.learn(frames)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "kind": kind,
                "frames": model.num_timesteps,
                "seconds": seconds,
                "fps": model.num_timesteps / seconds,
                "peak_mib": peak_kib / 1024,
                "params": describe_model(model),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20_000, help="training frames per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of (modular, monolithic)")
    parser.add_argument("--config", default="experiments/configs/quickstart.yaml", help="experiment config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    parser.add_argument("--child", choices=["modular", "monolithic"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.frames, args.config, args.overrides)
        return
    results: dict[str, list[dict]] = {"modular": [], "monolithic": []}
    for round_index in range(args.repeats):
        for kind in ("modular", "monolithic"):
            cmd = [sys.executable, __file__, "--child", kind, "--frames", str(args.frames), "--config", args.config]
            for item in args.overrides:
                cmd += ["--set", item]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            results[kind].append(result)
            print(
                f"round {round_index + 1} {kind:10s} {result['fps']:7.0f} frames/s  peak {result['peak_mib']:.0f} MiB",
                flush=True,
            )
    fps = {k: statistics.median(r["fps"] for r in v) for k, v in results.items()}
    mem = {k: max(r["peak_mib"] for r in v) for k, v in results.items()}
    params = {k: v[0]["params"]["total"] for k, v in results.items()}
    print(f"\n{'agent':12s} {'frames/s (median)':>18s} {'peak MiB':>9s} {'params':>8s}")
    for kind in ("modular", "monolithic"):
        print(f"{kind:12s} {fps[kind]:18.0f} {mem[kind]:9.0f} {params[kind]:8d}")
    ratio = fps["modular"] / fps["monolithic"]
    print(
        f"\nthroughput ratio modular / monolithic = {ratio:.3f} (target >= 0.85); "
        f"memory ratio = {mem['modular'] / mem['monolithic']:.3f}"
    )


if __name__ == "__main__":
    main()
