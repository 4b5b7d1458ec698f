"""Checkpoint format: round trips, atomic writes and pruning, and refusal of every corruption and attack."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from modrl import checkpoint as ck
from modrl.checkpoint import (
    CheckpointError,
    FingerprintMismatchError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    verify_checkpoint,
)
from modrl.checkpoint_writer import save_checkpoint

FP = "0123456789abcdef"
ZERO_HASH = "0" * 64


def _save(root: Path, step: int, value: float = 0.0, **kwargs: object) -> Path:
    tensors = {"model": {"w": torch.full((3,), value)}}
    return save_checkpoint(root, step=step, tensors=tensors, meta={"step": step}, fingerprint=FP, **kwargs)


def _rewrite_manifest(ckpt: Path, edit: Callable[[dict], None]) -> None:
    """Edit the manifest and its sidecar digest consistently (an attacker who controls every file)."""
    manifest = json.loads((ckpt / "manifest.json").read_text())
    edit(manifest)
    data = json.dumps(manifest).encode()
    (ckpt / "manifest.json").write_bytes(data)
    (ckpt / ck.MANIFEST_DIGEST).write_text(ck.manifest_digest_line(data))


def _plant(ckpt: Path, name: str, data: bytes) -> None:
    """Replace a member and make the manifest agree with it (an attacker who can also edit the manifest)."""
    (ckpt / name).write_bytes(data)

    def edit(manifest: dict) -> None:
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    _rewrite_manifest(ckpt, edit)


def test_fingerprint_is_canonical_json_sha256() -> None:
    expected = hashlib.sha256(b'{"a":1,"b":[2,3]}').hexdigest()[:16]
    assert ck.fingerprint({"b": [2, 3], "a": 1}) == expected
    assert ck.fingerprint({"a": 1, "b": [2, 3]}) == expected
    assert ck.fingerprint({"a": 2, "b": [2, 3]}) != expected


def test_shared_and_strided_tensors_are_saved_as_copies(tmp_path: Path) -> None:
    w = torch.arange(6.0).reshape(2, 3)
    path = save_checkpoint(
        tmp_path, step=0, tensors={"model": {"w": w, "wt": w.t(), "row": w[1]}}, meta={}, fingerprint=FP
    )
    loaded = load_checkpoint(path).tensors["model"]
    assert torch.equal(loaded["wt"], w.t()) and torch.equal(loaded["row"], torch.tensor([3.0, 4.0, 5.0]))


def test_invalid_arguments_write_nothing(tmp_path: Path) -> None:
    root = tmp_path / "ckpts"
    with pytest.raises(ValueError, match="group name"):
        save_checkpoint(root, step=1, tensors={"../m": {"w": torch.ones(1)}}, meta={}, fingerprint=FP)
    with pytest.raises(ValueError, match=r"state\.json"):
        save_checkpoint(root, step=1, tensors={}, meta={"loss": float("nan")}, fingerprint=FP)
    with pytest.raises(ValueError, match="keep"):
        save_checkpoint(root, step=1, tensors={}, meta={}, fingerprint=FP, keep=0)
    assert not root.exists()


def _flip_byte(ckpt: Path) -> None:
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (ckpt / "model.safetensors").write_bytes(bytes(data))


def _truncate(ckpt: Path) -> None:
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[:-5])


def _set(*keys: str, value: object) -> Callable[[Path], None]:
    def edit(manifest: dict) -> None:
        target = manifest
        *parents, last = keys
        for part in parents:
            target = target[part]
        target[last] = value

    return lambda ckpt: _rewrite_manifest(ckpt, edit)


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "byte flip": (_flip_byte, "model.safetensors", "sha256 mismatch"),
    "truncation": (_truncate, "model.safetensors", "truncated"),
    "missing manifest": (lambda c: (c / "manifest.json").unlink(), "step-000000000001", "no manifest.json"),
    "wrong hash": (
        _set("files", "model.safetensors", "sha256", value=ZERO_HASH),
        "model.safetensors",
        "sha256 mismatch",
    ),
    "dotdot name": (
        _set("files", "../x.safetensors", value={"sha256": ZERO_HASH, "bytes": 1}),
        "manifest.json",
        "unsafe file name '../x.safetensors'",
    ),
    "odd file": (lambda c: _plant(c, "model.pkl", b"x"), "manifest.json", "unexpected file name 'model.pkl'"),
    "format version": (_set("format_version", value=99), "manifest.json", "unknown format_version 99"),
    "missing member": (lambda c: (c / "model.safetensors").unlink(), "model.safetensors", "missing"),
    "huge header": (
        lambda c: _plant(c, "model.safetensors", (1 << 40).to_bytes(8, "little") + b"{}"),
        "model.safetensors",
        "header length",
    ),
    "bad header": (
        lambda c: _plant(c, "model.safetensors", (2).to_bytes(8, "little") + b"{x"),
        "model.safetensors",
        "not a valid safetensors file",
    ),
    "state not json": (lambda c: _plant(c, "state.json", b"{oops"), "state.json", "not valid JSON"),
    "symlink member": (lambda c: _symlink_member(c), "model.safetensors", "not a regular file"),
    "fifo member": (lambda c: _fifo_member(c), "model.safetensors", "not a regular file"),
}


def _fifo_member(ckpt: Path) -> None:
    (ckpt / "model.safetensors").unlink()
    os.mkfifo(ckpt / "model.safetensors")


def _symlink_member(ckpt: Path) -> None:
    target = ckpt.parent / "elsewhere.bin"
    target.write_bytes((ckpt / "model.safetensors").read_bytes())
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors").symlink_to(target)


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corruption_is_refused_naming_file_and_reason(tmp_path: Path, corruption: str) -> None:
    damage, where, reason = CORRUPTIONS[corruption]
    ckpt = _save(tmp_path, 1)
    damage(ckpt)
    for check in (verify_checkpoint, load_checkpoint):
        with pytest.raises(CheckpointError) as info:
            check(ckpt)
        assert where in str(info.value) and reason in str(info.value)


class _Canary:
    """Unpickling this creates a file: proof that a loader executed a pickle payload."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


