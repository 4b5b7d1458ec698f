"""Single-subtask episodes for training options from subtask events, and the effect predicates that end options.

:class:`SubtaskEnv` draws, on every reset, one task of a generated suite (from a given list, e.g. the ``pickup`` tasks
of the ``colour-type`` train split) and runs it as a *single-subtask episode*: the episode ends with reward
``1 - 0.9 * steps / max_steps`` on the step whose ``info["events"]`` (:class:`~modrl.envs.task_env.TaskEnv`) report
the completion of the task's first subtask, and with 0 when the env's step limit truncates it. For a parameterised
option the observation carries the subtask's argument (``(colour, type)``, plus the target's for ``putnext``) as slot
indices into :func:`~modrl.envs.subtask_symbols.argument_slots`, so one network learns every argument; held-out
arguments can then be tried zero-shot on the test split's tasks.

With ``targets="layout"`` a parameterised option's episodes are drawn from the *layouts* of the tasks instead of their
missions: after the task env resets, the target is one object of the layout that the option's verb accepts (for
``open``, any closed door: the mentioned doors and the distractor doors), drawn uniformly, and the task env's BabyAI
instruction is replaced by that subtask's, so its verifier, events and the oracle all follow the drawn target. An
``open`` option then learns every door colour the train split's rooms contain, not only the doors its missions name --
which the planner needs, since a plan opens whichever door leads to what it wants.

With ``prefix_skills=N`` an episode first runs up to ``N`` (uniformly 0..N) random scripted skills -- go to, pick up,
drop or open something the layout offers (:class:`modrl.envs.scripted_skills.ScriptedSkills`) -- before the option
takes over, so it also trains from the states other skills leave it in (hands full, a door open, the agent anywhere),
as a planner calls it; a prefix that completes the target (or ends the episode) is drawn again.

Two training-time aids for options that PPO alone does not learn from the sparse completion reward (the sequences
suite's ``putnext``), neither a scripted skill nor a demonstration:

* :class:`~modrl.envs.subgoal_reward.SubgoalReward` adds a bonus the first time in an episode each of the subtask's
  *subgoals* (:func:`~modrl.envs.subtask_symbols.subgoal_conjunctions`, read from the suite's own predicates) holds.
* ``start_carrying=p`` starts a ``putnext`` episode, with probability ``p``, with the object to move already in the
  agent's hands (taken off the grid where the layout placed it: a start-state curriculum, annealed by the trainer as
  the option's success from ordinary starts rises). Such an episode's ``info["assisted_start"]`` is ``True``.

The argument slots, the option's observation and the effect predicates that end options live in
:mod:`modrl.envs.subtask_symbols`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from modrl.config import (
    MAX_EPISODE_STEPS,
    MAX_VIEW_SIZE,
    ConfigError,
    check,
    check_bool,
    check_int,
    short_repr,
)
from modrl.envs.grammar import COLOURS, PICKABLE_TYPES, VERB_TYPES, VERBS, ObjectRef, Subtask, Verb, parse_task
from modrl.envs.operators import planning_domain
from modrl.envs.own_view import MapView
from modrl.envs.predicates import env_predicates
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.subtask_symbols import argument_slots, effect_holds, option_observation, subtask_arguments
from modrl.envs.suites import Suite, get_suite
from modrl.envs.task_env import SubtaskSequence, babyai_instruction
from modrl.envs.wrappers import IMAGE_HIGH, FullView, current_observation

_SEED_HIGH = 2**31 - 1
#: Task seeds tried per reset for a random skill prefix that leaves the target to do.
_PREFIX_DRAWS = 20

Targets = Literal["task", "layout"]
"""Where a :class:`SubtaskEnv` episode's target comes from: the drawn task's first subtask, or (parameterised options
of ``goto``, ``pickup`` and ``open``) an object of the drawn task's layout."""
LAYOUT_VERBS: tuple[Verb, ...] = ("goto", "pickup", "open")
"""The verbs whose options can train on layout targets (``putnext`` needs a pair and a placement rule)."""


