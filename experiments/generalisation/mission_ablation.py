"""Does a mission-conditioned agent read the mission? Evaluate it with the true mission and with a wrong one.

For every task, the same evaluation episodes (same env seeds, deterministic policy) are run three times: with the
true mission tokens, with the mission of another task of the same verb (a different object), and with an all-padding
mission. ``--stochastic`` samples the actions instead (seeded per episode by ``run_episode``, so a rerun repeats
itself): a policy whose greedy actions loop can still be read that way. If success with a wrong object's mission is
as high as with the true one, the agent ignores the object words, and success on held-out (colour, type) pairs says
nothing about composition. Prints a table per run and the mean over runs; writes JSON with --out.

    python experiments/generalisation/mission_ablation.py runs/sweeps/<sweep>/trials/* --episodes 20
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

from modrl.agents.common.builders import env_options
from modrl.agents.common.evaluation import load_run_policy, run_episode
from modrl.envs import MissionVocabulary, get_suite, make_suite_env
from modrl.envs.grammar import parse_task
from modrl.seeds import EVAL_SEED_BASE

CONDITIONS = ("true", "other-object", "blank")


class FixedMission(gym.ObservationWrapper):
    """Replace ``obs["mission"]`` with fixed token ids (the wrong mission of the ablation)."""

    def __init__(self, env: gym.Env, tokens: np.ndarray) -> None:
        super().__init__(env)
        self.tokens = tokens

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        return {**observation, "mission": self.tokens.copy()}


def other_task(name: str, names: list[str]) -> str:
    """Another task with the same verb and a different object: the next one of that verb, cyclically."""
    verb = parse_task(name).subtasks[0].verb
    same = [n for n in names if parse_task(n).subtasks[0].verb == verb]
    return same[(same.index(name) + 1) % len(same)]


def ablate_run(
    run_dir: Path, episodes: int, tasks_per_split: int, deterministic: bool = True
) -> dict[str, dict[str, float]]:
    config, policy, _ = load_run_policy(run_dir)
    suite = get_suite(config.env.suite)
    options = env_options(config)
    vocabulary = MissionVocabulary.from_grammar()
    out: dict[str, dict[str, float]] = {}
    for split in suite.splits:
        names = list(suite.split(split))
        step = max(1, len(names) // tasks_per_split)
        rates: dict[str, list[float]] = {c: [] for c in CONDITIONS}
        for name in names[::step]:
            env = make_suite_env(suite, suite.task_index(name), **options)
            max_len = env.observation_space["mission"].shape[0]
            wrong = vocabulary.encode(parse_task(other_task(name, names)).mission, max_len)
            envs = {
                "true": env,
                "other-object": FixedMission(env, wrong),
                "blank": FixedMission(env, np.zeros(max_len, dtype=np.int64)),
            }
            for condition, wrapped in envs.items():
                seeds = [EVAL_SEED_BASE + k for k in range(episodes)]
                wins = [run_episode(wrapped, policy, None, seed, deterministic)[2] for seed in seeds]
                rates[condition].append(float(np.mean(wins)))
            env.close()
        out[split] = {c: float(np.mean(v)) for c, v in rates.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (mission-token agents)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per task and condition (default 20)")
    parser.add_argument("--tasks-per-split", type=int, default=12, help="tasks sampled per split (default 12)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--stochastic", action="store_true", help="sample the actions (default: greedy)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for run in args.runs:
        results[str(run)] = ablate_run(run, args.episodes, args.tasks_per_split, not args.stochastic)
        for split, row in results[str(run)].items():
            cells = "  ".join(f"{c} {row[c]:.3f}" for c in CONDITIONS)
            print(f"{run.name:40s} {split:5s}  {cells}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