def test_pickle_payload_planted_as_safetensors_is_never_executed(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Canary(probe)))  # the payload works when unpickled ...
    assert probe.exists()
    canary = tmp_path / "canary"
    ckpt = _save(tmp_path / "ckpts", 1)
    _plant(ckpt, "model.safetensors", pickle.dumps(_Canary(canary)))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a safetensors file"):
        load_checkpoint(ckpt)
    assert latest_checkpoint(tmp_path / "ckpts") is None
    assert not canary.exists()  # ... and modrl never unpickles it


def test_latest_falls_back_to_previous_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for step in (1, 2, 3):
        _save(tmp_path, step, value=float(step), keep=3)
    _flip_byte(tmp_path / "step-000000000003")
    (tmp_path / "step-000000000002" / "manifest.json").unlink()
    with caplog.at_level(logging.WARNING, logger="modrl.checkpoint"):
        ckpt = latest_checkpoint(tmp_path, expected_fingerprint=FP)
    assert ckpt is not None and ckpt.step == 1
    assert torch.equal(ckpt.tensors["model"]["w"], torch.full((3,), 1.0))
    text = caplog.text
    assert "step-000000000003" in text and "sha256 mismatch" in text
    assert "step-000000000002" in text and "no manifest.json" in text
    assert "falling back to checkpoint" in text


def test_latest_of_empty_or_missing_dir_is_none(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "nope") is None
    assert latest_checkpoint(tmp_path) is None


