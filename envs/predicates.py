"""The symbolic state of a MiniGrid env: a set of ground predicates read from the grid, for planners and oracles.

Predicates are strings in the sketch syntax of :mod:`modrl.envs.grammar` (type before colour)::

    carrying(key,red)          the agent holds the red key
    open(door,blue)            a blue door is open
    locked(door,blue)          a blue door is locked (a closed, unlocked door has neither predicate)
    facing(ball,green)         the cell in front of the agent holds the green ball
    adjacent(ball,green)       the green ball is in one of the four cells around the agent (facing implies adjacent)
    next_to(ball,green,box,red) the green ball and the red box are in 4-neighbouring cells (listed in both orders)
    at_goal                    the agent stands on a goal square

Only objects other than walls, floor and lava enter ``facing``/``adjacent``/``next_to``. :func:`symbolic_state` is a
pure function of the grid, the agent pose and the carried object, so it can be tested on hand-built grids.

Object identity (for planning). The second argument of an object is its colour as long as no other object shares its
type and colour. When several do (KeyCorridor's same-colour doors, ObstructedMaze's balls), :func:`identify_objects`
names each of them once, from where it was first seen: ``door,red@3_4`` is the red door first seen at ``(3, 4)``. The
name is stored on the object itself, so it follows the object when it is picked up, carried and dropped, and a new
episode's objects are named afresh; objects inside a box are named with the box's position, a carried object with the
agent's. Unique objects keep their plain colour, so ``carrying(key,blue)`` is spelled as before. :func:`planning_state`
uses these names; :func:`symbolic_state` (``info["predicates"]``, what options' terminations read) keeps colours unless
asked (``by_identity=True``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, SupportsFloat

import gymnasium as gym
import numpy as np
from minigrid.core.constants import DIR_TO_VEC
from minigrid.core.grid import Grid
from minigrid.core.world_object import Box, Door, WorldObj
from minigrid.minigrid_env import MiniGridEnv

_SCENERY = frozenset({"wall", "floor", "lava"})
_NEIGHBOURS = ((1, 0), (0, 1), (-1, 0), (0, -1))
Pos = tuple[int, int]


def predicate(name: str, *args: str) -> str:
    """Spell a predicate: ``predicate("open", "door", "red") == "open(door,red)"``; no arguments gives ``name``."""
    return f"{name}({','.join(args)})" if args else name


_IDENTITY = "_modrl_identity"
"""The attribute :func:`identify_objects` sets on a ``WorldObj``: its name (see the module docstring)."""
IDENTITY_SEPARATOR = "@"
"""Separates the colour from the first-seen position in the name of one of several same-type same-colour objects."""


def object_name(obj: WorldObj) -> str:
    """The object's name in planning atoms: the name :func:`identify_objects` gave it, else its colour."""
    name = getattr(obj, _IDENTITY, None)
    return name if isinstance(name, str) else str(obj.color)


def plain_colour(name: str) -> str:
    """The colour part of an object name: ``plain_colour("red@3_4") == plain_colour("red") == "red"``."""
    return name.partition(IDENTITY_SEPARATOR)[0]


def name_object(obj: WorldObj, name: str) -> None:
    """Give ``obj`` the name :func:`object_name` reads (the own-view map names what it sees this way:
    :mod:`modrl.envs.own_view`)."""
    setattr(obj, _IDENTITY, name)


class World(Protocol):
    """What :func:`find_object` and the scripted skills read: a grid, the agent's pose and what it carries. A
    ``MiniGridEnv`` (the full grid) is one; so is the own-view map (:class:`modrl.envs.own_view.OwnViewMap`)."""

    @property
    def grid(self) -> Grid: ...

    @property
    def carrying(self) -> WorldObj | None: ...

    @property
    def agent_pos(self) -> Any: ...

    @property
    def agent_dir(self) -> Any: ...

    @property
    def front_pos(self) -> Any: ...


def find_object(base: World, type_: str, name: str, *, carried: bool = False) -> Pos | None:
    """Where the object ``name`` (:func:`object_name`) of type ``type_`` lies on the grid; for a plain colour that
    several objects share, the nearest of them to the agent. With ``carried``, an object the agent holds is at the
    agent's cell. ``None`` when there is none (names every object first: :func:`identify_objects`). ``base`` is the
    env (the full grid) or the own-view map."""
    grid, (ax, ay) = base.grid, (int(base.agent_pos[0]), int(base.agent_pos[1]))
    identify_objects(grid, base.carrying, (ax, ay))
    held = base.carrying
    if carried and held is not None and held.type == type_ and (object_name(held) == name or held.color == name):
        return ax, ay
    cells = [
        ((x, y), cell)
        for y in range(grid.height)
        for x in range(grid.width)
        if (cell := grid.get(x, y)) is not None and cell.type == type_
    ]
    found = [pos for pos, cell in cells if object_name(cell) == name] or [
        pos for pos, cell in cells if IDENTITY_SEPARATOR not in name and cell.color == name
    ]
    return min(found, key=lambda p: abs(p[0] - ax) + abs(p[1] - ay)) if found else None


