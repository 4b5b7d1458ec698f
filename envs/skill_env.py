"""Skill episodes in the states the planner calls a skill in, for any MiniGrid env the planner solves.

A planner step's skill (:mod:`modrl.envs.operators`: go to, pick up, drop, open a door / a locked door / a box) is
served by one parameterised *skill option* whose argument is the object's ``(colour, type)`` (:func:`skill_call`).
:class:`SkillStepEnv` makes training and evaluation episodes for such an option: on reset it draws an env and a seed,
plans the episode, runs the plan's steps before a randomly drawn call of the skill with the scripted skills, and hands
over; the episode succeeds (reward ``1 - 0.9 * steps / max_steps``) on the step at which all of the call's add effects
are observed (or the env's own episode ends in success: a last ``goto(door)`` that faces the door from the other room
than planned still completes the task), and is truncated after ``max_steps`` or when the env's own episode ends first.
Observations are the whole-grid view (:func:`modrl.envs.wrappers.full_view_image`; with ``marker``, its fourth channel
on the call's objects), the heading and the argument's slot indices.
With ``random_steps`` a few random scripted steps (:func:`random_skill_steps`) run before the episode is planned.
With ``seed_pool`` the env seeds come from a fixed set (``0 .. seed_pool - 1`` per env, like Procgen's
``num_levels``) and each seed's plan is computed once (:data:`PlanCache`, shared by the envs of one vector env):
planning is most of a reset's cost, and a trained call lasts a few steps, so late in training episodes are mostly
reset. With both, a pooled seed's random steps are the same every time it is drawn (:func:`pool_rng`).
With ``loop_limit`` an episode is cut (truncated, a failure) once one observation has been seen that many times, as
the planner cuts a stuck option call (:func:`modrl.options.call_and_return.run_option`'s loop check, the same digest):
PPO then learns what the planner rewards -- a sampled option that turns back and forth succeeds in a 100-step
episode but is cut as stuck when the planner calls it.
With ``subgoal_reward`` (``putnext`` only) a ``putnext`` call that starts with free hands or the wrong object in hand
gains that bonus the first time the object to move is in hand: a random policy completes 0.5 % of the sequences
suite's ``putnext`` calls but holds the box at some step in 18 %.
With ``held_start`` (``putnext`` only) that share of the calls that start without the object in hand are handed over
once the scripted skill has fetched it (a start-state curriculum, after Florensa et al., 2017, "Reverse curriculum
generation for reinforcement learning"): the option also learns where to put the object from the calls' own states.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from modrl.config import MAX_EPISODE_STEPS, MAX_VIEW_SIZE, check, check_bool, check_int
from modrl.envs.goals import goals_for_env
from modrl.envs.grammar import COLOURS
from modrl.envs.operators import planning_domain
from modrl.envs.predicates import env_planning_state, plain_colour
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.wrappers import IMAGE_HIGH, MARKED_IMAGE_HIGH, Target, full_view_image
from modrl.options.call_and_return import observation_key
from modrl.planner import GroundOperator, Plan, SkillResult, SkillStatus, plan

SKILL_NAMES: tuple[str, ...] = ("goto", "pickup", "drop", "open", "putnext")
"""The planner's skills a skill option can serve (``putnext`` only in BabyAI-style tasks, not the stock hard ones)."""
SKILL_TYPES: tuple[str, ...] = ("ball", "box", "key", "door", "goal")
"""Object types a skill option's argument may name."""
SKILL_SLOTS: tuple[tuple[str, ...], ...] = (COLOURS, SKILL_TYPES)
"""Argument slots of every skill option: colour, then type."""

EnvSpec = str | tuple[str, Mapping[str, Any]]
"""A MiniGrid env id, or an env id with ``gym.make`` keyword arguments (``("MiniGrid-KeyCorridorS3R1-v0",
{"room_size": 4})``)."""

_SEED_HIGH = 2**31 - 1
#: Largest ``seed_pool``.
MAX_SEED_POOL = 1_000_000

PlanCache = dict[tuple[str, int], Plan | None]
"""Plans of :class:`SkillStepEnv` episodes by ``(repr(env spec), env seed)`` (``None``: the planner found none)."""
#: Draws allowed per reset before giving up.
_MAX_DRAWS = 50
#: Episodes per env tried at the first reset to find the envs whose plans call the skill.
_SURVEY_SEEDS = 5