def test_stale_temp_entries_are_removed_live_writers_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _save(tmp_path, 1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / ".tmp-step-000000000002-abc", tmp_path / f".tmp-step-000000000002-pid{dead.pid}-x"]
    for entry in stale:
        entry.mkdir()
        (entry / "model.safetensors").write_bytes(b"partial")
    (tmp_path / ".tmp-state.json.123").write_bytes(b"{")
    live = tmp_path / f".tmp-step-000000000003-pid{os.getpid()}-y"
    live.mkdir()
    with caplog.at_level(logging.WARNING, logger="modrl.checkpoint"):
        ckpt = latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.step == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "step-000000000001"]
    assert all(entry.name in caplog.text for entry in stale)


def test_keep_prunes_old_and_broken_checkpoints(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for step in range(1, 5):
        _save(tmp_path, step)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000000000003", "step-000000000004"]
    _save(tmp_path, 5, keep=3)
    _truncate(tmp_path / "step-000000000004")
    with caplog.at_level(logging.WARNING, logger="modrl.checkpoint_writer"):
        _save(tmp_path, 6, keep=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step-000000000003",
        "step-000000000005",
        "step-000000000006",
    ]
    assert "step-000000000004" in caplog.text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_prune_never_deletes_the_new_checkpoint_even_if_older(tmp_path: Path) -> None:
    _save(tmp_path, 10)
    _save(tmp_path, 20)
    _save(tmp_path, 5, keep=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000000000005"]


def test_list_ignores_non_checkpoint_entries(tmp_path: Path) -> None:
    _save(tmp_path, 7)
    (tmp_path / "step-7").mkdir()
    (tmp_path / "step-000000000009").write_text("a file")
    (tmp_path / "notes").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000000000007"]


def test_resave_same_step_replaces_it(tmp_path: Path) -> None:
    _save(tmp_path, 4, value=1.0)
    _save(tmp_path, 4, value=2.0)
    assert torch.equal(load_checkpoint(tmp_path / "step-000000000004").tensors["model"]["w"], torch.full((3,), 2.0))
    assert [p.name for p in tmp_path.iterdir()] == ["step-000000000004"]


def test_fingerprint_mismatch_is_raised_not_skipped(tmp_path: Path) -> None:
    _save(tmp_path, 1)
    save_checkpoint(tmp_path, step=2, tensors={}, meta={}, fingerprint="ffffffffffffffff", keep=3)
    with pytest.raises(FingerprintMismatchError) as info:
        latest_checkpoint(tmp_path, expected_fingerprint=FP)
    message = str(info.value)
    assert f"expected {FP}" in message and "found ffffffffffffffff" in message and "step-000000000002" in message
    assert load_checkpoint(tmp_path / "step-000000000001", expected_fingerprint=FP).step == 1


def _fail_when(predicate: Callable[[Path, Path], bool], monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.replace

    def replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        if predicate(Path(src), Path(dst)):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


FAILURES: dict[str, Callable[[Path, Path], bool]] = {
    "member write": lambda src, dst: dst.name == "model.safetensors",
    "manifest write": lambda src, dst: dst.name == "manifest.json",
    "commit rename": lambda src, dst: src.name.startswith(".tmp-step-"),
}


@pytest.mark.parametrize("resave", [False, True], ids=["new step", "same step"])
@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_disk_full_raises_and_keeps_previous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str, resave: bool
) -> None:
    _save(tmp_path, 1, value=1.0)
    if resave:
        _save(tmp_path, 2, value=2.0)
    _fail_when(FAILURES[failure], monkeypatch)
    with pytest.raises(CheckpointError) as info:
        _save(tmp_path, 2, value=3.0)
    monkeypatch.undo()
    assert "ENOSPC" in str(info.value) and "step-000000000002" in str(info.value)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    latest = latest_checkpoint(tmp_path)
    assert latest is not None
    assert (latest.step, float(latest.tensors["model"]["w"][0])) == ((2, 2.0) if resave else (1, 1.0))


DEEP = b"[" * 1000 + b"]" * 1000


def _deep_manifest(ckpt: Path) -> None:
    """A 2 KB manifest.json of 1,000 nested lists, its sidecar digest fixed up to match."""
    (ckpt / "manifest.json").write_bytes(DEEP)
    (ckpt / ck.MANIFEST_DIGEST).write_text(ck.manifest_digest_line(DEEP))


def _deep_state(ckpt: Path) -> None:
    """state.json of 1,000 nested lists, with the manifest's hash and size (and its sidecar) fixed up."""
    (ckpt / "state.json").write_bytes(DEEP)
    _set("files", "state.json", value={"sha256": hashlib.sha256(DEEP).hexdigest(), "bytes": len(DEEP)})(ckpt)


def _manifest_byte_flip(ckpt: Path) -> None:
    """Still valid JSON, so only the sidecar digest can tell (the flip lands inside the ``created`` timestamp)."""
    data = (ckpt / "manifest.json").read_bytes()
    at = data.index(b'"created": "') + len(b'"created": "')
    (ckpt / "manifest.json").write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])


