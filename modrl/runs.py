"""Run directories: a unique directory per run, with its config, provenance metadata and status.

A run directory holds ``config.yaml`` (the validated config, written with ``yaml.safe_dump``), ``meta.json`` (seed,
argv, creation time, python/platform, package versions, git commit and dirty flag, status) and whatever the run
writes later (checkpoints, TensorBoard logs). Directories are claimed with ``mkdir(exist_ok=False)``, so two runs
started at once never share one, and an existing directory's contents are never touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib.metadata
import os
import platform
import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from modrl._io import TMP_PREFIX, atomic_write_json, atomic_write_text, utc_now_iso
from modrl.config import ConfigError, load_yaml
from modrl.safe_load import InputError, read_json

CONFIG_FILE = "config.yaml"
META_FILE = "meta.json"
CLAIM_FILE = ".modrl-run"
LOCK_FILE = ".lock"
MAX_NAME_LENGTH = 100
#: Largest ``meta.json`` read (it holds provenance and a config-change history, never data).
MAX_META_BYTES = 16 << 20
PACKAGES = (
    "torch",
    "numpy",
    "gymnasium",
    "minigrid",
    "stable-baselines3",
    "tensorboard",
    "safetensors",
    "PyYAML",
    "matplotlib",
    "modrl",
)

_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_MAX_SUFFIX = 10_000


class RunStatus(str, Enum):
    """Lifecycle of a run, recorded in ``meta.json``."""

    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    #: A sweep trial its scheduler (ASHA, PBT) ended early: only in a sweep's ``status/<id>.json`` (the trial's own
    #: run, stopped with SIGTERM, says ``interrupted``); a resumed sweep does not run it again.
    STOPPED = "stopped"


class RunDirError(Exception):
    """A run name or run directory is invalid, taken, missing or unreadable; the message names it."""


class RunDirOSError(RunDirError):
    """The run directory cannot be written or locked (disk full, permissions): an environmental failure."""


def validate_run_name(name: str) -> str:
    """Return ``name`` if it is a safe run name: ``[A-Za-z0-9._-]+``, not starting with ``.``, without ``..``.

    Raises:
        RunDirError: Naming the rejected name.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name or len(name) > MAX_NAME_LENGTH:
        raise RunDirError(
            f"invalid run name {name!r}: use 1-{MAX_NAME_LENGTH} letters, digits, '.', '_' or '-', "
            "not starting with '.' and without '..'"
        )
    return name


def create_run_dir(*, root: Path, name: str, explicit: Path | None = None) -> Path:
    """Create and claim a new run directory.

    Args:
        root: Parent of generated run directories (created if missing).
        name: Run name (validated by :func:`validate_run_name`).
        explicit: Use exactly this directory instead: it must not exist, or be an empty directory.

    Returns:
        ``explicit``, or ``root/<name>-<YYYYmmdd-HHMMSS>`` (UTC) with ``-2``, ``-3``, ... appended if that is taken.

    Raises:
        RunDirError: Invalid name; ``explicit`` exists and is not an empty directory (it is left untouched); or the
            directory cannot be created (names the path and errno).
    """
    validate_run_name(name)
    if explicit is not None:
        return _claim_explicit(Path(explicit))
    root = Path(root)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    try:
        root.mkdir(parents=True, exist_ok=True)
        for index in range(1, _MAX_SUFFIX):
            candidate = root / (f"{name}-{stamp}" if index == 1 else f"{name}-{stamp}-{index}")
            try:
                candidate.mkdir(exist_ok=False)
            except FileExistsError:
                continue
            return candidate
    except OSError as exc:
        raise RunDirError(f"cannot create a run directory under {root}: {exc}") from None
    raise RunDirError(f"no free run directory name for {name}-{stamp} under {root}")


