"""Does a trained modular agent use its routing? Evaluate it with the router swapped for the uniform mixture.

The same evaluation (every split, fixed evaluation seeds) twice: with the agent's own router, and with every module
weighted 1/K for every task (``modrl.routers.UniformRouter``; the modules, extractor and FiLM untouched). If success
holds, the trained policy does not depend on which modules a task is routed to; if it drops, the routing carries
part of what the policy does, on train and on held-out tasks alike or not.

    python experiments/generalisation/routing_ablation.py RUN [RUN ...] --episodes 20 --stochastic --out out.json
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

from modrl.agents.common.evaluation import evaluate_policy, load_run_policy
from modrl.agents.common.policies import ModularActorCriticPolicy
from modrl.routers import UniformRouter


def per_split(run_dir: Path, episodes: int, deterministic: bool, uniform: bool) -> dict[str, float]:
    config, policy, _ = load_run_policy(run_dir)
    if not isinstance(policy, ModularActorCriticPolicy):
        raise SystemExit(f"{run_dir}: not a modular agent (agent.kind {config.agent.kind!r}); nothing to swap")
    if uniform:
        network = policy.modular.network
        old = network.router
        network.router = UniformRouter(
            num_modules=old.num_modules, num_tasks=old.num_tasks, obs_dim=old.obs_dim, condition=old.condition
        )
    report = evaluate_policy(policy, config, episodes=episodes, deterministic=deterministic, progress=False)
    splits = dict.fromkeys(t.split for t in report.tasks)
    out = {s: float(np.mean([t.success_rate for t in report.tasks if t.split == s])) for s in splits}
    # The largest mean routing weight of any task: 1/K exactly when the swap took.
    out["top_weight"] = float(max(max(t.module_usage or [0.0]) for t in report.tasks))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="modular run directories")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task (default 20)")
    parser.add_argument("--stochastic", action="store_true", help="sample the actions (default: greedy)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for run in args.runs:
        own = per_split(run, args.episodes, not args.stochastic, uniform=False)
        swapped = per_split(run, args.episodes, not args.stochastic, uniform=True)
        results[str(run)] = {"own": own, "uniform": swapped}
        cells = "  ".join(f"{split} {own[split]:.3f} -> {swapped[split]:.3f}" for split in own if split != "top_weight")
        print(f"{run.name[:40]:40s} {cells}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