def _no_sidecar_deep_manifest(ckpt: Path) -> None:
    (ckpt / ck.MANIFEST_DIGEST).unlink()
    (ckpt / "manifest.json").write_bytes(DEEP)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_deep_manifest, "nested deeper than"),
        (_no_sidecar_deep_manifest, "nested deeper than"),
        (_deep_state, "nested deeper than"),
        (_manifest_byte_flip, "does not match manifest.sha256"),
    ],
)
def test_any_unreadable_newest_checkpoint_falls_back_to_the_previous(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[Path], None], reason: str
) -> None:
    _save(tmp_path, 1, value=1.0, keep=3)
    damage(_save(tmp_path, 2, value=2.0, keep=3))
    with caplog.at_level(logging.WARNING, logger="modrl.checkpoint"):
        ckpt = latest_checkpoint(tmp_path, expected_fingerprint=FP)
    assert ckpt is not None and ckpt.step == 1
    assert "skipping checkpoint" in caplog.text and reason in caplog.text and "falling back" in caplog.text


def test_an_unexpected_exception_while_reading_is_a_refusal_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save(tmp_path, 1, keep=3)
    newest = _save(tmp_path, 2, keep=3)
    real = ck._read_member

    def broken(path: Path, name: str, entry: dict) -> bytes:
        if path == newest:
            raise RecursionError("maximum recursion depth exceeded")
        return real(path, name, entry)

    monkeypatch.setattr(ck, "_read_member", broken)
    with caplog.at_level(logging.WARNING, logger="modrl.checkpoint"):
        ckpt = latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.step == 1 and "RecursionError" in caplog.text


def test_a_checkpoint_without_a_manifest_sidecar_still_loads(tmp_path: Path) -> None:
    ckpt = _save(tmp_path, 3, value=3.0)
    assert (ckpt / ck.MANIFEST_DIGEST).read_text() == ck.manifest_digest_line((ckpt / "manifest.json").read_bytes())
    (ckpt / ck.MANIFEST_DIGEST).unlink()  # a checkpoint written before the sidecar existed
    assert torch.equal(load_checkpoint(ckpt).tensors["model"]["w"], torch.full((3,), 3.0))


def test_checkpoints_path_that_is_a_file_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").write_text("not a directory")
    with pytest.raises(CheckpointError, match="not a directory"):
        latest_checkpoint(tmp_path / "checkpoints")


def test_a_symlinked_checkpoint_is_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _save(tmp_path / "ckpts", 1)
    elsewhere = _save(tmp_path / "other", 2)
    (tmp_path / "ckpts" / elsewhere.name).symlink_to(elsewhere, target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="modrl.checkpoint"):
        ckpt = latest_checkpoint(tmp_path / "ckpts")
    assert ckpt is not None and ckpt.step == 1
    assert "step-000000000002" in caplog.text and "symlink" in caplog.text