def _all_objects(grid: Grid, carrying: WorldObj | None, agent_pos: tuple[int, int]) -> list[tuple[WorldObj, Pos]]:
    """Every non-scenery object with a position: on the grid, inside a box (the box's cell), carried (the agent's)."""
    found = [*_objects(grid)] + ([(agent_pos, carrying)] if carrying is not None else [])
    out: list[tuple[WorldObj, Pos]] = []
    for pos, obj in found:
        out.append((obj, pos))
        inner = _inside(obj)
        while inner is not None:
            out.append((inner, pos))
            inner = _inside(inner)
    return out


def _inside(obj: WorldObj) -> WorldObj | None:
    """What a box holds (minigrid types ``contains`` as ``None``)."""
    inner = getattr(obj, "contains", None) if isinstance(obj, Box) else None
    return inner if isinstance(inner, WorldObj) else None


def identify_objects(grid: Grid, carrying: WorldObj | None, agent_pos: Sequence[int] | np.ndarray) -> None:
    """Name every object not named yet (see the module docstring); names once given never change.

    An object whose type and colour no other object shares, and whose plain colour no named object of its type holds,
    is named by its colour; any other is named ``colour@x_y`` from its position now (its first sighting).

    Args:
        grid: The MiniGrid grid.
        carrying: The carried object, if any.
        agent_pos: ``(x, y)`` of the agent (the position given to a carried object).
    """
    everything = _all_objects(grid, carrying, (int(agent_pos[0]), int(agent_pos[1])))
    fresh = [(obj, pos) for obj, pos in everything if not isinstance(getattr(obj, _IDENTITY, None), str)]
    if not fresh:
        return
    counts = Counter((obj.type, obj.color) for obj, _ in everything)
    named = [obj for obj, _ in everything if isinstance(getattr(obj, _IDENTITY, None), str)]
    taken = {(obj.type, object_name(obj)) for obj in named}
    for obj, (x, y) in sorted(fresh, key=lambda item: (item[1][1], item[1][0])):
        name = str(obj.color)
        if counts[(obj.type, obj.color)] > 1 or (obj.type, name) in taken:
            name = stem = f"{obj.color}{IDENTITY_SEPARATOR}{x}_{y}"
            extra = 1
            while (obj.type, name) in taken:
                name, extra = f"{stem}_{extra}", extra + 1
        setattr(obj, _IDENTITY, name)
        taken.add((obj.type, name))


def _describe(obj: WorldObj, by_identity: bool = True) -> tuple[str, str]:
    return obj.type, (object_name(obj) if by_identity else obj.color)


