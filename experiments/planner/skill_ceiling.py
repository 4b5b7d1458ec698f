"""The planner's ceiling with a given set of skills: perfect (scripted) skills for some calls only.

Which skills must a library have for the planner to solve a split? This runs the planner with the scripted skills but
lets it call only the skills you name -- as if those were perfectly learned options and the rest did not exist -- and
prints the success per task, the mean, and the unserved calls the plans wanted most:

    python experiments/planner/skill_ceiling.py --suite sequences --split test \\
        --serve goto-green-ball,pickup-blue-key,goto-purple-door,open-red-door,putnext-yellow-box-blue-key
    python experiments/planner/skill_ceiling.py ... --serve <the five>,open      # + an open option for every door

``--serve`` takes per-symbol subtask names (``pickup-blue-key``) and skill names (``open``, ``drop``: every call of
that skill). Episode ``k`` of a task is seeded ``EVAL_SEED_BASE + k`` as in ``modrl eval --planner``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np

from modrl.agents.planning.episode import PlannerRunConfig, start_planner_episode
from modrl.envs import get_suite
from modrl.envs.operators import skill_subtask
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.planner import GroundOperator
from modrl.planner.monitor import SkillResult, SkillStatus
from modrl.planner.search import Allowed
from modrl.seeds import EVAL_SEED_BASE


def serves(names: set[str]) -> Allowed:
    """``step -> bool``: the step's skill is named, or its grammar subtask is."""

    def allowed(step: GroundOperator) -> bool:
        if step.skill in names:
            return True
        sub = skill_subtask(step)
        return sub is not None and sub.name in names

    return allowed


class Limited:
    """The scripted skills, refusing the steps ``allowed`` does not pass (counted in ``refused``)."""

    def __init__(self, skills: ScriptedSkills, allowed: Allowed, refused: Counter[str]) -> None:
        self.skills, self.allowed, self.refused = skills, allowed, refused

    def observe(self) -> frozenset[str]:
        return self.skills.observe()

    def execute(self, step: GroundOperator) -> SkillResult:
        if not self.allowed(step):
            self.refused[step.skill] += 1
            return SkillResult(status=SkillStatus.FAILED, state=self.observe())
        return self.skills.execute(step)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="sequences")
    parser.add_argument("--split", default="test")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task (default 10)")
    parser.add_argument("--serve", required=True, help="comma-separated subtask or skill names the planner may call")
    args = parser.parse_args(argv)
    suite = get_suite(args.suite)
    if args.split not in suite.splits:
        parser.error(f"suite {args.suite!r} has no split {args.split!r}; its splits: {', '.join(suite.splits)}")
    allowed = serves({n.strip() for n in args.serve.split(",") if n.strip()})
    refused: Counter[str] = Counter()
    config = PlannerRunConfig(max_replans=5)
    everything = []
    for name in suite.splits[args.split]:
        spec = suite.tasks[suite.task_index(name)]
        wins = []
        for k in range(args.episodes):
            run = start_planner_episode(
                gym.make(spec.env_id, **dict(spec.kwargs)), seed=EVAL_SEED_BASE + k, config=config
            )
            assert isinstance(run.runner, ScriptedSkills)
            run.allowed = allowed
            try:
                run.execute(Limited(run.runner, allowed, refused))
            finally:
                run.close()
            wins.append(bool(run.runner.episode_success))
        everything += wins
        print(f"{name}: {np.mean(wins):.2f}")
    print(
        f"{args.suite}/{args.split} with {args.serve}: mean success {np.mean(everything):.3f} "
        f"over {len(everything)} episodes"
    )
    print("unserved calls the plans wanted: " + (", ".join(f"{k} {v}" for k, v in refused.most_common()) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
