"""A BabyAI level generated from a :class:`~modrl.envs.grammar.Task`: one env class, parameterised by the task.

:class:`TaskEnv` is a :class:`minigrid.envs.babyai.core.roomgrid_level.RoomGridLevel`: BabyAI's own reset/step
machinery, instruction objects and verifiers decide success. Each subtask becomes one BabyAI action instruction
(``GoToInstr``, ``PickupInstr``, ``OpenInstr``, ``PutNextInstr``). BabyAI's ``BeforeInstr`` cannot nest (its
operands must be action instructions), so sequences of up to four subtasks are ordered by :class:`SubtaskSequence`,
which only keeps the books: it asks every pending BabyAI verifier each step and advances through the consecutive
successes, exactly like a chain of ``BeforeInstr`` would.

Layout: one room (``room_size`` x ``room_size``, walls included) when the task mentions no door, otherwise two rooms
side by side joined by the mentioned doors plus distractor doors, all closed and unlocked, in the shared wall. The
mentioned objects appear once each; ``num_distractors`` other (colour, type) objects are added, never identical to a
mentioned object nor in ``avoid`` (so a training episode can be kept free of held-out combinations). Objects are never
placed next to the agent's start, in front of a door, or (for ``putnext``) already next to their target. The episode
limit is BabyAI's: ``room_size ** 2 * rooms`` steps per navigation (``putnext`` counts two).

``strict`` turns on BabyAI's own ``strict`` flag of its pick-up and open instructions: picking up anything but the
object (or pressing pick-up while carrying) and toggling any other door fail the episode (terminated, reward 0), as
in BabyAI's strict levels. Only the current subtask can fail (a later pick-up is not failed by the object an
earlier subtask had the agent pick up).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
from minigrid.core.world_object import Ball, Box, Door, Key, WorldObj
from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel
from minigrid.envs.babyai.core.verifier import (
    ActionInstr,
    GoToInstr,
    Instr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)

from modrl.config import MAX_EPISODE_STEPS, ConfigError, check, check_bool, check_int, short_repr
from modrl.envs.grammar import COLOURS, PICKABLE_TYPES, ObjectRef, Subtask, Task, parse_object, parse_task
from modrl.envs.predicates import env_predicates

_OBJECT_CLASSES: dict[str, Callable[[str], WorldObj]] = {"ball": Ball, "box": Box, "key": Key}
_NEIGHBOURS = ((1, 0), (0, 1), (-1, 0), (0, -1))


def babyai_instruction(sub: Subtask, strict: bool = False) -> ActionInstr:
    """The BabyAI action instruction (with its verifier) for one subtask; ``strict`` is BabyAI's flag of pick-up and
    open (go to and put next are never strict here)."""
    desc = ObjDesc(sub.obj.type, sub.obj.colour)
    if sub.verb == "goto":
        return GoToInstr(desc)
    if sub.verb == "pickup":
        return PickupInstr(desc, strict=strict)
    if sub.verb == "open":
        return OpenInstr(desc, strict=strict)
    assert sub.target is not None
    return PutNextInstr(desc, ObjDesc(sub.target.type, sub.target.colour))


class SubtaskSequence(Instr):
    """Ordered BabyAI action instructions: done when each has succeeded, in order.

    Every step it calls ``verify`` on all pending instructions (so their per-step bookkeeping, e.g. what was carried
    on the previous step, stays current) and advances past the consecutive successes starting at the current one;
    one action may complete several subtasks, as with BabyAI's ``BeforeInstr``.

    Attributes:
        instrs: The BabyAI action instructions, in order.
        symbols: The sketch symbol of each instruction.
        index: Number of subtasks completed so far (the index of the current one).
        events: Symbols of the subtasks completed by the last verified action.
    """

    def __init__(self, instrs: Sequence[ActionInstr], symbols: Sequence[str]) -> None:
        super().__init__()
        if len(instrs) != len(symbols) or not instrs:
            raise ValueError("SubtaskSequence needs one symbol per instruction and at least one instruction")
        self.instrs = tuple(instrs)
        self.symbols = tuple(symbols)
        self.index = 0
        self.events: tuple[str, ...] = ()

    def surface(self, env: Any) -> str:
        """BabyAI's sentences of the instructions joined by ``", then "``."""
        return ", then ".join(instr.surface(env) for instr in self.instrs)

    def reset_verifier(self, env: Any) -> None:
        """Reset every instruction's verifier and the progress."""
        super().reset_verifier(env)
        for instr in self.instrs:
            instr.reset_verifier(env)
        self.index = 0
        self.events = ()

    def verify(self, action: Any) -> str:
        """``"success"`` once the last instruction has succeeded, ``"failure"`` when the current one (a strict one)
        fails, else ``"continue"``; updates ``events``."""
        results = [instr.verify(action) for instr in self.instrs[self.index :]]
        start = self.index
        for result in results:
            if result != "success":
                break
            self.index += 1
        self.events = self.symbols[start : self.index]
        if self.index == len(self.instrs):
            return "success"
        return "failure" if results[0] == "failure" else "continue"

    def update_objs_poss(self) -> None:
        """Refresh the tracked object positions of every instruction (after a drop)."""
        for instr in self.instrs:
            instr.update_objs_poss()


