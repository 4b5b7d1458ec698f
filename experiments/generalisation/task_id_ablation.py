"""Is a baseline's held-out failure its task-id input? Evaluate it with the held-out tasks' id columns zeroed.

The features every agent's heads read end in the task id as a one-hot (``MinigridFeaturesExtractor``). A monolithic
actor's first layer reads all of it; its columns for held-out tasks never see a non-zero input in training, so they
keep their random initial weights, and on a held-out task they add a random vector to the first hidden layer. (The
modular agent's modules read the observation features alone; only a task-conditioned router reads the id.) This
script zeroes those columns in the actor and critic (a held-out task then gets no task-id input at all, train tasks
are untouched by construction) and evaluates the held-out split again, greedy and sampled, on the evaluation seeds.
If held-out success rises, the baseline's gap was (partly) that untrained input, not a failure to compose.

    python experiments/generalisation/task_id_ablation.py RUN [RUN ...] --episodes 20 --out ablation.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from torch import nn

from modrl.agents.common.evaluation import evaluate_policy, load_run_policy
from modrl.envs import get_suite


def zero_held_out_columns(policy: nn.Module, *, num_tasks: int, held_out: list[int]) -> int:
    """Zero, in every first layer that reads the task one-hot, the columns of ``held_out`` task ids; returns how
    many layers were changed. A first layer is a ``Linear`` whose input is the extractor's whole output."""
    features_dim = policy.features_extractor.features_dim  # type: ignore[union-attr]
    changed = 0
    for module in policy.modules():
        if isinstance(module, nn.Linear) and module.in_features == features_dim:
            start = features_dim - num_tasks
            with torch.no_grad():
                module.weight[:, [start + i for i in held_out]] = 0.0
            changed += 1
    return changed


def held_out_success(run_dir: Path, episodes: int, zero: bool) -> dict[str, float]:
    """Mean held-out success, greedy and sampled, and ``layers_zeroed`` (0 when ``zero`` is false)."""
    config, policy, _ = load_run_policy(run_dir)
    suite = get_suite(config.env.suite)
    held_out = [suite.task_index(name) for name in suite.split("test")]
    out = {"layers_zeroed": 0.0}
    if zero:
        layers = zero_held_out_columns(policy, num_tasks=len(suite.tasks), held_out=held_out)
        if layers == 0:
            raise SystemExit(f"{run_dir}: no layer reads the task one-hot; nothing to ablate")
        out["layers_zeroed"] = float(layers)
    for mode, deterministic in (("greedy", True), ("sampled", False)):
        report = evaluate_policy(policy, config, episodes=episodes, deterministic=deterministic, splits=["test"])
        out[mode] = float(np.mean([t.success_rate for t in report.tasks]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories trained on a split suite")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per held-out task (default 20)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for run in args.runs:
        as_trained = held_out_success(run, args.episodes, zero=False)
        zeroed = held_out_success(run, args.episodes, zero=True)
        results[str(run)] = {"as_trained": as_trained, "task_id_zeroed": zeroed}
        cells = "  ".join(f"{m} {as_trained[m]:.3f} -> {zeroed[m]:.3f}" for m in ("greedy", "sampled"))
        print(f"{run.name[:40]:40s} held-out: {cells}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
