"""Demonstrations of the planner's skills: the planner solves episodes with the scripted skills and every executed
step is cut into a demonstration of its skill (:func:`record_skill_demos`), which
:mod:`modrl.agents.options.skill_cloning` clones into skill options. Episodes are seeded from
:data:`~modrl.seeds.DEMO_SEED_BASE` up (disjoint from evaluation seeds); only episodes the planner solved
and steps that ended done are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from modrl.agents.planning.demo_set import DemoSet
from modrl.agents.planning.episode import PlannerRunConfig, start_planner_episode
from modrl.agents.planning.rollouts import demo_set
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.skill_env import (
    SKILL_NAMES,
    SKILL_SLOTS,
    EnvSpec,
    make_env,
    random_skill_steps,
    skill_call,
    skill_targets,
    spec_name,
)
from modrl.envs.wrappers import Target, full_view_image
from modrl.planner import GroundOperator
from modrl.planner.monitor import SkillResult, SkillStatus
from modrl.seeds import DEMO_SEED_BASE, EVAL_TASK_SEEDS

#: The planner episodes of a recording: the default search, at most 5 re-plans.
_CONFIG = PlannerRunConfig(max_replans=5)
#: Second seed word of the random-steps draws (:func:`record_skill_demos`), apart from the env's own stream.
_RANDOM_STEPS_STREAM = 0x5EED


class _Recorder(gym.Wrapper[Any, Any, Any, Any]):
    """Keeps the whole-grid observation before every action, and the action."""

    def __init__(self, env: gym.Env, view_size: int, marker: bool) -> None:
        super().__init__(env)
        self.view_size, self.marker = view_size, marker
        #: The object the marker channel shows (the step being recorded).
        self.targets: Sequence[Target] = ()
        self.images: list[np.ndarray] = []
        self.directions: list[int] = []
        self.actions: list[int] = []
        self._current: tuple[np.ndarray, int] | None = None

    def look(self) -> None:
        """Take the observation the next action is recorded with (again, after :attr:`targets` changed)."""
        base = self.env.unwrapped
        self._current = (
            full_view_image(base, self.view_size, marker=self.marker, targets=self.targets),
            int(base.agent_dir),  # type: ignore[attr-defined]
        )

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        out = self.env.reset(**kwargs)
        self.look()
        return out

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        assert self._current is not None, "reset first"
        self.images.append(self._current[0])
        self.directions.append(self._current[1])
        self.actions.append(int(action))
        out = self.env.step(action)
        self.look()
        return out


@dataclass(frozen=True, kw_only=True)
class _Call:
    skill: str
    args: tuple[str, str]
    start: int
    stop: int


class _Cutter:
    """A :class:`~modrl.planner.monitor.SkillExecutor` that runs the scripted skills and notes each step's span."""

    def __init__(self, skills: ScriptedSkills, recorder: _Recorder) -> None:
        self.skills, self.recorder = skills, recorder
        self.calls: list[_Call] = []

    def observe(self) -> frozenset[str]:
        return self.skills.observe()

    def execute(self, step: GroundOperator) -> SkillResult:
        start = len(self.recorder.actions)
        self.recorder.targets = skill_targets(step)
        self.recorder.look()
        result = self.skills.execute(step)
        call = skill_call(step)
        stop = len(self.recorder.actions)
        if call is not None and result.status is SkillStatus.DONE and stop > start:
            self.calls.append(_Call(skill=call[0], args=call[1], start=start, stop=stop))
        return result


@dataclass(frozen=True, kw_only=True)
class SkillRecording:
    """Every kept skill call of a recording: per skill, the demonstrations as a :class:`DemoSet` (``args`` holds the
    slot indices), and the recording's counts."""

    demos: dict[str, DemoSet]
    calls: dict[str, int]
    episodes: int
    solved: int
    frames: int


