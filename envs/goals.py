"""Planner goals of an env's episode: from its task (:class:`~modrl.envs.task_env.TaskEnv`), from BabyAI's instruction
objects (``env.instrs``), or from a stock MiniGrid mission string.

BabyAI envs carry their instruction as a tree of verifier objects (:mod:`minigrid.envs.babyai.core.verifier`):
actions ``GoToInstr``, ``PickupInstr``, ``OpenInstr`` and ``PutNextInstr`` over ``ObjDesc`` descriptions (type,
colour, location), joined by ``BeforeInstr``, ``AfterInstr`` and ``AndInstr``. :func:`instruction_goals` turns the tree
into the ordered goals of :mod:`modrl.planner.search`, one per action, as the verifiers check them: ``go to`` holds
while facing the object, ``pick up``, ``open`` and ``put next to`` are events (``achieve``). ``A, then B`` and ``B after
you A`` order the goals; ``A and B`` is met in either order, and the planner takes them in the order written. An
``ObjDesc`` may fit several objects ("a key", "a door on your right"): the verifier matched them at reset
(``desc.obj_set``, the location already applied), any one will do, and the planner is given one: the nearest of those
it can reach now, else the nearest.

Other envs are read from their mission (:func:`mission_goals`; GoToDoor and GoToObject, whose success is the ``done``
action next to the target, get the goal ``achieve done(t,c)``); stock envs whose success the operators cannot express
(a cue to remember, no mission) raise :class:`UnsupportedTask` with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from minigrid.core.world_object import WorldObj
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    AndInstr,
    BeforeInstr,
    GoToInstr,
    Instr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)
from minigrid.minigrid_env import MiniGridEnv

from modrl.envs.grammar import COLOURS, Task
from modrl.envs.operators import goal_predicates, planning_domain
from modrl.envs.predicates import object_name, plain_colour
from modrl.planner import Goal, format_atom, parse_atom


class UnsupportedTask(ValueError):
    """The env's task cannot be written as planner goals over the declared operators; the message says why."""


class NotSeenYet(UnsupportedTask):
    """The mission names an object by its type alone ("open the door") and the state holds none of that type: from
    the agent's own view it may not have been seen yet (the planner harness then looks around for one and reads the
    goals again: :class:`modrl.agents.planning.episode.PlannerRun`).

    Attributes:
        type_: The object type the mission names.
    """

    def __init__(self, message: str, type_: str) -> None:
        super().__init__(message)
        self.type_ = type_


_UNSUPPORTED_ENVS: dict[str, str] = {
    "MemoryEnv": "the target is the object matching a cue shown at the start, which the mission does not name",
    "PlaygroundEnv": "the mission is empty: there is no task",
}
"""Stock env classes whose mission reads like a goal but whose success the operators cannot express."""


def goals_for_env(env: Any, state: frozenset[str], *, own_view: bool = False) -> tuple[Goal, ...]:
    """The goals of a (possibly wrapped) env's episode: its task's for a :class:`~modrl.envs.task_env.TaskEnv`, its
    instruction's when it has BabyAI ``instrs`` (:func:`instruction_goals`), else its mission's (:func:`mission_goals`;
    among several objects the mission fits, the env's target ``obj``, the object stock MiniGrid envs reward, is
    preferred).

    ``own_view``: ``state`` is the agent's own view (:func:`modrl.envs.own_view.own_view_state`), and nothing the
    agent has not been told or seen is read: no target ``obj``, and BabyAI descriptions give their type and colour
    only (:func:`own_view_instruction_goals`) instead of the objects their verifiers matched on the whole grid.

    Raises:
        UnsupportedTask: The task cannot be expressed (the message names the env and why).
    """
    base = env.unwrapped
    task = getattr(base, "task", None)
    if isinstance(task, Task):
        return tuple(resolve_goal(goal, state) for goal in goal_predicates(task))
    instrs = getattr(base, "instrs", None)
    if isinstance(instrs, Instr):
        return own_view_instruction_goals(instrs, state) if own_view else instruction_goals(base, instrs, state)
    reason = _UNSUPPORTED_ENVS.get(type(base).__name__)
    if reason is not None:
        raise UnsupportedTask(f"{type(base).__name__}: not expressible: {reason}")
    target = None if own_view else getattr(base, "obj", None)
    if type(base).__name__ in _DONE_ENVS and not own_view:
        pos = getattr(base, "target_pos", None)
        target = base.grid.get(*pos) if pos is not None else None
    prefer = object_name(target) if isinstance(target, WorldObj) else None
    if type(base).__name__ in _DONE_ENVS:
        found = _DONE_MISSION.search(str(base.mission).strip())
        if found is None:
            raise UnsupportedTask(f"no goal for mission {base.mission!r}; understood form: {_DONE_MISSION.pattern}")
        return (resolve_goal(Goal(achieve=frozenset({f"done({found[2]},{found[1]})"})), state, prefer=prefer),)
    return mission_goals(str(base.mission), state, prefer=prefer)