def _claim_explicit(path: Path) -> Path:
    """Create ``path`` (or accept it empty) and claim it with an ``O_EXCL`` marker file.

    The marker makes the claim atomic: of two runs given the same directory at once, exactly one gets it.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(exist_ok=True)
    except FileExistsError:
        raise RunDirError(f"run directory {path} exists and is not a directory") from None
    except OSError as exc:
        raise RunDirError(f"cannot create run directory {path}: {exc}") from None
    entries = {entry.name for entry in path.iterdir()}
    if entries and entries <= {CLAIM_FILE, LOCK_FILE}:
        raise RunDirError(
            f"run directory {path} holds only the claim of a run stopped before it wrote {CONFIG_FILE}; "
            f"remove it (rm -r {path}) to start a run there"
        )
    if entries:
        raise RunDirError(f"run directory {path} already exists and is not empty; choose another or remove it")
    try:
        os.close(os.open(path / CLAIM_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        raise RunDirError(f"run directory {path} was claimed by another run meanwhile") from None
    except OSError as exc:
        raise RunDirError(f"cannot claim run directory {path}: {exc}") from None
    return path


def write_run_metadata(
    run_dir: Path,
    *,
    config: Mapping[str, Any],
    seed: int,
    argv: Sequence[str],
    imports: Sequence[str] = (),
    device: str | None = None,
) -> None:
    """Write ``config.yaml`` and ``meta.json`` (status ``running``) atomically into ``run_dir``.

    ``meta.json`` records seed, argv, created (UTC ISO), python, platform, the installed versions of
    :data:`PACKAGES` (read with ``importlib.metadata``, ``null`` if missing; nothing is imported) and git
    ``{commit, dirty}`` of the checkout modrl runs from (``null`` outside git; untracked files do not count as dirty),
    and ``imports``: the user modules the command imported first (``--import``, needed again to evaluate or resume),
    and ``device``: the torch device the command trains on (``--device``; a resume records its own), when given.

    Raises:
        RunDirError: The config is not YAML-serialisable, or a write fails (names the path).
    """
    run_dir = Path(run_dir)
    try:
        text = yaml.safe_dump(_plain(config), sort_keys=False)
    except yaml.YAMLError as exc:
        raise RunDirError(f"config for {run_dir / CONFIG_FILE} is not YAML-serialisable: {exc}") from None
    created = utc_now_iso()
    meta = {
        "seed": seed,
        "argv": list(argv),
        "created": created,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _package_version(name) for name in PACKAGES},
        "git": git_state(Path(__file__).resolve().parent),
        "imports": list(imports),
        **({} if device is None else {"device": device}),
        "status": RunStatus.RUNNING.value,
        "status_time": created,
    }
    try:
        atomic_write_text(run_dir / CONFIG_FILE, text)
        atomic_write_json(run_dir / META_FILE, meta)
    except OSError as exc:
        raise RunDirOSError(f"cannot write run metadata in {run_dir}: {exc}") from None


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.yaml`` (read with ``yaml.safe_load``).

    Raises:
        RunDirError: Missing (a directory stopped before its run wrote it is named as such), unreadable, not YAML or
            not a mapping.
    """
    run_dir = Path(run_dir)
    if run_dir.is_dir() and not (run_dir / CONFIG_FILE).exists() and not (run_dir / META_FILE).exists():
        raise RunDirError(
            f"{run_dir} has no {CONFIG_FILE}: its run was stopped before it started, so there is nothing to resume; "
            f"remove it and start again (rm -r {run_dir}; modrl train CONFIG --run-dir {run_dir})"
        )
    try:
        return load_yaml(run_dir / CONFIG_FILE)
    except ConfigError as exc:
        raise RunDirError(f"run directory {run_dir}: {exc}") from None