def layout_targets(base: Any, verb: Verb) -> list[Subtask]:
    """The subtasks of ``verb`` that a reset MiniGrid env's layout offers, one per object the verb accepts (doors for
    ``open`` only while closed and unlocked), in grid order; objects the grammar cannot name are skipped."""
    out = []
    for obj in base.grid.grid:
        if obj is None or obj.type not in VERB_TYPES[verb] or obj.color not in COLOURS:
            continue
        if verb == "open" and (obj.is_open or obj.is_locked):
            continue
        out.append(Subtask(verb=verb, obj=ObjectRef(colour=obj.color, type=obj.type)))
    return out


def _offers(base: Any, verb: Verb) -> bool:
    """Whether every layout of a (not yet reset) task env has an object ``verb`` accepts (:func:`layout_targets`): its
    task's own objects are always placed; ``pickup`` also takes any distractor (all are keys, balls or boxes), ``open``
    needs a door, which only a task that mentions one has (its distractor doors come with the two-room layout)."""
    objects = base.task.objects
    if verb == "open":
        return any(o.type == "door" for o in objects)
    if verb == "pickup":
        return any(o.type in PICKABLE_TYPES for o in objects) or base.num_distractors > 0
    return True


def _check_map_view(map_view: bool, *, view_size: int | None, prefix_skills: int, start_carrying: float) -> None:
    """``map_view`` needs the image's side and refuses the aids whose scripted steps bypass the map."""
    check_bool(map_view, "map_view")
    check(not map_view or view_size is not None, "map_view", "needs view_size (the side of the map's image)")
    check(
        not map_view or (prefix_skills == 0 and start_carrying == 0),
        "map_view",
        "cannot be combined with prefix_skills or start_carrying yet (their scripted steps bypass the map)",
    )


