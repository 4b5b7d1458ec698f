"""Declared operators for the grammar's skills over the predicates of :mod:`modrl.envs.predicates`, and task goals.

Skills are the grammar's verbs at the grain of its subtasks (what options trained on subtask events will be):
``goto(t,c)``, ``pickup(t,c)`` and ``open(door,c)`` walk to the object themselves, ``putnext(t,c,u,d)`` carries the
object next to the target and drops it, and ``drop(t,c)`` puts the held object down somewhere out of the way. Three
operators run ``putnext``: ``putnext`` with the object already in hand, ``putnext_fetch`` with free hands, which
picks the object up first -- the grammar's whole putnext subtask, so an option trained on it serves the step without a
``pickup`` option -- and ``putnext_held`` with the target in hand, which sets it down first (no ``drop`` option
needed either).
The planner sees where things are through :func:`modrl.envs.predicates.planning_state` (regions, doors between them,
objects in the way of doors) and derives what the agent can reach with the rules of :data:`RULES`:

* ``blocked(door,c,room,r)`` -- an object stands in front of the door on region ``r``'s side;
* ``reach(room,r)`` -- the agent can walk into region ``r`` (through open doors not blocked on either side);
* ``reachable(t,c)`` -- the agent can get in front of the object: it lies in a reachable region, or it stands just
  behind an open door that the agent can walk up to (it is then picked up from the doorway).

``goto``, ``pickup`` and ``open_box`` come in two variants that say where the agent ends: from inside the object's
region (which must be reachable; the agent ends in it) and ``*_doorway``, from the doorway of the open door the
object stands behind when its region cannot be entered otherwise (the agent ends in the doorway, counted on the near
side while the object bars the far one, as :func:`modrl.envs.predicates.spatial_state` counts it). The scripted skills
end where the operator says (:class:`modrl.envs.scripted_skills.ScriptedSkills`).

So "pick up the box behind the locked door" plans as: pick up the key, open (unlock) the door, drop the key (the hands
must be free), pick up the box -- none of which the mission spells out. A key hidden in a box (ObstructedMaze) is
fetched by ``open_box`` first, which the planner knows to do from the privileged ``contains`` atom.

Objects are ``(type, name)``: the name is the colour, or ``colour@x_y`` for one of several objects of one type and
colour (:func:`modrl.envs.predicates.identify_objects`); keys fit doors through ``fits`` atoms, not through the names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from minigrid.core.world_object import WorldObj

from modrl.config import ConfigError
from modrl.envs.grammar import COLOURS, PICKABLE_TYPES, ObjectRef, Subtask, Task
from modrl.envs.predicates import object_name, plain_colour
from modrl.planner import Domain, Goal, GroundOperator, Operator, Param, Rule, format_atom, parse_atom

# An object is (type, name): the name is its colour, or colour@x_y for one of several same-type same-colour objects
# (modrl.envs.predicates.identify_objects), so names are untyped; preconditions bind every one of them.
_NAME = Param(name="?c")
_OBJ = (Param(name="?t", type="pickable"), _NAME)
_DOOR = (_NAME,)
_ROOM = (Param(name="?r"),)
_MOVE_DEL = ("facing(*,*)", "agent_in(room,*)")
_LIFT_DEL = ("in(?t,?c,*,*)", "next_to(?t,?c,*,*)", "next_to(*,*,?t,?c)", "blocks(?t,?c,*,*)")
_DOOR_SIDE = ("connects(door,?c,room,?r,room,*)", "reach(room,?r)")

_INSIDE = ("in(?t,?c,room,?r)", "reach(room,?r)")
"""Preconditions of reaching an object from inside its region (the agent ends in that region)."""
_DOORWAY = (Param(name="?d"), Param(name="?s"))
_FROM_DOORWAY = (
    "blocks(?t,?c,door,?d)",
    "in(?t,?c,room,?r)",
    "connects(door,?d,room,?s,room,?r)",
    "reach(room,?s)",
    "open(door,?d)",
)
"""Preconditions of reaching an object that stands just behind the open door ``?d`` from the doorway, coming from
region ``?s``: the agent ends in the doorway, facing the object, which bars the way into ``?r``, so it counts as in
``?s`` only (:func:`modrl.envs.predicates.spatial_state`)."""
_FROM_DOORWAY_NEG = ("blocked(door,?d,room,?s)", "reach(room,?r)")
"""Only when the object's region cannot be entered otherwise: then the doorway is the one way to it (and the inside
and doorway variants never both apply, so the plan says where the agent ends)."""
_BOX = (_NAME, Param(name="?t", type="pickable"), Param(name="?k"), *_ROOM)
_OPEN_BOX_DEL = (
    *_MOVE_DEL,
    "contains(box,?c,*,*)",
    "in(box,?c,*,*)",
    "next_to(box,?c,*,*)",
    "next_to(*,*,box,?c)",
    "blocks(box,?c,*,*)",
)


def _box_doorway(atoms: tuple[str, ...]) -> tuple[str, ...]:
    """``atoms`` of :data:`_FROM_DOORWAY` about the box ``?c`` (``?t`` names the contents' type in ``open_box``)."""
    return tuple(a.replace("(?t,?c,", "(box,?c,") for a in atoms)


RULES: tuple[Rule, ...] = (
    Rule(head="blocked(door,?d,room,?r)", body=("blocks(?t,?c,door,?d)", "in(?t,?c,room,?r)")),
    Rule(head="reach(room,?r)", body=("agent_in(room,?r)",)),
    Rule(
        head="reach(room,?s)",
        body=("reach(room,?r)", "connects(door,?d,room,?r,room,?s)", "open(door,?d)"),
        neg=("blocked(door,?d,room,?r)", "blocked(door,?d,room,?s)"),
    ),
    Rule(head="reachable(?t,?c)", body=("in(?t,?c,room,?r)", "reach(room,?r)")),
    Rule(
        head="reachable(?t,?c)",
        body=("blocks(?t,?c,door,?d)", "connects(door,?d,room,?r,room,*)", "reach(room,?r)", "open(door,?d)"),
        neg=("blocked(door,?d,room,?r)",),
    ),
    Rule(head="reachable(door,?c)", body=_DOOR_SIDE, neg=("blocked(door,?c,room,?r)",)),
)
"""Derived predicates (see the module docstring)."""

OPERATORS: tuple[Operator, ...] = (
    Operator(
        name="goto",
        params=(*_OBJ, *_ROOM),
        pre=_INSIDE,
        delete=_MOVE_DEL,
        add=("facing(?t,?c)", "agent_in(room,?r)"),
        skill_args=("?t", "?c"),
    ),
    Operator(
        name="goto_doorway",
        params=(*_OBJ, *_ROOM, *_DOORWAY),
        pre=_FROM_DOORWAY,
        neg=_FROM_DOORWAY_NEG,
        delete=_MOVE_DEL,
        add=("facing(?t,?c)", "agent_in(room,?s)"),
        skill="goto",
        skill_args=("?t", "?c"),
    ),
    Operator(
        name="goto_door",
        params=(*_DOOR, *_ROOM),
        pre=("reachable(door,?c)", *_DOOR_SIDE),
        neg=("blocked(door,?c,room,?r)",),
        delete=_MOVE_DEL,
        add=("facing(door,?c)", "agent_in(room,?r)"),
        skill="goto",
        skill_args=("door", "?c"),
    ),
    Operator(
        name="goto_goal",
        params=(_NAME, *_ROOM),
        pre=("reachable(goal,?c)", "in(goal,?c,room,?r)"),
        delete=_MOVE_DEL,
        add=("at_goal", "agent_in(room,?r)"),
        skill="goto",
        skill_args=("goal", "?c"),
    ),
    Operator(
        name="pickup",
        params=(*_OBJ, *_ROOM),
        pre=_INSIDE,
        neg=("carrying(*,*)",),
        delete=(*_MOVE_DEL, *_LIFT_DEL),
        add=("carrying(?t,?c)", "agent_in(room,?r)"),
        skill_args=("?t", "?c"),
    ),
    Operator(
        name="pickup_doorway",
        params=(*_OBJ, *_ROOM, *_DOORWAY),
        pre=_FROM_DOORWAY,
        neg=("carrying(*,*)", *_FROM_DOORWAY_NEG),
        delete=(*_MOVE_DEL, *_LIFT_DEL),
        add=("carrying(?t,?c)", "agent_in(room,?s)", "agent_in(room,?r)"),  # in the doorway, free on both sides
        skill="pickup",
        skill_args=("?t", "?c"),
    ),
    Operator(
        name="drop",
        params=(*_OBJ, *_ROOM),
        pre=("carrying(?t,?c)", "agent_in(room,?r)"),
        delete=("carrying(?t,?c)", "facing(*,*)"),
        add=("in(?t,?c,room,?r)", "facing(?t,?c)"),
        skill_args=("?t", "?c"),
    ),
    Operator(
        name="open",
        params=(*_DOOR, *_ROOM),
        pre=_DOOR_SIDE,
        neg=("open(door,?c)", "locked(door,?c)", "blocked(door,?c,room,?r)"),
        delete=_MOVE_DEL,
        add=("open(door,?c)", "facing(door,?c)", "agent_in(room,?r)"),
        skill_args=("door", "?c"),
    ),
    Operator(
        name="unlock",
        params=(*_DOOR, *_ROOM, Param(name="?k")),
        pre=("locked(door,?c)", "carrying(key,?k)", "fits(key,?k,door,?c)", *_DOOR_SIDE),
        neg=("blocked(door,?c,room,?r)",),
        delete=("locked(door,?c)", *_MOVE_DEL),
        add=("open(door,?c)", "facing(door,?c)", "agent_in(room,?r)"),
        skill="open",
        skill_args=("door", "?c"),
    ),
    Operator(
        name="putnext",
        params=(*_OBJ, Param(name="?u", type="pickable"), Param(name="?d"), *_ROOM),
        pre=("carrying(?t,?c)", "reachable(?u,?d)", "in(?u,?d,room,?r)"),
        delete=("carrying(?t,?c)", *_MOVE_DEL),
        add=("in(?t,?c,room,?r)", "next_to(?t,?c,?u,?d)", "next_to(?u,?d,?t,?c)", "facing(?t,?c)", "agent_in(room,?r)"),
        skill_args=("?t", "?c", "?u", "?d"),
    ),
    Operator(
        name="putnext_fetch",
        params=(*_OBJ, Param(name="?u", type="pickable"), Param(name="?d"), *_ROOM),
        pre=("reachable(?t,?c)", "reachable(?u,?d)", "in(?u,?d,room,?r)"),
        neg=("carrying(*,*)", "blocks(?t,?c,*,*)"),
        delete=(*_MOVE_DEL, *_LIFT_DEL),
        add=("in(?t,?c,room,?r)", "next_to(?t,?c,?u,?d)", "next_to(?u,?d,?t,?c)", "facing(?t,?c)", "agent_in(room,?r)"),
        skill="putnext",
        skill_args=("?t", "?c", "?u", "?d"),
        distinct=((("?t", "?c"), ("?u", "?d")),),
    ),
    Operator(
        name="putnext_held",
        params=(*_OBJ, Param(name="?u", type="pickable"), Param(name="?d"), *_ROOM),
        pre=("carrying(?u,?d)", "agent_in(room,?r)", "reachable(?t,?c)"),
        neg=("blocks(?t,?c,*,*)",),
        delete=("carrying(?u,?d)", *_MOVE_DEL, *_LIFT_DEL),
        add=(
            "in(?u,?d,room,?r)",
            "in(?t,?c,room,?r)",
            "next_to(?t,?c,?u,?d)",
            "next_to(?u,?d,?t,?c)",
            "facing(?t,?c)",
            "agent_in(room,?r)",
        ),
        skill="putnext",
        skill_args=("?t", "?c", "?u", "?d"),
        distinct=((("?t", "?c"), ("?u", "?d")),),
    ),
    Operator(
        name="open_box",
        params=_BOX,
        pre=("contains(box,?c,?t,?k)", "in(box,?c,room,?r)", "reach(room,?r)"),
        delete=_OPEN_BOX_DEL,
        add=("in(?t,?k,room,?r)", "facing(?t,?k)", "agent_in(room,?r)"),
        skill="open",
        skill_args=("box", "?c"),
    ),
    Operator(
        name="open_box_doorway",
        params=(*_BOX, *_DOORWAY),
        pre=("contains(box,?c,?t,?k)", *_box_doorway(_FROM_DOORWAY)),
        neg=_box_doorway(_FROM_DOORWAY_NEG),
        delete=_OPEN_BOX_DEL,
        # The contents take the box's place in front of the doorway: the agent stays on the near side.
        add=("in(?t,?k,room,?r)", "facing(?t,?k)", "agent_in(room,?s)", "blocks(?t,?k,door,?d)"),
        skill="open",
        skill_args=("box", "?c"),
    ),
)
"""The declared operators; ``putnext_fetch`` runs the ``putnext`` skill from free hands (pick up, then put next to;
the hands end free) on an object lying in the open (one in a doorway is lifted by ``pickup``, as the grammar's putnext
subtask never starts in a doorway); ``putnext_held`` runs it while holding the *target*: the skill sets the target
down in the agent's room, then fetches the object and puts it beside (what BabyAI's bot, hence the putnext option's
demonstrations, does after "pick up the blue key" when "put the yellow box next to the blue key" follows);
``unlock`` runs the ``open`` skill while carrying the door's key; ``open_box`` runs it on a box, which MiniGrid
replaces by its contents (known beforehand through the privileged ``contains`` atom: the planner reads the full grid,
inside boxes too); the revealed object's ``next_to``/``blocks`` atoms are left to observation."""

SKILLS: tuple[str, ...] = ("goto", "pickup", "drop", "open", "putnext")
"""The skills the operators run."""


def planning_domain() -> Domain:
    """The MiniGrid planning domain: :data:`OPERATORS`, :data:`RULES` and the types they use."""
    return Domain(operators=OPERATORS, rules=RULES, types={"pickable": frozenset(PICKABLE_TYPES)})


def subtask_goal(sub: Subtask) -> Goal:
    """The goal of one subtask, as BabyAI's verifier checks it: ``goto`` holds while facing the object; ``pickup``,
    ``open`` and ``putnext`` are events, so their atom must be newly achieved (``putnext`` also ends facing the object
    just dropped, which tells the moved object from the fixed one)."""
    obj = sub.obj.symbol
    if sub.verb == "goto":
        return Goal(holds=frozenset({f"facing({obj})"}))
    if sub.verb == "pickup":
        return Goal(achieve=frozenset({f"carrying({obj})"}))
    if sub.verb == "open":
        return Goal(achieve=frozenset({f"open({obj})"}))
    assert sub.target is not None
    # next_to is symmetric; facing the moved object tells "put A next to B" from "put B next to A".
    return Goal(holds=frozenset({f"facing({obj})"}), achieve=frozenset({f"next_to({obj},{sub.target.symbol})"}))


def goal_predicates(task: Task | Subtask) -> tuple[Goal, ...]:
    """The goals of a task's subtasks, in order (a single subtask gives one goal)."""
    subtasks = (task,) if isinstance(task, Subtask) else task.subtasks
    return tuple(subtask_goal(s) for s in subtasks)


def _only_door(state: frozenset[str]) -> str:
    doors = sorted({a.split(",")[1] for a in state if a.startswith("connects(door,")})
    if len(doors) != 1:
        raise ValueError(f"'open the door' needs exactly one door, found {doors or 'none'}")
    return doors[0]


_MISSIONS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str], frozenset[str]], Goal]], ...] = (
    (
        re.compile(r"^pick up the (?:(\w+) )?(ball|box|key)$"),
        lambda m, s: Goal(achieve=frozenset({f"carrying({m[2]},{m[1] or _only(s, m[2])})"})),
    ),
    (re.compile(r"^open the door$"), lambda m, s: Goal(achieve=frozenset({f"open(door,{_only_door(s)})"}))),
    (re.compile(r"^open the (\w+) door$"), lambda m, s: Goal(achieve=frozenset({f"open(door,{m[1]})"}))),
    (re.compile(r"get to the (?:green )?goal(?: square)?$"), lambda m, s: Goal(holds=frozenset({"at_goal"}))),
)


