"""Checkpoints: tensors as safetensors, everything else as JSON, committed by a manifest written last.

Layout of one checkpoint (see RELIABILITY.md, "Checkpoint format")::

    checkpoints_dir/step-000000001000/
        model.safetensors      one file per tensor group (model, optimizer, rng, ...)
        state.json             JSON metadata (counters, optimizer param_groups, rng data, config digest, ...)
        manifest.json          format_version, step, fingerprint, created, versions, files {name: {sha256, bytes}}

A checkpoint is written into ``checkpoints_dir/.tmp-step-*``, every file fsynced, and only then renamed into place, so a
crash leaves either the previous checkpoints or a complete new one (plus a ``.tmp-*`` entry that
:func:`latest_checkpoint` removes). Loading never unpickles: safetensors are parsed by ``safetensors`` after the
manifest's sizes and sha256 digests match, and files that are not plain, listed ``*.safetensors``/``state.json`` are
refused before anything is parsed.
"""

from __future__ import annotations

import errno as errno_mod
import hashlib
import json
import logging
import os
import random
import re
import shutil
import stat
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import Tensor

import modrl
from modrl._io import TMP_PREFIX, atomic_write_bytes, fsync_dir

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STATE = "state.json"
MAX_JSON_BYTES = 64 << 20
MAX_TENSOR_FILE_BYTES = 4 << 30
MAX_SAFETENSORS_HEADER_BYTES = 16 << 20

_GROUP_RE = re.compile(r"[A-Za-z0-9_-]+")
_STEP_DIR_RE = re.compile(r"step-(\d{12,})")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class CheckpointError(Exception):
    """A checkpoint cannot be written, read or trusted; the message names the file or directory and the reason."""


class FingerprintMismatchError(CheckpointError):
    """The checkpoint is intact but belongs to another run/task (its fingerprint differs from the expected one)."""


@dataclass(frozen=True)
class Checkpoint:
    """A verified, fully loaded checkpoint.

    Attributes:
        path: The ``step-*`` directory.
        step: Training step recorded in the manifest.
        tensors: ``{group: {key: tensor}}``, one group per ``<group>.safetensors`` file, CPU tensors.
        meta: The ``state.json`` mapping.
        manifest: The ``manifest.json`` mapping.
    """

    path: Path
    step: int
    tensors: dict[str, dict[str, Tensor]]
    meta: dict[str, Any]
    manifest: dict[str, Any]


