"""Where a per-symbol option fails: its success split by whether its target is in view when the episode starts.

Runs ``--episodes`` single-subtask episodes of the option's own training tasks (``--tasks first_subtask``: every
train-split task that starts with the option's subtask, as ``env.train_tasks: first_subtask`` trains it; ``single``:
the single-subtask task alone), reset seeds ``EVAL_SEED_BASE + k``, on the view the option was trained with (7x7,
whole grid, or the map of ``env.map_view``), actions sampled (``--greedy``: the most likely), and prints the success
rate of the episodes whose target object was in MiniGrid's 7x7 view at the start and of those where it was not, with
the length of the failed episodes. A memoryless option that must search for an out-of-view target shows it here.

    python experiments/options/out_of_view.py RUN/options --option goto-green-ball --episodes 200
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

from modrl.agents.planning.library import load_library
from modrl.agents.planning.rollouts import skill_action
from modrl.envs import get_suite, parse_task
from modrl.envs.subtask_env import SubtaskEnv
from modrl.envs.wrappers import minigrid_env
from modrl.options import Option
from modrl.seeds import EVAL_SEED_BASE


def option_tasks(suite: str, split: str, option: str, which: str) -> list[str]:
    """The tasks of ``split`` the option trains on (see the module docstring)."""
    tasks = [t for t in get_suite(suite).split(split) if parse_task(t).subtasks[0].name == option]
    return [t for t in tasks if len(parse_task(t)) == 1] if which == "single" else tasks


def target_in_view(env: SubtaskEnv) -> bool:
    """The current subtask's object is in MiniGrid's 7x7 view of the task env now."""
    image = minigrid_env(env.current_env).gen_obs()["image"]
    obj = env.current_subtask.obj
    return bool(((image[..., 0] == OBJECT_TO_IDX[obj.type]) & (image[..., 1] == COLOR_TO_IDX[obj.colour])).any())


def run_episodes(option: Option, env: SubtaskEnv, episodes: int, *, greedy: bool) -> dict[str, Any]:
    """Success by target in view at the start or not, and the failed episodes' lengths (see the module docstring)."""
    wins: dict[bool, list[bool]] = {True: [], False: []}
    failed: list[int] = []
    for k in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED_BASE + k)
        seen, done, steps, info = target_in_view(env), False, 0, {}
        while not done:
            with torch.no_grad():
                action = int(skill_action(option, obs, deterministic=greedy)[0])
            obs, _, terminated, truncated, info = env.step(action)
            done, steps = terminated or truncated, steps + 1
        wins[seen].append(bool(info["is_success"]))
        if not info["is_success"]:
            failed.append(steps)
    out: dict[str, Any] = {
        key: {"episodes": len(wins[seen]), "success": float(np.mean(wins[seen])) if wins[seen] else None}
        for key, seen in (("in_view", True), ("out_of_view", False))
    }
    return {**out, "failed_lengths": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", help="an option library directory (modrl options train RUN/options)")
    parser.add_argument("--option", required=True, help="a per-symbol option of the library, e.g. goto-green-ball")
    parser.add_argument("--suite", default="sequences")
    parser.add_argument("--split", default="train")
    parser.add_argument("--tasks", choices=("first_subtask", "single"), default="first_subtask")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the sampled actions")
    parser.add_argument("--greedy", action="store_true", help="the most likely action instead of a sampled one")
    parser.add_argument("--out", type=Path, help="write the counts as JSON here")
    args = parser.parse_args(argv)
    library = load_library(args.library)
    if args.option not in library or library.get(args.option).parameterised:
        parser.error(f"{args.option!r} is not a per-symbol option of {args.library} (options: {library.names})")
    option = library.get(args.option)
    option.eval()
    tasks = option_tasks(args.suite, args.split, args.option, args.tasks)
    if not tasks:
        parser.error(f"no task of {args.suite}/{args.split} starts with {args.option}")
    side = option.config.image_shape[0]
    env = SubtaskEnv(
        tasks,
        suite=args.suite,
        parameterised=False,
        view_size=None if side == 7 else side,
        map_view=option.config.map_view,
    )
    torch.manual_seed(args.seed)
    start = time.process_time()
    result = run_episodes(option, env, args.episodes, greedy=args.greedy)
    env.close()
    mode = "greedy" if args.greedy else "sampled"
    print(
        f"{args.option} ({mode}, {args.episodes} episodes, {len(tasks)} tasks, {time.process_time() - start:.0f} CPU s)"
    )
    for key in ("in_view", "out_of_view"):
        part = result[key]
        rate = "-" if part["success"] is None else f"{part['success']:.2f}"
        print(f"  target {key.replace('_', ' ')} at the start: {part['episodes']} episodes, success {rate}")
    failed = result["failed_lengths"]
    if failed:
        print(f"  failed episodes: {len(failed)}, length median {np.median(failed):.0f}, max {max(failed)}")
    if args.out:
        args.out.write_text(json.dumps({"option": args.option, "mode": mode, **result}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