def _record_episode(
    spec: EnvSpec, seed: int, view_size: int, marker: bool, random_steps: int
) -> tuple[_Recorder, list[_Call], bool]:
    run = start_planner_episode(
        make_env(spec), seed=seed, config=_CONFIG, wrap=lambda env: _Recorder(env, view_size, marker)
    )
    recorder, skills = run.env, run.runner
    assert isinstance(recorder, _Recorder) and isinstance(skills, ScriptedSkills)
    cutter = _Cutter(skills, recorder)
    try:
        if random_steps:
            rng = np.random.default_rng([seed, _RANDOM_STEPS_STREAM])
            if not random_skill_steps(skills, rng, int(rng.integers(random_steps + 1)), run=cutter.execute):
                return recorder, cutter.calls, False
        run.execute(cutter)
    finally:
        run.close()
    return recorder, cutter.calls, bool(skills.episode_success)


def record_skill_demos(
    env_ids: Sequence[EnvSpec],
    *,
    episodes: int,
    view_size: int,
    skills: Sequence[str] = SKILL_NAMES,
    seed_base: int = DEMO_SEED_BASE,
    marker: bool = False,
    random_steps: int = 0,
) -> SkillRecording:
    """Record ``episodes`` planner episodes of each env id (episode ``j`` seeded ``seed_base + j``; an evaluation seed
    is skipped) and cut them into per-skill demonstrations (see the module docstring); with ``marker`` the images
    carry the target-marker channel on each step's object. With ``random_steps``, each episode first runs between 0
    and that many random scripted steps (:func:`~modrl.envs.skill_env.random_skill_steps`, recorded as demonstrations
    too) before the planner solves its task.

    Raises:
        RuntimeError: No skill of ``skills`` was demonstrated.
    """
    parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {s: [] for s in skills}
    counts = dict.fromkeys(skills, 0)
    solved = frames = total = 0
    for env_id in env_ids:
        for j in range(episodes):
            seed = seed_base + j
            if seed in EVAL_TASK_SEEDS:
                continue
            recorder, calls, success = _record_episode(env_id, seed, view_size, marker, random_steps)
            total += 1
            frames += len(recorder.actions)
            if not success:
                continue
            solved += 1
            for call in calls:
                if call.skill not in parts:
                    continue
                span = slice(call.start, call.stop)
                ids = [SKILL_SLOTS[i].index(word) for i, word in enumerate(call.args)]
                parts[call.skill].append(
                    (
                        np.stack(recorder.images[span]),
                        np.asarray(recorder.directions[span]),
                        np.tile(np.asarray(ids, np.int64), (call.stop - call.start, 1)),
                        np.asarray(recorder.actions[span], np.int64),
                    )
                )
                counts[call.skill] += 1
    demos = {skill: demo_set(chunks, total, frames) for skill, chunks in parts.items() if chunks}
    if not demos:
        raise RuntimeError(
            f"no step of the skills {', '.join(skills)} was demonstrated in {', '.join(map(spec_name, env_ids))}"
        )
    return SkillRecording(demos=demos, calls=counts, episodes=total, solved=solved, frames=frames)


def split_calls(demos: DemoSet, validation: float) -> tuple[DemoSet, DemoSet | None]:
    """The first calls for cloning, the last ``validation`` fraction of calls (rounded) held out (``None`` when that
    rounds to no call, or to all of them)."""
    n_val = round(validation * len(demos.lengths))
    if n_val == 0 or n_val >= len(demos.lengths):
        return demos, None
    cut = int(sum(demos.lengths[:-n_val]))

    def part(rows: slice, lengths: tuple[int, ...]) -> DemoSet:
        return DemoSet(
            observations={k: v[rows] for k, v in demos.observations.items()},
            actions=demos.actions[rows],
            returns=demos.returns[rows],
            tasks=(),
            seeds=(),
            task_seeds=(),
            lengths=lengths,
            attempts=demos.attempts,
            frames=demos.frames,
        )

    return part(slice(0, cut), demos.lengths[:-n_val]), part(slice(cut, None), demos.lengths[-n_val:])