def fingerprint(obj: Any) -> str:
    """First 16 hex chars of the sha256 of ``obj`` as canonical JSON (sorted keys, no whitespace, no NaN).

    Raises:
        TypeError, ValueError: ``obj`` is not JSON-serialisable.
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def step_dir_name(step: int) -> str:
    """Directory name of the checkpoint for ``step`` (``step-000000001000``)."""
    return f"step-{step:012d}"


# ----------------------------------------------------------------------------------------------------------- saving


def save_checkpoint(
    checkpoints_dir: Path,
    *,
    step: int,
    tensors: Mapping[str, Mapping[str, Tensor]],
    meta: Mapping[str, Any],
    fingerprint: str,
    keep: int = 2,
) -> Path:
    """Write a checkpoint atomically, then prune to the newest ``keep`` verified ones.

    Args:
        checkpoints_dir: Directory holding the ``step-*`` checkpoints (created if missing).
        step: Training step (>= 0); an existing checkpoint for the same step is replaced (new one complete first).
        tensors: ``{group: {key: tensor}}``; group names ``[A-Za-z0-9_-]+``; tensors of any shape/dtype/device,
            copied to contiguous CPU tensors.
        meta: JSON-serialisable mapping written as ``state.json`` (NaN/inf refused).
        fingerprint: Task/encoder fingerprint recorded in the manifest (see :func:`fingerprint`).
        keep: How many verified checkpoints to keep (>= 1); the one just written is always kept.

    Returns:
        The checkpoint directory.

    Raises:
        ValueError: Invalid arguments (group or key names, meta not JSON-serialisable, step or keep out of range).
        CheckpointError: The write failed (disk full, permission, ...); names the path and errno. Older checkpoints
            are untouched and no temporary directory is left behind.
    """
    if not isinstance(fingerprint, str):
        raise ValueError(f"fingerprint must be a string, got {fingerprint!r}")
    files = _encode_files(step=step, tensors=tensors, meta=meta, keep=keep)
    checkpoints_dir = Path(checkpoints_dir)
    final = checkpoints_dir / step_dir_name(step)
    tmp: Path | None = None
    try:
        checkpoints_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}-pid{os.getpid()}-", dir=checkpoints_dir))
        listing: dict[str, dict[str, Any]] = {}
        for name, data in files.items():
            atomic_write_bytes(tmp / name, data)
            listing[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        manifest = _new_manifest(step=step, fingerprint=fingerprint, files=listing)
        atomic_write_bytes(tmp / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        fsync_dir(tmp)
        _move_into_place(tmp, final)
        tmp = None
    except OSError as exc:
        raise CheckpointError(f"cannot save checkpoint {final}: {_describe_os_error(exc)}") from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    _prune(checkpoints_dir, keep=keep, just_written=final)
    return final


def _encode_files(
    *, step: int, tensors: Mapping[str, Mapping[str, Tensor]], meta: Mapping[str, Any], keep: int
) -> dict[str, bytes]:
    """Validate the arguments and serialise every member file (all in memory, before touching the disk)."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be an integer >= 1, got {keep!r}")
    files: dict[str, bytes] = {}
    for group, group_tensors in tensors.items():
        if not isinstance(group, str) or not _GROUP_RE.fullmatch(group):
            raise ValueError(f"tensor group name {group!r} must match [A-Za-z0-9_-]+")
        plain: dict[str, Tensor] = {}
        for key, value in group_tensors.items():
            if not isinstance(key, str) or not key or key == "__metadata__":
                raise ValueError(f"tensor key {key!r} in group {group!r} must be a non-empty string")
            if not isinstance(value, Tensor):
                raise ValueError(f"{group}.{key} is a {type(value).__name__}, not a torch.Tensor")
            # safetensors refuses tensors sharing storage: save independent contiguous CPU copies.
            plain[key] = value.detach().cpu().clone(memory_format=torch.contiguous_format)
        files[f"{group}.safetensors"] = safetensors.torch.save(plain)
    try:
        text = json.dumps(dict(meta), indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint meta ({STATE}) is not JSON-serialisable: {exc}") from None
    files[STATE] = (text + "\n").encode("utf-8")
    return files


def _new_manifest(*, step: int, fingerprint: str, files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "step": step,
        "fingerprint": fingerprint,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"torch": torch.__version__, "safetensors": safetensors.__version__, "modrl": modrl.__version__},
        "files": files,
    }


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename the complete ``tmp`` directory to ``final``; an existing ``final`` is swapped out, then deleted."""
    parent = final.parent
    if not final.exists():
        os.replace(tmp, final)
        fsync_dir(parent)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}old-{final.name}-pid{os.getpid()}-", dir=parent))
    try:
        os.replace(final, old / final.name)
    except BaseException:
        shutil.rmtree(old, ignore_errors=True)
        raise
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(old / final.name, final)  # put the previous version back
        shutil.rmtree(old, ignore_errors=True)
        raise
    fsync_dir(parent)
    shutil.rmtree(old, ignore_errors=True)


def _prune(checkpoints_dir: Path, *, keep: int, just_written: Path) -> None:
    """Keep ``just_written`` and the newest verified checkpoints up to ``keep``; remove the others."""
    kept = 1
    for path in reversed(list_checkpoints(checkpoints_dir)):
        if path == just_written:
            continue
        if kept < keep:
            try:
                verify_checkpoint(path)
            except CheckpointError as exc:
                logger.warning("removing checkpoint %s that does not verify: %s", path, exc)
            else:
                kept += 1
                continue
        _remove_dir(path)


def _remove_dir(path: Path) -> None:
    """Delete a directory: first renamed to a ``.tmp-*`` name so a crash never leaves a half-deleted ``step-*``."""
    try:
        trash = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}prune-pid{os.getpid()}-", dir=path.parent))
        os.replace(path, trash / path.name)
        shutil.rmtree(trash)
    except OSError as exc:
        logger.warning("could not remove old checkpoint %s: %s", path, _describe_os_error(exc))


def _describe_os_error(exc: OSError) -> str:
    code = errno_mod.errorcode.get(exc.errno, "?") if exc.errno is not None else "?"
    where = f" ({exc.filename})" if exc.filename else ""
    return f"[errno {exc.errno} {code}] {exc.strerror or exc}{where}"


# ---------------------------------------------------------------------------------------------------------- reading


def list_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """``step-*`` directories (not symlinks) in ``checkpoints_dir``, ascending step; ``[]`` if it does not exist."""
    try:
        entries = list(Path(checkpoints_dir).iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CheckpointError(f"cannot list checkpoints in {checkpoints_dir}: {_describe_os_error(exc)}") from None
    found = []
    for entry in entries:
        match = _STEP_DIR_RE.fullmatch(entry.name)
        if match and entry.name == step_dir_name(int(match[1])) and entry.is_dir() and not entry.is_symlink():
            found.append((int(match[1]), entry))
    return [path for _, path in sorted(found)]


def verify_checkpoint(path: Path, *, expected_fingerprint: str | None = None) -> dict[str, Any]:
    """Check that a checkpoint is complete and intact: exactly what :func:`load_checkpoint` would accept.

    Checks the manifest (format version, step, plain member names, fingerprint), each member's size and sha256,
    and that every member parses (safetensors header sanity is checked before parsing).

    Returns:
        The manifest.

    Raises:
        CheckpointError: Naming the file and the reason; :class:`FingerprintMismatchError` for a wrong fingerprint.
    """
    return load_checkpoint(path, expected_fingerprint=expected_fingerprint).manifest


def load_checkpoint(path: Path, *, expected_fingerprint: str | None = None) -> Checkpoint:
    """Verify and load a checkpoint; nothing is returned unless every member verifies and parses.

    Each member is read once; its size and sha256 are checked on the bytes that are then parsed.

    Raises:
        CheckpointError: As :func:`verify_checkpoint`.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint directory")
    manifest = _read_manifest(path)
    found = manifest["fingerprint"]
    if expected_fingerprint is not None and found != expected_fingerprint:
        raise FingerprintMismatchError(
            f"{path / MANIFEST}: fingerprint mismatch: expected {expected_fingerprint}, found {found} "
            "(checkpoint of a different run, task or encoder)"
        )
    blobs = {name: _read_member(path, name, entry) for name, entry in manifest["files"].items()}
    tensors: dict[str, dict[str, Tensor]] = {}
    for name, data in blobs.items():
        if name.endswith(".safetensors"):
            try:
                tensors[name[: -len(".safetensors")]] = safetensors.torch.load(data)
            except Exception as exc:  # safetensors raises its own error types for malformed files
                raise CheckpointError(f"{path / name}: not a valid safetensors file: {exc}") from None
    try:
        meta = json.loads(blobs[STATE].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path / STATE}: not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path / STATE}: expected a JSON object, got {type(meta).__name__}")
    return Checkpoint(path=path, step=manifest["step"], tensors=tensors, meta=meta, manifest=manifest)


