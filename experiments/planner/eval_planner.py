"""Success of the planner on a suite split, executing its plans with scripted skills or with learned options.

For every task of the split and every seed: reset the env, read the symbolic state, plan to the task's goals
(A*), execute with monitoring and re-planning (at most 5 re-plans), and count the env's own success. With
``--options LIBRARY_DIR`` the plan's skills are run by the learned options only (no scripted fallback: a skill no
option serves fails, and the planner re-plans). Prints success per task and the mean; ``--out`` writes JSON.

    python experiments/planner/eval_planner.py --suite sequences --split test --seeds 10
    python experiments/planner/eval_planner.py --suite sequences --split test --seeds 10 --options RUN/options
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np
import torch

from modrl.envs import get_suite
from modrl.envs.operators import goals_for_env, planning_domain
from modrl.envs.predicates import env_planning_state
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.planner import MonitorConfig, SearchConfig, execute

SEED_BASE = 1_000_000_000  # evaluation seeds, disjoint from training seeds as in modrl eval


def run_episode(env_id: str, kwargs: dict[str, Any], seed: int, library: Any, option_steps: int,
                deterministic: bool = True) -> dict[str, Any]:
    env = gym.make(env_id, **kwargs)
    runner: Any
    if library is not None:
        from modrl.agents.option_skills import learned_skills, with_predicates

        env = with_predicates(env)
        env.reset(seed=seed)
        runner = learned_skills(env, library, fallback=None, max_skill_steps=option_steps, seed=seed,
                                deterministic=deterministic)
    else:
        env.reset(seed=seed)
        runner = ScriptedSkills(env)
    domain = planning_domain()
    goals = goals_for_env(env, env_planning_state(env))
    trace = execute(domain, goals, runner, MonitorConfig(search=SearchConfig(), max_replans=5))
    env.close()
    return {"success": bool(runner.episode_success), "replans": trace.replans, "steps": trace.total_steps,
            "outcome": trace.outcome.value}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="sequences")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seeds", type=int, default=10, help="episodes per task (seeds 10^9 + k)")
    parser.add_argument("--options", type=Path, help="an option library directory (modrl options train RUN/options)")
    parser.add_argument("--option-steps", type=int, default=100, help="step cap of one option call")
    parser.add_argument("--stochastic", action="store_true", help="sample the options' actions (default: greedy)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    library = None
    if args.options is not None:
        from modrl.agents.options_router import load_library

        library = load_library(str(args.options))
    suite = get_suite(args.suite)
    results: dict[str, list[dict[str, Any]]] = {}
    for name in suite.split(args.split):
        spec = suite.tasks[suite.task_index(name)]
        results[name] = [run_episode(spec.env_id, dict(spec.kwargs), SEED_BASE + k, library, args.option_steps,
                                     not args.stochastic) for k in range(args.seeds)]
        rate = np.mean([r["success"] for r in results[name]])
        print(f"{name:90s} {rate:.2f}  re-plans {np.mean([r['replans'] for r in results[name]]):.1f}", flush=True)
    overall = np.mean([r["success"] for runs in results.values() for r in runs])
    skills = "scripted skills" if library is None else \
        f"learned options ({'stochastic' if args.stochastic else 'greedy'})"
    print(f"{args.suite}/{args.split} with {skills}: mean success {overall:.3f} over {len(results)} tasks x "
          f"{args.seeds} seeds")
    if args.out:
        args.out.write_text(json.dumps({"skills": skills, "mean_success": overall, "tasks": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
