"""The moves every scripted skill is made of (:class:`SkillMotion`, the base of
:class:`modrl.envs.scripted_skills.ScriptedSkills`): taking actions under a step budget, cheapest paths over agent
poses, walking to a pose (moving blocking objects aside, or one re-planned action at a time among Dynamic-Obstacles'
moving obstacles), facing a target, and choosing where to drop, over the full grid or the agent's own-view map.

:mod:`modrl.envs.scripted_skills` says what the skills do with them and why each wish exists.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
from minigrid.core.actions import Actions
from minigrid.core.constants import DIR_TO_VEC
from minigrid.core.world_object import Door, WorldObj
from minigrid.envs.dynamicobstacles import DynamicObstaclesEnv
from minigrid.minigrid_env import MiniGridEnv

from modrl.envs.own_view import OwnView, OwnViewMap
from modrl.envs.predicates import IDENTITY_SEPARATOR, World, agent_regions, find_object, object_name, regions

Pos = tuple[int, int]
Pose = tuple[int, int, int]
NEIGHBOURS = ((1, 0), (0, 1), (-1, 0), (0, -1))
#: Where to drop, most wished-for first: (away from doors, away from other objects, keeps every cell reachable).
DROP_RULES = ((True, True, True), (True, False, True), (False, False, True), (False, False, False))


class SkillMotion:
    """Acting and moving in a MiniGrid env for the scripted skills (state set by the subclass's ``__init__``).

    Attributes:
        env: The (possibly wrapped) env actions go through. max_skill_steps: Actions one skill may take.
        last_info: The ``info`` of the last step. episode_over: The episode has ended (terminated or truncated).
        episode_success: It ended with a positive reward.
    """

    env: gym.Env
    max_skill_steps: int
    last_info: dict[str, Any]
    episode_over: bool
    episode_success: bool
    _own: OwnView | None
    _probing: bool
    _rooms: frozenset[str]
    _steps: int
    _over: bool
    _success: bool
    _timeout: bool

    @property
    def base(self) -> MiniGridEnv:
        """The unwrapped MiniGrid env."""
        base = self.env.unwrapped
        assert isinstance(base, MiniGridEnv)
        return base

    @property
    def view(self) -> OwnViewMap | None:
        """The own-view map the skills read (``None``: they read the full grid)."""
        return None if self._own is None else self._own.view

    @property
    def world(self) -> World:
        """What the skills read: the own-view map, or the env itself (the full grid)."""
        return self.base if self._own is None else self._own.view

    # -- primitives ------------------------------------------------------------------------------------------
    def _act(self, actions: Sequence[int]) -> bool:
        """Take ``actions``; False when the budget or the episode runs out first."""
        for action in actions:
            if self._over or self._steps >= self.max_skill_steps:
                self._timeout = not self._over
                return False
            if self._probing:
                raise Probed(int(action))
            _, reward, terminated, truncated, self.last_info = self.env.step(int(action))
            self._steps += 1
            if terminated or truncated:
                self._over, self._success = True, bool(terminated and float(reward) > 0)
                self.episode_over, self.episode_success = True, self._success
        return True

    def _find(self, type_: str, name: str) -> Pos | None:
        """Where the object named ``name`` lies on the grid (:func:`~modrl.envs.predicates.find_object`)."""
        return find_object(self.world, type_, name)

    def _front(self) -> Pos:
        x, y = self.world.front_pos
        return int(x), int(y)

    def _carrying(self, type_: str, name: str) -> bool:
        held = self.world.carrying
        return (
            held is not None
            and held.type == type_
            and (object_name(held) == name or (_plain(name) and held.color == name))
        )

    def _known(self, pos: Pos) -> bool:
        """``pos`` lies on the grid and (own view) has been seen."""
        grid = self.world.grid
        if not (0 <= pos[0] < grid.width and 0 <= pos[1] < grid.height):
            return False
        view = self.view
        return view is None or bool(view.known[pos[0], pos[1]])

    def _walkable(self, pos: Pos, goal_ok: bool) -> bool:
        grid = self.world.grid
        if not self._known(pos):
            return False
        cell = grid.get(*pos)
        if cell is None or cell.type == "floor":
            return True
        if isinstance(cell, Door):
            return cell.is_open
        return cell.type == "goal" and goal_ok

    def _path(
        self, accept: Callable[[Pose], bool], goal_ok: bool = False, through_objects: bool = False
    ) -> list[tuple[Pose, int]] | None:
        """Cheapest ``(pose after, action)`` sequence to a pose ``accept`` likes (Dijkstra over poses, one per action);
        ``through_objects`` lets it walk through balls, boxes and keys at a high price (to find what is in the way)."""
        (x, y), d = self.world.agent_pos, self.world.agent_dir
        start: Pose = (int(x), int(y), int(d))
        parents: dict[Pose, tuple[Pose, int] | None] = {start: None}
        cost = {start: 0}
        heap = [(0, start)]
        while heap:
            g, pose = heapq.heappop(heap)
            if g > cost[pose]:
                continue
            if accept(pose):
                steps = []
                while (link := parents[pose]) is not None:
                    steps.append((pose, link[1]))
                    pose = link[0]
                return steps[::-1]
            px, py, pd = pose
            dx, dy = (int(v) for v in DIR_TO_VEC[pd])
            moves = [((px, py, (pd - 1) % 4), int(Actions.left), 1), ((px, py, (pd + 1) % 4), int(Actions.right), 1)]
            ahead = (px + dx, py + dy)
            if self._walkable(ahead, goal_ok):
                moves.append(((*ahead, pd), int(Actions.forward), 1))
            elif through_objects and _is_object(self.world.grid.get(*ahead)) and self._movable(ahead):
                moves.append(((*ahead, pd), int(Actions.forward), 1000))
            for nxt, action, price in moves:
                if g + price < cost.get(nxt, 1 << 30):
                    cost[nxt], parents[nxt] = g + price, (pose, action)
                    heapq.heappush(heap, (g + price, nxt))
        return None

    def _movable(self, pos: Pos) -> bool:
        cell = self.world.grid.get(*pos)
        return cell is not None and cell.can_pickup()

    def _navigate(self, accept: Callable[[Pose], bool], goal_ok: bool = False) -> bool:
        """Walk to a pose ``accept`` likes, moving up to three objects out of the way if they block every path."""
        if isinstance(self.base, DynamicObstaclesEnv):
            return self._navigate_among_moving(accept, goal_ok)
        moved: set[Pos] = set()
        for _ in range(4):
            path = self._path(accept, goal_ok)
            if path is not None:
                return self._act([action for _, action in path])
            detour = self._path(accept, goal_ok, through_objects=True)
            blocker = next(((p[0], p[1]) for p, _ in detour or () if _is_object(self.world.grid.get(p[0], p[1]))), None)
            # Own view: not back onto the way just found (the cell it was moved from is one: a crowded room otherwise
            # gets the blocker put straight back). The full-grid skill does so only when the blocker is in the way
            # again after one move (it was put back: SynthS5R2 seeds 12 and 16 went round until the episode ended),
            # so what needed one move replays unchanged.
            way = {(p[0], p[1]) for p, _ in detour or ()} if self._own is not None or blocker in moved else set()
            if blocker is None or not self._move_aside(blocker, way):
                return False
            moved.add(blocker)
        return False

    def _navigate_among_moving(self, accept: Callable[[Pose], bool], goal_ok: bool) -> bool:
        """Dynamic-Obstacles: the obstacles move after every action, and walking forward into the cell one stood on
        when the action was chosen ends the episode (one that moves in afterwards only stops the agent). So one action
        at a time, each the first of a path planned on the grid as it is now (obstacles are not walkable); with no
        path now, turn and wait for the obstacles to move on."""
        while True:
            path = self._path(accept, goal_ok)
            if path == []:
                return True
            if not self._act([path[0][1] if path else int(Actions.left)]):
                return False

    def _move_aside(self, blocker: Pos, way: set[Pos] | frozenset[Pos] = frozenset()) -> bool:
        """Put down what is held, move ``blocker`` to an out-of-the-way cell (none of ``way`` if another will do),
        pick the held object up again."""
        held = self.world.carrying

        def aside(pos: Pos, rule: tuple[bool, bool, bool]) -> bool:
            return pos not in way and self._spot(pos, rule)

        spot = self._spot if not way else aside
        if held is not None and not self._drop_by_rules(spot, DROP_RULES):
            return False
        path = self._path(lambda p: ahead_of(p) == blocker)
        moved = (
            path is not None
            and self._act([a for _, a in path])
            and self._act([int(Actions.pickup)])
            and self.world.carrying is not None
            and (
                self._drop_by_rules(spot, DROP_RULES)
                or (spot is not self._spot and self._drop_by_rules(self._spot, DROP_RULES))
            )
        )
        if held is None or not moved:
            return moved
        again = self._path(lambda p: self.world.grid.get(*ahead_of(p)) is held)
        return (
            again is not None
            and self._act([a for _, a in again])
            and self._act([int(Actions.pickup)])
            and self.world.carrying is held
        )

    def _face(self, target: Pos) -> bool:
        """Stand facing ``target``; in a region the step's operator names (its ``agent_in`` effects) when one can be
        walked to, else anywhere (a doorway counts as the regions it can be left into, as the planner counts it)."""
        if self._rooms:
            labels = self._labels()

            def inside(pose: Pose) -> bool:
                return ahead_of(pose) == target and self._in_rooms(labels, pose)

            if self._path(inside) is not None:
                return self._navigate(inside) and self._front() == target
        return self._navigate(lambda p: ahead_of(p) == target) and self._front() == target

    def _labels(self) -> dict[Pos, int]:
        """Region ids as the planning state numbers them (own view: the map's stable ids over known cells)."""
        view = self.view
        return regions(self.world.grid) if view is None else view.regions()

    def _in_rooms(self, labels: dict[Pos, int], pose: Pose) -> bool:
        here = agent_regions(self.world.grid, labels, pose[0], pose[1])
        return any(str(r) in self._rooms for r in here)

    def _spot(self, pos: Pos, rule: tuple[bool, bool, bool]) -> bool:
        """An empty cell to drop on, under ``rule`` = (keep away from doors, keep away from other objects, keep every
        walkable cell reachable)."""
        away_from_doors, away_from_objects, keep_connected = rule
        grid = self.world.grid
        if not self._known(pos) or grid.get(*pos) is not None:
            return False
        near = [grid.get(pos[0] + i, pos[1] + j) for i, j in NEIGHBOURS]  # unknown cells of the map are None
        if away_from_doors and any(isinstance(cell, Door) for cell in near):
            return False
        if away_from_objects and any(_is_object(cell) for cell in near):
            return False
        return not keep_connected or self._keeps_connected(pos)

    def _keeps_connected(self, pos: Pos) -> bool:
        """Whether an object on ``pos`` leaves every other walkable cell reachable from the agent."""
        if pos not in self._cut_cache:
            everything = self._walk_from(None)
            self._cut_cache[pos] = pos not in everything or len(self._walk_from(pos)) == len(everything) - 1
        return self._cut_cache[pos]

    def _walk_from(self, blocked: Pos | None) -> set[Pos]:
        x, y = (int(v) for v in self.world.agent_pos)
        seen, stack = {(x, y)}, [(x, y)]
        while stack:
            cx, cy = stack.pop()
            for i, j in NEIGHBOURS:
                nxt = (cx + i, cy + j)
                if nxt != blocked and nxt not in seen and self._passable(nxt):
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def _passable(self, pos: Pos) -> bool:
        """A cell connectivity is kept to: walkable; from the own view also a door, closed or locked (a drop in front
        of the door the plan goes through next cuts the way as surely as one in a corridor)."""
        if self._walkable(pos, False):
            return True
        return self._own is not None and self._known(pos) and isinstance(self.world.grid.get(*pos), Door)

    def _drop_by_rules(
        self, accept: Callable[[Pos, tuple[bool, bool, bool]], bool], rules: Sequence[tuple[bool, bool, bool]]
    ) -> bool:
        """Drop on the nearest cell ``accept`` takes under the first of ``rules`` that has one."""
        self._cut_cache: dict[Pos, bool] = {}
        for rule in rules:
            path = self._path(partial(_accepts_ahead, accept, rule))
            if path is not None:
                moves = [action for _, action in path]
                if not moves and self.base.step_count == 0 and getattr(self.base, "instrs", None) is not None:
                    # BabyAI's PutNextInstr learns what is carried one step late (it reads None at the reset), so a
                    # drop as the episode's first action would not count: turn away and back first.
                    moves = [int(Actions.left), int(Actions.right)]
                dropped = self._act(moves) and self._act([int(Actions.drop)])
                return dropped and self.world.carrying is None
        return False


class Probed(Exception):
    """``ScriptedSkills.next_action`` found the action (raised instead of stepping the env)."""

    def __init__(self, action: int) -> None:
        super().__init__(action)
        self.action = action


def _accepts_ahead(
    accept: Callable[[Pos, tuple[bool, bool, bool]], bool], rule: tuple[bool, bool, bool], pose: Pose
) -> bool:
    return accept(ahead_of(pose), rule)


def ahead_of(pose: Pose) -> Pos:
    """The cell in front of ``pose``."""
    dx, dy = (int(v) for v in DIR_TO_VEC[pose[2]])
    return pose[0] + dx, pose[1] + dy


def _plain(name: str) -> bool:
    """A plain colour, not one object's identity (``red``, not ``red@3_4``)."""
    return IDENTITY_SEPARATOR not in name


def _is_object(cell: WorldObj | None) -> bool:
    return cell is not None and cell.type not in ("wall", "floor", "lava", "door")