def _only(state: frozenset[str], type_: str) -> str:
    colours = sorted({plain_colour(a.split(",")[1]) for a in state if a.startswith(f"in({type_},")})
    if len(colours) != 1:
        raise ValueError(f"'the {type_}' is ambiguous or absent: colours {colours}")
    return colours[0]


def mission_goals(mission: str, state: frozenset[str], *, prefer: str | None = None) -> tuple[Goal, ...]:
    """Goals of a stock MiniGrid mission ("pick up the purple box", "open the door", "... get to the goal").

    Args:
        mission: The env's mission string.
        state: The planning state (to resolve "the door" when the mission names no colour, and to pick one of several
            same-type same-colour objects, see :func:`resolve_goal`).
        prefer: The name of the object to pick among several that the mission fits (e.g. the env's target).

    Raises:
        ValueError: A mission this table does not understand (the message lists the forms it does).
    """
    for pattern, build in _MISSIONS:
        found = pattern.search(mission.strip())
        if found:
            return (resolve_goal(build(found, state), state, prefer=prefer),)
    forms = "; ".join(p.pattern for p, _ in _MISSIONS)
    raise ValueError(f"no goal for mission {mission!r}; understood forms: {forms}")


def _object_names(state: frozenset[str]) -> dict[tuple[str, str], list[str]]:
    """``(type, colour) -> names`` of the objects the state mentions (every ``type,name`` pair of argument slots)."""
    found: dict[tuple[str, str], set[str]] = {}
    for atom in state:
        args = parse_atom(atom)[1]
        for i in range(0, len(args) - 1, 2):
            found.setdefault((args[i], plain_colour(args[i + 1])), set()).add(args[i + 1])
    return {key: sorted(names) for key, names in found.items()}


