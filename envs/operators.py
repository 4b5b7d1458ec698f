"""Declared operators for the grammar's skills over the predicates of :mod:`modrl.envs.predicates` (task goals:
:mod:`modrl.envs.task_goals`, re-exported here).

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

Planning from the agent's own view (:mod:`modrl.envs.own_view`: no ``contains``, unknown cells in no region) adds the
exploration operators of :data:`EXPLORE_OPERATORS` (``planning_domain(goals, own_view=True)``): they apply only while
an object the plan needs is ``unseen``, and optimistically assume it is found where they look, so a plan through them
is the plan the agent would follow if it were there; the monitor re-plans as soon as what was seen says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from modrl.envs.grammar import PICKABLE_TYPES
from modrl.envs.task_goals import goal_predicates, skill_subtask, subtask_goal
from modrl.planner import Domain, Goal, Operator, Param, Rule, parse_atom

__all__ = [
    "CLOSE_OPERATOR",
    "DONE_OPERATOR",
    "EXPLORE_OPERATORS",
    "EXPLORE_RULES",
    "FINDABLE_TYPES",
    "OPERATORS",
    "PUT_NEXT_OPERATORS",
    "RULES",
    "SKILLS",
    "goal_predicates",
    "planning_domain",
    "skill_subtask",
    "subtask_goal",
]

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
        pre=("carrying(?t,?c)", "in(?u,?d,room,?r)", "reach(room,?r)"),
        delete=("carrying(?t,?c)", *_MOVE_DEL),
        add=("in(?t,?c,room,?r)", "next_to(?t,?c,?u,?d)", "next_to(?u,?d,?t,?c)", "facing(?t,?c)", "agent_in(room,?r)"),
        skill_args=("?t", "?c", "?u", "?d"),
    ),
    Operator(
        name="putnext_door",
        params=(*_OBJ, Param(name="?d"), *_ROOM),
        pre=("carrying(?t,?c)", "connects(door,?d,room,?r,room,*)", "reach(room,?r)"),
        neg=("blocked(door,?d,room,?r)",),
        delete=("carrying(?t,?c)", *_MOVE_DEL),
        add=(
            "in(?t,?c,room,?r)",
            "next_to(?t,?c,door,?d)",
            "next_to(door,?d,?t,?c)",
            "blocks(?t,?c,door,?d)",
            "facing(?t,?c)",
            "agent_in(room,?r)",
        ),
        skill="putnext",
        skill_args=("?t", "?c", "door", "?d"),
    ),
    Operator(
        name="putnext_fetch",
        params=(*_OBJ, Param(name="?u", type="pickable"), Param(name="?d"), *_ROOM),
        pre=("reachable(?t,?c)", "in(?u,?d,room,?r)", "reach(room,?r)"),
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
"""The declared operators; the put-next operators need the target's region reachable, not just the target (one reached
only from a doorway has no reachable cell beside it); ``putnext_door`` puts the held object in front of a door on the
side ``?r`` (BabyAI's "put the red box next to a grey door"; it then blocks the door); ``putnext_fetch`` runs the
``putnext`` skill from free hands (pick up, then put next to; the hands end free) on an object lying in the open (one in
a doorway is lifted by ``pickup``, as the grammar's putnext subtask never starts in a doorway); ``putnext_held`` runs it
while holding the *target*: the skill sets the target down in the agent's room, then fetches the object and puts it
beside (what BabyAI's bot, hence the putnext option's demonstrations, does after "pick up the blue key" when "put the
yellow box next to the blue key" follows); ``unlock`` runs the ``open`` skill while carrying the door's key;
``open_box`` runs it on a box, which MiniGrid replaces by its contents (known beforehand through the privileged
``contains`` atom: the planner reads the full grid, inside boxes too); the revealed object's ``next_to``/``blocks``
atoms are left to observation."""

CLOSE_OPERATOR = Operator(
    name="close",
    params=(*_DOOR, *_ROOM),
    pre=("open(door,?c)", *_DOOR_SIDE),
    neg=("blocked(door,?c,room,?r)",),
    delete=("open(door,?c)", *_MOVE_DEL),
    add=("facing(door,?c)", "agent_in(room,?r)"),
    skill_args=("door", "?c"),
)
"""Close an open door from side ``?r`` (the ``close`` skill: go to it and toggle it). Only in the domain when a goal
asks to open a door (:func:`planning_domain`): BabyAI's "open a door" is an event, and when every door it may mean
lies on the way to the goals before it, the door is open before its turn -- the plan closes it and opens it again, as
BabyAI's bot does."""

DONE_OPERATOR = Operator(
    name="done",
    params=(Param(name="?t"), _NAME),
    pre=("reachable(?t,?c)",),
    delete=_MOVE_DEL,
    add=("facing(?t,?c)", "done(?t,?c)"),
    skill_args=("?t", "?c"),
)
"""Go to the object (a door too) and take MiniGrid's ``done`` action there (the ``done`` skill; it ends the episode):
MiniGrid's GoToDoor and GoToObject count a ``done`` next to the target as success. Only in the domain when a goal
asks for ``done(t,c)`` (:func:`planning_domain`)."""

SKILLS: tuple[str, ...] = ("goto", "pickup", "drop", "open", "putnext")
"""The skills the operators run (and ``close`` and ``done``, only for goals that need them: :data:`CLOSE_OPERATOR`,
:data:`DONE_OPERATOR`)."""

FINDABLE_TYPES: tuple[str, ...] = (*PICKABLE_TYPES, "goal")
"""Object types :data:`EXPLORE_OPERATORS` look for on the grid (doors have their own operator)."""

EXPLORE_RULES: tuple[Rule, ...] = (
    Rule(head="can_explore", body=("frontier(room,?r)", "reach(room,?r)")),
    Rule(
        head="can_explore",
        body=("connects(door,?d,room,?r,room,?s)", "frontier(room,?s)", "reach(room,?r)"),
        neg=("locked(door,?d)",),
    ),
)
"""``can_explore``: some region the agent can walk into borders unknown cells, or has an unlocked door into one that
does (the unseen region behind a closed door included)."""

EXPLORE_OPERATORS: tuple[Operator, ...] = (
    Operator(
        name="explore",
        params=(Param(name="?t", type="findable"), _NAME, *_ROOM),
        pre=("unseen(?t,?c)", "frontier(room,?r)", "reach(room,?r)"),
        delete=("unseen(?t,?c)", *_MOVE_DEL),
        add=("in(?t,?c,room,?r)", "agent_in(room,?r)"),
        skill_args=("?t", "?c"),
    ),
    Operator(
        name="explore_door",
        params=(_NAME, *_ROOM),
        pre=("unseen(door,?c)", "frontier(room,?r)", "reach(room,?r)"),
        delete=("unseen(door,?c)", *_MOVE_DEL),
        add=("connects(door,?c,room,?r,room,unexplored)", "agent_in(room,?r)"),
        skill="explore",
        skill_args=("door", "?c"),
    ),
    Operator(
        name="open_box_explore",
        params=(Param(name="?b"), Param(name="?t", type="pickable"), _NAME, *_ROOM),
        pre=("in(box,?b,room,?r)", "reach(room,?r)", "unseen(?t,?c)"),
        neg=("can_explore", "needed(box,?b)"),
        delete=(
            *_MOVE_DEL,
            "unseen(?t,?c)",
            "in(box,?b,*,*)",
            "next_to(box,?b,*,*)",
            "next_to(*,*,box,?b)",
            "blocks(box,?b,*,*)",
        ),
        add=("in(?t,?c,room,?r)", "facing(?t,?c)", "agent_in(room,?r)"),
        skill="open",
        skill_args=("box", "?b"),
    ),
)
"""Exploration, for planning from the own view (:mod:`modrl.envs.own_view`). ``explore(t,c,r)`` runs the ``explore``
skill -- walk through known cells to the nearest frontier of region ``r`` and look, again and again, until the object
is seen or the region has no frontier left -- and assumes the object is then found in ``r``; ``explore_door`` the same
for a door (found on ``r``'s side). A door into the unseen is opened by the ordinary ``open``/``unlock`` operators: its
far side is the region ``u<x>_<y>``, all frontier, so "open that door, then explore behind it" is a plan, and the
planner, which knows the goal order, never opens a door early that a later goal asks to open. The key of a locked door
seen but not its key is ``unseen`` too, with its ``fits`` atom. ``open_box_explore(b,t,c,r)`` opens a box the goals do
not name to look inside, assuming the unseen object is there, only when no frontier is reachable (``can_explore``
fails): a key hidden in a box (ObstructedMaze) is found by opening boxes once everything else has been seen."""


PUT_NEXT_OPERATORS = frozenset({"putnext", "putnext_door", "putnext_fetch", "putnext_held"})
"""The operators that put one object next to another: needed only for goals about ``next_to`` (no precondition or
rule reads ``next_to``; their other effects -- the object set down in a region, the agent there -- ``goto`` and
``drop`` reach as well), and they are most of the ground operators (objects x objects x regions)."""


def planning_domain(goals: Sequence[Goal] | None = None, *, own_view: bool = False) -> Domain:
    """The MiniGrid planning domain: :data:`OPERATORS`, :data:`RULES` and the types they use; given ``goals`` of which
    one asks to open a door (``achieve open(door,c)``), :data:`CLOSE_OPERATOR` too, and of which one asks for
    ``done(t,c)``, :data:`DONE_OPERATOR`.

    Given ``goals``, :data:`PUT_NEXT_OPERATORS` range only over the objects the goals' ``next_to`` atoms name (none
    when no goal does): relevance pruning. Plans stay possible -- a put-next matters for its ``next_to`` effect
    only -- and grounding gets 20-40 times cheaper on BabyAI's multi-room levels; a plan may be one step longer where
    a put-next would have carried an object to a region and set it down. ``own_view`` adds
    :data:`EXPLORE_OPERATORS` and :data:`EXPLORE_RULES` (planning from :mod:`modrl.envs.own_view`'s atoms).
    """
    base = _full_view_domain(goals)
    if not own_view:
        return base
    types = {**base.types, "findable": frozenset(FINDABLE_TYPES)}
    return Domain(operators=(*base.operators, *EXPLORE_OPERATORS), rules=(*base.rules, *EXPLORE_RULES), types=types)


def _full_view_domain(goals: Sequence[Goal] | None = None) -> Domain:
    """:func:`planning_domain` without exploration (planning over the full grid)."""
    types: dict[str, frozenset[str]] = {"pickable": frozenset(PICKABLE_TYPES)}
    if goals is None:
        return Domain(operators=OPERATORS, rules=RULES, types=types)
    atoms = [parse_atom(a) for g in goals for a in g.holds | g.achieve]
    named = {args[i] for name, args in atoms if name == "next_to" for i in (1, 3)}
    opens = any(name == "open" and args[0] == "door" for g in goals for name, args in map(parse_atom, g.achieve))
    extra: tuple[Operator, ...] = (CLOSE_OPERATOR,) if opens else ()
    extra += (DONE_OPERATOR,) if any(name == "done" for name, _ in atoms) else ()
    if not named:
        operators = tuple(op for op in OPERATORS if op.name not in PUT_NEXT_OPERATORS)
        return Domain(operators=(*operators, *extra), rules=RULES, types=types)
    types[_PUT_NEXT_NAMES] = frozenset(named)
    return Domain(operators=(*(_only_named(op) for op in OPERATORS), *extra), rules=RULES, types=types)


_PUT_NEXT_NAMES = "put_next_names"
"""The type of the object names a goal's ``next_to`` atoms mention (see :func:`planning_domain`)."""


def _only_named(op: Operator) -> Operator:
    """A put-next operator whose object names (``?c``, ``?d``) range over :data:`_PUT_NEXT_NAMES` only."""
    if op.name not in PUT_NEXT_OPERATORS:
        return op
    params = tuple(Param(name=p.name, type=_PUT_NEXT_NAMES) if p.name in ("?c", "?d") else p for p in op.params)
    return replace(op, params=params)