_DONE_ENVS = frozenset({"GoToDoorEnv", "GoToObjectEnv"})
"""Stock env classes whose success is MiniGrid's ``done`` action next to the target (doors in the outer wall for
GoToDoor): their goal is ``achieve done(t,c)`` (:data:`modrl.envs.operators.DONE_OPERATOR`)."""
_DONE_MISSION = re.compile(r"^go to the (\w+) (door|ball|box|key)$")


# -- BabyAI instructions -------------------------------------------------------------------------------------------
def instruction_goals(base: MiniGridEnv, instr: Instr, state: frozenset[str]) -> tuple[Goal, ...]:
    """The goals of a BabyAI instruction tree, in order (see the module docstring).

    Args:
        base: The unwrapped env, reset (its verifiers have matched their objects).
        instr: ``base.instrs`` or a part of it.
        state: The planning state (names objects; tells what is reachable now).

    Raises:
        UnsupportedTask: An instruction or description the operators cannot express (the message says which).
    """
    chooser = _Chooser(base, state)
    return tuple(_goals(instr, chooser))


def _goals(instr: Instr, choose: Callable[..., str]) -> list[Goal]:
    if isinstance(instr, BeforeInstr | AfterInstr):
        second = instr.instr_b if isinstance(instr, BeforeInstr) else instr.instr_a
        if isinstance(second, OpenInstr) and second.strict:
            raise UnsupportedTask(
                "not solvable: BabyAI's verifier checks the toggle that opens the first door against the second, "
                "strict 'open' too, which fails on any other door in front (OpenDoorsOrder's Debug levels)"
            )
    if isinstance(instr, BeforeInstr | AndInstr):
        return _goals(instr.instr_a, choose) + _goals(instr.instr_b, choose)
    if isinstance(instr, AfterInstr):
        return _goals(instr.instr_b, choose) + _goals(instr.instr_a, choose)
    if isinstance(instr, GoToInstr):
        return [Goal(holds=frozenset({f"facing({choose(instr.desc)})"}))]
    if isinstance(instr, PickupInstr):
        return [Goal(achieve=frozenset({f"carrying({choose(instr.desc)})"}))]
    if isinstance(instr, OpenInstr):
        return [Goal(achieve=frozenset({f"open({choose(instr.desc)})"}))]
    if isinstance(instr, PutNextInstr):
        moved = choose(instr.desc_move)
        fixed = choose(instr.desc_fixed, avoid=moved)
        return [Goal(holds=frozenset({f"facing({moved})"}), achieve=frozenset({f"next_to({moved},{fixed})"}))]
    raise UnsupportedTask(
        f"instruction {type(instr).__name__} is not one of GoTo, Pickup, Open, PutNext, Before, After, And"
    )


def own_view_instruction_goals(instr: Instr, state: frozenset[str]) -> tuple[Goal, ...]:
    """:func:`instruction_goals` from the instruction's words and the own view, for planning from the own view: an
    object with a colour is ``type,colour`` (the first such object the agent sees: :mod:`modrl.envs.own_view`); one
    without ("a ball", "the door"), which any object of its type satisfies, is the first by name of those of its type
    ``state`` shows.

    Raises:
        NotSeenYet: A description without a colour and no object of its type seen yet.
        UnsupportedTask: A description with a location ("the door on your left": relative to where the agent stood at
            the reset, which BabyAI's verifier resolved on the whole grid).
    """

    def choose(desc: ObjDesc, avoid: str | None = None) -> str:
        if desc.loc is not None:
            raise UnsupportedTask(f"own view: {_words(desc)!r} names an object by its location")
        if desc.type is None:  # "the green object": one seen already, of any type
            fits = sorted(
                {
                    f"{args[0]},{args[1]}"
                    for name, args in (parse_atom(a) for a in state)
                    if name in ("in", "carrying") and plain_colour(args[1]) == desc.color
                }
                - {avoid}
            )
            if not fits:
                raise UnsupportedTask(f"own view: {_words(desc)!r} names no type, and none is seen yet")
            return fits[0]
        if desc.color is not None:
            return f"{desc.type},{desc.color}"
        seen = sorted(
            {
                f"{args[0]},{args[1]}"
                for name, args in (parse_atom(a) for a in state)
                if name in ("in", "connects", "carrying") and args[0] == desc.type
            }
            - {avoid}
        )
        if not seen:
            raise NotSeenYet(f"own view: no {desc.type} seen yet for {_words(desc)!r}", desc.type)
        return seen[0]

    return tuple(_goals(instr, choose))


def _words(desc: ObjDesc) -> str:
    return " ".join(w for w in (desc.color, desc.type, desc.loc) if w)