class SubtaskEnv(gym.Env[dict[str, Any], Any]):
    """Single-subtask episodes over tasks of a generated suite (see the module docstring).

    Observation:
        image: ``(7, 7, 3) uint8`` category indices (``(N, N, 3)`` with ``view_size=N``); direction: ``int`` in
        ``[0, 4)``; with ``parameterised``, args: ``MultiDiscrete`` slot indices of the subtask's argument words
        (:func:`argument_slots`).

    ``info`` keeps the task env's keys (``events``, ``predicates``, ...) and adds ``subtask`` (its symbol),
    ``arguments`` (its words), ``task`` (the task name) and, at the end of an episode, ``is_success``.

    Args:
        tasks: Task names of ``suite``; each episode's target is the first subtask of one of them, drawn uniformly.
            With ``parameterised`` they must all start with the same verb.
        suite: A generated suite (or its name); training tasks keep their split's ``avoid`` list.
        parameterised: Add the ``args`` observation.
        max_episode_steps: The task envs' step limit; ``None`` keeps BabyAI's.
        task_kwargs: Extra :class:`~modrl.envs.task_env.TaskEnv` arguments for every task (e.g. ``room_size``,
            ``num_distractors`` for a smaller training room).
        render_mode: Passed to the task envs.
        targets: ``"task"``: each episode's target is its task's first subtask; ``"layout"`` (parameterised options
            of :data:`LAYOUT_VERBS` only): an object of the task's layout that the verb accepts, drawn uniformly
            (see the module docstring); the tasks then only provide layouts, whatever their verbs.
        verb: The option's verb; needed with ``targets="layout"`` (otherwise the tasks' common first verb).
        view_size: ``None``: MiniGrid's 7x7 egocentric view; an odd ``N``: the ``N x N`` egocentric view of the whole
            grid (:class:`modrl.envs.wrappers.FullView`; privileged, like the planner's state).
        map_view: With ``view_size``, the ``N x N`` view of the cells seen so far in the episode instead of the whole
            grid (:class:`modrl.envs.own_view.MapView`: memory, nothing privileged).
        prefix_skills: Run up to this many random scripted skills before the option takes over (see the module
            docstring).
        start_carrying: Probability, in ``[0, 1]``, that a ``putnext`` episode starts with the object to move in the
            agent's hands (see the module docstring; :meth:`set_start_carrying` changes it between episodes).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        *,
        suite: Suite | str = "colour-type",
        parameterised: bool = True,
        max_episode_steps: int | None = None,
        task_kwargs: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        targets: Targets = "task",
        verb: Verb | None = None,
        view_size: int | None = None,
        prefix_skills: int = 0,
        start_carrying: float = 0.0,
        map_view: bool = False,
    ) -> None:
        check(isinstance(suite, (str, Suite)), "suite", f"must be a suite or its name, got {short_repr(suite)}")
        try:
            self.suite = get_suite(suite) if isinstance(suite, str) else suite
        except KeyError as exc:
            raise ConfigError(f"suite: {exc}") from None
        check(
            isinstance(tasks, (list, tuple)) and all(isinstance(t, str) for t in tasks),
            "tasks",
            f"must be a list of task names, got {short_repr(tasks)}",
        )
        check(len(tasks) >= 1, "tasks", "needs at least one task")
        unknown = [t for t in tasks if t not in self.suite.task_names]
        check(not unknown, "tasks", f"not tasks of suite {self.suite.name!r}: {short_repr(unknown)}")
        self.tasks = tuple(tasks)
        try:
            self.subtasks = tuple(parse_task(t).subtasks[0] for t in self.tasks)
        except ConfigError as exc:
            raise ConfigError(f"tasks: suite {self.suite.name!r} is not made of grammar tasks ({exc})") from None
        check_bool(parameterised, "parameterised")
        check(targets in ("task", "layout"), "targets", f"must be 'task' or 'layout', got {short_repr(targets)}")
        check(
            verb is None or verb in VERBS, "verb", f"must be null or one of {', '.join(VERBS)}, got {short_repr(verb)}"
        )
        if targets == "layout":
            check(
                parameterised and verb in LAYOUT_VERBS,
                "verb",
                f"layout targets need a parameterised option and a verb of {', '.join(LAYOUT_VERBS)}, got {verb!r}",
            )
        else:
            verbs = {s.verb for s in self.subtasks}
            check(
                not parameterised or len(verbs) == 1,
                "tasks",
                f"a parameterised option serves one verb, got {', '.join(sorted(verbs))}",
            )
            check(verb is None or verbs == {verb}, "verb", f"the tasks' first subtasks are not all {verb!r}")
        self.verb: Verb = verb if verb is not None else self.subtasks[0].verb
        self.parameterised = parameterised
        self.targets: Targets = targets
        self._drawn: Subtask | None = None
        self.slots = argument_slots(self.verb) if parameterised else ()
        if max_episode_steps is not None:
            check_int(max_episode_steps, "max_episode_steps", low=1, high=MAX_EPISODE_STEPS)
        self.max_episode_steps = max_episode_steps
        check(
            task_kwargs is None or (isinstance(task_kwargs, Mapping) and all(isinstance(k, str) for k in task_kwargs)),
            "task_kwargs",
            f"must be a mapping of TaskEnv arguments, got {short_repr(task_kwargs)}",
        )
        self.task_kwargs = dict(task_kwargs or {})
        check("task" not in self.task_kwargs, "task_kwargs", "cannot set 'task': each env runs its own task")
        check(
            render_mode in (None, "rgb_array", "human"),
            "render_mode",
            f"must be null, rgb_array or human, got {short_repr(render_mode)}",
        )
        self.render_mode = render_mode
        check(
            view_size is None
            or (
                isinstance(view_size, int)
                and not isinstance(view_size, bool)
                and 7 <= view_size <= MAX_VIEW_SIZE
                and view_size % 2 == 1
            ),
            "view_size",
            f"must be null or an odd integer in [7, {MAX_VIEW_SIZE}], got {short_repr(view_size)}",
        )
        self.view_size = view_size
        check_int(prefix_skills, "prefix_skills", low=0, high=10)
        self.prefix_skills = prefix_skills
        check(
            start_carrying == 0.0 or self.verb == "putnext",
            "start_carrying",
            f"only putnext options start with the object in hand, not {self.verb}",
        )
        self.start_carrying = 0.0
        self.set_start_carrying(start_carrying)
        _check_map_view(map_view, view_size=view_size, prefix_skills=prefix_skills, start_carrying=start_carrying)
        self.map_view = map_view
        self._assisted = False
        self._envs: dict[int, gym.Env[Any, Any]] = {}
        # Every task's env is made now, so a bad task_kwargs is refused here, not in the episode that draws the task.
        for index in range(len(self.tasks)):
            try:
                env = self._task_env(index)
            except (ConfigError, TypeError) as exc:
                self.close()
                raise ConfigError(f"task_kwargs: task {self.tasks[index]!r}: {exc}") from None
            if targets == "layout" and not _offers(env.unwrapped, self.verb):
                self.close()
                raise ConfigError(
                    f"tasks: the layout of task {self.tasks[index]!r} never has an object to {self.verb} (train layout "
                    f"targets of {self.verb} on tasks whose rooms have one)"
                )
        side = 7 if view_size is None else view_size
        self.action_space = spaces.Discrete(7)
        entries: dict[str, spaces.Space[Any]] = {
            "image": spaces.Box(0, np.broadcast_to(IMAGE_HIGH, (side, side, 3)).copy(), (side, side, 3), np.uint8),
            "direction": spaces.Discrete(4),
        }
        if parameterised:
            entries["args"] = spaces.MultiDiscrete([len(slot) for slot in self.slots])
        self.observation_space = spaces.Dict(entries)
        self._current = 0

    def set_start_carrying(self, probability: float) -> None:
        """Set the probability that the next episodes start with the object to move in hand (``putnext``)."""
        check(
            isinstance(probability, (int, float)) and not isinstance(probability, bool) and 0.0 <= probability <= 1.0,
            "start_carrying",
            f"must be in [0, 1], got {short_repr(probability)}",
        )
        self.start_carrying = float(probability)

    @property
    def current_env(self) -> gym.Env[Any, Any]:
        """The current task's env (its ``unwrapped`` is the :class:`~modrl.envs.task_env.TaskEnv`)."""
        return self._task_env(self._current)

    @property
    def current_subtask(self) -> Subtask:
        """The current episode's target subtask."""
        return self._drawn if self._drawn is not None else self.subtasks[self._current]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Draw a task (option ``"task"``: a name from ``tasks`` instead) and a seed for it, and reset its env."""
        super().reset(seed=seed)
        options = dict(options or {})
        self._current = int(self.np_random.integers(len(self.tasks)))
        task_seed = int(self.np_random.integers(_SEED_HIGH))
        if "task" in options:
            name = options.pop("task")
            check(name in self.tasks, "options.task", f"{name!r} is not one of this env's tasks")
            self._current = self.tasks.index(name)
        for _ in range(_PREFIX_DRAWS):
            obs, info = self.current_env.reset(seed=task_seed, options=options or None)
            self._drawn = None
            if self.targets == "layout":
                self._drawn = self._draw_target()
                info = {**info, "events": [], "subtask_index": 0}
            if not self.prefix_skills:
                break
            if self._run_prefix(int(self.np_random.integers(self.prefix_skills + 1))):
                obs = current_observation(self.current_env.unwrapped, self.view_size)
                base = self.current_env.unwrapped
                info = {**info, **base._task_info()} if hasattr(base, "_task_info") else info
                break
            task_seed = int(self.np_random.integers(_SEED_HIGH))
        else:
            raise RuntimeError(
                f"no prefix of random skills left {self.current_subtask.symbol} to do in {_PREFIX_DRAWS} draws"
            )
        # Drawn only while the probability is positive: episodes without the aid are drawn as before it existed.
        self._assisted = bool(self.start_carrying > 0 and self.np_random.random() < self.start_carrying)
        self._assisted = self._assisted and self._put_in_hand()
        if self._assisted:
            obs = current_observation(self.current_env.unwrapped, self.view_size)
            info = {**info, "predicates": env_predicates(self.current_env)}  # type: ignore[arg-type]
        return self._observation(obs), self._info(info)

    def _put_in_hand(self) -> bool:
        """Take the object to move off the grid into the agent's hands (False if the hands are full or the layout has
        no such object), as MiniGrid's pickup does."""
        base = self.current_env.unwrapped
        sub = self.current_subtask
        if base.carrying is not None:  # type: ignore[attr-defined]
            return False
        for index, obj in enumerate(base.grid.grid):  # type: ignore[attr-defined]
            if obj is not None and obj.type == sub.obj.type and obj.color == sub.obj.colour:
                base.grid.grid[index] = None  # type: ignore[attr-defined]
                obj.cur_pos = np.array([-1, -1])
                base.carrying = obj  # type: ignore[attr-defined]
                return True
        return False

    def _run_prefix(self, count: int) -> bool:
        """Run ``count`` random applicable scripted skills; False if one ended the episode or completed a subtask."""
        base = self.current_env.unwrapped
        skills, domain = ScriptedSkills(self.current_env, max_skill_steps=60), planning_domain()
        for _ in range(count):
            steps = [op for op in domain.applicable(skills.observe()) if op.skill in ("goto", "pickup", "drop", "open")]
            if not steps:
                break
            result = skills.execute(steps[int(self.np_random.integers(len(steps)))])
            if result.episode_over:
                return False
        index = getattr(getattr(base, "instrs", None), "index", 0)
        now = env_predicates(self.current_env)  # type: ignore[arg-type]
        return index == 0 and not effect_holds(self.current_subtask, now)

    def _draw_target(self) -> Subtask:
        """Draw a layout target and point the task env's instruction (verifier, events, mission) at it."""
        base = self.current_env.unwrapped
        offered = layout_targets(base, self.verb)
        if not offered:
            raise ValueError(
                f"task {self.tasks[self._current]!r}: its layout has no object to {self.verb}; train "
                f"layout targets on tasks whose rooms have one"
            )
        sub = offered[int(self.np_random.integers(len(offered)))]
        base.instrs = SubtaskSequence([babyai_instruction(sub)], [sub.symbol])  # type: ignore[attr-defined]
        base.instrs.reset_verifier(base)  # type: ignore[attr-defined]
        base.mission = base.instrs.surface(base)  # type: ignore[attr-defined]
        return sub

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the task env; success on the completion event of the target subtask."""
        obs, _, _, truncated, info = self.current_env.step(action)
        done = self.current_subtask.symbol in info.get("events", ())
        unwrapped = self.current_env.unwrapped
        reward = 1.0 - 0.9 * unwrapped.step_count / unwrapped.max_steps if done else 0.0  # type: ignore[attr-defined]
        truncated = bool(truncated) and not done
        info = self._info(info)
        if done or truncated:
            info["is_success"] = done
        return self._observation(obs), reward, done, truncated, info

    def render(self) -> Any:
        """Render the current task's env."""
        return self.current_env.render()

    def close(self) -> None:
        """Close every task env built so far."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        super().close()

    def _observation(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        return option_observation(obs, self.current_subtask, self.slots if self.parameterised else ())

    def _info(self, info: Mapping[str, Any]) -> dict[str, Any]:
        sub = self.current_subtask
        return {
            **info,
            "subtask": sub.symbol,
            "arguments": subtask_arguments(sub),
            "task": self.tasks[self._current],
            "assisted_start": self._assisted,
        }

    def _task_env(self, index: int) -> gym.Env[Any, Any]:
        env = self._envs.get(index)
        if env is None:
            spec = self.suite.tasks[self.suite.task_index(self.tasks[index])]
            kwargs: dict[str, Any] = {**spec.kwargs, **self.task_kwargs}
            if self.max_episode_steps is not None:
                kwargs["max_steps"] = self.max_episode_steps
            env = gym.make(spec.env_id, render_mode=self.render_mode, **kwargs)
            if self.view_size is not None:
                env = (MapView if self.map_view else FullView)(env, size=self.view_size)
            self._envs[index] = env
        return env