class NoSkillCalls(RuntimeError):
    """No plan of the envs reached a call of the skill (:class:`SkillStepEnv`'s reset)."""


def skill_call(step: GroundOperator) -> tuple[str, tuple[str, str]] | None:
    """``(skill, (colour, type))`` of a planner step a skill option can serve, else ``None``; for ``putnext`` the words
    name the object moved (where it goes is the second marked object: :func:`skill_targets`)."""
    targets = skill_targets(step)
    if (
        step.skill not in SKILL_NAMES
        or len(targets) != (2 if step.skill == "putnext" else 1)
        or any(kind not in SKILL_TYPES or plain_colour(name) not in COLOURS for kind, name in targets)
    ):
        return None
    kind, name = targets[0]
    return step.skill, (plain_colour(name), kind)


def pool_rng(spec: EnvSpec, env_seed: int) -> np.random.Generator:
    """The random scripted steps' generator of a pooled ``(env, seed)``: the same draws every time that seed is drawn,
    whichever env of a vector env draws it (seeded by the env spec's text and the seed)."""
    return np.random.default_rng([zlib.crc32(repr(spec).encode()), env_seed])


def carries(base: Any, colour: str, kind: str) -> bool:
    """The MiniGrid env ``base`` (unwrapped) has the agent carry an object of this type and plain colour."""
    carried = base.carrying
    return carried is not None and (carried.type, carried.color) == (kind, colour)


def fetch_moved_object(env: gym.Env, skills: ScriptedSkills, target: GroundOperator, max_steps: int) -> bool | None:
    """Step ``env`` with the scripted ``putnext`` skill of ``target`` until the object it moves is in hand: ``True``
    once it is, ``False`` (no step taken) when it already was, ``None`` when the skill gave up, the episode ended or
    ``max_steps`` ran out first."""
    call = skill_call(target)
    assert call is not None and call[0] == "putnext", "a putnext call"
    colour, kind = call[1]

    def holds() -> bool:
        return carries(env.unwrapped, colour, kind)

    if holds():
        return False
    for _ in range(max_steps):
        action = skills.next_action(target)
        if action is None:
            return None
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            return None
        if holds():
            return True
    return None


def random_skill_steps(
    skills: ScriptedSkills,
    rng: np.random.Generator,
    count: int,
    *,
    run: Callable[[GroundOperator], SkillResult] | None = None,
) -> bool:
    """Run ``count`` random planner steps with the scripted ``skills``: each drawn uniformly from the steps a skill
    option serves (:func:`skill_call`) that are applicable now and change something (go to, pick up, drop, open, put
    next to -- any object, mentioned or not), except steps that make an atom of the episode's goals true (a subtask done
    out of order may not count again: a door opened early stays open) and opening a box (MiniGrid replaces a box by its
    contents). A data augmentation: demonstrations recorded after it start from states the train tasks' own plans
    rarely reach (an object carried, dropped or moved by an earlier step).

    Args:
        skills: The scripted skills of the env (they step it).
        rng: The draws.
        count: Steps to run (fewer when none applies).
        run: Executes a step (default ``skills.execute``; a recorder's executor to keep the calls as demonstrations).

    Returns:
        ``False`` when a step failed or ended the env's episode (the episode is then of no use), else ``True``.
    """
    domain = planning_domain()
    for _ in range(count):
        state = skills.observe()
        goal_atoms = frozenset().union(*(g.holds | g.achieve for g in goals_for_env(skills.env, state)))
        steps = [
            op
            for op in domain.applicable(state)
            if skill_call(op) is not None
            and not op.add <= state
            and not op.add & goal_atoms
            and not (op.skill == "open" and any(kind == "box" for kind, _ in skill_targets(op)))
        ]
        if not steps:
            break
        result = (run or skills.execute)(steps[int(rng.integers(len(steps)))])
        if result.status is not SkillStatus.DONE or result.episode_over:
            return False
    return True


def make_env(spec: EnvSpec) -> gym.Env:
    """``gym.make`` of an :data:`EnvSpec`."""
    return gym.make(spec) if isinstance(spec, str) else gym.make(spec[0], **dict(spec[1]))