def _objects(grid: Grid) -> Iterator[tuple[tuple[int, int], WorldObj]]:
    """Every non-scenery object of ``grid`` with its ``(x, y)`` position."""
    width = grid.width
    for index, cell in enumerate(grid.grid):
        if cell is not None and cell.type not in _SCENERY:
            yield (index % width, index // width), cell


def symbolic_state(
    grid: Grid,
    agent_pos: Sequence[int] | np.ndarray,
    agent_dir: int,
    carrying: WorldObj | None,
    *,
    by_identity: bool = False,
) -> frozenset[str]:
    """The set of true ground predicates (see the module docstring for the vocabulary).

    Args:
        grid: The MiniGrid grid.
        agent_pos: ``(x, y)`` of the agent.
        agent_dir: Heading, 0 = right, 1 = down, 2 = left, 3 = up (MiniGrid's ``DIR_TO_VEC`` order).
        carrying: The carried object, if any (it is not on the grid).
        by_identity: Name objects by :func:`object_name` (``red@3_4``) instead of their colour.

    Returns:
        A frozenset of predicate strings.
    """
    ax, ay = int(agent_pos[0]), int(agent_pos[1])
    dx, dy = (int(v) for v in DIR_TO_VEC[agent_dir])
    front = (ax + dx, ay + dy)
    around = {(ax + i, ay + j) for i, j in _NEIGHBOURS}
    facts: set[str] = set()
    if carrying is not None:
        facts.add(predicate("carrying", *_describe(carrying, by_identity)))
    under = grid.get(ax, ay)
    if under is not None and under.type == "goal":
        facts.add("at_goal")
    placed = dict(_objects(grid))
    for pos, obj in placed.items():
        described = _describe(obj, by_identity)
        if isinstance(obj, Door):
            if obj.is_open:
                facts.add(predicate("open", *described))
            if obj.is_locked:
                facts.add(predicate("locked", *described))
        if pos == front:
            facts.add(predicate("facing", *described))
        if pos in around:
            facts.add(predicate("adjacent", *described))
        for i, j in _NEIGHBOURS:
            other = placed.get((pos[0] + i, pos[1] + j))
            if other is not None:
                facts.add(predicate("next_to", *described, *_describe(other, by_identity)))
    return frozenset(facts)


def env_predicates(env: MiniGridEnv) -> frozenset[str]:
    """:func:`symbolic_state` of a (possibly wrapped) MiniGrid env's current state."""
    base = env.unwrapped
    assert isinstance(base, MiniGridEnv), f"not a MiniGrid env: {type(base).__name__}"
    return symbolic_state(base.grid, base.agent_pos, base.agent_dir, base.carrying)


# -- spatial predicates for planning ----------------------------------------------------------------------------------
# Not part of symbolic_state (whose output tests and info["predicates"] pin down): planning_state() adds them.
#
#   in(ball,green,room,0)              the green ball lies in region 0
#   agent_in(room,1)                   the agent stands in region 1 (in a doorway: each side it can step to)
#   connects(door,red,room,0,room,1)   the red door joins regions 0 and 1 (listed in both orders)
#   in(door,red,room,0)                a door in the outer wall (it joins no two regions) lies in the region beside it
#   blocks(ball,grey,door,yellow)      the grey ball stands on a cell next to the yellow door, in the way
#   contains(box,blue,key,red)         the blue box holds the red key (toggling the box replaces it by the key);
#                                      privileged: an agent cannot see inside a closed box, the planner reads the grid
#   fits(key,red,door,red@3_4)         the key (on the grid, carried or in a box) unlocks that locked door (same colour)
#
# Objects are named by object_name() (identify_objects() tells same-type same-colour objects apart).
# A region is a 4-connected set of cells that are not walls, lava or doors (objects do not split regions: they can be
# moved); regions are numbered in row-major order of their first cell, so the numbering is stable while the walls
# and doors stay where they are.

_SEPARATORS = frozenset({"wall", "lava", "door"})


def regions(grid: Grid, known: np.ndarray | None = None) -> dict[tuple[int, int], int]:
    """Region index of every cell that is not a wall, lava or a door (see the comment above); with ``known`` (a
    ``(width, height)`` boolean mask: the own-view map's cells seen so far), unknown cells belong to no region."""
    labels: dict[tuple[int, int], int] = {}
    label = 0
    for y in range(grid.height):
        for x in range(grid.width):
            if (x, y) in labels or not _open_cell(grid, x, y, known):
                continue
            stack = [(x, y)]
            labels[(x, y)] = label
            while stack:
                cx, cy = stack.pop()
                for i, j in _NEIGHBOURS:
                    nxt = (cx + i, cy + j)
                    if nxt not in labels and _open_cell(grid, *nxt, known):
                        labels[nxt] = label
                        stack.append(nxt)
            label += 1
    return labels


def _open_cell(grid: Grid, x: int, y: int, known: np.ndarray | None = None) -> bool:
    if not (0 <= x < grid.width and 0 <= y < grid.height):
        return False
    if known is not None and not known[x, y]:
        return False
    cell = grid.get(x, y)
    return cell is None or cell.type not in _SEPARATORS


def _room(index: int) -> tuple[str, str]:
    return "room", str(index)


def spatial_state(
    grid: Grid, agent_pos: Sequence[int] | np.ndarray, labels: dict[tuple[int, int], int] | None = None
) -> frozenset[str]:
    """The region predicates of the comment above (``in``, ``agent_in``, ``connects``, ``blocks``).

    Args:
        grid: The MiniGrid grid.
        agent_pos: ``(x, y)`` of the agent; in a doorway, the agent counts as in every region next to it that it can
            step into (the lowest-numbered one if it can step into none).
        labels: The regions (default: :func:`regions` of ``grid``; the own-view map passes its own, over the cells
            seen so far and numbered stably as they grow).

    Returns:
        A frozenset of predicate strings.
    """
    labels = regions(grid) if labels is None else labels
    facts: set[str] = set()
    for here in agent_regions(grid, labels, int(agent_pos[0]), int(agent_pos[1])):
        facts.add(predicate("agent_in", *_room(here)))
    for pos, obj in _objects(grid):
        described = _describe(obj)
        if not isinstance(obj, Door):
            facts.add(predicate("in", *described, *_room(labels[pos])))
            continue
        sides = sorted({labels[(pos[0] + i, pos[1] + j)] for i, j in _NEIGHBOURS if (pos[0] + i, pos[1] + j) in labels})
        if len(sides) == 1 and (pos[0] in (0, grid.width - 1) or pos[1] in (0, grid.height - 1)):
            facts.add(predicate("in", *described, *_room(sides[0])))  # a door in the outer wall (GoToDoor's)
        for a in sides:
            for b in sides:
                if a != b:
                    facts.add(predicate("connects", *described, *_room(a), *_room(b)))
        for i, j in _NEIGHBOURS:
            x, y = pos[0] + i, pos[1] + j
            other = grid.get(x, y) if 0 <= x < grid.width and 0 <= y < grid.height else None  # a door in the outer wall
            if (
                other is not None
                and other.type not in _SCENERY
                and not isinstance(other, Door)
                and not other.can_overlap()
            ):
                facts.add(predicate("blocks", *_describe(other), *described))
    return frozenset(facts)


def agent_regions(grid: Grid, labels: dict[tuple[int, int], int], x: int, y: int) -> list[int]:
    """The agent's region; in a doorway, every region it can step into (the lowest next to it if none)."""
    if (x, y) in labels:
        return [labels[(x, y)]]
    sides = {labels[(x + i, y + j)]: grid.get(x + i, y + j) for i, j in _NEIGHBOURS if (x + i, y + j) in labels}
    free = sorted(r for r, cell in sides.items() if cell is None or cell.can_overlap())
    return free or sorted(sides)[:1]


def contents_state(grid: Grid, carrying: WorldObj | None = None) -> frozenset[str]:
    """``contains`` for every box that holds an object, ``fits`` for every key and locked door of one colour (see the
    comment above); boxes and keys on the grid, carried, or inside boxes count.

    Args:
        grid: The MiniGrid grid.
        carrying: The carried object, if any (a carried key fits doors too).

    Returns:
        A frozenset of predicate strings.
    """
    everything = [obj for obj, _ in _all_objects(grid, carrying, (-1, -1))]
    facts = {
        predicate("contains", *_describe(obj), *_describe(inner))
        for obj in everything
        if (inner := _inside(obj)) is not None
    }
    for key in (obj for obj in everything if obj.type == "key"):
        facts.update(
            predicate("fits", *_describe(key), *_describe(door))
            for door in everything
            if isinstance(door, Door) and door.is_locked and door.color == key.color
        )
    return frozenset(facts)


def planning_state(
    grid: Grid,
    agent_pos: Sequence[int] | np.ndarray,
    agent_dir: int,
    carrying: WorldObj | None,
) -> frozenset[str]:
    """What :mod:`modrl.envs.operators` plans over: :func:`symbolic_state` by identity, :func:`spatial_state` and
    :func:`contents_state`, after :func:`identify_objects` has named any object seen for the first time."""
    identify_objects(grid, carrying, agent_pos)
    return (
        symbolic_state(grid, agent_pos, agent_dir, carrying, by_identity=True)
        | spatial_state(grid, agent_pos)
        | contents_state(grid, carrying)
    )


def env_planning_state(env: MiniGridEnv) -> frozenset[str]:
    """:func:`planning_state` of a (possibly wrapped) MiniGrid env's current state."""
    base = env.unwrapped
    assert isinstance(base, MiniGridEnv), f"not a MiniGrid env: {type(base).__name__}"
    return planning_state(base.grid, base.agent_pos, base.agent_dir, base.carrying)


class PredicatesInInfo(gym.Wrapper[Any, Any, Any, Any]):
    """Put :func:`env_predicates` in ``info["predicates"]`` after every ``reset`` and ``step`` (what options'
    termination predicates read; :class:`~modrl.envs.task_env.TaskEnv` does it itself, stock MiniGrid envs do not)."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env and add the predicates."""
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {**info, "predicates": env_predicates(self.env.unwrapped)}  # type: ignore[arg-type]

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and add the predicates."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "predicates": env_predicates(self.env.unwrapped)}  # type: ignore[arg-type]
