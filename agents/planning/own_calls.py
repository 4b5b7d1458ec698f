"""Skill episodes started where the planner calls a skill when it plans from the agent's own view.

:class:`~modrl.envs.skill_env.SkillStepEnv` starts a skill option's training episodes where a plan over the full grid
calls the skill: the plan goes straight to what the task needs. Planning from the own view (``view="own"``,
:mod:`.episode`) the planner first explores -- in KeyCorridor it opens room after room looking for the ball -- so its
calls start from states a full-grid plan never reaches (far from the object, facing a wall the exploration ended at).
:class:`OwnViewSkillStepEnv` draws its calling states from those episodes instead: the scripted skills play a whole
own-view planner episode once per ``(env, seed)`` (re-plans and exploration included; its executed steps are kept in
a :data:`CallCache`), a call of the skill is drawn from its steps, and the steps before it are run again from the reset
(the scripted skills and the map are deterministic, so the state is the one the planner called the skill in). The
option then acts as in :class:`~modrl.envs.skill_env.SkillStepEnv`: it reads the whole grid with the call's objects
marked (the map's names of them turned into the grid's: :func:`.skills.grid_targets`), and the call succeeds when its
effects hold on the map (:meth:`modrl.envs.own_view.OwnView.state`, the state the own-view planner checks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modrl.config import check
from modrl.envs.goals import NotSeenYet
from modrl.envs.own_view import OwnView, own_view_of
from modrl.envs.skill_env import EnvSpec, SkillStepEnv, make_env, skill_call, skill_targets, spec_name
from modrl.envs.wrappers import Target
from modrl.planner import GroundOperator, SkillResult

from .episode import PlannerRun, PlannerRunConfig, start_planner_episode
from .skills import grid_targets

CallCache = dict[tuple[str, int], tuple[GroundOperator, ...]]
"""The steps the scripted skills executed in the own-view planner episode of ``(repr(env spec), env seed)``."""

#: The own-view planner episodes calling states are drawn from (scripted skills, the planner's defaults).
OWN_VIEW_RUN = PlannerRunConfig(view="own")


class _Recorder:
    """A skill executor that keeps every step it runs (then runs it with ``inner``)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.steps = inner, list[GroundOperator]()

    def observe(self) -> frozenset[str]:
        return self.inner.observe()

    def execute(self, step: GroundOperator) -> SkillResult:
        self.steps.append(step)
        return self.inner.execute(step)


class OwnViewSkillStepEnv(SkillStepEnv):
    """:class:`~modrl.envs.skill_env.SkillStepEnv` with the calling states of own-view planner episodes (see the
    module docstring). Takes its arguments (``random_steps`` must stay 0: the episode follows from the seed), and:

    Args:
        call_cache: Where the executed steps of each ``(env, seed)`` are kept when ``seed_pool`` is set; pass one dict
            to every env of a vector env so each seed's episode is played once in all (default: this env's own).
    """

    def __init__(
        self, env_ids: Sequence[EnvSpec], skill: str, *, call_cache: CallCache | None = None, **kwargs: Any
    ) -> None:
        check(kwargs.get("random_steps", 0) == 0, "random_steps", "must be 0 for own-view calling states")
        super().__init__(env_ids, skill, **kwargs)
        self._calls: CallCache = {} if call_cache is None else call_cache
        self._own: OwnView | None = None

    def _prepare(self, which: int, env_seed: int) -> bool:
        key = (repr(self.env_ids[which]), env_seed)
        steps = self._calls.get(key) if self.seed_pool else None
        if steps is None:
            try:
                steps = self._episode_steps(which, env_seed)
            except NotSeenYet:  # the mission's object was never found: no episode to draw from
                steps = ()
            if self.seed_pool:
                self._calls[key] = steps
        calls = [i for i, step in enumerate(steps) if (skill_call(step) or ("", ()))[0] == self.skill]
        if not calls:
            return False
        index = calls[int(self.np_random.integers(len(calls)))]
        run = self._start(which, env_seed)
        for step in steps[:index]:
            if run.runner.execute(step).episode_over:
                return False
        own = own_view_of(run.env)
        assert own is not None
        target = steps[index]
        if target.add <= own.state():  # already holds: nothing to learn here
            return False
        self._own = own
        self._begin(run.env, target, {"env_id": spec_name(self.env_ids[which]), "env_seed": env_seed, "prefix": index})
        return True

    def _start(self, which: int, env_seed: int) -> PlannerRun:
        """A scripted own-view planner episode of the env, reset with ``env_seed``, its goals read (which may run the
        scripted ``explore`` when the mission names an object by its type alone)."""
        env = self._envs.get(which)
        if env is None:
            env = self._envs[which] = make_env(self.env_ids[which])
        run = start_planner_episode(env, seed=env_seed, config=OWN_VIEW_RUN)
        _ = run.goals
        return run

    def _episode_steps(self, which: int, env_seed: int) -> tuple[GroundOperator, ...]:
        """Every step the scripted skills executed in the own-view planner episode (raises
        :class:`~modrl.envs.goals.NotSeenYet` when its goals cannot be read)."""
        run = self._start(which, env_seed)
        recorder = _Recorder(run.runner)
        run.execute(recorder)
        return tuple(recorder.steps)

    def _effects_hold(self) -> bool:
        assert self._own is not None, "reset first"
        return self.target.add <= self._own.state()

    def _targets(self) -> tuple[Target, ...]:
        return grid_targets(self.base, self._own, skill_targets(self.target))
