"""Scripted skills: a :class:`~modrl.planner.SkillExecutor` that runs each planned skill in a real MiniGrid env.

The stand-in for learned options, so plans can be executed end to end now. Each skill reads the full grid -- or, when
planning from the agent's own view (``own_view=True``), the map of the cells seen so far
(:class:`modrl.envs.own_view.OwnViewMap`: unknown cells are never walked through or dropped on) -- and moves with a
breadth-first search over agent poses ``(x, y, heading)`` (actions left, right, forward), then acts:

* ``goto(t,c)`` -- stop facing the object (``goto(goal,c)``: stand on the goal square);
* ``pickup(t,c)`` -- go to the object and pick it up (fails if the hands are full);
* ``open(door,c)`` -- go to the door and toggle it (with the door's key in hand this unlocks it); ``open(box,c)``
  toggles a box, which MiniGrid replaces by what it holds;
* ``close(door,c)`` -- go to the open door and toggle it shut;
* ``done(t,c)`` -- stop facing the object (a door too) and take the ``done`` action (MiniGrid's GoToDoor, GoToObject);
* ``drop(t,c)`` -- put the held object on the nearest free cell that blocks no door, touches no other object and
  cuts no walkable cell off from the agent, relaxing these wishes in that order when no cell meets them all;
* ``putnext(t,c,u,d)`` -- (pick the object up if needed, then) drop it on a free cell next to the target, by the same
  wishes (doors, then connectivity);
* ``explore(t,c)`` (own view only) -- walk through known cells to the nearest pose that faces an unknown cell,
  preferring the regions the step's operator names, and again, until the object is on the map or no such pose can be
  reached (done if it revealed anything, failed if there was nothing to reveal).

From the own view three wishes change (the full-grid skills are left as they were, so recorded demonstrations replay
unchanged): a drop tries each wish in the region its operator names before anywhere else, the connectivity wish keeps
doors reachable too (closed or locked: the way on often lies through them), and an object moved aside is not set down
on the way it was moved from.

In Dynamic-Obstacles, where the obstacles move after every action, the skills walk one action at a time, each
re-planned on the grid as it is then (:meth:`ScriptedSkills._navigate_among_moving`).

Closed doors, walls, lava, objects and (unless it is the target) the goal square are never walked through; when objects
wall the way off, the skill moves them aside first (putting down what it holds and picking it up again), as BabyAI's
bot does. A skill fails when its object is missing or no path exists, and times out after ``max_skill_steps``
actions.

Objects are named as the planner names them (:func:`modrl.envs.predicates.object_name`): ``door,red@3_4`` is that one
red door, wherever it is now; a plain colour still means "the nearest object of that type and colour".
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
from minigrid.core.actions import Actions
from minigrid.core.constants import DIR_TO_VEC
from minigrid.core.world_object import Box, Door, WorldObj
from minigrid.envs.dynamicobstacles import DynamicObstaclesEnv
from minigrid.minigrid_env import MiniGridEnv

from modrl.config import check
from modrl.envs.own_view import OwnView, OwnViewMap, own_view_of
from modrl.envs.predicates import (
    IDENTITY_SEPARATOR,
    World,
    agent_regions,
    env_planning_state,
    find_object,
    object_name,
    regions,
)
from modrl.planner import GroundOperator, SkillResult, SkillStatus, parse_atom

Pos = tuple[int, int]
Pose = tuple[int, int, int]
_NEIGHBOURS = ((1, 0), (0, 1), (-1, 0), (0, -1))
#: Where to drop, most wished-for first: (away from doors, away from other objects, keeps every cell reachable).
_DROP_RULES = ((True, True, True), (True, False, True), (False, False, True), (False, False, False))


class ScriptedSkills:
    """Runs ground operators' skills (``goto``, ``pickup``, ``drop``, ``open``, ``close``, ``putnext``, ``done``) in
    a MiniGrid env.

    Args:
        env: A MiniGrid env, possibly wrapped, already reset; actions go through ``env.step`` (so wrappers see them).
        max_skill_steps: Actions one skill may take before it times out.
        own_view: Read the own-view map of the :class:`~modrl.envs.own_view.OwnView` wrapper in ``env``'s chain
            instead of the full grid, for the skills and for :meth:`observe` (which then reports
            :func:`~modrl.envs.own_view.own_view_state`); adds the ``explore`` skill.

    Attributes:
        last_info: The ``info`` of the last step.
        episode_over: The episode has ended (terminated or truncated).
        episode_success: It ended with a positive reward.
    """

    def __init__(self, env: gym.Env, *, max_skill_steps: int = 200, own_view: bool = False) -> None:
        check(
            isinstance(env.unwrapped, MiniGridEnv), "env", f"needs a MiniGrid env, got {type(env.unwrapped).__name__}"
        )
        check(isinstance(max_skill_steps, int) and max_skill_steps >= 1, "max_skill_steps", "must be an integer >= 1")
        self._own: OwnView | None = own_view_of(env) if own_view else None
        check(not own_view or self._own is not None, "own_view", "needs an OwnView wrapper in the env's chain")
        self.env = env
        self.max_skill_steps = max_skill_steps
        self.last_info: dict[str, Any] = {}
        self.episode_over = False
        self.episode_success = False
        self._probing = False
        self._rooms: frozenset[str] = frozenset()
        self._put_rooms: frozenset[str] = frozenset()
        self._handlers: dict[str, Callable[[Sequence[str]], bool]] = {
            "goto": self._goto,
            "pickup": self._pickup,
            "drop": self._drop,
            "open": self._open,
            "close": self._close,
            "done": self._done,
            "putnext": self._putnext,
        }
        if self._own is not None:
            self._handlers["explore"] = self._explore

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

    def observe(self) -> frozenset[str]:
        """:func:`modrl.envs.predicates.env_planning_state` now (own view: the map's
        :func:`~modrl.envs.own_view.own_view_state`)."""
        return env_planning_state(self.base) if self._own is None else self._own.state()

    def execute(self, step: GroundOperator) -> SkillResult:
        """Run ``step.skill(step.skill_args)`` until it is done, fails, times out or the episode ends."""
        handler = self._handlers.get(step.skill)
        if handler is None:
            raise ValueError(f"no scripted skill {step.skill!r}; skills: {', '.join(self._handlers)}")
        self._steps, self._over, self._success, self._timeout = 0, False, False, False
        self._rooms = _agent_rooms(step)
        self._put_rooms = _object_rooms(step)
        ok = handler(step.skill_args)
        if self._over:
            status = SkillStatus.DONE if ok else SkillStatus.FAILED
        elif self._timeout:
            status = SkillStatus.TIMEOUT
        else:
            status = SkillStatus.DONE if ok else SkillStatus.FAILED
        return SkillResult(
            status=status, state=self.observe(), steps=self._steps, episode_over=self._over, success=self._success
        )

    def next_action(self, step: GroundOperator) -> int | None:
        """The first action :meth:`execute` would take for ``step`` now, without taking it: the expert's label of a
        state for DAgger. ``None`` when it would take none (the step already holds, or it fails at once: the object
        is missing, the hands are full for a pickup)."""
        self._probing = True
        try:
            self.execute(step)
        except _Probed as probed:
            return probed.action
        finally:
            self._probing = False
        return None

    # -- primitive helpers ------------------------------------------------------------------------------------------
    def _act(self, actions: Sequence[int]) -> bool:
        """Take ``actions``; False when the budget or the episode runs out first."""
        for action in actions:
            if self._over or self._steps >= self.max_skill_steps:
                self._timeout = not self._over
                return False
            if self._probing:
                raise _Probed(int(action))
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
        if held is not None and not self._drop_by_rules(spot, _DROP_RULES):
            return False
        path = self._path(lambda p: _ahead(p) == blocker)
        moved = (
            path is not None
            and self._act([a for _, a in path])
            and self._act([int(Actions.pickup)])
            and self.world.carrying is not None
            and (
                self._drop_by_rules(spot, _DROP_RULES)
                or (spot is not self._spot and self._drop_by_rules(self._spot, _DROP_RULES))
            )
        )
        if held is None or not moved:
            return moved
        again = self._path(lambda p: self.world.grid.get(*_ahead(p)) is held)
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
                return _ahead(pose) == target and self._in_rooms(labels, pose)

            if self._path(inside) is not None:
                return self._navigate(inside) and self._front() == target
        return self._navigate(lambda p: _ahead(p) == target) and self._front() == target

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
        near = [grid.get(pos[0] + i, pos[1] + j) for i, j in _NEIGHBOURS]  # unknown cells of the map are None
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
            for i, j in _NEIGHBOURS:
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

    # -- skills -------------------------------------------------------------------------------------------------------
    def _goto(self, args: Sequence[str]) -> bool:
        type_, colour = args
        target = self._find(type_, colour)
        if target is None:
            return False
        if type_ == "goal":
            reached = self._navigate(lambda p: (p[0], p[1]) == target, goal_ok=True)
            return reached and tuple(int(v) for v in self.world.agent_pos) == target
        return self._face(target)

    def _pickup(self, args: Sequence[str]) -> bool:
        type_, colour = args
        if self._carrying(type_, colour):
            return True
        target = self._find(type_, colour)
        if target is None or self.world.carrying is not None or not self._face(target):
            return False
        return self._act([int(Actions.pickup)]) and self._carrying(type_, colour)

    def _open(self, args: Sequence[str]) -> bool:
        type_, name = args
        target = self._find(type_, name)
        if target is None or not self._face(target):
            return False
        thing = self.world.grid.get(*target)
        if isinstance(thing, Door):
            return thing.is_open or (self._act([int(Actions.toggle)]) and thing.is_open)
        # A box: MiniGrid replaces it by its contents.
        return isinstance(thing, Box) and self._act([int(Actions.toggle)]) and self.world.grid.get(*target) is not thing

    def _close(self, args: Sequence[str]) -> bool:
        type_, name = args
        target = self._find(type_, name)
        if target is None or not self._face(target):
            return False
        door = self.world.grid.get(*target)
        if not isinstance(door, Door):
            return False
        return not door.is_open or (self._act([int(Actions.toggle)]) and not door.is_open)

    def _done(self, args: Sequence[str]) -> bool:
        type_, name = args
        target = self._find(type_, name)
        return target is not None and self._face(target) and self._act([int(Actions.done)])

    def _drop(self, args: Sequence[str]) -> bool:
        type_, colour = args
        if not self._carrying(type_, colour):
            return False
        if self._own is not None and self._put_rooms:
            # Own view: wish by wish, a spot in the region the operator names first, then anywhere (KeyCorridorS3R3's
            # one-cell rooms between two doors otherwise got the key back in front of the door it blocked, again and
            # again); the full-grid skill is left as it was, so earlier recordings replay unchanged.
            labels = self._labels()

            def inside(pos: Pos, rule: tuple[bool, bool, bool]) -> bool:
                return str(labels.get(pos)) in self._put_rooms and self._spot(pos, rule)

            return any(
                self._drop_by_rules(inside, (rule,)) or self._drop_by_rules(self._spot, (rule,)) for rule in _DROP_RULES
            )
        return self._drop_by_rules(self._spot, _DROP_RULES)

    def _explore(self, args: Sequence[str]) -> bool:
        """Look for the object ``args`` = ``(type, name)``: walk to the nearest pose facing an unknown cell (in the
        step's regions while one can be reached there, else anywhere), re-aiming whenever a step shows new cells,
        until the object is on the map. Done if it is, or if anything new was seen on the way; failed if no unknown
        cell can be faced."""
        type_, name = args
        view = self.view
        assert view is not None, "explore needs the own view"
        labels = self._labels()
        home = {pos for pos, r in labels.items() if str(r) in self._rooms}
        acted = False
        while not view.seen(type_, name):
            labels = self._labels()
            wanted = {labels[p] for p in home if p in labels}

            def looks(pose: Pose, local: bool, labels: dict[Pos, int] = labels, wanted: set[int] = wanted) -> bool:
                ahead = _ahead(pose)
                if not view.inside(ahead) or view.known[ahead[0], ahead[1]]:
                    return False
                return not local or labels.get((pose[0], pose[1])) in wanted

            path = self._path(partial(looks, local=True)) if wanted else None
            if path is None:
                path = self._path(partial(looks, local=False))
            if path is None:  # objects may wall the rest off: move them aside on the way (or give up)
                count = int(view.known.sum())
                if not self._navigate(partial(looks, local=False)):
                    return acted and not self._timeout
                acted = acted or int(view.known.sum()) != count
                continue
            count = int(view.known.sum())
            for _, action in path:
                if not self._act([action]):
                    return False
                acted = True
                if int(view.known.sum()) != count:
                    break
        return True

    def _putnext(self, args: Sequence[str]) -> bool:
        type_, colour, target_type, target_colour = args
        if self._carrying(target_type, target_colour) and not self._drop((target_type, target_colour)):
            return False  # holding the target (putnext_held): set it down here first
        if not self._carrying(type_, colour) and not self._pickup((type_, colour)):
            return False
        target = self._find(target_type, target_colour)
        if target is None:
            return False

        def beside(pos: Pos, rule: tuple[bool, bool, bool]) -> bool:
            return abs(pos[0] - target[0]) + abs(pos[1] - target[1]) == 1 and self._spot(pos, rule)

        rules = ((True, False, True), (False, False, True), (False, False, False))
        if self._drop_by_rules(beside, rules):
            return True
        # No free cell beside the target can be walked to: walk up to the target itself, moving what is in the way
        # aside (the held object is put down and picked up again), then try again from there.
        return self.world.carrying is not None and self._face(target) and self._drop_by_rules(beside, rules)


class _Probed(Exception):
    """:meth:`ScriptedSkills.next_action` found the action (raised instead of stepping the env)."""

    def __init__(self, action: int) -> None:
        super().__init__(action)
        self.action = action


def _accepts_ahead(
    accept: Callable[[Pos, tuple[bool, bool, bool]], bool], rule: tuple[bool, bool, bool], pose: Pose
) -> bool:
    return accept(_ahead(pose), rule)


def _ahead(pose: Pose) -> Pos:
    dx, dy = (int(v) for v in DIR_TO_VEC[pose[2]])
    return pose[0] + dx, pose[1] + dy


def _agent_rooms(step: GroundOperator) -> frozenset[str]:
    """The regions a step's operator puts the agent in (its ``agent_in(room,r)`` add effects)."""
    return frozenset(
        args[1] for name, args in (parse_atom(a) for a in step.add) if name == "agent_in" and len(args) == 2
    )


def _object_rooms(step: GroundOperator) -> frozenset[str]:
    """The regions a step's operator puts objects in (its ``in(t,c,room,r)`` add effects)."""
    return frozenset(args[3] for name, args in (parse_atom(a) for a in step.add) if name == "in" and len(args) == 4)


def _plain(name: str) -> bool:
    """A plain colour, not one object's identity (``red``, not ``red@3_4``)."""
    return IDENTITY_SEPARATOR not in name


def _is_object(cell: WorldObj | None) -> bool:
    return cell is not None and cell.type not in ("wall", "floor", "lava", "door")
