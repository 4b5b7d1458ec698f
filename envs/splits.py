"""Train / test splits that hold out combinations systematically: data, versioned, checked when built.

Three built-in splits, each the task list of one generated suite (see :mod:`modrl.envs.catalog`):

* ``colour-type`` -- ``goto``/``pickup``/``open`` over every (colour, type) the verb takes; the (colour, type) pairs of
  :data:`HELD_OUT_OBJECTS` are test-only for every verb (one pair per colour, every type keeps four or more colours in
  train). Training episodes never show a held-out object, not even as a distractor (``Split.avoid``).
* ``verb-object`` -- every verb over every type it takes, colours red/green/blue (``putnext`` moves the object next to
  the next colour's next type); the (verb, type) pairs of :data:`HELD_OUT_VERB_TYPES` are test-only.
* ``sequences`` -- five subtasks (:data:`SEQUENCE_ATOMS`); train on each alone and on 15 ordered pairs; test on the
  5 reversed pairs and on 3- and 4-long sequences (:data:`LONG_SEQUENCES`).

Every split is a fixed table (no randomness), carries a ``version`` (bump it when its tasks change) and is validated
by :func:`split_problems` in ``Split.__post_init__``: train and test disjoint, nothing held out leaks into train, and
every colour, type and verb of the test tasks is seen in training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import permutations
from typing import Any, Literal

from modrl.config import check
from modrl.envs.grammar import (
    COLOURS,
    OBJECT_TYPES,
    PICKABLE_TYPES,
    VERB_TYPES,
    VERBS,
    ObjectRef,
    Task,
    Verb,
    parse_object,
    parse_task,
    subtask,
    task,
)
from modrl.registry import Registry

SplitKind = Literal["colour-type", "verb-object", "sequences"]
SPLIT_NAMES: tuple[str, ...] = ("train", "test")

#: colour-type: the (colour, type) pairs no verb is trained on (one per colour).
HELD_OUT_OBJECTS: tuple[str, ...] = ("red-ball", "grey-ball", "green-box", "blue-key", "yellow-key", "purple-door")
#: verb-object: the (verb, object type) pairs held out.
HELD_OUT_VERB_TYPES: tuple[str, ...] = ("goto-key", "pickup-box", "putnext-ball")
VERB_OBJECT_COLOURS: tuple[str, ...] = ("red", "green", "blue")
#: sequences: the subtasks sequences are built from, by letter.
SEQUENCE_ATOMS: dict[str, str] = {
    "A": "open-red-door",
    "B": "pickup-blue-key",
    "C": "goto-green-ball",
    "D": "putnext-yellow-box-blue-key",
    "E": "goto-purple-door",
}
#: sequences: ordered pairs seen only reversed in training.
HELD_OUT_ORDERS: tuple[str, ...] = ("BA", "CB", "DC", "ED", "AE")
#: sequences: the test sequences of length 3 and 4.
LONG_SEQUENCES: tuple[str, ...] = ("ABC", "BCD", "CDE", "DEA", "EAB", "CAD", "ABCD", "BCDE", "EDCB", "DAEC")


@dataclass(frozen=True, kw_only=True)
class Split:
    """A versioned train/test split of a generated suite.

    Attributes:
        suite: The suite name (also the split kind).
        version: Bumped whenever the tasks change.
        description: One line for the CLI.
        train: Training task names.
        test: Held-out task names (disjoint from ``train``).
        held_out: What is held out, as names (objects, ``verb-type`` pairs, or letter orders / lengths).
        avoid: Object names never shown in training episodes, not even as distractors.
    """

    suite: SplitKind
    version: int
    description: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    held_out: tuple[str, ...]
    avoid: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("train", "test", "held_out", "avoid"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check(isinstance(self.version, int) and self.version >= 1, "version", f"must be >= 1, got {self.version!r}")
        problems = split_problems(self)
        check(not problems, "split", f"{self.suite} v{self.version}: " + "; ".join(problems))

    @property
    def tasks(self) -> tuple[str, ...]:
        """Train then test task names (the suite's task order)."""
        return self.train + self.test

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of the SHA-256 of :meth:`as_dict` as canonical JSON: record it with results."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        """``{"suite", "version", "train", "test", "held_out", "avoid"}`` with lists, for JSON and the CLI."""
        return {
            "suite": self.suite,
            "version": self.version,
            "train": list(self.train),
            "test": list(self.test),
            "held_out": list(self.held_out),
            "avoid": list(self.avoid),
        }


def _objects(tasks: Iterable[Task]) -> set[ObjectRef]:
    return {o for t in tasks for o in t.objects}


def _verb_types(t: Task) -> set[str]:
    return {f"{s.verb}-{s.obj.type}" for s in t.subtasks}


def _common_problems(train: list[Task], test: list[Task]) -> list[str]:
    problems = []
    names = [t.name for t in train + test]
    if len(set(names)) != len(names):
        problems.append("a task is listed twice (or in both train and test)")
    if not train or not test:
        problems.append("train and test must both be non-empty")
    seen = _objects(train)
    for what, attr in (("colour", "colour"), ("type", "type")):
        missing = {getattr(o, attr) for o in _objects(test)} - {getattr(o, attr) for o in seen}
        if missing:
            problems.append(f"test {what}s never seen in train: {', '.join(sorted(missing))}")
    missing_verbs = {s.verb for t in test for s in t.subtasks} - {s.verb for t in train for s in t.subtasks}
    if missing_verbs:
        problems.append(f"test verbs never seen in train: {', '.join(sorted(missing_verbs))}")
    return problems


def _colour_type_problems(split: Split, train: list[Task], test: list[Task]) -> list[str]:
    held = {parse_object(n) for n in split.held_out}
    problems = [f"train task {t.name} mentions a held-out object" for t in train if held & set(t.objects)]
    problems += [f"test task {t.name} mentions no held-out object" for t in test if not held & set(t.objects)]
    seen = _objects(train)
    if {o.colour for o in seen} != set(COLOURS) or {o.type for o in seen} != set(OBJECT_TYPES):
        problems.append("every colour and every type must be in train")
    if set(split.avoid) != set(split.held_out):
        problems.append("avoid must be the held-out objects")
    return problems


def _verb_object_problems(split: Split, train: list[Task], test: list[Task]) -> list[str]:
    held = set(split.held_out)
    problems = [f"train task {t.name} uses a held-out (verb, type)" for t in train if held & _verb_types(t)]
    problems += [f"test task {t.name} uses no held-out (verb, type)" for t in test if not held & _verb_types(t)]
    trained = set().union(*(_verb_types(t) for t in train))
    if {p.split("-")[0] for p in trained} != set(VERBS) or {p.split("-")[1] for p in trained} != set(OBJECT_TYPES):
        problems.append("every verb and every object type must be in train")
    return problems


def _sequence_problems(train: list[Task], test: list[Task]) -> list[str]:
    problems = [f"train task {t.name} is longer than 2" for t in train if len(t) > 2]
    singles = {t.subtasks[0] for t in train if len(t) == 1}
    orders = {t.subtasks for t in train}
    for t in test:
        if len(t) == 1:
            problems.append(f"test task {t.name} is a single subtask")
        elif len(t) == 2 and t.subtasks[::-1] not in orders:
            problems.append(f"test pair {t.name} is not the reverse of a training pair")
        if not set(t.subtasks) <= singles:
            problems.append(f"test task {t.name} uses a subtask not trained alone")
    return problems


def split_problems(split: Split) -> list[str]:
    """Everything wrong with ``split`` (empty when it is valid); see the module docstring for the rules."""
    try:
        train = [parse_task(n) for n in split.train]
        test = [parse_task(n) for n in split.test]
    except ValueError as exc:
        return [str(exc)]
    problems = _common_problems(train, test)
    if split.suite == "colour-type":
        problems += _colour_type_problems(split, train, test)
    elif split.suite == "verb-object":
        problems += _verb_object_problems(split, train, test)
    elif split.suite == "sequences":
        problems += _sequence_problems(train, test)
    else:
        problems.append(f"unknown split kind {split.suite!r}")
    return problems


def _colour_type() -> Split:
    verbs: tuple[Verb, ...] = ("goto", "pickup", "open")
    tasks = [task(subtask(verb, colour, type_)) for verb in verbs for type_ in VERB_TYPES[verb] for colour in COLOURS]
    held = {parse_object(n) for n in HELD_OUT_OBJECTS}
    return Split(
        suite="colour-type",
        version=1,
        description="goto/pickup/open over (colour, type); six (colour, type) pairs held out for every verb",
        train=tuple(t.name for t in tasks if not held & set(t.objects)),
        test=tuple(t.name for t in tasks if held & set(t.objects)),
        held_out=HELD_OUT_OBJECTS,
        avoid=HELD_OUT_OBJECTS,
    )


def _verb_object() -> Split:
    colours, types = VERB_OBJECT_COLOURS, PICKABLE_TYPES
    tasks = []
    for verb in VERBS:
        for type_ in VERB_TYPES[verb]:
            for i, colour in enumerate(colours):
                nxt = None
                if verb == "putnext":
                    nxt = (colours[(i + 1) % len(colours)], types[(types.index(type_) + 1) % len(types)])
                tasks.append(task(subtask(verb, colour, type_, nxt)))
    held = set(HELD_OUT_VERB_TYPES)
    return Split(
        suite="verb-object",
        version=1,
        description="every verb over every object type (red/green/blue); three (verb, type) pairs held out",
        train=tuple(t.name for t in tasks if not held & _verb_types(t)),
        test=tuple(t.name for t in tasks if held & _verb_types(t)),
        held_out=HELD_OUT_VERB_TYPES,
    )


def _sequence_name(letters: str) -> str:
    return "_then_".join(SEQUENCE_ATOMS[letter] for letter in letters)


def _sequences() -> Split:
    pairs = ["".join(p) for p in permutations(SEQUENCE_ATOMS, 2)]
    train = list(SEQUENCE_ATOMS) + [p for p in pairs if p not in HELD_OUT_ORDERS]
    return Split(
        suite="sequences",
        version=1,
        description="five subtasks: train alone and in 15 ordered pairs; test 5 unseen orders and lengths 3-4",
        train=tuple(_sequence_name(s) for s in train),
        test=tuple(_sequence_name(s) for s in (*HELD_OUT_ORDERS, *LONG_SEQUENCES)),
        held_out=(*HELD_OUT_ORDERS, "length>=3"),
    )


SPLITS: Registry[Split] = Registry("split")
"""The built-in splits, by suite name."""
for _split in (_colour_type(), _verb_object(), _sequences()):
    SPLITS.add(_split.suite, _split)


def get_split(name: str) -> Split:
    """The built-in split of suite ``name``; an unknown name raises ``UnknownNameError`` listing the valid ones."""
    return SPLITS.get(name)