class _Chooser:
    """Picks the object an ``ObjDesc`` stands for: ``"type,name"``, one of the objects its verifier matched."""

    def __init__(self, base: MiniGridEnv, state: frozenset[str]) -> None:
        self.base = base
        self.reachable = {a for a in planning_domain().closure(state) if a.startswith("reachable(")}

    def __call__(self, desc: ObjDesc, avoid: str | None = None) -> str:
        objs = [obj for obj in desc.obj_set if isinstance(obj, WorldObj)]
        named = [f"{obj.type},{object_name(obj)}" for obj in objs]
        options = [(name, obj) for name, obj in zip(named, objs, strict=True) if name != avoid]
        if not options:
            raise UnsupportedTask(f"no object on the grid fits {desc.surface(self.base)!r}")
        ax, ay = (int(v) for v in self.base.agent_pos)

        def rank(item: tuple[str, WorldObj]) -> tuple[bool, int, str]:
            name, obj = item
            pos = obj.cur_pos if obj.cur_pos is not None else (ax, ay)
            far = abs(int(pos[0]) - ax) + abs(int(pos[1]) - ay)
            return f"reachable({name})" not in self.reachable, far, name

        return min(options, key=rank)[0]


# -- stock MiniGrid missions ---------------------------------------------------------------------------------------
def _only_door(state: frozenset[str]) -> str:
    doors = sorted({a.split(",")[1] for a in state if a.startswith("connects(door,")})
    if not doors:
        raise NotSeenYet("'open the door' needs exactly one door, found none", "door")
    if len(doors) != 1:
        raise ValueError(f"'open the door' needs exactly one door, found {doors}")
    return doors[0]


def _only(state: frozenset[str], type_: str) -> str:
    colours = sorted({plain_colour(a.split(",")[1]) for a in state if a.startswith(f"in({type_},")})
    if not colours:
        raise NotSeenYet(f"'the {type_}' is ambiguous or absent: colours []", type_)
    if len(colours) != 1:
        raise ValueError(f"'the {type_}' is ambiguous or absent: colours {colours}")
    return colours[0]


def _achieve(*atoms: str) -> tuple[Goal, ...]:
    return tuple(Goal(achieve=frozenset({atom})) for atom in atoms)


_Build = Callable[[re.Match[str], frozenset[str]], tuple[Goal, ...]]
_OBJ = r"(ball|box|key)"
_MISSIONS: tuple[tuple[re.Pattern[str], _Build], ...] = (
    (
        re.compile(rf"^pick up (?:the|a) (?:(\w+) )?{_OBJ}$"),
        lambda m, s: _achieve(f"carrying({m[2]},{m[1] or _only(s, m[2])})"),
    ),
    (  # Fetch: "get a", "go get a", "fetch a", "go fetch a", "you must fetch a" + colour + type
        re.compile(rf"^(?:go |you must )?(?:get|fetch) a (\w+) {_OBJ}$"),
        lambda m, s: _achieve(f"carrying({m[2]},{m[1]})"),
    ),
    (re.compile(r"^open the door$"), lambda m, s: _achieve(f"open(door,{_only_door(s)})")),
    (re.compile(r"^open the (\w+) door$"), lambda m, s: _achieve(f"open(door,{m[1]})")),
    (  # RedBlueDoors: opening the second door first fails the episode
        re.compile(r"^open the (\w+) door then the (\w+) door$"),
        lambda m, s: _achieve(f"open(door,{m[1]})", f"open(door,{m[2]})"),
    ),
    (  # PutNear: dropping it on any of the 8 cells around the target counts; next_to (4 cells) is enough
        re.compile(rf"^put the (\w+) {_OBJ} near the (\w+) {_OBJ}$"),
        lambda m, s: (
            Goal(
                holds=frozenset({f"facing({m[2]},{m[1]})"}),
                achieve=frozenset({f"next_to({m[2]},{m[1]},{m[4]},{m[3]})"}),
            ),
        ),
    ),
    (  # "get to the green goal square", LockedRoom's "..., unlock the yellow door and go to the goal"
        re.compile(r"(?:get|go) to the (?:green )?goal(?: square)?$"),
        lambda m, s: (Goal(holds=frozenset({"at_goal"})),),
    ),
    (re.compile(r"^reach the goal$"), lambda m, s: (Goal(holds=frozenset({"at_goal"})),)),  # FourRooms
)


def mission_goals(mission: str, state: frozenset[str], *, prefer: str | None = None) -> tuple[Goal, ...]:
    """Goals of a stock MiniGrid mission ("pick up the purple box", "open the door", "... get to the goal").

    Args:
        mission: The env's mission string.
        state: The planning state (to resolve "the door" when the mission names no colour, and to pick one of several
            same-type same-colour objects, see :func:`resolve_goal`).
        prefer: The name of the object to pick among several that the mission fits (e.g. the env's target).

    Raises:
        UnsupportedTask: A mission this table does not understand (the message lists the forms it does).
    """
    for pattern, build in _MISSIONS:
        found = pattern.search(mission.strip())
        if found:
            return tuple(resolve_goal(goal, state, prefer=prefer) for goal in build(found, state))
    forms = "; ".join(p.pattern for p, _ in _MISSIONS)
    raise UnsupportedTask(f"no goal for mission {mission!r}; understood forms: {forms}")


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
