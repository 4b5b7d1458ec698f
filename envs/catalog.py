"""The generated suites, registered from one table: every built-in split becomes a Suite and gymnasium ids.

For each split of :data:`modrl.envs.splits.SPLITS` (the table), each task becomes the gymnasium id
``ModRL-<suite>-<task>-v0`` (entry point :class:`modrl.envs.task_env.TaskEnv`, ``kwargs={"task": name}`` plus, for
training tasks, ``avoid`` = the split's never-in-training objects) and a :class:`~modrl.envs.suites.TaskSpec` of the
:class:`~modrl.envs.suites.Suite` named like the split, whose ``splits`` are the split's train and test names.
Registration only records names and kwargs; no env is built at import.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from modrl.envs.splits import SPLITS, Split
from modrl.envs.suites import SUITES, Suite, TaskSpec

ENTRY_POINT = "modrl.envs.task_env:TaskEnv"
"""The one env class behind every generated id."""


def env_id(suite: str, task: str) -> str:
    """The gymnasium id of task ``task`` of generated suite ``suite``: ``ModRL-<suite>-<task>-v0``."""
    return f"ModRL-{suite}-{task}-v0"


def task_kwargs(split: Split, task: str) -> dict[str, Any]:
    """Constructor kwargs of ``task``: the task name, and ``avoid`` for a training task of a split that has one."""
    kwargs: dict[str, Any] = {"task": task}
    if split.avoid and task in split.train:
        kwargs["avoid"] = split.avoid
    return kwargs


def suite_from_split(split: Split) -> Suite:
    """The :class:`Suite` of ``split`` (train tasks first, then test), without registering anything."""
    tasks = tuple(TaskSpec(name=name, env_id=env_id(split.suite, name)) for name in split.tasks)
    return Suite(
        name=split.suite,
        version=split.version,
        description=split.description,
        tasks=tasks,
        splits={"train": split.train, "test": split.test},
    )


def _register_all() -> None:
    for name in SPLITS.names():
        split = SPLITS.get(name)
        suite = suite_from_split(split)
        for spec in suite.tasks:
            gym.register(id=spec.env_id, entry_point=ENTRY_POINT, kwargs=task_kwargs(split, spec.name))
        SUITES.add(suite.name, suite)


_register_all()