def is_task_env(env_id: str) -> bool:
    """Whether gymnasium id ``env_id`` is registered as a :class:`TaskEnv` (or a subclass); no env is built."""
    try:
        entry = gym.spec(env_id).entry_point
        creator = entry if callable(entry) else gym.envs.registration.load_env_creator(str(entry))
    except (gym.error.Error, ImportError, AttributeError, ValueError):
        return False
    return isinstance(creator, type) and issubclass(creator, TaskEnv)


#: Largest room side: BabyAI's rooms are 5-8 cells; a huge one would only exhaust memory building the grid.
MAX_ROOM_SIZE = 32
#: The MiniGrid keyword arguments TaskEnv passes on to ``RoomGridLevel`` (it sets the grid's layout itself).
ENV_KWARGS = (
    "render_mode",
    "agent_view_size",
    "see_through_walls",
    "highlight",
    "agent_pov",
    "tile_size",
    "screen_size",
)


class TaskEnv(RoomGridLevel):
    """A BabyAI level for one task of the grammar.

    ``info`` (after ``reset`` and every ``step``) holds ``mission`` (str), ``sketch`` (tuple of symbols), ``task``
    (the task name), ``events`` (list of the subtask symbols completed by this step, in order), ``subtask_index``
    (subtasks completed so far) and, unless ``predicates_in_info=False``, ``predicates`` (see :meth:`predicates`).

    Args:
        task: A :class:`~modrl.envs.grammar.Task` or its name.
        room_size: Side of each room, walls included, in ``[5, MAX_ROOM_SIZE]``.
        num_distractors: Non-door distractor objects.
        num_distractor_doors: Extra doors of other colours (two-room layout only; fewer if the wall is full).
        avoid: Objects (``ObjectRef`` or names like ``"red-key"``) never placed as distractors, e.g. a split's
            held-out combinations; must not include an object the task mentions.
        predicates_in_info: Put the symbolic state in ``info["predicates"]`` every step.
        max_steps: Fixed episode limit in ``[1, MAX_EPISODE_STEPS]``; ``None`` uses the BabyAI limit described in the
            module docstring.
        strict: BabyAI's strict pick-up and open (module docstring): a wrong pick-up or door fails the episode.
        **kwargs: Passed to ``RoomGridLevel``: only MiniGrid's own :data:`ENV_KWARGS` (``render_mode``,
            ``agent_view_size``, ...), checked (:func:`modrl.envs.minigrid_kwargs.check_minigrid_kwargs`).
    """

    def __init__(
        self,
        task: Task | str,
        *,
        room_size: int = 7,
        num_distractors: int = 3,
        num_distractor_doors: int = 1,
        avoid: Iterable[ObjectRef | str] = (),
        predicates_in_info: bool = True,
        max_steps: int | None = None,
        strict: bool = False,
        **kwargs: Any,
    ) -> None:
        from modrl.envs.minigrid_kwargs import check_minigrid_kwargs

        self.task = parse_task(task) if isinstance(task, str) else task
        check(isinstance(self.task, Task), "task", f"must be a Task or a task name, got {type(task).__name__}")
        unknown = sorted(set(kwargs) - set(ENV_KWARGS))
        check(
            not unknown,
            short_repr(unknown[0]) if unknown else "",
            f"not an argument of TaskEnv (it takes room_size, num_distractors, num_distractor_doors, avoid, "
            f"predicates_in_info, max_steps, strict, {', '.join(ENV_KWARGS)})",
        )
        check_minigrid_kwargs(kwargs)
        check_int(room_size, "room_size", low=5, high=MAX_ROOM_SIZE)
        check_bool(predicates_in_info, "predicates_in_info")
        check_bool(strict, "strict")
        if max_steps is not None:
            check_int(max_steps, "max_steps", low=1, high=MAX_EPISODE_STEPS)
        check(isinstance(num_distractors, int) and num_distractors >= 0, "num_distractors", "must be an integer >= 0")
        check(
            isinstance(num_distractor_doors, int) and num_distractor_doors >= 0,
            "num_distractor_doors",
            "must be an integer >= 0",
        )
        check(
            isinstance(avoid, (list, tuple, set, frozenset))
            and all(isinstance(item, (ObjectRef, str)) for item in avoid),
            "avoid",
            f"must be a list of objects such as 'red-key', got {short_repr(avoid)}",
        )
        try:
            self.avoid = frozenset(item if isinstance(item, ObjectRef) else parse_object(item) for item in avoid)
        except ConfigError as exc:
            raise ConfigError(f"avoid: {exc}") from None
        clash = sorted(o.name for o in self.avoid.intersection(self.task.objects))
        check(not clash, "avoid", f"the task mentions avoided objects: {', '.join(clash)}")
        self.num_distractors = num_distractors
        self.num_distractor_doors = num_distractor_doors
        self.predicates_in_info = predicates_in_info
        self.strict = strict
        self.instrs: SubtaskSequence
        doors = [o for o in self.task.objects if o.type == "door"]
        check(len(doors) <= room_size - 2, "task", f"{len(doors)} doors do not fit a wall of a {room_size}-room")
        # Every object must fit one room beside the agent's reach and the doors' neighbours, or BabyAI's mission
        # generation retries forever (each object goes to a random room; place_obj rejects cells near the agent).
        objects = len([o for o in self.task.objects if o.type != "door"]) + num_distractors
        capacity = (room_size - 2) ** 2 - 5 - len(doors)
        check(
            objects <= capacity,
            "num_distractors",
            f"{objects} objects ({num_distractors} distractors) do not fit a {room_size}-room: at most {capacity}; "
            "use fewer distractors or a larger room_size",
        )
        super().__init__(room_size=room_size, num_rows=1, num_cols=2 if doors else 1, max_steps=max_steps, **kwargs)

    # -- BabyAI hooks -------------------------------------------------------------------------------------------
    def gen_mission(self) -> None:
        """Place the doors, the agent and the objects, and build the instruction (called by ``_gen_grid``)."""
        self._place_doors()
        # After the doors: RoomGrid.place_agent never starts the agent facing an object or a door (BabyAI's bot
        # assumes it must act before a subtask can be verified).
        self.place_agent(self._rand_int(0, self.num_cols), 0)
        self._place_objects()
        subtasks = self.task.subtasks
        instrs = [babyai_instruction(s, self.strict) for s in subtasks]
        self.instrs = SubtaskSequence(instrs, [s.symbol for s in subtasks])

    def num_navs_needed(self, instr: Any) -> int:
        """BabyAI's navigation count, summed over the subtasks of a :class:`SubtaskSequence`."""
        if isinstance(instr, SubtaskSequence):
            return sum(super(TaskEnv, self).num_navs_needed(part) for part in instr.instrs)
        return int(super().num_navs_needed(instr))

    def validate_instrs(self, instr: Any) -> None:
        """BabyAI's validation, applied to every subtask of a :class:`SubtaskSequence`."""
        parts = instr.instrs if isinstance(instr, SubtaskSequence) else (instr,)
        for part in parts:
            super().validate_instrs(part)

    # -- gymnasium API ------------------------------------------------------------------------------------------
    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Generate a new episode (``seed``, ``options`` as in gymnasium); ``info`` carries the task keys."""
        obs, info = super().reset(**kwargs)
        return obs, {**info, **self._task_info()}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step BabyAI's level; ``info`` carries the task keys and this step's completion events."""
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, {**info, **self._task_info()}

    def predicates(self) -> frozenset[str]:
        """The symbolic state now (:func:`modrl.envs.predicates.env_predicates`)."""
        return env_predicates(self)

    # -- internals ----------------------------------------------------------------------------------------------
    def _task_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "mission": self.mission,
            "sketch": self.task.sketch,
            "task": self.task.name,
            "events": list(self.instrs.events),
            "subtask_index": self.instrs.index,
        }
        if self.predicates_in_info:
            info["predicates"] = self.predicates()
        return info

    def _place_doors(self) -> None:
        """Closed, unlocked doors in the wall between the two rooms: the mentioned ones and distractors."""
        if self.num_cols == 1:
            return
        mentioned = [o.colour for o in self.task.objects if o.type == "door"]
        others = [c for c in COLOURS if c not in mentioned and ObjectRef(colour=c, type="door") not in self.avoid]
        slots = self.room_size - 2
        extra = min(self.num_distractor_doors, len(others), slots - len(mentioned))
        colours = mentioned + self._rand_subset(others, extra)
        x = self.room_size - 1
        for colour, y in zip(colours, self._rand_subset(range(1, self.room_size - 1), len(colours)), strict=True):
            self.put_obj(Door(colour, is_locked=False), x, int(y))

    def _place_objects(self) -> None:
        """The mentioned non-door objects (putnext pairs not next to each other), then the distractors."""
        mentioned = [o for o in self.task.objects if o.type != "door"]
        pool = [ObjectRef(colour=c, type=t) for t in PICKABLE_TYPES for c in COLOURS]
        pool = [o for o in pool if o not in self.task.objects and o not in self.avoid]
        distractors = self._rand_subset(pool, min(self.num_distractors, len(pool)))
        apart = {frozenset(s.objects) for s in self.task.subtasks if s.verb == "putnext"}
        placed: dict[ObjectRef, tuple[int, int]] = {}
        for ref in [*mentioned, *distractors]:
            far = [placed[o] for o in placed if frozenset((o, ref)) in apart]
            room = self.get_room(self._rand_int(0, self.num_cols), 0)
            obj = _OBJECT_CLASSES[ref.type](ref.colour)
            pos = self.place_obj(obj, room.top, room.size, reject_fn=_rejector(far), max_tries=1000)
            room.objs.append(obj)
            placed[ref] = (int(pos[0]), int(pos[1]))


def _rejector(far: list[tuple[int, int]]) -> Any:
    """``place_obj`` reject function: not within 1 step of the agent, next to a door, or next to ``far`` cells."""

    def reject(env: TaskEnv, pos: tuple[int, int]) -> bool:
        ax, ay = int(env.agent_pos[0]), int(env.agent_pos[1])
        if abs(ax - pos[0]) + abs(ay - pos[1]) < 2:
            return True
        for i, j in _NEIGHBOURS:
            x, y = pos[0] + i, pos[1] + j
            cell = env.grid.get(x, y)
            if (cell is not None and cell.type == "door") or (x, y) in far:
                return True
        return False

    return reject