def spec_name(spec: EnvSpec) -> str:
    """A readable name of an :data:`EnvSpec`: the id, then its arguments."""
    return spec if isinstance(spec, str) else spec[0] + "".join(f" {k}={v}" for k, v in sorted(spec[1].items()))


def skill_targets(step: GroundOperator) -> tuple[Target, ...]:
    """The objects a skill step names, in order, as :func:`~modrl.envs.wrappers.full_view_image`'s ``targets``:
    ``(type, name)`` pairs (``putnext(box,red,key,blue)``: the red box, then the blue key)."""
    args = step.skill_args
    return tuple((args[i], args[i + 1]) for i in range(0, len(args) - 1, 2))


def skill_observation(
    base: Any, view_size: int, args: Sequence[str], *, marker: bool = False, targets: Sequence[Target] = ()
) -> dict[str, Any]:
    """A skill option's observation of an unwrapped MiniGrid env: whole-grid ``image`` (with the target-marker channel
    on ``targets`` when ``marker``), ``direction``, ``args``."""
    return {
        "image": full_view_image(base, view_size, marker=marker, targets=targets),
        "direction": int(base.agent_dir),
        "args": np.asarray([SKILL_SLOTS[i].index(w) for i, w in enumerate(args)], np.int64),
    }


#: Largest whole-grid view side (odd): above every MiniGrid layout this project uses.
def skill_observation_space(view_size: int, *, marker: bool = False) -> spaces.Dict:
    """The :func:`skill_observation` space."""
    high = MARKED_IMAGE_HIGH if marker else IMAGE_HIGH
    shape = (view_size, view_size, len(high))
    return spaces.Dict(
        {
            "image": spaces.Box(0, np.broadcast_to(high, shape).copy(), shape, np.uint8),
            "direction": spaces.Discrete(4),
            "args": spaces.MultiDiscrete([len(slot) for slot in SKILL_SLOTS]),
        }
    )