def latest_checkpoint(checkpoints_dir: Path, *, expected_fingerprint: str | None = None) -> Checkpoint | None:
    """Load the newest checkpoint that verifies, warning about each newer one skipped and why.

    Stale ``.tmp-*`` entries left by a killed writer are removed first (with a warning).

    Returns:
        The loaded checkpoint, or ``None`` if there is none that verifies.

    Raises:
        FingerprintMismatchError: A checkpoint belongs to another run/task; never skipped silently.
    """
    checkpoints_dir = Path(checkpoints_dir)
    clean_stale_temp(checkpoints_dir)
    skipped: list[Path] = []
    for path in reversed(list_checkpoints(checkpoints_dir)):
        try:
            ckpt = load_checkpoint(path, expected_fingerprint=expected_fingerprint)
        except FingerprintMismatchError:
            raise
        except CheckpointError as exc:
            logger.warning("skipping checkpoint %s: %s", path, exc)
            skipped.append(path)
            continue
        if skipped:
            logger.warning("falling back to checkpoint %s (skipped %d newer one(s))", path, len(skipped))
        return ckpt
    return None


def clean_stale_temp(checkpoints_dir: Path) -> list[Path]:
    """Remove ``.tmp-*`` entries whose writer process is gone (a writer still running is left alone).

    Returns:
        The entries removed, each announced with a warning.
    """
    removed = []
    try:
        entries = sorted(Path(checkpoints_dir).iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not entry.name.startswith(TMP_PREFIX) or _writer_alive(entry.name):
            continue
        logger.warning("removing stale temporary checkpoint entry %s (left by an interrupted write)", entry)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _writer_alive(name: str) -> bool:
    match = re.search(r"-pid(\d+)-", name)
    if match is None:
        return False
    try:
        os.kill(int(match[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _read_manifest(path: Path) -> dict[str, Any]:
    where = path / MANIFEST
    if not where.exists() and not where.is_symlink():
        raise CheckpointError(f"{path}: incomplete checkpoint (no {MANIFEST})")
    data = _read_regular_file(where, MAX_JSON_BYTES)
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{where}: expected a JSON object, got {type(manifest).__name__}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise CheckpointError(f"{where}: unknown format_version {version!r} (this modrl reads {FORMAT_VERSION})")
    step = manifest.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{where}: step must be an integer >= 0, got {step!r}")
    if _STEP_DIR_RE.fullmatch(path.name) and path.name != step_dir_name(step):
        raise CheckpointError(f"{where}: step {step} does not match the directory name {path.name}")
    if not isinstance(manifest.get("fingerprint"), str):
        raise CheckpointError(f"{where}: fingerprint must be a string, got {manifest.get('fingerprint')!r}")
    files = manifest.get("files")
    if not isinstance(files, dict) or STATE not in files:
        raise CheckpointError(f"{where}: 'files' must be a mapping that lists {STATE}")
    for name, entry in files.items():
        _check_member_entry(where, name, entry)
    return manifest


def _check_member_entry(where: Path, name: Any, entry: Any) -> None:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or ".." in name or name.startswith("."):
        raise CheckpointError(f"{where}: unsafe file name {name!r} in manifest (must be a plain file name)")
    if name != STATE and not (name.endswith(".safetensors") and _GROUP_RE.fullmatch(name[: -len(".safetensors")])):
        raise CheckpointError(
            f"{where}: unexpected file name {name!r} in manifest (only <group>.safetensors and {STATE})"
        )
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where}: entry for {name!r} must be a mapping with sha256 and bytes")
    size, digest = entry.get("bytes"), entry.get("sha256")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise CheckpointError(f"{where}: bytes for {name!r} must be an integer >= 0, got {size!r}")
    if not isinstance(digest, str) or not _SHA256_RE.fullmatch(digest):
        raise CheckpointError(f"{where}: sha256 for {name!r} must be 64 lowercase hex digits, got {digest!r}")


def _read_member(path: Path, name: str, entry: dict[str, Any]) -> bytes:
    where = path / name
    limit = MAX_JSON_BYTES if name == STATE else MAX_TENSOR_FILE_BYTES
    data = _read_regular_file(where, limit, expected_size=entry["bytes"])
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise CheckpointError(f"{where}: sha256 mismatch (file modified or corrupted since it was written)")
    if name.endswith(".safetensors"):
        _check_safetensors_header(where, data)
    return data


def _read_regular_file(where: Path, limit: int, expected_size: int | None = None) -> bytes:
    """Read a regular file (symlinks, FIFOs, devices refused) after checking its size against the manifest/limit."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        with os.fdopen(os.open(where, flags), "rb") as fh:
            info = os.fstat(fh.fileno())
            size = info.st_size
            if not stat.S_ISREG(info.st_mode):
                raise CheckpointError(f"{where}: not a regular file")
            if expected_size is not None and size != expected_size:
                raise CheckpointError(f"{where}: size {size} bytes, manifest says {expected_size} (truncated/modified)")
            if size > limit:
                raise CheckpointError(f"{where}: {size} bytes exceeds the limit of {limit} bytes")
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise CheckpointError(f"{where}: missing (listed in the manifest)") from None
    except OSError as exc:
        if exc.errno == errno_mod.ELOOP:
            raise CheckpointError(f"{where}: not a regular file (a symlink)") from None
        raise CheckpointError(f"{where}: cannot read: {_describe_os_error(exc)}") from None
    if len(data) != size:
        raise CheckpointError(f"{where}: changed while being read")
    return data


def _check_safetensors_header(where: Path, data: bytes) -> None:
    """Refuse anything that does not start with a sane safetensors header (e.g. a pickle) before parsing it."""
    if len(data) < 8:
        raise CheckpointError(f"{where}: too short for a safetensors file ({len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_SAFETENSORS_HEADER_BYTES or 8 + header_len > len(data):
        raise CheckpointError(
            f"{where}: not a safetensors file (header length {header_len} is out of range for {len(data)} bytes)"
        )
    if data[8:9] != b"{":
        raise CheckpointError(f"{where}: not a safetensors file (header is not a JSON object)")


# ------------------------------------------------------------------------------------------ optimizer and RNG state


def flatten_optimizer_state(state_dict: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split a ``torch.optim`` state_dict into tensors (for safetensors) and JSON-able data (for ``state.json``).

    Tensors are keyed ``state.<param index>.<name>`` (e.g. Adam's ``exp_avg``, ``(*param shape)``, and ``step``,
    ``()``) and ``param_groups.<group index>.<name>``; all other values, param_groups included, go to ``data``
    (tuples such as Adam's ``betas`` come back as lists, which torch's optimizers accept).

    Raises:
        TypeError, ValueError: A non-tensor value that JSON cannot hold (NaN/inf included).
    """
    tensors: dict[str, Tensor] = {}

    def split(entries: Mapping[Any, Any], prefix: str) -> dict[str, Any]:
        out = {}
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"{prefix}.{key}"] = value
            else:
                out[str(key)] = value
        return out

    state = {str(pid): split(entry, f"state.{pid}") for pid, entry in state_dict["state"].items()}
    groups = [split(group, f"param_groups.{i}") for i, group in enumerate(state_dict["param_groups"])]
    data = json.loads(json.dumps({"state": state, "param_groups": groups}, allow_nan=False))
    return tensors, data


def unflatten_optimizer_state(tensors: Mapping[str, Tensor], data: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state`: a state_dict for ``optimizer.load_state_dict``.

    Raises:
        CheckpointError: ``tensors``/``data`` do not form an optimizer state.
    """
    try:
        state = {int(pid): dict(entry) for pid, entry in data["state"].items()}
        groups = [dict(group) for group in data["param_groups"]]
        for key, value in tensors.items():
            kind, index, name = key.split(".", 2)
            if kind == "state":
                state.setdefault(int(index), {})[name] = value
            elif kind == "param_groups":
                groups[int(index)][name] = value
            else:
                raise ValueError(f"unexpected tensor key {key!r}")
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"optimizer state cannot be rebuilt: {exc!r}") from None
    return {"state": state, "param_groups": groups}


def capture_rng_state() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Global RNG states: torch CPU, numpy's legacy global ``np.random`` and python's ``random``.

    Returns:
        ``tensors`` (``torch_cpu`` ``(N,) uint8``, ``numpy_keys`` ``(624,) int64``, ``python_state`` ``(625,) int64``)
        and JSON-able ``data`` (numpy position and cached gaussian, python version and ``gauss_next``).
    """
    algorithm, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    tensors = {
        "torch_cpu": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "python_state": torch.tensor(internal, dtype=torch.int64),
    }
    data = {
        "numpy": {"algorithm": algorithm, "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "gauss_next": gauss_next},
    }
    return tensors, data


def restore_rng_state(tensors: Mapping[str, Tensor], data: Mapping[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured; all three states are checked before any is set.

    Raises:
        CheckpointError: Missing or malformed state (nothing is changed then).
    """
    try:
        torch_state = tensors["torch_cpu"]
        if torch_state.dtype != torch.uint8:
            raise ValueError(f"torch_cpu must be uint8, got {torch_state.dtype}")
        np_data, py_data = data["numpy"], data["python"]
        np_keys = tensors["numpy_keys"].numpy().astype(np.uint32)
        np_state = (np_data["algorithm"], np_keys, int(np_data["pos"]), int(np_data["has_gauss"]), np_data["cached"])
        py_internal = tuple(int(v) for v in tensors["python_state"].tolist())
        py_state = (int(py_data["version"]), py_internal, py_data["gauss_next"])
        torch.Generator().set_state(torch_state)  # validate all three on throwaway generators first
        np.random.RandomState().set_state(np_state)
        random.Random().setstate(py_state)
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
        raise CheckpointError(f"rng state cannot be restored: {exc!r}") from None
    torch.set_rng_state(torch_state)
    np.random.set_state(np_state)
    random.setstate(py_state)
