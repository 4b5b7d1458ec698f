"""How rare a subtask is for a uniformly random policy: the diagnosis behind ``env.subgoal_reward``.

Runs ``--episodes`` single-subtask episodes (:class:`modrl.envs.subtask_env.SubtaskEnv`, episode ``k`` seeded ``k``)
of one train task with uniformly random actions and prints the success rate, the share of episodes in which each
subgoal of the subtask (:func:`modrl.envs.subtask_symbols.subgoal_conjunctions`) held at some step, the mean episode
length, the step limit and the CPU seconds spent. ``--start-carrying`` starts every episode with the object to move
in hand (``putnext`` only), as the start-state curriculum does.

    python experiments/options/random_subtask.py --task putnext-yellow-box-blue-key --episodes 300
    python experiments/options/random_subtask.py --task putnext-yellow-box-blue-key --episodes 300 --start-carrying
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from modrl.envs.subtask_env import SubtaskEnv
from modrl.envs.subtask_symbols import subgoal_conjunctions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="sequences")
    parser.add_argument("--task", default="putnext-yellow-box-blue-key", help="a single-subtask task of the suite")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random actions")
    parser.add_argument("--start-carrying", action="store_true", help="start with the object to move in hand")
    args = parser.parse_args(argv)
    start = time.process_time()
    env = SubtaskEnv(
        [args.task], suite=args.suite, parameterised=False, start_carrying=1.0 if args.start_carrying else 0.0
    )
    rng = np.random.default_rng(args.seed)
    successes, lengths = 0, []
    goals = subgoal_conjunctions(env.current_subtask)
    reached = np.zeros(len(goals))
    for episode in range(args.episodes):
        _, info = env.reset(seed=episode)
        held = np.array([goal <= info.get("predicates", frozenset()) for goal in goals])
        done, steps = False, 0
        while not done:
            _, _, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
            held |= np.array([goal <= info["predicates"] for goal in goals])
            steps += 1
            done = terminated or truncated
        successes += bool(info["is_success"])
        reached += held
        lengths.append(steps)
    limit = env.current_env.unwrapped.max_steps
    print(f"{args.task}: random success {successes / args.episodes:.3f} over {args.episodes} episodes")
    for goal, count in zip(goals, reached, strict=True):
        print(f"  subgoal {' & '.join(sorted(goal))}: held in {count / args.episodes:.3f} of the episodes")
    print(f"  mean length {np.mean(lengths):.1f} steps (limit {limit}); {time.process_time() - start:.1f} CPU s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
