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

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
from minigrid.core.actions import Actions
from minigrid.core.world_object import Box, Door
from minigrid.minigrid_env import MiniGridEnv

from modrl.config import check
from modrl.envs.own_view import OwnView, own_view_of
from modrl.envs.predicates import env_planning_state
from modrl.envs.skill_motion import DROP_RULES, Pos, Pose, Probed, SkillMotion, ahead_of
from modrl.planner import GroundOperator, SkillResult, SkillStatus, parse_atom


class ScriptedSkills(SkillMotion):
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
        except Probed as probed:
            return probed.action
        finally:
            self._probing = False
        return None

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
                self._drop_by_rules(inside, (rule,)) or self._drop_by_rules(self._spot, (rule,)) for rule in DROP_RULES
            )
        return self._drop_by_rules(self._spot, DROP_RULES)

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
                ahead = ahead_of(pose)
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


def _agent_rooms(step: GroundOperator) -> frozenset[str]:
    """The regions a step's operator puts the agent in (its ``agent_in(room,r)`` add effects)."""
    return frozenset(
        args[1] for name, args in (parse_atom(a) for a in step.add) if name == "agent_in" and len(args) == 2
    )


def _object_rooms(step: GroundOperator) -> frozenset[str]:
    """The regions a step's operator puts objects in (its ``in(t,c,room,r)`` add effects)."""
    return frozenset(args[3] for name, args in (parse_atom(a) for a in step.add) if name == "in" and len(args) == 4)