class SkillStepEnv(gym.Env[dict[str, Any], Any]):
    """Episodes of one skill, started where the planner calls it (see the module docstring).

    Args:
        env_ids: MiniGrid envs to draw from (uniformly per episode): ids or :data:`EnvSpec` pairs.
        skill: One of :data:`SKILL_NAMES`.
        view_size: Side of the whole-grid view (odd).
        max_steps: Step limit of an episode.
        marker: Observations carry the target-marker channel on the call's object
            (:func:`~modrl.envs.wrappers.full_view_image`).
        random_steps: Before planning, run between 0 and this many random scripted steps
            (:func:`random_skill_steps`, the count drawn uniformly per episode), so calls also start in states the train
            tasks' plans rarely reach.
        seed_pool: Draw each episode's env seed from ``0 .. seed_pool - 1`` and plan each seed once (0: any seed,
            planned afresh). With ``random_steps``, a pooled seed's random steps are drawn from a generator seeded by
            the env and the seed (:func:`pool_rng`), so the state planned from still follows from the seed.
        plan_cache: Where the plans of a seed pool are kept; pass one dict to every env of a vector env so each seed
            is planned once in all (default: this env's own).
        subgoal_reward: ``putnext`` only: reward added the first time in an episode the object to move is in hand,
            when it was not at the start (a training-time shaping bonus, in ``[0, 1]``; ``is_success`` ignores it).
        loop_limit: Cut the episode (truncated; every step's ``info["loop"]`` says whether it did) when one observation
            has been seen this many times, the calling one included (0: off, else >= 2; the planner's ``--loop-limit``
            is 3).
        held_start: ``putnext`` only: the share (in ``[0, 1]``) of calls that start without the object to move in
            hand in which the scripted skill first fetches it (``info["held_start"]`` says so); 0: none.

    ``info`` carries ``env_id``, ``env_seed``, ``call`` (the step's symbol), ``prefix`` (scripted steps run first) and,
    at the end, ``is_success``.
    """

    def __init__(
        self,
        env_ids: Sequence[EnvSpec],
        skill: str,
        *,
        view_size: int = 25,
        max_steps: int = 100,
        marker: bool = False,
        random_steps: int = 0,
        seed_pool: int = 0,
        plan_cache: PlanCache | None = None,
        subgoal_reward: float = 0.0,
        loop_limit: int = 0,
        held_start: float = 0.0,
    ) -> None:
        check(len(env_ids) >= 1, "env_ids", "needs at least one env id")
        check_int(random_steps, "random_steps", low=0, high=MAX_EPISODE_STEPS)
        check_int(seed_pool, "seed_pool", low=0, high=MAX_SEED_POOL)
        check(skill in SKILL_NAMES, "skill", f"must be one of {', '.join(SKILL_NAMES)}, got {skill!r}")
        check_int(view_size, "view_size", low=7, high=MAX_VIEW_SIZE)
        check(view_size % 2 == 1, "view_size", f"must be an odd integer >= 7, got {view_size}")
        check_int(max_steps, "max_steps", low=1, high=MAX_EPISODE_STEPS)
        check_bool(marker, "marker")
        check(
            isinstance(subgoal_reward, int | float) and 0.0 <= subgoal_reward <= 1.0,
            "subgoal_reward",
            f"must be a number in [0, 1], got {subgoal_reward!r}",
        )
        check(subgoal_reward == 0 or skill == "putnext", "subgoal_reward", f"is for putnext only, not {skill}")
        check_int(loop_limit, "loop_limit", low=0, high=MAX_EPISODE_STEPS)
        check(loop_limit != 1, "loop_limit", "must be 0 (off) or >= 2, got 1")
        check(
            isinstance(held_start, int | float) and 0.0 <= held_start <= 1.0,
            "held_start",
            f"must be a number in [0, 1], got {held_start!r}",
        )
        check(held_start == 0 or skill == "putnext", "held_start", f"is for putnext only, not {skill}")
        self.held_start = float(held_start)
        self.env_ids, self.skill, self.view_size, self.max_steps = tuple(env_ids), skill, view_size, max_steps
        self.marker, self.random_steps, self.seed_pool = marker, random_steps, seed_pool
        self._plans: PlanCache = {} if plan_cache is None else plan_cache
        self.subgoal_reward = float(subgoal_reward)
        self._bonus_left = False
        self.loop_limit = loop_limit
        self._seen: Counter[bytes] = Counter()
        self.observation_space = skill_observation_space(view_size, marker=marker)
        self.action_space = spaces.Discrete(7)
        self._envs: dict[int, gym.Env] = {}
        self._env: gym.Env | None = None
        self._step_target: GroundOperator | None = None
        self._args: tuple[str, str] = ("red", "key")
        self._steps = 0
        self._info: dict[str, Any] = {}
        self._offering: list[int] | None = None

    @property
    def target(self) -> GroundOperator:
        """The planner step this episode's option performs."""
        assert self._step_target is not None, "reset first"
        return self._step_target

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Draw an env, a seed and a call of the skill in its plan; run the plan up to it (see the module docstring).

        Raises:
            NoSkillCalls: No env's plans call the skill, or no draw reached a call.
        """
        super().reset(seed=seed)
        if self._offering is None:
            self._offering = self._survey()
        for _ in range(_MAX_DRAWS):
            which = self._offering[int(self.np_random.integers(len(self._offering)))]
            env_seed = self._draw_seed()
            if self._prepare(which, env_seed):
                observation = self._observation()
                self._seen = Counter([observation_key(observation)] if self.loop_limit else [])
                return observation, dict(self._info)
        raise NoSkillCalls(
            f"no plan of {', '.join(spec_name(self.env_ids[i]) for i in self._offering)} reached a "
            f"{self.skill} call in {_MAX_DRAWS} draws"
        )

    def _survey(self) -> list[int]:
        """The envs whose plans call the skill in one of :data:`_SURVEY_SEEDS` episodes (drawn once, at the first
        reset), so that a skill only some envs use (DoorKey's goal) is not starved by the others."""
        offering = [
            i
            for i in range(len(self.env_ids))
            if any(self._prepare(i, self._draw_seed()) for _ in range(_SURVEY_SEEDS))
        ]
        if not offering:
            raise NoSkillCalls(
                f"no plan of {', '.join(map(spec_name, self.env_ids))} reached a {self.skill} call in "
                f"{_SURVEY_SEEDS} episodes each"
            )
        return offering

    @property
    def base(self) -> Any:
        """The drawn MiniGrid env, unwrapped (after ``reset``)."""
        assert self._env is not None, "reset first"
        return self._env.unwrapped

    def _prepare(self, which: int, env_seed: int) -> bool:
        env = self._envs.get(which)
        if env is None:
            env = self._envs[which] = make_env(self.env_ids[which])
        env.reset(seed=env_seed)
        skills = ScriptedSkills(env)
        if self.random_steps:
            rng = pool_rng(self.env_ids[which], env_seed) if self.seed_pool else self.np_random
            if not random_skill_steps(skills, rng, int(rng.integers(self.random_steps + 1))):
                return False
        found = self._plan(which, env_seed, skills)
        if found is None:
            return False
        calls = [i for i, step in enumerate(found.steps) if (skill_call(step) or ("", ()))[0] == self.skill]
        if not calls:
            return False
        index = calls[int(self.np_random.integers(len(calls)))]
        for step in found.steps[:index]:
            result = skills.execute(step)
            if result.status is not SkillStatus.DONE or result.episode_over:
                return False
        target = found.steps[index]
        if target.add <= skills.observe():  # already holds: nothing to learn here
            return False
        info = {"env_id": spec_name(self.env_ids[which]), "env_seed": env_seed, "prefix": index}
        if self.held_start and self.np_random.random() < self.held_start:
            fetched = fetch_moved_object(env, skills, target, self.max_steps)
            if fetched is None:
                return False
            info["held_start"] = fetched
        self._begin(env, target, info)
        return True

    def _begin(self, env: gym.Env, target: GroundOperator, info: dict[str, Any]) -> None:
        """Hand the call over to the option: ``env`` is in the calling state, ``target`` the step it performs."""
        call = skill_call(target)
        assert call is not None
        self._env, self._step_target, self._args, self._steps = env, target, call[1], 0
        self._bonus_left = self.subgoal_reward > 0 and not self._holds_moved_object()
        self._info = {**info, "call": target.symbol}

    def _draw_seed(self) -> int:
        """An env seed: from the pool when there is one, else from the whole seed range."""
        return int(self.np_random.integers(self.seed_pool or _SEED_HIGH))

    def _plan(self, which: int, env_seed: int, skills: ScriptedSkills) -> Plan | None:
        """The plan from the env's state (kept in the cache with a seed pool, where the state follows from the seed)."""
        key = (repr(self.env_ids[which]), env_seed)
        if self.seed_pool and key in self._plans:
            return self._plans[key]
        found = plan(planning_domain(), skills.observe(), goals_for_env(skills.env, skills.observe()))
        result = found if isinstance(found, Plan) else None
        if self.seed_pool:
            self._plans[key] = result
        return result

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the drawn env; success once the call's add effects are observed."""
        assert self._env is not None and self._step_target is not None, "reset first"
        _, env_reward, env_terminated, env_truncated, _ = self._env.step(int(action))
        self._steps += 1
        solved = bool(env_terminated) and float(env_reward) > 0  # the env's task is done: nothing left to call for
        done = solved or self._effects_hold()
        truncated = not done and (self._steps >= self.max_steps or bool(env_terminated) or bool(env_truncated))
        reward = 1.0 - 0.9 * self._steps / self.max_steps if done else 0.0
        if self._bonus_left and self._holds_moved_object():
            reward, self._bonus_left = reward + self.subgoal_reward, False
        observation, info = self._observation(), dict(self._info)
        if self.loop_limit:  # every step's info says whether it cut the episode
            key = observation_key(observation)
            self._seen[key] += 1
            info["loop"] = not (done or truncated) and self._seen[key] >= self.loop_limit
            truncated = truncated or info["loop"]
        if done or truncated:
            info["is_success"] = bool(done)
        return observation, reward, bool(done), truncated, info

    def _effects_hold(self) -> bool:
        """Every add effect of the call is observed (on the full grid)."""
        return self.target.add <= env_planning_state(self.base)

    def _targets(self) -> tuple[Target, ...]:
        """The call's objects as the whole-grid marker finds them (by the full grid's names)."""
        return skill_targets(self.target)

    def _holds_moved_object(self) -> bool:
        """The agent carries the object the call moves (its type and plain colour)."""
        return carries(self.base, *self._args)

    def _observation(self) -> dict[str, Any]:
        return skill_observation(self.base, self.view_size, self._args, marker=self.marker, targets=self._targets())

    def close(self) -> None:
        """Close every env built so far."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        super().close()