def read_run_meta(run_dir: Path) -> dict[str, Any]:
    """The run's ``meta.json``.

    Raises:
        RunDirError: Missing, unreadable, not JSON or not an object.
    """
    path = Path(run_dir) / META_FILE
    try:
        meta = read_json(path, max_bytes=MAX_META_BYTES)
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing (not a run directory?)") from None
    except OSError as exc:
        raise RunDirError(f"{path}: cannot read: {exc}") from None
    except InputError as exc:
        raise RunDirError(f"{exc} (restore it or remove the run directory)") from None
    if not isinstance(meta, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def set_status(run_dir: Path, status: RunStatus, **extra: Any) -> None:
    """Atomically update ``meta.json``: ``status``, ``status_time`` (UTC ISO) and the ``extra`` keys.

    Raises:
        RunDirError: ``meta.json`` is missing/unreadable, ``extra`` is not JSON-serialisable, or the write fails.
    """
    status = RunStatus(status)
    path = Path(run_dir) / META_FILE
    meta = read_run_meta(run_dir)
    meta.update(extra)
    meta.update(status=status.value, status_time=utc_now_iso())
    try:
        atomic_write_json(path, meta)
    except (TypeError, ValueError) as exc:
        raise RunDirError(f"{path}: status extras are not JSON-serialisable: {exc}") from None
    except OSError as exc:
        raise RunDirError(f"cannot update {path}: {exc}") from None


@contextlib.contextmanager
def lock_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``run_dir/.lock`` while a process writes the run.

    The kernel drops the lock when its holder exits, however it exits, so a lock left by a SIGKILLed process never
    blocks. The lock file holds the holder's pid, for the message.

    Raises:
        RunDirError: Another process holds the lock (names the directory and that pid).
        RunDirOSError: The lock file cannot be opened, locked or written (names it and the OS error).
    """
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunDirOSError(f"cannot open the lock file {path}: {exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirOSError(f"cannot lock {path}: {exc}") from None
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise RunDirError(
                f"run directory {run_dir} is in use by another modrl process (pid {holder}); wait for it to finish"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError as exc:  # e.g. ENOSPC on a nearly full disk
            raise RunDirOSError(f"cannot write the lock file {path}: {exc}") from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def discard_new_run_dir(run_dir: Path) -> None:
    """Remove what :func:`create_run_dir`, :func:`lock_run_dir` and :func:`write_run_metadata` put in a run
    directory whose run never started, then the directory itself if nothing else is in it (best effort: this runs
    after a failure, e.g. a full disk)."""
    run_dir = Path(run_dir)
    for name in (CONFIG_FILE, META_FILE, LOCK_FILE, CLAIM_FILE):
        with contextlib.suppress(OSError):
            (run_dir / name).unlink()
    with contextlib.suppress(OSError):
        for entry in run_dir.iterdir():
            if entry.name.startswith(TMP_PREFIX) and entry.is_file():
                entry.unlink()
        run_dir.rmdir()


def record_config_change(run_dir: Path, *, old: Mapping[str, Any], new: Mapping[str, Any], argv: Sequence[str]) -> None:
    """Resume with a changed config (``--allow-config-change``): write the new ``config.yaml`` and append what
    changed to ``meta.json``'s ``config_changes`` (``[{"time", "argv", "changes": {dotted key: [old, new]}}]``).

    Raises:
        RunDirError: A write fails.
    """
    run_dir = Path(run_dir)
    changes = {key: [a, b] for key, (a, b) in sorted(_diff(_plain(old), _plain(new)).items())}
    meta = read_run_meta(run_dir)
    history = list(meta.get("config_changes") or [])
    history.append({"time": utc_now_iso(), "argv": list(argv), "changes": changes})
    try:
        atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(_plain(new), sort_keys=False))
    except OSError as exc:
        raise RunDirError(f"cannot write {run_dir / CONFIG_FILE}: {exc}") from None
    set_status(
        run_dir,
        RunStatus(meta["status"]) if meta.get("status") in _STATUSES else RunStatus.RUNNING,
        config_changes=history,
    )


_STATUSES = {status.value for status in RunStatus}


def _diff(old: Any, new: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two nested mappings."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for key in sorted(set(old) | set(new), key=str):
            out.update(_diff(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {} if old == new else {prefix: (old, new)}


def git_state(path: Path) -> dict[str, Any] | None:
    """``{"commit": sha or None (no commits yet), "dirty": bool}`` for the git checkout holding ``path``.

    Returns ``None`` when ``path`` is not inside a git work tree, is git-ignored there (e.g. a virtualenv inside the
    repository), or git is not available. Runs git without optional locks, so it never blocks a concurrent commit.
    """
    if _git(path, "rev-parse", "--is-inside-work-tree") != "true" or _git(path, "check-ignore", "-q", ".") is not None:
        return None
    status = _git(path, "status", "--porcelain", "--untracked-files=no")
    if status is None:
        return None
    return {"commit": _git(path, "rev-parse", "--verify", "-q", "HEAD"), "dirty": bool(status)}


def _git(path: Path, *args: str) -> str | None:
    """Output of ``git -C path args`` stripped, or ``None`` if git is missing or fails."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10, env=env, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _plain(value: Any) -> Any:
    """Mappings to dicts, tuples/lists to lists, recursively (``yaml.safe_dump`` refuses tuples)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
