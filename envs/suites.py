"""Named task suites: ordered sets of MiniGrid tasks with short, stable task names.

A :class:`Suite` is data: a name, a version (bumped whenever its tasks change, so results stay comparable) and a
tuple of :class:`TaskSpec`. The position of a task in ``Suite.tasks`` is its task id. The built-in suites wrap
stock MiniGrid ids so results compare with published numbers; they are all declared in the one table
``_BUILTIN_SUITES`` below and registered in :data:`SUITES`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modrl.config import check
from modrl.registry import Registry

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """One task of a suite: a gymnasium env id plus constructor keyword arguments.

    Attributes:
        name: Short, stable task name (lower case, digits, ``_ . -``), used in TensorBoard tags and ``info["task"]``.
        env_id: A registered gymnasium id, e.g. ``"MiniGrid-DoorKey-5x5-v0"``.
        kwargs: Extra keyword arguments for ``gymnasium.make`` (copied into a plain ``dict``).
    """

    name: str
    env_id: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(
            isinstance(self.name, str) and bool(_NAME_RE.match(self.name)),
            "name",
            f"{self.name!r} must match {_NAME_RE.pattern}",
        )
        check(isinstance(self.env_id, str) and bool(self.env_id.strip()), "env_id", "must be a non-empty string")
        check(isinstance(self.kwargs, Mapping), "kwargs", f"must be a mapping, got {type(self.kwargs).__name__}")
        # A plain dict (not a proxy) so the spec stays picklable for subprocess vector envs.
        object.__setattr__(self, "kwargs", dict(self.kwargs))


@dataclass(frozen=True, kw_only=True)
class Suite:
    """A named, versioned, ordered set of tasks; the index of a task in ``tasks`` is its task id.

    Attributes:
        name: Suite name, e.g. ``"minigrid-basic"``.
        version: Positive integer, bumped whenever the tasks change.
        description: One line shown by the CLI.
        tasks: The tasks, at least one, with unique names.
        splits: Split name (``"train"``, ``"test"``) to task names, each task in at most one split; empty (the
            default) means the trivial split ``{"train": all task names}``.
        mission_max_len: Padded mission length in tokens for mission-token observations; needed for stock suites
            (their missions are drawn per episode); ``None`` for generated suites derives it from their tasks.
    """

    name: str
    version: int
    description: str
    tasks: tuple[TaskSpec, ...]
    splits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    mission_max_len: int | None = None

    def __post_init__(self) -> None:
        check(
            isinstance(self.name, str) and bool(_NAME_RE.match(self.name)),
            "name",
            f"{self.name!r} must match {_NAME_RE.pattern}",
        )
        check(
            isinstance(self.version, int) and not isinstance(self.version, bool) and self.version >= 1,
            "version",
            f"must be an integer >= 1, got {self.version!r}",
        )
        check(isinstance(self.description, str), "description", "must be a string")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        check(len(self.tasks) > 0, "tasks", "a suite needs at least one task")
        check(all(isinstance(t, TaskSpec) for t in self.tasks), "tasks", "every task must be a TaskSpec")
        names = [t.name for t in self.tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        check(not duplicates, "tasks", f"duplicate task names: {', '.join(duplicates)}")
        self._check_splits()
        check(
            self.mission_max_len is None or (isinstance(self.mission_max_len, int) and self.mission_max_len >= 1),
            "mission_max_len",
            f"must be None or an integer >= 1, got {self.mission_max_len!r}",
        )

    def _check_splits(self) -> None:
        check(isinstance(self.splits, Mapping), "splits", f"must be a mapping, got {type(self.splits).__name__}")
        splits = {str(k): tuple(v) for k, v in self.splits.items()} or {"train": self.task_names}
        object.__setattr__(self, "splits", splits)
        listed = [n for names in splits.values() for n in names]
        unknown = sorted(set(listed) - set(self.task_names))
        check(not unknown, "splits", f"unknown task names: {', '.join(unknown)}")
        check(len(listed) == len(set(listed)), "splits", "a task is listed in more than one split (or twice)")
        check(all(splits.values()), "splits", "every split needs at least one task")

    @property
    def task_names(self) -> tuple[str, ...]:
        """Task names in task-id order."""
        return tuple(t.name for t in self.tasks)

    @property
    def num_tasks(self) -> int:
        """Number of tasks (the size of the ``"task"`` observation space)."""
        return len(self.tasks)

    def split(self, name: str) -> tuple[str, ...]:
        """Task names of split ``name``; an unknown split raises ``KeyError`` listing the valid ones."""
        try:
            return self.splits[name]
        except KeyError:
            raise KeyError(f"suite {self.name!r} has no split {name!r}; splits: {', '.join(self.splits)}") from None

    def split_indices(self, name: str) -> tuple[int, ...]:
        """Task ids of split ``name``, in split order."""
        return tuple(self.task_index(n) for n in self.split(name))

    def task_index(self, name: str) -> int:
        """Task id of the task called ``name``; an unknown name raises ``KeyError`` listing the valid ones."""
        try:
            return self.task_names.index(name)
        except ValueError:
            raise KeyError(f"suite {self.name!r} has no task {name!r}; tasks: {', '.join(self.task_names)}") from None


SUITES: Registry[Suite] = Registry("suite")
"""All registered suites, by name."""

#: The one table of built-in suites: (name, version, description, mission_max_len, ((task name, env id), ...)).
_BUILTIN_SUITES: tuple[tuple[str, int, str, int, tuple[tuple[str, str], ...]], ...] = (
    (
        "minigrid-basic",
        1,
        "Quick start: empty room, door and key, lava gap (5x5 grids).",
        16,
        (
            ("empty5", "MiniGrid-Empty-5x5-v0"),
            ("doorkey5", "MiniGrid-DoorKey-5x5-v0"),
            ("lavagap5", "MiniGrid-LavaGapS5-v0"),
        ),
    ),
    (
        "minigrid-tiny",
        1,
        "Two trivial 5x5 rooms, for tests and smoke runs.",
        16,
        (
            ("empty5", "MiniGrid-Empty-5x5-v0"),
            ("emptyrand5", "MiniGrid-Empty-Random-5x5-v0"),
        ),
    ),
    (
        "minigrid-keys",
        1,
        "Key and door tasks of rising length: the stock MiniGrid key curriculum.",
        16,
        (
            ("doorkey5", "MiniGrid-DoorKey-5x5-v0"),
            ("unlock", "MiniGrid-Unlock-v0"),
            ("unlockpickup", "MiniGrid-UnlockPickup-v0"),
            ("keycorridor_s3r1", "MiniGrid-KeyCorridorS3R1-v0"),
            ("blockedunlockpickup", "MiniGrid-BlockedUnlockPickup-v0"),
        ),
    ),
    (
        "babyai",
        1,
        "Stock BabyAI levels, single room to instruction sequences (language missions).",
        32,
        (
            ("gotoobj", "BabyAI-GoToObj-v0"),
            ("gotolocal", "BabyAI-GoToLocal-v0"),
            ("pickuploc", "BabyAI-PickupLoc-v0"),
            ("putnextlocal", "BabyAI-PutNextLocal-v0"),
            ("opendoor", "BabyAI-OpenDoor-v0"),
            ("gotoseq", "BabyAI-GoToSeq-v0"),
        ),
    ),
)

DEFAULT_SUITE = "minigrid-basic"
"""The quick-start suite used when none is named."""

for _name, _version, _description, _max_len, _tasks in _BUILTIN_SUITES:
    SUITES.add(
        _name,
        Suite(
            name=_name,
            version=_version,
            description=_description,
            mission_max_len=_max_len,
            tasks=tuple(TaskSpec(name=t, env_id=e) for t, e in _tasks),
        ),
    )

#: Stock hard tasks (test) beside simpler stock tasks built from the same skills (train): skills are learned on the
#: train split only and the planner sequences them on the test split (issue 5's "skills learned on simpler tasks").
_HARD_TRAIN: tuple[tuple[str, str, dict[str, int]], ...] = (
    ("unlock", "MiniGrid-Unlock-v0", {}),
    ("doorkey8", "MiniGrid-DoorKey-8x8-v0", {}),
    ("unlockpickup", "MiniGrid-UnlockPickup-v0", {}),
    ("keycorridor_s3r1", "MiniGrid-KeyCorridorS3R1-v0", {}),
    ("keycorridor_s3r2", "MiniGrid-KeyCorridorS3R2-v0", {}),
    ("keycorridor_s3r3", "MiniGrid-KeyCorridorS3R3-v0", {}),
    # KeyCorridorS4R3's room size with one and two rows of rooms instead of three (KeyCorridorEnv's own arguments).
    ("keycorridor_s4r1", "MiniGrid-KeyCorridorS3R1-v0", {"room_size": 4}),
    ("keycorridor_s4r2", "MiniGrid-KeyCorridorS3R1-v0", {"room_size": 4, "num_rows": 2}),
    ("obstructedmaze_1dl", "MiniGrid-ObstructedMaze-1Dl-v0", {}),
)
_HARD_TEST = (
    ("keycorridor_s4r3", "MiniGrid-KeyCorridorS4R3-v0"),
    ("obstructedmaze_1dlh", "MiniGrid-ObstructedMaze-1Dlh-v0"),
    ("blockedunlockpickup", "MiniGrid-BlockedUnlockPickup-v0"),
)
SUITES.add(
    "minigrid-hard",
    Suite(
        name="minigrid-hard",
        version=1,
        mission_max_len=16,
        description="Stock hard tasks (test: KeyCorridorS4R3, ObstructedMaze-1Dlh, BlockedUnlockPickup) and simpler "
        "stock tasks with the same skills (train), for skills learned on the simpler ones.",
        tasks=(
            *(TaskSpec(name=t, env_id=e, kwargs=k) for t, e, k in _HARD_TRAIN),
            *(TaskSpec(name=t, env_id=e) for t, e in _HARD_TEST),
        ),
        splits={"train": tuple(t for t, _, _ in _HARD_TRAIN), "test": tuple(t for t, _ in _HARD_TEST)},
    ),
)


#: Name prefix of the suites made from ``env.ids`` (:func:`ids_suite`).
IDS_PREFIX = "ids-"
#: Padded mission length of ``env.ids`` suites (their missions are the envs' own, drawn per episode).
IDS_MISSION_MAX_LEN = 32


def ids_suite_name(ids: Sequence[str]) -> str:
    """``ids-<8 hex>``: the name of the suite of these gymnasium ids, in this order (a hash, so it is stable)."""
    return IDS_PREFIX + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:8]


def ids_suite(ids: Sequence[str]) -> Suite:
    """The suite of config ``env.ids``: one task per registered gymnasium id, in order, registered in :data:`SUITES`
    (again for the same ids: the same suite) so every ``get_suite`` of its name finds it.

    A task is named after its id, lower case, version dropped (``MiniGrid-DoorKey-5x5-v0`` -> ``minigrid-doorkey-5x5``).
    The envs must be MiniGrid envs (modrl reads their ``image``, ``direction`` and ``mission``).

    Raises:
        modrl.config.ConfigError: No ids, a repeated id, or one gymnasium does not know (register it in a module and
            pass ``--import MODULE``).
    """
    import gymnasium as gym

    from modrl.config import ConfigError

    ids = tuple(ids)
    check(len(ids) >= 1, "ids", "give at least one gymnasium env id")
    check(len(set(ids)) == len(ids), "ids", "an env id is listed twice")
    for env_id in ids:
        if not isinstance(env_id, str) or env_id not in gym.registry:
            hint = " (name its module with --import MODULE, not MODULE:ID)" if ":" in str(env_id) else ""
            raise ConfigError(
                f"ids: {env_id!r} is not a registered gymnasium id{hint}; register it in a module "
                "(gymnasium.register) and pass --import MODULE"
            )
    name = ids_suite_name(ids)
    if name in SUITES:
        return SUITES.get(name)
    tasks: list[TaskSpec] = []
    for env_id in ids:
        base = re.sub(r"-v\d+$", "", env_id).lower()
        task = re.sub(r"[^a-z0-9_.-]+", "-", base).strip("-_.") or "task"
        while task in {t.name for t in tasks}:
            task += "-2"
        tasks.append(TaskSpec(name=task, env_id=env_id))
    suite = Suite(
        name=name,
        version=1,
        description="env.ids: " + ", ".join(ids),
        tasks=tuple(tasks),
        mission_max_len=IDS_MISSION_MAX_LEN,
    )
    SUITES.add(name, suite)
    return suite


def get_suite(name: str) -> Suite:
    """The registered suite called ``name``.

    Raises:
        modrl.registry.UnknownNameError: ``name`` is not registered (the message lists the registered suites).
    """
    return SUITES.get(name)
