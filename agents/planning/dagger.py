"""DAgger over whole planner episodes: the learned skill options run the train tasks under the planner, the scripted
skills label every state they visit.

Per-skill DAgger (:func:`~modrl.agents.planning.rollouts.dagger_demos`) starts each call where the *scripted* planner
would call the skill, so an option never sees the states the other *learned* options leave behind: a key carried in
an unusual place, the agent where a cloned ``goto`` stopped, a door a learned ``open`` left half way -- and test tasks
chain more skills than train tasks, so they are full of those states. Here the planner (:func:`modrl.planner.execute`,
re-planning, the stuck-option escape included) runs whole **train** episodes with the library's options, sampled;
before every primitive step of an option call, :meth:`ScriptedSkills.next_action
<modrl.envs.scripted_skills.ScriptedSkills.next_action>` says what the scripted skill would do for the planner's
current step, and the option's observation of that state (:func:`~modrl.envs.skill_env.skill_observation`, the same
format the recorded demonstrations have) is kept with that label under the skill's name. Escape moves are labelled
too: the state an option got stuck in is exactly one it needs a label for. States the script would not act in are
skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from modrl.agents.planning.demo_set import DemoSet
from modrl.agents.planning.episode import PlannerRun, PlannerRunConfig, play_planner_episode
from modrl.agents.planning.rollouts import Chunk, demo_set
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.skill_env import EnvSpec, make_env, skill_call, skill_observation, skill_targets
from modrl.options import OptionLibrary
from modrl.planner import GroundOperator, SkillResult
from modrl.planner.option_executor import OptionExecutor


@dataclass(frozen=True, kw_only=True)
class PlannerDaggerRound:
    """One round's roll-outs: the labelled states per skill (skills without any are absent), the planner's success
    with the options in these train episodes, and the episodes' env steps."""

    demos: dict[str, DemoSet]
    success: float
    steps: int


class _Labeller(gym.Wrapper[Any, Any, Any, Any]):
    """Labels the state before every primitive step with the scripted skill's action for :attr:`current`."""

    def __init__(self, env: gym.Env, skills: Sequence[str], *, view_size: int, marker: bool) -> None:
        super().__init__(env)
        self.base: Any = env.unwrapped
        self.expert = ScriptedSkills(self.base)  # probed only: never steps the env
        self.skills, self.view_size, self.marker = frozenset(skills), view_size, marker
        #: The running step and its skill call (``None`` between steps, or when no labelled skill serves it).
        self.current: tuple[GroundOperator, tuple[str, tuple[str, str]]] | None = None
        self.rows: dict[tuple[str, int], list[tuple[np.ndarray, int, np.ndarray, int]]] = {}
        self.calls = 0

    def start(self, step: GroundOperator | None) -> None:
        """Label the steps that follow for ``step`` (``None``: stop labelling)."""
        call = None if step is None else skill_call(step)
        if step is not None:
            self.calls += 1
        self.current = None if step is None or call is None or call[0] not in self.skills else (step, call)

    def step(self, action: Any) -> Any:
        if self.current is not None:
            step, (skill, words) = self.current
            label = self.expert.next_action(step)
            if label is not None:
                obs = skill_observation(
                    self.base, self.view_size, words, marker=self.marker, targets=skill_targets(step)
                )
                self.rows.setdefault((skill, self.calls), []).append(
                    (obs["image"], int(obs["direction"]), obs["args"], int(label))
                )
        return self.env.step(action)


class _Labelling:
    """A :class:`~modrl.planner.SkillExecutor` around an option executor that tells the labeller which step runs."""

    def __init__(self, inner: OptionExecutor, labeller: _Labeller) -> None:
        self.inner, self.labeller = inner, labeller

    def observe(self) -> frozenset[str]:
        return self.inner.observe()

    def execute(self, step: GroundOperator) -> SkillResult:
        self.labeller.start(step)
        try:
            return self.inner.execute(step)
        finally:
            self.labeller.start(None)


def _labelling(run: PlannerRun) -> _Labelling:
    assert isinstance(run.runner, OptionExecutor) and isinstance(run.env, _Labeller)
    return _Labelling(run.runner, run.env)


def planner_dagger_demos(
    library: OptionLibrary,
    env_ids: Sequence[EnvSpec],
    skills: Sequence[str],
    *,
    episodes: int,
    seed_base: int,
    view_size: int,
    marker: bool,
    max_skill_steps: int,
    max_replans: int = 20,
    loop_limit: int | None = 3,
    escape_steps: int = 3,
    max_nodes: int = 5000,
) -> PlannerDaggerRound:
    """One round (see the module docstring): episode ``k`` runs ``env_ids[k % len(env_ids)]`` reset with ``seed_base +
    k``; labels are kept for ``skills`` only. The caller's torch RNG state is left alone (each episode samples from a
    fork seeded with its seed)."""
    rows: dict[tuple[str, int, int], list[tuple[np.ndarray, int, np.ndarray, int]]] = {}
    wins = steps = 0
    config = PlannerRunConfig(
        option_steps=max_skill_steps,
        max_nodes=max_nodes,
        max_replans=max_replans,
        loop_limit=loop_limit or 0,
        escape_steps=escape_steps,
        cycle_limit=0,
        deterministic=False,
    )
    for k in range(episodes):
        seed = seed_base + k
        run = play_planner_episode(
            make_env(env_ids[k % len(env_ids)]),
            seed=seed,
            config=config,
            library=library,
            wrap=lambda env: _Labeller(env, skills, view_size=view_size, marker=marker),
            executor=_labelling,
        )
        labeller, trace = run.env, run.trace
        assert isinstance(labeller, _Labeller) and trace is not None
        wins += bool(run.runner.episode_success)
        steps += trace.total_steps
        for (skill, call), call_rows in labeller.rows.items():
            rows[(skill, k, call)] = call_rows
    demos: dict[str, DemoSet] = {}
    for skill in skills:
        chunks: list[Chunk] = [
            (
                np.stack([r[0] for r in call_rows]),
                np.asarray([r[1] for r in call_rows], np.int64),
                np.stack([r[2] for r in call_rows]).astype(np.int64),
                np.asarray([r[3] for r in call_rows], np.int64),
            )
            for (name, _, _), call_rows in sorted(rows.items(), key=lambda kv: kv[0][1:])
            if name == skill
        ]
        if chunks:
            demos[skill] = demo_set(chunks, episodes, sum(len(c[3]) for c in chunks))
    return PlannerDaggerRound(demos=demos, success=wins / episodes if episodes else float("nan"), steps=steps)
