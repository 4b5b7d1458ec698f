"""Writing checkpoints: :func:`save_checkpoint` commits a new ``step-*`` directory atomically, then prunes old ones.

The format, and everything that reads and verifies it, is in :mod:`modrl.checkpoint`. A checkpoint is written into
``checkpoints_dir/.tmp-step-*``, every file fsynced, and only then renamed into place, so a crash leaves either the
previous checkpoints or a complete new one (plus a ``.tmp-*`` entry that :func:`modrl.checkpoint.latest_checkpoint`
removes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import Tensor

import modrl
from modrl._io import TMP_PREFIX, atomic_write_bytes, fsync_dir, utc_now_iso
from modrl.checkpoint import (
    _GROUP_RE,
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_DIGEST,
    STATE,
    CheckpointError,
    _describe_os_error,
    list_checkpoints,
    manifest_digest_line,
    step_dir_name,
    verify_checkpoint,
)
from modrl.faults import fault_point

logger = logging.getLogger(__name__)


def save_checkpoint(
    checkpoints_dir: Path,
    *,
    step: int,
    tensors: Mapping[str, Mapping[str, Tensor]],
    meta: Mapping[str, Any],
    fingerprint: str,
    keep: int = 2,
    identity: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically, then prune to the newest ``keep`` verified ones.

    Args:
        checkpoints_dir: Directory holding the ``step-*`` checkpoints (created if missing).
        step: Training step (>= 0); an existing checkpoint for the same step is replaced (new one complete first).
        tensors: ``{group: {key: tensor}}``; group names ``[A-Za-z0-9_-]+``; tensors of any shape/dtype/device,
            copied to contiguous CPU tensors.
        meta: JSON-serialisable mapping written as ``state.json`` (NaN/inf refused).
        fingerprint: Task/encoder fingerprint recorded in the manifest (see :func:`modrl.checkpoint.fingerprint`).
        keep: How many verified checkpoints to keep (>= 1); the one just written is always kept.
        identity: JSON description of what ``fingerprint`` hashes (spaces, suite, ...), recorded in the manifest
            so a fingerprint mismatch can say what differs.

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
    try:
        identity_data = None if identity is None else json.loads(json.dumps(dict(identity), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint identity is not JSON-serialisable: {exc}") from None
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
        fault_point("checkpoint-after-tensors", path=tmp / MANIFEST)
        manifest = _new_manifest(step=step, fingerprint=fingerprint, files=listing)
        if identity_data is not None:
            manifest["identity"] = identity_data
        manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
        atomic_write_bytes(tmp / MANIFEST, manifest_bytes)
        atomic_write_bytes(tmp / MANIFEST_DIGEST, manifest_digest_line(manifest_bytes).encode("ascii"))
        fsync_dir(tmp)
        _move_into_place(tmp, final)
        tmp = None
    except OSError as exc:
        raise CheckpointError(f"cannot save checkpoint {final}: {_describe_os_error(exc)}") from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    _prune(checkpoints_dir, keep=keep, just_written=final)
    fault_point("checkpoint-saved", path=final)
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
        "created": utc_now_iso(),
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
