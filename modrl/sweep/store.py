"""The sweep directory: spec, trial list, per-trial status records, and the lock that guards them.

Layout (see the project notes)::

    sweep.yaml         the resolved spec (base absolute); written last: its presence marks a complete directory
    base_config.yaml   a copy of the base experiment config as it was when the sweep started (trials use it)
    trials.json        [{"id", "group", "seed", "overrides", "run_dir"}] in expansion order: the source of truth
    trials/<id>/       each trial's run directory (made by ``modrl train``)
    status/<id>.json   {"id", "status", "returncode", "error", "attempts", "started", "finished", "seconds", "pid"}
    logs/<id>.log      the trial's stdout + stderr, appended over attempts
    .lock              flock'ed by the process running the sweep (and inherited by its local trial processes)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modrl._io import atomic_write_json, atomic_write_text
from modrl.config import ConfigError, load_yaml
from modrl.runs import RunStatus, create_run_dir
from modrl.safe_load import read_json

from .scheduling import SchedulerSpec
from .search import Domain
from .spec import BackendName, SweepSpec, TrialSpec, expand, spec_from_dict, spec_to_dict

log = logging.getLogger(__name__)

SWEEP_FILE = "sweep.yaml"
BASE_FILE = "base_config.yaml"
TRIALS_FILE = "trials.json"
TRIALS_DIR = "trials"
STATUS_DIR = "status"
LOGS_DIR = "logs"
LOCK_FILE = ".lock"

_SAFE_ID = re.compile(r"t[A-Za-z0-9._=-]*")


class SweepError(Exception):
    """A sweep directory is missing, malformed or in use; the message names the path."""


# A trial's lifecycle is a run's lifecycle (``meta.json`` of its run directory uses the same values).
TrialStatus = RunStatus


@dataclass(frozen=True)
class TrialRecord:
    """The content of ``status/<id>.json``.

    Attributes:
        id: Trial id.
        status: Current state.
        returncode: Exit code of the last attempt (``None`` while running or when unknown).
        error: Why the last attempt failed: the tail of its output, or the reason it was stopped.
        attempts: How many times the trial was started.
        started: UTC ISO time the last attempt started.
        finished: UTC ISO time it ended (``None`` while running).
        seconds: Wall time of the last attempt.
        pid: Process id of the running trial (local backend), for humans and tests.
    """

    id: str
    status: TrialStatus
    returncode: int | None
    error: str | None
    attempts: int
    started: str | None
    finished: str | None
    seconds: float | None
    pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {**asdict(self), "status": self.status.value}


@dataclass(frozen=True)
class SweepDir:
    """A sweep directory as read back (see :func:`resume_sweep_dir`).

    Attributes:
        path: The directory (absolute).
        name: The sweep's name.
        workers: Workers requested by the spec (``None``: one per CPU core).
        backend: Backend requested by the spec.
        trials: All trials, in expansion order.
        search: The spec's search spaces (what PBT perturbs).
        scheduler: The spec's scheduler (``backend: tune``), if any.
    """

    path: Path
    name: str
    workers: int | None
    backend: BackendName
    trials: tuple[TrialSpec, ...]
    search: Mapping[str, Domain] = field(default_factory=dict)
    scheduler: SchedulerSpec | None = None

    @property
    def base_config(self) -> Path:
        """The sweep's own copy of the base experiment config."""
        return self.path / BASE_FILE

    def trial_dir(self, trial: TrialSpec) -> Path:
        """The run directory of ``trial``."""
        return self.path / trial.run_dir

    def log_path(self, trial: TrialSpec) -> Path:
        """The log file of ``trial``."""
        return self.path / LOGS_DIR / f"{trial.id}.log"

    def status(self, trial_id: str) -> TrialRecord | None:
        """The trial's status record, or ``None`` if it never started (see :func:`read_status`)."""
        return read_status(self.path, trial_id)


def create_sweep_dir(spec: SweepSpec, *, root: Path, explicit: Path | None) -> Path:
    """Create a new sweep directory for ``spec`` (never overwrites: the semantics of :func:`modrl.runs.create_run_dir`).

    Args:
        spec: The validated spec.
        root: Parent of generated sweep directories (``root/<name>-<UTC stamp>``).
        explicit: Use exactly this directory instead: it must not exist, or be empty.

    Returns:
        The directory, holding ``base_config.yaml``, ``trials.json``, empty ``trials/``, ``status/``, ``logs/`` and,
        written last, ``sweep.yaml``.

    Raises:
        RunDirError: The directory cannot be created or is taken (it is left untouched).
        SweepError: The base config cannot be copied.
    """
    path = create_run_dir(root=root, name=spec.name, explicit=explicit).resolve()
    try:
        base_text = spec.base.read_text(encoding="utf-8")
    except OSError as exc:
        raise SweepError(f"cannot read the base config {spec.base}: {exc}") from None
    for sub in (TRIALS_DIR, STATUS_DIR, LOGS_DIR):
        (path / sub).mkdir(exist_ok=True)
    atomic_write_text(path / BASE_FILE, base_text)
    atomic_write_json(path / TRIALS_FILE, [trial.to_dict() for trial in expand(spec)])
    atomic_write_text(path / SWEEP_FILE, yaml.safe_dump(spec_to_dict(spec), sort_keys=False))
    return path


