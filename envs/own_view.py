"""Planning from the agent's own view: a map of the cells seen so far, and planning atoms read from it.

The planner's usual state (:func:`modrl.envs.predicates.planning_state`) reads the whole grid, inside closed boxes and
behind closed doors: privileged. :class:`OwnViewMap` is what the agent itself can know. It is built only from
MiniGrid's observations -- the 7x7 egocentric image (each cell's ``(type, colour, state)``, ``unseen`` where walls and
closed doors hide it) and the heading (``obs["direction"]``) -- written into an allocentric grid of the env's size:

* a cell is *known* once it has been in view; unknown cells stay unknown (never guessed free or blocked);
* every observation overwrites the cells in view, so a door seen open, closed or locked again is updated, an object
  that was moved is gone from its old cell, and a box opened shows what it held (its contents are never read before);
* what the agent carries is read from its own cell of the image (MiniGrid draws the carried object there);
* the pose is dead-reckoned: the heading comes with every observation and the position moves one cell on ``forward``
  when the cell in front (always in view) could be entered -- MiniGrid's own rule -- so after the reset, which anchors
  the map's frame at the start cell, no position is read from the env (tests check the two agree);
* objects are decoded from the image (:meth:`WorldObj.decode`), so a map object is a copy, never the env's own (no
  box contents, no hidden attribute); an object keeps its identity across sightings when it stays in its cell, and
  follows the agent when picked up and dropped (objects move only when the agent moves them). The first object of a
  type and colour is named by its colour, later ones ``colour@x_y`` from where they were first seen
  (:func:`modrl.envs.predicates.object_name`), so a mission's "the red ball" names the first red ball seen.

:func:`own_view_state` turns the map into the planner's atoms, with the vocabulary of the full-grid state computed
over known cells only (regions are connected known cells; region ids stay stable as regions grow, so a plan is not
invalidated by renumbering), plus what exploration needs (:data:`modrl.envs.operators.EXPLORE_OPERATORS`):

    frontier(room,3)                 region 3 has a known free cell next to an unknown cell (standing there shows it)
    connects(door,red,room,2,room,u7_4)  the red door's far side (7, 4) is unknown: ``u7_4`` stands for the unseen
                                     region behind it, which is all frontier (frontier(room,u7_4))
    unseen(ball,green)               an object the goals name (or the key of a locked door seen, whose ``fits`` atom
                                     is then stated for it) has not been seen
    needed(box,purple)               an object the goals name (exploration never opens such a box)

No ``contains`` atom is ever stated: what a closed box holds is unknown until it is opened.

:class:`OwnView` is the gymnasium wrapper that keeps the map up to date on every ``reset`` and ``step`` (so every
skill and option acting through the env updates it); the planner harness (:mod:`modrl.agents.planning.episode`)
puts it innermost, on the raw MiniGrid observation, when planning from the own view. :class:`MapView` keeps a map
of its own and shows it to an option as its image (memory without privileged state).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.constants import DIR_TO_VEC, IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX
from minigrid.core.grid import Grid
from minigrid.core.world_object import Door, WorldObj
from minigrid.minigrid_env import MiniGridEnv

from modrl.envs.predicates import (
    IDENTITY_SEPARATOR,
    contents_state,
    name_object,
    object_name,
    predicate,
    regions,
    spatial_state,
    symbolic_state,
)
from modrl.envs.wrappers import FullView, full_view_image, minigrid_env

Pos = tuple[int, int]
_NEIGHBOURS = ((1, 0), (0, 1), (-1, 0), (0, -1))
_SCENERY = frozenset({"wall", "floor", "lava"})
_UNSEEN = OBJECT_TO_IDX["unseen"]
_EMPTY = OBJECT_TO_IDX["empty"]
UNKNOWN_REGION_PREFIX = "u"
"""The region behind a door whose far side (x, y) is unknown is called ``u<x>_<y>``."""


class OwnViewMap:
    """The cells the agent has seen, in the env's ``(x, y)`` frame (see the module docstring).

    Args:
        width, height: The grid's size.
        agent_pos: The start cell (anchors the frame).
        agent_dir: The start heading.

    Attributes:
        grid: A MiniGrid ``Grid`` holding the last seen content of every known cell (``None``: empty or unknown;
            :attr:`known` tells which).
        known: ``(width, height)`` booleans: the cell has been in view.
        agent_pos, agent_dir: The dead-reckoned pose.
        carrying: The carried object as last seen (a map object), or ``None``.
    """

    def __init__(self, width: int, height: int, agent_pos: Iterable[int], agent_dir: int) -> None:
        self.grid = Grid(width, height)
        self.known = np.zeros((width, height), dtype=bool)
        x, y = (int(v) for v in agent_pos)
        self.agent_pos: Pos = (x, y)
        self.agent_dir = int(agent_dir)
        self.carrying: WorldObj | None = None
        self._taken: set[tuple[str, str]] = set()
        self._dropped: WorldObj | None = None
        self._region_ids: dict[Pos, int] = {}
        self._next_region = 0

    @property
    def width(self) -> int:
        return self.grid.width

    @property
    def height(self) -> int:
        return self.grid.height

    @property
    def front_pos(self) -> Pos:
        """The cell in front of the agent."""
        dx, dy = (int(v) for v in DIR_TO_VEC[self.agent_dir])
        return self.agent_pos[0] + dx, self.agent_pos[1] + dy

    def inside(self, pos: Pos) -> bool:
        """``pos`` lies on the grid."""
        return 0 <= pos[0] < self.width and 0 <= pos[1] < self.height

    def is_known(self, pos: Pos) -> bool:
        """``pos`` lies on the grid and has been seen."""
        return self.inside(pos) and bool(self.known[pos[0], pos[1]])

    def get(self, pos: Pos) -> WorldObj | None:
        """The last seen content of a known cell (``None`` for an empty or unknown one)."""
        return self.grid.get(*pos) if self.is_known(pos) else None

    # -- updates ----------------------------------------------------------------------------------------------------
    def move(self, action: int) -> None:
        """Dead-reckon the pose for ``action``, taken from the pose and map of the last observation: a turn changes
        the heading, ``forward`` enters the cell in front if it is empty or can be overlapped (MiniGrid's rule)."""
        if action == int(Actions.left):
            self.agent_dir = (self.agent_dir - 1) % 4
        elif action == int(Actions.right):
            self.agent_dir = (self.agent_dir + 1) % 4
        elif action == int(Actions.forward):
            front = self.front_pos
            cell = self.grid.get(*front) if self.is_known(front) else None
            if self.is_known(front) and (cell is None or cell.can_overlap()):
                self.agent_pos = front

    def observe(self, image: np.ndarray, direction: int) -> None:
        """Write one egocentric observation (MiniGrid's ``obs["image"]``, ``obs["direction"]``) into the map.

        View cell ``(i, j)`` (``i`` across, ``j`` down; the agent at ``(size // 2, size - 1)`` looking up) lies
        ``size - 1 - j`` cells ahead of the agent and ``i - size // 2`` cells to its right.
        """
        image = np.asarray(image)
        size = int(image.shape[0])
        half = size // 2
        self.agent_dir = int(direction)
        fx, fy = (int(v) for v in DIR_TO_VEC[self.agent_dir])
        rx, ry = -fy, fx  # MiniGrid's right_vec
        ax, ay = self.agent_pos
        self._observe_carried(image[half, size - 1])
        for i in range(size):
            for j in range(size):
                if (i, j) == (half, size - 1):
                    continue  # the agent's own cell shows what it carries, not the floor
                code = image[i, j]
                if int(code[0]) == _UNSEEN:
                    continue
                ahead, right = size - 1 - j, i - half
                pos = (ax + fx * ahead + rx * right, ay + fy * ahead + ry * right)
                if self.inside(pos):
                    self._see(pos, code)
        if not self.known[ax, ay]:  # the start cell: the agent stands on it, so it is free
            self.known[ax, ay] = True
        self._dropped = None

    def _observe_carried(self, code: np.ndarray) -> None:
        if int(code[0]) in (_EMPTY, _UNSEEN):
            self._dropped, self.carrying = self.carrying, None
            return
        type_, colour = IDX_TO_OBJECT[int(code[0])], IDX_TO_COLOR[int(code[1])]
        if _is(self.carrying, type_, colour):
            return
        front = self.front_pos
        seen = self.get(front)
        if _is(seen, type_, colour):  # picked up from the cell in front: the same object
            self.carrying = seen
            self.grid.set(*front, None)
            return
        held = WorldObj.decode(int(code[0]), int(code[1]), int(code[2]))
        if held is not None:
            self._name(held, self.agent_pos)
        self.carrying = held

    def _see(self, pos: Pos, code: np.ndarray) -> None:
        new = WorldObj.decode(int(code[0]), int(code[1]), int(code[2]))
        old = self.get(pos)
        self.known[pos[0], pos[1]] = True
        if new is None:
            self.grid.set(*pos, None)
            return
        if old is not None and old.type == new.type and old.color == new.color:
            if isinstance(old, Door) and isinstance(new, Door):
                old.is_open, old.is_locked = new.is_open, new.is_locked
            return
        if self._dropped is not None and _is(self._dropped, new.type, new.color):
            new, self._dropped = self._dropped, None  # just dropped: the object that was carried
        elif new.type not in _SCENERY:
            self._name(new, pos)
        self.grid.set(*pos, new)

    def _name(self, obj: WorldObj, pos: Pos) -> None:
        """Name a newly seen object: its colour if no object of its type seen before has that name, else
        ``colour@x_y`` (``_1``, ``_2``, ... if even that is taken)."""
        name = str(obj.color)
        if (obj.type, name) in self._taken:
            name = stem = f"{obj.color}{IDENTITY_SEPARATOR}{pos[0]}_{pos[1]}"
            extra = 1
            while (obj.type, name) in self._taken:
                name, extra = f"{stem}_{extra}", extra + 1
        name_object(obj, name)
        self._taken.add((obj.type, name))

    # -- reading ----------------------------------------------------------------------------------------------------
    def objects(self) -> list[tuple[WorldObj, Pos]]:
        """Every non-scenery object on a known cell, and the carried one (at the agent's cell)."""
        out = [
            (cell, (x, y))
            for y in range(self.height)
            for x in range(self.width)
            if self.known[x, y] and (cell := self.grid.get(x, y)) is not None and cell.type not in _SCENERY
        ]
        if self.carrying is not None:
            out.append((self.carrying, self.agent_pos))
        return out

    def seen(self, type_: str, name: str) -> bool:
        """An object of ``type_`` named ``name`` (``*``: any) is on the map or carried."""
        return any(obj.type == type_ and name in ("*", object_name(obj)) for obj, _ in self.objects())

    def regions(self) -> dict[Pos, int]:
        """Region ids of the known open cells (:func:`modrl.envs.predicates.regions` over known cells), kept stable
        as the map grows: a region keeps the smallest id it had (regions that merge take the smaller), a new one
        gets a fresh id, a split keeps the id on its first part."""
        fresh = regions(self.grid, self.known)
        members: dict[int, list[Pos]] = {}
        for pos, label in fresh.items():
            members.setdefault(label, []).append(pos)
        out: dict[Pos, int] = {}
        used: set[int] = set()
        for label in sorted(members):
            before = sorted({self._region_ids[p] for p in members[label] if p in self._region_ids} - used)
            if before:
                rid = before[0]
            else:
                rid, self._next_region = self._next_region, self._next_region + 1
            used.add(rid)
            for pos in members[label]:
                out[pos] = rid
        self._region_ids = out
        return out

    def unknown_beside(self, pos: Pos) -> bool:
        """A 4-neighbour of ``pos`` on the grid is unknown."""
        return any(self.inside(n) and not self.known[n] for n in _around(pos))


def _around(pos: Pos) -> list[Pos]:
    return [(pos[0] + i, pos[1] + j) for i, j in _NEIGHBOURS]


def _is(obj: WorldObj | None, type_: str, colour: str) -> bool:
    return obj is not None and obj.type == type_ and obj.color == colour


def unknown_region(pos: Pos) -> str:
    """The name of the unseen region behind a door whose far side ``pos`` is unknown."""
    return f"{UNKNOWN_REGION_PREFIX}{pos[0]}_{pos[1]}"


def goal_objects(atoms: Iterable[str]) -> frozenset[tuple[str, str]]:
    """The ``(type, name)`` objects ground atoms mention (their arguments taken in pairs; ``room`` pairs aside);
    ``at_goal`` mentions the goal square (``goal,green``: MiniGrid's goal squares are green)."""
    from modrl.planner import parse_atom

    found = set()
    for atom in atoms:
        name, args = parse_atom(atom)
        if name == "at_goal":
            found.add(("goal", "green"))
        for i in range(0, len(args) - 1, 2):
            if args[i] != "room":
                found.add((args[i], args[i + 1]))
    return frozenset(found)


def own_view_state(view: OwnViewMap, needed: Iterable[tuple[str, str]] = ()) -> frozenset[str]:
    """The planning atoms of the own-view map (see the module docstring).

    Args:
        view: The map.
        needed: The ``(type, name)`` objects the goals name: ``unseen`` for those not seen yet, ``needed`` for all.
    """
    grid, pos = view.grid, view.agent_pos
    labels = view.regions()
    facts = set(symbolic_state(grid, pos, view.agent_dir, view.carrying, by_identity=True))
    facts |= spatial_state(grid, pos, labels)
    facts |= contents_state(grid, view.carrying)  # fits only: a map box holds nothing it shows
    frontier = {labels[cell] for cell in labels if _standable(grid.get(*cell)) and view.unknown_beside(cell)}
    facts.update(predicate("frontier", "room", str(r)) for r in frontier)
    for obj, cell in view.objects():
        if not isinstance(obj, Door):
            continue
        name = object_name(obj)
        for i, j in _NEIGHBOURS:
            near, far = (cell[0] - i, cell[1] - j), (cell[0] + i, cell[1] + j)
            if near in labels and view.inside(far) and not view.known[far]:
                beyond = unknown_region(far)
                facts.add(predicate("connects", "door", name, "room", str(labels[near]), "room", beyond))
                facts.add(predicate("connects", "door", name, "room", beyond, "room", str(labels[near])))
                facts.add(predicate("frontier", "room", beyond))
    objects = view.objects()
    present = {(obj.type, object_name(obj)) for obj, _ in objects}
    for type_, name in needed:
        facts.add(predicate("needed", type_, name))
        if (type_, name) not in present:
            facts.add(predicate("unseen", type_, name))
    keys = {obj.color for obj, _ in objects if obj.type == "key"}
    for obj, _ in objects:
        if isinstance(obj, Door) and obj.is_locked and obj.color not in keys:
            # The key of a locked door seen, not seen itself: the first key of that colour will be named by it.
            facts.add(predicate("unseen", "key", str(obj.color)))
            facts.add(predicate("fits", "key", str(obj.color), "door", object_name(obj)))
    return frozenset(facts)


def _standable(cell: WorldObj | None) -> bool:
    return cell is None or cell.can_overlap()


class OwnView(gym.Wrapper[Any, Any, Any, Any]):
    """Keeps an :class:`OwnViewMap` of a MiniGrid env up to date on every ``reset`` and ``step`` (wrap the env whose
    observations are MiniGrid's own dict: ``image`` and ``direction``).

    Attributes:
        map: The map of the current episode.
        needed: The ``(type, name)`` objects the goals name (set by the planner harness once it has read them);
            :meth:`state` reports them ``unseen`` until seen.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.map: OwnViewMap | None = None
        self.needed: frozenset[tuple[str, str]] = frozenset()

    @property
    def view(self) -> OwnViewMap:
        """The map (after ``reset``)."""
        if self.map is None:
            raise RuntimeError("OwnView: reset the env before reading its map")
        return self.map

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env and start a new map from the first observation."""
        obs, info = self.env.reset(seed=seed, options=options)
        base = self.env.unwrapped
        assert isinstance(base, MiniGridEnv), f"OwnView needs a MiniGrid env, got {type(base).__name__}"
        self.map = OwnViewMap(base.grid.width, base.grid.height, base.agent_pos, _direction(obs))
        self.map.observe(_image(obs), _direction(obs))
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env, dead-reckon the pose and write the new observation into the map."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.view.move(int(action))
        self.view.observe(_image(obs), _direction(obs))
        return obs, reward, terminated, truncated, info

    def state(self) -> frozenset[str]:
        """:func:`own_view_state` of the map with :attr:`needed`."""
        return own_view_state(self.view, self.needed)


def _image(obs: Any) -> np.ndarray:
    if not isinstance(obs, dict) or "image" not in obs:
        raise ValueError("OwnView reads MiniGrid's observation dict (image, direction): put it innermost")
    return np.asarray(obs["image"])


def _direction(obs: Any) -> int:
    return int(obs["direction"])


def own_view_of(env: gym.Env) -> OwnView | None:
    """The :class:`OwnView` wrapper in ``env``'s chain, if any."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, OwnView):
            return env
        env = env.env
    return None


class MapView(FullView):
    """An option's view with memory and nothing privileged: :class:`~modrl.envs.wrappers.FullView`'s ``(size, size,
    3)`` image, centred on the agent and turned to face up, drawn from an :class:`OwnViewMap` of the cells seen so far
    in the episode (unknown cells 0, unseen) instead of from the grid. The wrapper keeps its own map (independent of
    an :class:`OwnView` the planner may read), so wrap the env whose observations are MiniGrid's own dict; every step
    taken through it (options and scripted skills alike) updates the map. No target marker yet."""

    def __init__(self, env: gym.Env, *, size: int, marker: bool = False) -> None:
        if marker:
            raise ValueError("MapView: the map view marks no target yet (use it without a target marker)")
        super().__init__(env, size=size)
        self.map: OwnViewMap | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env, start a new map from the first observation and show it."""
        obs, info = self.env.reset(seed=seed, options=options)
        base = minigrid_env(self.env)
        self.map = OwnViewMap(base.grid.width, base.grid.height, base.agent_pos, _direction(obs))
        self.map.observe(_image(obs), _direction(obs))
        return self.observation(obs), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env, update the map (dead-reckoned pose, the new observation) and show it."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.map is None:
            raise RuntimeError("MapView: reset the env before stepping it")
        self.map.move(int(action))
        self.map.observe(_image(obs), _direction(obs))
        return self.observation(obs), reward, terminated, truncated, info

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """``observation`` with the map's image (the map as of the last reset or step)."""
        if self.map is None:
            raise RuntimeError("MapView: reset the env before reading its map")
        return {**observation, "image": full_view_image(self.map, self.size, known=self.map.known)}
