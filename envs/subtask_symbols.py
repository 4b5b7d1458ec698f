"""The symbols of single-subtask options: argument slots and words, the option's observation, effect and subgoal
predicates.

A parameterised option of a verb reads its subtask's argument words (``(colour, type)``, plus the target's for
``putnext``) as slot indices into :func:`argument_slots`. :func:`effect_predicate` is the termination predicate of a
verb's option as a plain ``predicate(info, args)`` callable over the symbolic state in ``info["predicates"]``
(:mod:`modrl.envs.predicates`): it holds exactly when BabyAI's verifier would report the subtask done from the state
(``goto``: facing the object; ``pickup``: carrying it; ``open``: the door is open; ``putnext``: the object lies next
to the target and is not carried). :func:`subgoal_conjunctions` are the subgoals
:class:`~modrl.envs.subgoal_reward.SubgoalReward` rewards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from modrl.config import ConfigError
from modrl.envs.grammar import COLOURS, PICKABLE_TYPES, VERB_TYPES, ObjectRef, Subtask, Verb


def argument_slots(verb: Verb) -> tuple[tuple[str, ...], ...]:
    """The argument slots of ``verb``'s parameterised option: colour, type (then target colour, type for putnext)."""
    slots: tuple[tuple[str, ...], ...] = (COLOURS, tuple(VERB_TYPES[verb]))
    return (*slots, COLOURS, PICKABLE_TYPES) if verb == "putnext" else slots


def subtask_arguments(sub: Subtask) -> tuple[str, ...]:
    """The argument words of ``sub`` in :func:`argument_slots` order: ``("red", "key")``."""
    return tuple(word for obj in sub.objects for word in (obj.colour, obj.type))


def option_observation(obs: Mapping[str, Any], sub: Subtask, slots: Sequence[Sequence[str]] = ()) -> dict[str, Any]:
    """What an option sees of a task env's observation while running ``sub``: ``image`` and ``direction``, plus, for a
    parameterised option (``slots`` from :func:`argument_slots`), ``args``: ``(len(slots),) int64`` slot indices of
    ``sub``'s arguments. :class:`SubtaskEnv` and the demonstration recorder both build observations with it."""
    out: dict[str, Any] = {"image": obs["image"], "direction": int(obs["direction"])}
    if slots:
        words = subtask_arguments(sub)
        out["args"] = np.array([list(slot).index(w) for slot, w in zip(slots, words, strict=True)], np.int64)
    return out


def subtask_from_arguments(verb: Verb, args: Sequence[str]) -> Subtask:
    """Inverse of :func:`subtask_arguments` (``ConfigError`` for words the grammar refuses)."""
    objects = [ObjectRef(colour=args[i], type=args[i + 1]) for i in range(0, len(args), 2)]  # type: ignore[arg-type]
    return Subtask(verb=verb, obj=objects[0], target=objects[1] if len(objects) > 1 else None)


def effect_holds(sub: Subtask, predicates: frozenset[str]) -> bool:
    """Whether the symbolic state shows ``sub`` done (see the module docstring)."""
    obj = sub.obj.symbol
    if sub.verb == "goto":
        return f"facing({obj})" in predicates
    if sub.verb == "pickup":
        return f"carrying({obj})" in predicates
    if sub.verb == "open":
        return f"open({obj})" in predicates
    assert sub.target is not None
    return f"next_to({obj},{sub.target.symbol})" in predicates and f"carrying({obj})" not in predicates


def effect_predicate(verb: Verb) -> Callable[[Mapping[str, Any], tuple[str, ...]], bool]:
    """The termination predicate ``(info, args) -> bool`` of ``verb``'s parameterised option (needs
    ``info["predicates"]``, which :class:`~modrl.envs.task_env.TaskEnv` provides by default)."""

    def holds(info: Mapping[str, Any], args: tuple[str, ...]) -> bool:
        try:
            sub = subtask_from_arguments(verb, args)
        except ConfigError:  # e.g. open(box): no grammar subtask, so no effect here (a planner ends it on its effects)
            return False
        return effect_holds(sub, info.get("predicates", frozenset()))

    holds.__name__ = f"{verb}_effect"
    return holds


def drop_predicate(info: Mapping[str, Any], args: tuple[str, ...]) -> bool:
    """The termination predicate of a ``drop`` skill option (words ``(colour, type)``): the object is not carried."""
    colour, type_ = args[0], args[1]
    return f"carrying({type_},{colour})" not in info.get("predicates", frozenset())


def symbol_predicate(sub: Subtask) -> Callable[[Mapping[str, Any], tuple[str, ...]], bool]:
    """The termination predicate of a one-module-per-symbol option for ``sub`` (its arguments are ignored)."""
    return lambda info, args: effect_holds(sub, info.get("predicates", frozenset()))


def subgoal_conjunctions(sub: Subtask) -> tuple[frozenset[str], ...]:
    """The subgoals of ``sub`` that :class:`SubgoalReward` rewards, in order, each a conjunction of predicates
    (:mod:`modrl.envs.predicates`): ``goto``, ``pickup``, ``open``: the object is in a cell around the agent
    (``adjacent``); ``putnext``: carrying the object to move, then carrying it next to the target (the target in a cell
    around the agent)."""
    obj = sub.obj.symbol
    if sub.verb != "putnext":
        return (frozenset({f"adjacent({obj})"}),)
    assert sub.target is not None
    carrying = f"carrying({obj})"
    return (frozenset({carrying}), frozenset({carrying, f"adjacent({sub.target.symbol})"}))
