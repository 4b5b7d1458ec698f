"""BabyAI's instruction check of modrl's generated tasks (:class:`~modrl.envs.TaskEnv`), batched.

A task episode is a :class:`~modrl.envs.task_env.SubtaskSequence` of BabyAI ``GoToInstr``, ``PickupInstr``,
``OpenInstr`` and ``PutNextInstr`` (not strict, no done action). After MiniGrid's step, ``RoomGridLevel.step``
refreshes the tracked object positions on every ``drop`` action, then ``verify`` asks each pending subtask:

* go to: the cell in front of the agent (after the action) is one of the object's *tracked* positions. They are the
  positions at the episode's start and at the last ``drop`` action, not the live ones: after picking the object up
  the agent "reaches" its old cell until it next drops (anything), and after a ``drop`` while carrying it the object
  has no tracked position until the next one;
* pick up: the agent carried nothing before the action and now carries the object;
* open: the action is ``toggle`` and the cell in front is the door, now open;
* put next: the action is ``drop``, the agent carried the object before it, and the object now lies next to
  (4-neighbourhood) a tracked position of the target, refreshed by this very drop, i.e. the target's cell.

A strict pick-up or open (BabyAI's ``strict`` flag, :class:`~modrl.envs.TaskEnv`'s ``strict``) fails instead of
continuing when the action is ``pickup`` and the agent carries anything afterwards, or ``toggle`` with a door in
front; only the current subtask (the one pending before the action) can fail, and a failure ends the episode
(terminated, reward 0).

The sequence advances past the consecutive successes from the current subtask (one action may complete several);
``info["events"]`` are the symbols passed, and the episode succeeds (terminated, reward MiniGrid's
``1 - 0.9 * step_count / max_steps``) when the last one is passed.

BabyAI tracks objects by identity. The engine tracks them by MiniGrid code (type and colour), which is the same thing
when every object an instruction names is the only one of its type and colour in the grid: TaskEnv places each
mentioned object once and distractors of other (colour, type) pairs, and :func:`task_instructions` checks it for
every episode (a code never changes: a door's state is not part of it, an object only moves or, for a box, vanishes).
"""

from __future__ import annotations

from dataclasses import dataclass

from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.envs.babyai.core.verifier import GoToInstr, ObjDesc, OpenInstr, PickupInstr, PutNextInstr

from modrl.envs.fast.errors import EngineUnsupported
from modrl.envs.task_env import SubtaskSequence, TaskEnv

NONE, GOTO, PICKUP, OPEN, PUTNEXT = range(5)
"""Verb codes of :attr:`Instructions.verbs` (``NONE`` pads a slot's row of subtasks)."""
_VERBS = {GoToInstr: GOTO, PickupInstr: PICKUP, OpenInstr: OPEN, PutNextInstr: PUTNEXT}


@dataclass(frozen=True)
class Instructions:
    """One task episode's subtasks as the engine verifies them, in order.

    Attributes:
        verbs: :data:`GOTO`, :data:`PICKUP`, :data:`OPEN` or :data:`PUTNEXT` per subtask.
        objects: The object's code ``type | colour << 8`` (the low two bytes of a packed cell) per subtask.
        targets: ``putnext``'s target code, else 0.
        symbols: The sketch symbol per subtask (``info["events"]``).
        strict: BabyAI's ``strict`` flag per subtask (pick-up and open only).
    """

    verbs: tuple[int, ...]
    objects: tuple[int, ...]
    targets: tuple[int, ...]
    symbols: tuple[str, ...]
    strict: tuple[bool, ...] = ()


def object_code(kind: str, colour: str) -> int:
    """The ``type | colour << 8`` code of an object of type ``kind`` and colour ``colour``."""
    return OBJECT_TO_IDX[kind] | COLOR_TO_IDX[colour] << 8


def code(desc: ObjDesc) -> int:
    """The ``type | colour << 8`` code of the one object a description names."""
    return object_code(desc.type, desc.color)


def task_instructions(env: TaskEnv) -> Instructions:
    """The instructions of ``env``'s episode, its verifier just reset (``RoomGridLevel.reset``).

    Raises:
        EngineUnsupported: An instruction the engine does not implement (not one of the four, a strict put-next, a
            location in a description) or a description that does not name exactly one object of the grid.
    """
    sequence = env.instrs
    if type(sequence) is not SubtaskSequence:
        raise EngineUnsupported(f"the fast engine does not implement {type(sequence).__name__} instructions")
    verbs, objects, targets, strict = [], [], [], []
    for instr in sequence.instrs:
        verb = _VERBS.get(type(instr))
        strict.append(bool(getattr(instr, "strict", False)))
        if verb is None or (strict[-1] and verb not in (PICKUP, OPEN)):
            raise EngineUnsupported(f"the fast engine does not implement {type(instr).__name__} (strict or other)")
        descs = [instr.desc_move, instr.desc_fixed] if isinstance(instr, PutNextInstr) else [instr.desc]  # type: ignore[attr-defined]
        for desc in descs:
            if desc.loc is not None or desc.type is None or desc.color is None or len(desc.obj_set) != 1:
                raise EngineUnsupported(
                    f"the fast engine verifies descriptions of exactly one object by type and colour, got {desc!r} "
                    f"matching {len(desc.obj_set)}"
                )
        verbs.append(verb)
        objects.append(code(descs[0]))
        targets.append(code(descs[1]) if len(descs) == 2 else 0)
    return Instructions(tuple(verbs), tuple(objects), tuple(targets), tuple(sequence.symbols), tuple(strict))
