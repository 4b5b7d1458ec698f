"""Task grammar: validation, stable names, sketches and missions (the latter checked against BabyAI's own text)."""

from __future__ import annotations

import pytest

from modrl.config import ConfigError
from modrl.envs.grammar import (
    COLOURS,
    MAX_SUBTASKS,
    ObjectRef,
    Subtask,
    Task,
    parse_object,
    parse_subtask,
    parse_task,
    subtask,
    task,
)
from modrl.envs.task_env import TaskEnv


def test_names_sketch_and_mission_of_a_sequence() -> None:
    t = task(
        subtask("open", "red", "door"),
        subtask("pickup", "blue", "key"),
        subtask("putnext", "green", "ball", ("red", "box")),
    )
    assert t.name == "open-red-door_then_pickup-blue-key_then_putnext-green-ball-red-box"
    assert t.sketch == ("open(door,red)", "pickup(key,blue)", "putnext(ball,green,box,red)")
    assert t.mission == "open the red door, then pick up the blue key, then put the green ball next to the red box"
    assert [o.name for o in t.objects] == ["red-door", "blue-key", "green-ball", "red-box"]
    assert len(t) == 3
    assert task(subtask("goto", "grey", "door")).mission == "go to the grey door"


def test_parse_is_the_inverse_of_name() -> None:
    tasks = [
        task(subtask("goto", "purple", "door")),
        task(subtask("pickup", "yellow", "box"), subtask("goto", "purple", "door")),
        task(
            subtask("putnext", "blue", "key", ("grey", "ball")),
            subtask("open", "green", "door"),
            subtask("pickup", "red", "ball"),
            subtask("goto", "blue", "key"),
        ),
    ]
    for t in tasks:
        assert parse_task(t.name) == t
        assert all(parse_subtask(s.name) == s for s in t.subtasks)
    assert parse_object("red-key") == ObjectRef(colour="red", type="key")


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: subtask("open", "red", "key"), "obj"),
        (lambda: subtask("pickup", "red", "door"), "obj"),
        (lambda: subtask("putnext", "red", "door", ("blue", "ball")), "obj"),
        (lambda: subtask("putnext", "red", "ball", None), "target"),
        (lambda: subtask("putnext", "red", "ball", ("blue", "door")), "target"),
        (lambda: subtask("putnext", "red", "ball", ("red", "ball")), "target"),
        (lambda: subtask("goto", "red", "ball", ("blue", "box")), "target"),
        (lambda: subtask("jump", "red", "ball"), "verb"),  # type: ignore[arg-type]
        (lambda: subtask("goto", "pink", "ball"), "colour"),
        (lambda: subtask("goto", "red", "wall"), "type"),  # type: ignore[arg-type]
        (lambda: Task(subtasks=()), "subtasks"),
        (lambda: task(*[subtask("goto", c, "ball") for c in COLOURS[: MAX_SUBTASKS + 1]]), "subtasks"),
        (lambda: task(subtask("goto", "red", "ball"), subtask("goto", "red", "ball")), "subtasks"),
    ],
)
def test_invalid_tasks_are_rejected_naming_the_field(build, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        build()


@pytest.mark.parametrize(
    "name",
    [
        "",
        "fly-red-ball",
        "goto-red",
        "goto-red-ball-blue-box",
        "putnext-red-ball",
        "open-red-key",
        "goto-red-ball_then_",
    ],
)
def test_bad_names_do_not_parse(name: str) -> None:
    with pytest.raises(ConfigError):
        parse_task(name)


def test_subtask_objects_and_frozen_values() -> None:
    s = subtask("putnext", "green", "ball", ("red", "box"))
    assert s.objects == (ObjectRef(colour="green", type="ball"), ObjectRef(colour="red", type="box"))
    assert isinstance(s, Subtask) and hash(s) == hash(parse_subtask(s.name))
    with pytest.raises(AttributeError):
        s.verb = "goto"  # type: ignore[misc]


@pytest.mark.parametrize(
    "name",
    [
        "goto-red-ball",
        "goto-blue-door",
        "pickup-yellow-box",
        "open-green-door",
        "putnext-grey-key-purple-ball",
        "open-red-door_then_pickup-blue-key",
    ],
)
def test_mission_is_babyais_sentence(name: str) -> None:
    env = TaskEnv(name)
    env.reset(seed=0)
    assert env.mission == env.instrs.surface(env) == parse_task(name).mission
