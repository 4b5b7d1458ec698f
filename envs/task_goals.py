"""Between the task grammar (:mod:`modrl.envs.grammar`) and the planner: the goal of a subtask as BabyAI's verifier
checks it, the ordered goals of a task, and the grammar subtask a ground operator's skill performs (what an option
trained on that subtask runs). :mod:`modrl.envs.operators` re-exports these names."""

from __future__ import annotations

from modrl.config import ConfigError
from modrl.envs.grammar import ObjectRef, Subtask, Task
from modrl.envs.predicates import plain_colour
from modrl.planner import Goal, GroundOperator


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