def resolve_goal(goal: Goal, state: frozenset[str], *, prefer: str | None = None) -> Goal:
    """``goal`` with every object named by a plain colour that several objects of ``state`` share (``door,red`` when
    there are ``door,red@3_4`` and ``door,red@3_8``) replaced by one of them: ``prefer`` when it is one, else the
    first by name. Like BabyAI's verifiers, a mission's "the red door" is met by any red door, so any one will do;
    objects the state names exactly are left alone."""
    names = _object_names(state)

    def one(atom: str) -> str:
        name, args = parse_atom(atom)
        out = list(args)
        for i in range(0, len(args) - 1, 2):
            options = names.get((args[i], args[i + 1]), [])
            if args[i + 1] in COLOURS and options and args[i + 1] not in options:
                out[i + 1] = prefer if prefer in options else options[0]
        return format_atom(name, out)

    return Goal(holds=frozenset(one(a) for a in goal.holds), achieve=frozenset(one(a) for a in goal.achieve))


def goals_for_env(env: Any, state: frozenset[str]) -> tuple[Goal, ...]:
    """The goals of a (possibly wrapped) env's episode: its task's for a :class:`~modrl.envs.task_env.TaskEnv`, else
    its mission's (:func:`mission_goals`); among several objects the mission fits, the env's target ``obj`` (the
    object stock MiniGrid envs reward) is preferred."""
    base = env.unwrapped
    task = getattr(base, "task", None)
    if isinstance(task, Task):
        return tuple(resolve_goal(goal, state) for goal in goal_predicates(task))
    target = getattr(base, "obj", None)
    prefer = object_name(target) if isinstance(target, WorldObj) else None
    return mission_goals(str(base.mission), state, prefer=prefer)


def skill_subtask(step: GroundOperator) -> Subtask | None:
    """The grammar subtask a ground operator's skill call performs, i.e. what an option trained on that subtask's
    events should run: ``goto(t,c)``, ``pickup(t,c)``, ``open(door,c)`` (also for ``unlock``) and ``putnext(t,c,u,d)``
    map to their subtask; ``drop``, ``goto`` of the goal square, ``open`` of a box and objects the grammar has no word
    for give ``None``. One of several same-type same-colour objects (``door,red@3_4``) maps to its colour and type:
    the option of that subtask may serve another of them, and the monitor re-plans from what it observes.
    """
    args = step.skill_args
    try:
        objects = [
            ObjectRef(colour=plain_colour(args[i + 1]), type=args[i])  # type: ignore[arg-type]
            for i in range(0, len(args) - 1, 2)
        ]
        if step.skill in ("goto", "pickup", "open") and len(objects) == 1:
            return Subtask(verb=step.skill, obj=objects[0])  # type: ignore[arg-type]
        if step.skill == "putnext" and len(objects) == 2:
            return Subtask(verb="putnext", obj=objects[0], target=objects[1])
    except (ConfigError, ValueError):
        return None
    return None
