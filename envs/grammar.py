"""The task grammar: subtasks over MiniGrid objects and ordered sequences of them.

A :class:`Subtask` is a verb applied to an :class:`ObjectRef` (a ``(colour, type)`` pair), plus a target object for
``putnext``. A :class:`Task` is an ordered sequence of 1 to :data:`MAX_SUBTASKS` subtasks. Everything is a frozen
value with three stable spellings:

* ``name`` -- the task id used in suites, splits and gymnasium ids: ``"pickup-red-key"``,
  ``"open-red-door_then_pickup-blue-key"``, ``"putnext-green-ball-red-box"``; :func:`parse_task` reads it back.
* ``symbol`` / ``sketch`` -- the subtask symbols of a policy sketch: ``"open(door,red)"``, ``"pickup(key,blue)"``,
  ``"putnext(ball,green,box,red)"`` (type before colour, as in the predicates of :mod:`modrl.envs.predicates`).
* ``mission`` -- the BabyAI sentence: ``"open the red door, then pick up the blue key"``; with a single object of each
  mentioned ``(colour, type)`` in the room, it is exactly what BabyAI's instruction objects print.

The grammar follows BabyAI's (Chevalier-Boisvert et al., 2019, "BabyAI: a platform to study the sample efficiency of
grounded language learning"), without locations, ``and`` or ``after``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast, get_args

from minigrid.core.constants import COLOR_NAMES

from modrl.config import ConfigError, check

Verb = Literal["goto", "pickup", "open", "putnext"]
ObjectType = Literal["ball", "box", "key", "door"]

VERBS: tuple[Verb, ...] = get_args(Verb)
"""The verbs, in grammar order."""
OBJECT_TYPES: tuple[ObjectType, ...] = get_args(ObjectType)
"""Object types a task may name (MiniGrid's describable objects)."""
PICKABLE_TYPES: tuple[ObjectType, ...] = ("ball", "box", "key")
"""Object types that can be carried (everything but doors)."""
COLOURS: tuple[str, ...] = tuple(COLOR_NAMES)
"""MiniGrid's six colours, sorted: blue, green, grey, purple, red, yellow."""
MAX_SUBTASKS = 4
"""The longest sequence a task may have."""

#: The object types each verb accepts (putnext: the moved object; its target may be any non-door object too).
VERB_TYPES: dict[Verb, tuple[ObjectType, ...]] = {
    "goto": OBJECT_TYPES,
    "pickup": PICKABLE_TYPES,
    "open": ("door",),
    "putnext": PICKABLE_TYPES,
}
_SENTENCE: dict[Verb, str] = {"goto": "go to", "pickup": "pick up", "open": "open", "putnext": "put"}
_THEN_NAME = "_then_"
_THEN_MISSION = ", then "


@dataclass(frozen=True, kw_only=True)
class ObjectRef:
    """A MiniGrid object described by colour and type (``"red key"``).

    Attributes:
        colour: One of :data:`COLOURS`.
        type: One of :data:`OBJECT_TYPES`.
    """

    colour: str
    type: ObjectType

    def __post_init__(self) -> None:
        check(self.colour in COLOURS, "colour", f"{self.colour!r} is not one of {', '.join(COLOURS)}")
        check(self.type in OBJECT_TYPES, "type", f"{self.type!r} is not one of {', '.join(OBJECT_TYPES)}")

    @property
    def name(self) -> str:
        """``"red-key"``."""
        return f"{self.colour}-{self.type}"

    @property
    def symbol(self) -> str:
        """``"key,red"`` (type first, as in sketches and predicates)."""
        return f"{self.type},{self.colour}"

    @property
    def words(self) -> str:
        """``"red key"``."""
        return f"{self.colour} {self.type}"


@dataclass(frozen=True, kw_only=True)
class Subtask:
    """One instruction: a verb, its object and, for ``putnext`` only, the object to put it next to.

    Attributes:
        verb: ``goto`` (any object, doors included), ``pickup`` (not a door), ``open`` (doors only) or ``putnext``
            (move a non-door object next to ``target``).
        obj: The object acted on.
        target: The fixed object of ``putnext`` (not a door, different from ``obj``); ``None`` for the other verbs.
    """

    verb: Verb
    obj: ObjectRef
    target: ObjectRef | None = None

    def __post_init__(self) -> None:
        check(self.verb in VERBS, "verb", f"{self.verb!r} is not one of {', '.join(VERBS)}")
        check(isinstance(self.obj, ObjectRef), "obj", f"must be an ObjectRef, got {type(self.obj).__name__}")
        allowed = VERB_TYPES[self.verb]
        check(self.obj.type in allowed, "obj", f"{self.verb} takes a {' or '.join(allowed)}, not a {self.obj.type}")
        if self.verb == "putnext":
            check(isinstance(self.target, ObjectRef), "target", "putnext needs a target ObjectRef")
            assert self.target is not None
            check(self.target.type in PICKABLE_TYPES, "target", f"putnext cannot target a {self.target.type}")
            check(self.target != self.obj, "target", f"cannot put the {self.obj.words} next to itself")
        else:
            check(self.target is None, "target", f"only putnext takes a target, not {self.verb}")

    @property
    def objects(self) -> tuple[ObjectRef, ...]:
        """The objects this subtask mentions: ``(obj,)`` or ``(obj, target)``."""
        return (self.obj,) if self.target is None else (self.obj, self.target)

    @property
    def name(self) -> str:
        """``"pickup-red-key"``, ``"putnext-green-ball-red-box"``."""
        return "-".join([self.verb, *(o.name for o in self.objects)])

    @property
    def symbol(self) -> str:
        """``"pickup(key,red)"``, ``"putnext(ball,green,box,red)"``."""
        return f"{self.verb}({','.join(o.symbol for o in self.objects)})"

    @property
    def mission(self) -> str:
        """``"pick up the red key"``, ``"put the green ball next to the red box"``."""
        text = f"{_SENTENCE[self.verb]} the {self.obj.words}"
        return text if self.target is None else f"{text} next to the {self.target.words}"


@dataclass(frozen=True, kw_only=True)
class Task:
    """An ordered sequence of 1 to :data:`MAX_SUBTASKS` distinct subtasks, done one after the other.

    Attributes:
        subtasks: The subtasks in order.
    """

    subtasks: tuple[Subtask, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "subtasks", tuple(self.subtasks))
        check(
            1 <= len(self.subtasks) <= MAX_SUBTASKS,
            "subtasks",
            f"a task has 1 to {MAX_SUBTASKS} subtasks, got {len(self.subtasks)}",
        )
        check(all(isinstance(s, Subtask) for s in self.subtasks), "subtasks", "every subtask must be a Subtask")
        check(len(set(self.subtasks)) == len(self.subtasks), "subtasks", f"{self.name}: a subtask is repeated")

    @property
    def name(self) -> str:
        """Stable task id: subtask names joined by ``"_then_"``."""
        return _THEN_NAME.join(s.name for s in self.subtasks)

    @property
    def sketch(self) -> tuple[str, ...]:
        """The ordered subtask symbols."""
        return tuple(s.symbol for s in self.subtasks)

    @property
    def mission(self) -> str:
        """The instruction sentence, subtasks joined by ``", then "``."""
        return _THEN_MISSION.join(s.mission for s in self.subtasks)

    @property
    def objects(self) -> tuple[ObjectRef, ...]:
        """Every object the task mentions, once each, in order of first mention."""
        return tuple(dict.fromkeys(o for s in self.subtasks for o in s.objects))

    def __len__(self) -> int:
        return len(self.subtasks)


def task(*subtasks: Subtask) -> Task:
    """Shorthand for ``Task(subtasks=subtasks)``."""
    return Task(subtasks=subtasks)


def subtask(verb: Verb, colour: str, type_: ObjectType, target: tuple[str, ObjectType] | None = None) -> Subtask:
    """Shorthand: ``subtask("putnext", "green", "ball", ("red", "box"))``."""
    goal = None if target is None else ObjectRef(colour=target[0], type=target[1])
    return Subtask(verb=verb, obj=ObjectRef(colour=colour, type=type_), target=goal)


def parse_object(name: str) -> ObjectRef:
    """Read an object name back (``"red-key"``).

    Raises:
        modrl.config.ConfigError: Not a valid object name.
    """
    colour, _, type_ = name.partition("-")
    return ObjectRef(colour=colour, type=cast(ObjectType, type_))


def parse_subtask(name: str) -> Subtask:
    """Read a subtask name back (``"pickup-red-key"``, ``"putnext-green-ball-red-box"``).

    Raises:
        modrl.config.ConfigError: Not a valid subtask name.
    """
    parts = name.split("-")
    verb, words = parts[0], parts[1:]
    check(verb in VERBS, "task", f"{name!r}: unknown verb {verb!r}; verbs: {', '.join(VERBS)}")
    if len(words) not in (2, 4) or (len(words) == 4) != (verb == "putnext"):
        raise ConfigError(f"task: {name!r} must look like verb-colour-type or putnext-colour-type-colour-type")
    objects = [ObjectRef(colour=words[i], type=cast(ObjectType, words[i + 1])) for i in range(0, len(words), 2)]
    return Subtask(verb=cast(Verb, verb), obj=objects[0], target=objects[1] if len(objects) == 2 else None)


def parse_task(name: str) -> Task:
    """Read a task name back; ``parse_task(t.name) == t`` for every valid task ``t``.

    Raises:
        modrl.config.ConfigError: Not a valid task name (the message names the problem).
    """
    check(isinstance(name, str) and bool(name), "task", f"must be a non-empty task name, got {name!r}")
    return Task(subtasks=tuple(parse_subtask(part) for part in name.split(_THEN_NAME)))
