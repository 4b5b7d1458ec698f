"""Skill options in their calling states: evaluation, DAgger labels, and the demonstration-set helpers
:mod:`modrl.agents.options.skill_cloning` clones from.

Both :func:`evaluate_skill` and :func:`dagger_demos` run one option in :class:`~modrl.envs.skill_env.SkillStepEnv`
episodes (the planner's scripted prefix of an episode, then the option until the call's effects hold); DAgger also
asks the scripted skill what it would do in every state the option visits (:meth:`ScriptedSkills.next_action`).
:func:`redraw_targets` is the ``target_noise`` augmentation: what the marked object looks like changes, where it is
does not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

from modrl.agents.planning.demo_set import DemoSet
from modrl.envs.grammar import COLOURS
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.skill_env import SKILL_TYPES, EnvSpec, SkillStepEnv
from modrl.options import Option, option_inputs
from modrl.seeds import EVAL_SEED_BASE

Chunk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""One call's demonstrations: images, headings, argument slot ids, actions."""

#: What a redrawn marked object may become (:func:`redraw_targets`): the skill types that can be picked up or toggled,
#: with the state they start in (boxes, balls and keys: 0; doors: closed).
_REDRAW_OBJECTS: tuple[tuple[str, int], ...] = (("ball", 0), ("box", 0), ("key", 0), ("door", 1))


def demo_set(chunks: Sequence[Chunk], attempts: int, frames: int) -> DemoSet:
    """The :class:`DemoSet` of per-call chunks (returns left at 0)."""
    actions = np.concatenate([c[3] for c in chunks])
    return DemoSet(
        observations={
            "image": np.concatenate([c[0] for c in chunks]),
            "direction": np.concatenate([c[1] for c in chunks]).astype(np.int64),
            "args": np.concatenate([c[2] for c in chunks]),
        },
        actions=actions,
        returns=np.zeros(len(actions), np.float32),
        tasks=(),
        seeds=(),
        task_seeds=(),
        lengths=tuple(len(c[3]) for c in chunks),
        attempts=attempts,
        frames=frames,
    )


def concat_demos(first: DemoSet, second: DemoSet) -> DemoSet:
    """Both demonstration sets in one (``first``'s calls, then ``second``'s)."""
    return DemoSet(
        observations={k: np.concatenate([v, second.observations[k]]) for k, v in first.observations.items()},
        actions=np.concatenate([first.actions, second.actions]),
        returns=np.concatenate([first.returns, second.returns]),
        tasks=(),
        seeds=(),
        task_seeds=(),
        lengths=first.lengths + second.lengths,
        attempts=first.attempts + second.attempts,
        frames=first.frames + second.frames,
    )


def skill_action(option: Option, obs: Mapping[str, Any], *, deterministic: bool) -> torch.Tensor:
    """``option``'s action ``(1,)`` on a :class:`~modrl.envs.skill_env.SkillStepEnv` observation (its ``args`` only
    when the option takes words)."""
    args = torch.as_tensor(obs["args"]) if option.parameterised else None
    return option.act(*option_inputs(obs, args), deterministic=deterministic)[0]


def _run_calls(
    option: Option,
    env: SkillStepEnv,
    *,
    episodes: int,
    seed_base: int,
    deterministic: bool,
    visit: Callable[[int, ScriptedSkills | None, Mapping[str, Any]], None] | None = None,
) -> tuple[int, int]:
    """``episodes`` calls of ``option`` in ``env`` (reset with ``seed_base + k``); ``visit(k, expert, obs)`` sees every
    state before the option acts in it. Returns (successes, steps)."""
    option.eval()
    wins = steps = 0
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=seed_base + k)
            expert = ScriptedSkills(env.base) if visit is not None else None  # probed only: never steps the env
            done, info = False, dict[str, Any]()
            while not done:
                if visit is not None:
                    visit(k, expert, obs)
                action = skill_action(option, obs, deterministic=deterministic)
                obs, _, terminated, truncated, info = env.step(int(action[0]))
                done, steps = terminated or truncated, steps + 1
            wins += bool(info.get("is_success", False))
    finally:
        env.close()
    return wins, steps


