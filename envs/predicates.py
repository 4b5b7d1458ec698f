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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from minigrid.core.constants import DIR_TO_VEC
from minigrid.core.grid import Grid
from minigrid.core.world_object import Door, WorldObj
from minigrid.minigrid_env import MiniGridEnv

_SCENERY = frozenset({"wall", "floor", "lava"})
_NEIGHBOURS = ((1, 0), (0, 1), (-1, 0), (0, -1))


def predicate(name: str, *args: str) -> str:
    """Spell a predicate: ``predicate("open", "door", "red") == "open(door,red)"``; no arguments gives ``name``."""
    return f"{name}({','.join(args)})" if args else name


def _describe(obj: WorldObj) -> tuple[str, str]:
    return obj.type, obj.color


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
) -> frozenset[str]:
    """The set of true ground predicates (see the module docstring for the vocabulary).

    Args:
        grid: The MiniGrid grid.
        agent_pos: ``(x, y)`` of the agent.
        agent_dir: Heading, 0 = right, 1 = down, 2 = left, 3 = up (MiniGrid's ``DIR_TO_VEC`` order).
        carrying: The carried object, if any (it is not on the grid).

    Returns:
        A frozenset of predicate strings.
    """
    ax, ay = int(agent_pos[0]), int(agent_pos[1])
    dx, dy = (int(v) for v in DIR_TO_VEC[agent_dir])
    front = (ax + dx, ay + dy)
    around = {(ax + i, ay + j) for i, j in _NEIGHBOURS}
    facts: set[str] = set()
    if carrying is not None:
        facts.add(predicate("carrying", *_describe(carrying)))
    under = grid.get(ax, ay)
    if under is not None and under.type == "goal":
        facts.add("at_goal")
    placed = dict(_objects(grid))
    for pos, obj in placed.items():
        described = _describe(obj)
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
                facts.add(predicate("next_to", *described, *_describe(other)))
    return frozenset(facts)


def env_predicates(env: MiniGridEnv) -> frozenset[str]:
    """:func:`symbolic_state` of a (possibly wrapped) MiniGrid env's current state."""
    base = env.unwrapped
    assert isinstance(base, MiniGridEnv), f"not a MiniGrid env: {type(base).__name__}"
    return symbolic_state(base.grid, base.agent_pos, base.agent_dir, base.carrying)