def open_sweep_dir(spec: SweepSpec, *, root: Path, explicit: Path | None) -> tuple[Path, bool]:
    """Reuse ``explicit`` if it is a sweep directory of the same trials and base config, else create one.

    This is what makes re-running ``modrl sweep SPEC --sweep-dir DIR`` continue the sweep. ``workers`` and
    ``backend`` may differ (they do not change results); the stored spec's values are then ignored.

    Returns:
        ``(directory, reused)``.

    Raises:
        SweepError: ``explicit`` is a sweep directory of different trials or of a changed base config.
        RunDirError: As :func:`create_sweep_dir`.
    """
    if explicit is None or not (Path(explicit) / SWEEP_FILE).is_file():
        return create_sweep_dir(spec, root=root, explicit=explicit), False
    existing = resume_sweep_dir(explicit)
    # Compared without ids: a directory made before ids named section values by their differing leaves continues
    # under the ids it was created with (its trials.json is the source of truth).
    wanted = [_without_id(trial.to_dict()) for trial in expand(spec)]
    if [_without_id(trial.to_dict()) for trial in existing.trials] != wanted:
        raise SweepError(
            f"{existing.path} holds a sweep with other trials (grid, set or seeds changed); "
            "give another directory for the changed sweep"
        )
    if spec.base.read_bytes() != existing.base_config.read_bytes():
        raise SweepError(
            f"the base config {spec.base} changed since {existing.path} was started; continue the sweep with "
            "its stored copy (resume the directory) or start a new sweep"
        )
    return existing.path, True


def _without_id(trial: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in trial.items() if key not in ("id", "run_dir")}


def resume_sweep_dir(sweep_dir: Path) -> SweepDir:
    """Read a sweep directory back: its spec and trials, strictly.

    Raises:
        SweepError: Not a (complete) sweep directory, or ``sweep.yaml`` / ``trials.json`` is malformed; the
            message names the file.
    """
    path = Path(sweep_dir).resolve()
    for name in (SWEEP_FILE, BASE_FILE, TRIALS_FILE):
        if not (path / name).is_file():
            raise SweepError(f"{path} is not a sweep directory (no {name})")
    try:
        spec = spec_from_dict(load_yaml(path / SWEEP_FILE), relative_to=path, check_base=False)
    except ConfigError as exc:
        raise SweepError(f"{path / SWEEP_FILE}: {exc}") from None
    trials = tuple(_read_trials(path / TRIALS_FILE))
    for sub in (TRIALS_DIR, STATUS_DIR, LOGS_DIR):
        (path / sub).mkdir(exist_ok=True)
    return SweepDir(
        path=path,
        name=spec.name,
        workers=spec.workers,
        backend=spec.backend,
        trials=trials,
        search=spec.search,
        scheduler=spec.scheduler,
    )


def read_status(sweep_dir: Path, trial_id: str) -> TrialRecord | None:
    """``status/<trial_id>.json``, or ``None`` if the trial never started (or its record is unreadable: warned)."""
    path = Path(sweep_dir) / STATUS_DIR / f"{trial_id}.json"
    try:
        data = read_json(path)
        return TrialRecord(**{**data, "status": TrialStatus(data["status"])})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("%s: unreadable status record (%s); treating the trial as not started", path, exc)
        return None


def write_status(sweep_dir: Path, record: TrialRecord) -> None:
    """Write ``status/<id>.json`` atomically."""
    atomic_write_json(Path(sweep_dir) / STATUS_DIR / f"{record.id}.json", record.to_dict())


@contextlib.contextmanager
def sweep_lock(sweep_dir: Path, *, wait_s: float) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``sweep_dir/.lock``; yields its file descriptor.

    Local trial processes inherit the descriptor, so a trial left running by a killed sweep keeps the directory
    locked until it has exited (it is sent SIGTERM when the sweep dies, and checkpoints).

    Raises:
        SweepError: Still locked after ``wait_s`` seconds.
    """
    path = Path(sweep_dir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SweepError(
                        f"{sweep_dir} is in use: another 'modrl sweep' or a trial it started is still running "
                        f"(waited {wait_s:.0f}s for {path})"
                    ) from None
                log.info("waiting for %s: a previous sweep process or its trials are still running", path)
                time.sleep(0.5)
        yield fd
    finally:
        os.close(fd)


def _read_trials(path: Path) -> list[TrialSpec]:
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise SweepError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, list):
        raise SweepError(f"{path}: expected a list of trials, got {type(data).__name__}")
    trials, seen = [], set()
    for index, item in enumerate(data):
        try:
            trial = TrialSpec(
                id=item["id"], group=dict(item["group"]), seed=item["seed"], overrides=tuple(item["overrides"])
            )
        except (TypeError, KeyError, ValueError) as exc:
            raise SweepError(f"{path}: trial [{index}] is malformed: {exc!r}") from None
        valid = (
            isinstance(trial.id, str)
            and _SAFE_ID.fullmatch(trial.id) is not None
            and trial.id not in seen
            and isinstance(trial.seed, int)
            and all(isinstance(o, str) and "=" in o for o in trial.overrides)
            and item.get("run_dir") == trial.run_dir
        )
        if not valid:
            raise SweepError(f"{path}: trial [{index}] ({item.get('id')!r}) is malformed or repeats an id")
        seen.add(trial.id)
        trials.append(trial)
    return trials