def evaluate_skill(
    option: Option,
    env_ids: Sequence[EnvSpec],
    skill: str,
    *,
    view_size: int,
    max_steps: int,
    episodes: int,
    deterministic: bool,
    seed_base: int = EVAL_SEED_BASE,
    marker: bool = False,
) -> float:
    """Success of ``option`` on ``episodes`` calling-state episodes of ``skill`` in ``env_ids``
    (:class:`~modrl.envs.skill_env.SkillStepEnv` reset with ``seed_base + k``)."""
    env = SkillStepEnv(env_ids, skill, view_size=view_size, max_steps=max_steps, marker=marker)
    wins, _ = _run_calls(option, env, episodes=episodes, seed_base=seed_base, deterministic=deterministic)
    return wins / episodes if episodes else float("nan")


def dagger_demos(
    option: Option,
    env_ids: Sequence[EnvSpec],
    skill: str,
    *,
    view_size: int,
    max_steps: int,
    episodes: int,
    seed_base: int,
    marker: bool = False,
    random_steps: int = 0,
) -> tuple[DemoSet | None, float]:
    """One DAgger round: ``option`` acts (sampled) in ``episodes`` calling-state episodes of ``skill`` in ``env_ids``
    (:class:`~modrl.envs.skill_env.SkillStepEnv` reset with ``seed_base + k``); every state it visits is labelled
    with the scripted skill's next action there (:meth:`ScriptedSkills.next_action`; states the script would not act
    in are skipped). ``random_steps``: as :class:`~modrl.envs.skill_env.SkillStepEnv`'s.

    Returns:
        The labelled states (``None`` when there are none) and the option's success in these episodes.
    """
    env = SkillStepEnv(
        env_ids, skill, view_size=view_size, max_steps=max_steps, marker=marker, random_steps=random_steps
    )
    rows: dict[int, list[tuple[np.ndarray, int, np.ndarray, int]]] = {}

    def label(k: int, expert: ScriptedSkills | None, obs: Mapping[str, Any]) -> None:
        assert expert is not None
        action = expert.next_action(env.target)
        if action is not None:
            rows.setdefault(k, []).append((obs["image"], int(obs["direction"]), obs["args"], action))

    wins, steps = _run_calls(option, env, episodes=episodes, seed_base=seed_base, deterministic=False, visit=label)
    chunks = [
        (
            np.stack([r[0] for r in call]),
            np.asarray([r[1] for r in call], np.int64),
            np.stack([r[2] for r in call]).astype(np.int64),
            np.asarray([r[3] for r in call], np.int64),
        )
        for _, call in sorted(rows.items())
    ]
    return (demo_set(chunks, episodes, steps) if chunks else None), wins / episodes


def redraw_targets(demos: DemoSet, probability: float, rng: np.random.Generator) -> DemoSet:
    """``demos`` with each call, with ``probability``, showing another ``(type, colour)`` for its marked object (marker
    value 1) on every frame, and naming it so in ``args`` when the demonstrations carry words. The actions stay: the
    option learns that *where* the marker is, not what is there, decides what to do. Cells the agent stands on (a
    carried object) are left alone."""
    if probability <= 0 or demos.observations["image"].shape[-1] < 4:
        return demos
    images = demos.observations["image"].copy()
    args = demos.observations["args"].copy() if "args" in demos.observations else None
    centre = images.shape[1] // 2
    start = 0
    for length in demos.lengths:
        stop = start + length
        if rng.random() < probability:
            kind, state = _REDRAW_OBJECTS[int(rng.integers(len(_REDRAW_OBJECTS)))]
            colour = int(rng.integers(len(COLOURS)))
            block = images[start:stop]
            marked = block[..., 3] == 1
            marked[:, centre, centre] = False
            block[marked, 0] = OBJECT_TO_IDX[kind]
            block[marked, 1] = COLOR_TO_IDX[COLOURS[colour]]
            block[marked, 2] = state
            if args is not None:
                args[start:stop] = (colour, SKILL_TYPES.index(kind))
        start = stop
    observations = {**demos.observations, "image": images, **({} if args is None else {"args": args})}
    return replace(demos, observations=observations)
