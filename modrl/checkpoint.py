"""Checkpoints: tensors as safetensors, everything else as JSON, committed by a manifest written last.

Layout of one checkpoint (README, "Reliability")::

    checkpoints_dir/step-000000001000/
        model.safetensors      one file per tensor group (model, optimizer, rng, ...)
        state.json             JSON metadata (counters, optimizer param_groups, rng data, config digest, ...)
        manifest.json          format_version, step, fingerprint, created, versions, files {name: {sha256, bytes}}
        manifest.sha256        sha256 of manifest.json ("<hex>  manifest.json"), so the manifest is covered too

This module defines the format and reads and verifies it; :func:`modrl.checkpoint_writer.save_checkpoint` writes it
(into ``checkpoints_dir/.tmp-step-*``, every file fsynced, then renamed into place, so a crash leaves either the
previous checkpoints or a complete new one plus a ``.tmp-*`` entry that :func:`latest_checkpoint` removes), and
:mod:`modrl.train_state` turns optimizer and RNG state into tensors + JSON for it. Loading never unpickles:
safetensors are parsed by ``safetensors`` after the manifest's sizes and sha256 digests match, and files that are not
plain, listed ``*.safetensors``/``state.json`` are refused before anything is parsed. JSON members are parsed
under the limits of :mod:`modrl.safe_load` (size, nesting). A checkpoint written before ``manifest.sha256`` existed
(none in its directory) still loads; one whose sidecar is present must match.
"""

from __future__ import annotations

import errno as errno_mod
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
from torch import Tensor

from modrl._io import TMP_PREFIX
from modrl.safe_load import InputError, loads_json

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STATE = "state.json"
MANIFEST_DIGEST = "manifest.sha256"
MAX_DIGEST_FILE_BYTES = 256
MAX_REASON_CHARS = 500
MAX_JSON_BYTES = 64 << 20
MAX_TENSOR_FILE_BYTES = 4 << 30
MAX_SAFETENSORS_HEADER_BYTES = 16 << 20

_GROUP_RE = re.compile(r"[A-Za-z0-9_-]+")
_STEP_DIR_RE = re.compile(r"step-(\d{12,})")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class CheckpointError(Exception):
    """A checkpoint cannot be written, read or trusted; the message names the file or directory and the reason."""


class FingerprintMismatchError(CheckpointError):
    """The checkpoint is intact but belongs to another run/task (its fingerprint differs from the expected one).

    Attributes:
        path: The checkpoint directory.
        found_identity: The manifest's ``identity`` (what its fingerprint hashes), ``None`` if it has none.
    """

    def __init__(self, message: str, *, path: Path, found_identity: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.found_identity = found_identity


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
        identity = manifest.get("identity")
        raise FingerprintMismatchError(
            f"{path / MANIFEST}: fingerprint mismatch: expected {expected_fingerprint}, found {found} "
            "(checkpoint of a different run, task or encoder)",
            path=path,
            found_identity=identity if isinstance(identity, dict) else None,
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
        meta = loads_json(blobs[STATE], str(path / STATE), max_bytes=MAX_JSON_BYTES)
    except InputError as exc:
        raise CheckpointError(str(exc)) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path / STATE}: expected a JSON object, got {type(meta).__name__}")
    return Checkpoint(path=path, step=manifest["step"], tensors=tensors, meta=meta, manifest=manifest)


def latest_checkpoint(checkpoints_dir: Path, *, expected_fingerprint: str | None = None) -> Checkpoint | None:
    """Load the newest checkpoint that verifies, warning about each newer one skipped and why.

    Any exception while reading or verifying a checkpoint (not only :class:`CheckpointError`: whatever a member
    shaped to hurt might raise) refuses that checkpoint with a warning, and the previous one is tried. Stale
    ``.tmp-*`` entries left by a killed writer are removed first, and ``step-*`` entries that are symlinks are
    announced and ignored (with a warning each).

    Returns:
        The loaded checkpoint, or ``None`` if there is none that verifies.

    Raises:
        FingerprintMismatchError: A checkpoint belongs to another run/task; never skipped silently.
        CheckpointError: ``checkpoints_dir`` exists but is not a directory, or cannot be listed.
    """
    checkpoints_dir = Path(checkpoints_dir)
    if checkpoints_dir.exists() and not checkpoints_dir.is_dir():
        raise CheckpointError(f"{checkpoints_dir}: not a directory (a file where the checkpoints belong)")
    clean_stale_temp(checkpoints_dir)
    _warn_linked_checkpoints(checkpoints_dir)
    skipped: list[Path] = []
    for path in reversed(list_checkpoints(checkpoints_dir)):
        try:
            ckpt = load_checkpoint(path, expected_fingerprint=expected_fingerprint)
        except FingerprintMismatchError:
            raise
        except Exception as exc:  # any failure to read a checkpoint refuses that one; the previous is tried
            reason = exc if isinstance(exc, CheckpointError) else f"{type(exc).__name__}: {exc}"
            logger.warning("skipping checkpoint %s: %s", path, str(reason)[:MAX_REASON_CHARS])
            skipped.append(path)
            continue
        if skipped:
            logger.warning("falling back to checkpoint %s (skipped %d newer one(s))", path, len(skipped))
        return ckpt
    return None


def _warn_linked_checkpoints(checkpoints_dir: Path) -> None:
    """Warn about each ``step-*`` entry that is a symlink: checkpoints are never read through links."""
    try:
        entries = sorted(checkpoints_dir.iterdir())
    except OSError:
        return
    for entry in entries:
        if _STEP_DIR_RE.fullmatch(entry.name) and entry.is_symlink():
            logger.warning("ignoring checkpoint %s: a symlink (checkpoints are never read through links)", entry)


def clean_stale_temp(checkpoints_dir: Path) -> list[Path]:
    """Remove ``.tmp-*`` entries whose writer process is gone (a writer still running is left alone).

    Returns:
        The entries removed, each announced with a warning.
    """
    removed: list[Path] = []
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
    _check_manifest_digest(path, data)
    try:
        manifest = loads_json(data, str(where), max_bytes=MAX_JSON_BYTES)
    except InputError as exc:
        raise CheckpointError(str(exc)) from None
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


def manifest_digest_line(manifest_bytes: bytes) -> str:
    """The content of ``manifest.sha256`` for a manifest's bytes (``sha256sum`` format)."""
    return f"{hashlib.sha256(manifest_bytes).hexdigest()}  {MANIFEST}\n"


def _check_manifest_digest(path: Path, manifest_bytes: bytes) -> None:
    """Compare the manifest with its sidecar digest; a checkpoint without a sidecar (older format) is accepted."""
    where = path / MANIFEST_DIGEST
    if not where.exists() and not where.is_symlink():
        return
    recorded = _read_regular_file(where, MAX_DIGEST_FILE_BYTES)
    if recorded != manifest_digest_line(manifest_bytes).encode("ascii"):
        raise CheckpointError(f"{path / MANIFEST}: does not match {MANIFEST_DIGEST} (manifest modified or corrupted)")


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
