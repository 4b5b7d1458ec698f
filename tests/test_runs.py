"""Run directories: safe names, no collisions, nothing existing touched, complete metadata and status."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
from datetime import datetime, tzinfo
from pathlib import Path

import pytest

from modrl import runs
from modrl.runs import (
    RunDirError,
    RunStatus,
    create_run_dir,
    git_state,
    read_run_config,
    read_run_meta,
    set_status,
    validate_run_name,
    write_run_metadata,
)


class _FixedClock(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        return datetime(2024, 1, 2, 3, 4, 5, tzinfo=tz)


@pytest.mark.parametrize("name", ["../x", "", ".hidden", "a/b", "a..b", "a b", "x\\y", "é", "n" * 101, None])
def test_bad_run_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(RunDirError, match="invalid run name") as info:
        validate_run_name(name)
    assert repr(name) in str(info.value)
    with pytest.raises(RunDirError):
        create_run_dir(root=tmp_path / "runs", name=name)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["ppo", "PPO_doorkey-v1.2", "a", "n" * 100])
def test_good_run_names_pass(name: str) -> None:
    assert validate_run_name(name) == name


def test_generated_names_are_unique_and_existing_dirs_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "datetime", _FixedClock)
    root = tmp_path / "runs"
    existing = root / "ppo-20240102-030405"
    existing.mkdir(parents=True)
    (existing / "notes.txt").write_text("mine")
    made = [create_run_dir(root=root, name="ppo") for _ in range(3)]
    assert [p.name for p in made] == ["ppo-20240102-030405-2", "ppo-20240102-030405-3", "ppo-20240102-030405-4"]
    assert all(p.is_dir() and not any(p.iterdir()) for p in made)
    assert [p.name for p in existing.iterdir()] == ["notes.txt"] and (existing / "notes.txt").read_text() == "mine"


def test_explicit_existing_non_empty_dir_is_refused_and_untouched(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "model.zip").write_bytes(b"precious")
    with pytest.raises(RunDirError, match="not empty") as info:
        create_run_dir(root=tmp_path / "runs", name="ppo", explicit=target)
    assert str(target) in str(info.value)
    assert [p.name for p in target.iterdir()] == ["model.zip"] and (target / "model.zip").read_bytes() == b"precious"
    assert not (tmp_path / "runs").exists()


def test_explicit_new_or_empty_dir_is_claimed_once(tmp_path: Path) -> None:
    fresh = tmp_path / "a" / "b"
    assert create_run_dir(root=tmp_path, name="ppo", explicit=fresh) == fresh and fresh.is_dir()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert create_run_dir(root=tmp_path, name="ppo", explicit=empty) == empty
    assert [p.name for p in empty.iterdir()] == [runs.CLAIM_FILE]
    for taken in (fresh, empty):
        with pytest.raises(RunDirError):
            create_run_dir(root=tmp_path, name="ppo", explicit=taken)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="not a directory"):
        create_run_dir(root=tmp_path, name="ppo", explicit=tmp_path / "file")


def test_metadata_contents(tmp_path: Path) -> None:
    run_dir = create_run_dir(root=tmp_path, name="ppo")
    config = {"seed": 7, "algo": {"name": "ppo", "layers": (64, 64)}, "b": None}
    write_run_metadata(run_dir, config=config, seed=7, argv=["modrl", "train", "--seed", "7"])
    text = (run_dir / "config.yaml").read_text()
    assert text.index("seed") < text.index("algo") < text.index("b:")  # key order kept
    assert read_run_config(run_dir) == {"seed": 7, "algo": {"name": "ppo", "layers": [64, 64]}, "b": None}
    meta = read_run_meta(run_dir)
    assert meta["seed"] == 7 and meta["argv"] == ["modrl", "train", "--seed", "7"]
    assert meta["status"] == "running" and meta["status_time"] == meta["created"]
    assert meta["python"] == platform.python_version() and meta["platform"] == platform.platform()
    assert sorted(meta["packages"]) == sorted(runs.PACKAGES)
    assert meta["packages"]["torch"] == importlib.metadata.version("torch")
    assert meta["packages"]["stable-baselines3"] == importlib.metadata.version("stable-baselines3")
    assert meta["packages"]["PyYAML"] == importlib.metadata.version("PyYAML")
    assert meta["git"] == git_state(Path(runs.__file__).resolve().parent)
    assert datetime.fromisoformat(meta["created"]).utcoffset() is not None
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".tmp-")]


def test_metadata_imports_none_of_the_packages(tmp_path: Path) -> None:
    code = (
        "import sys, modrl.runs as r; r.write_run_metadata(sys.argv[1], config={}, seed=0, argv=[]);"
        "heavy = {'torch', 'gymnasium', 'minigrid', 'stable_baselines3', 'tensorboard', 'safetensors'};"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert json.loads((tmp_path / "meta.json").read_text())["packages"]["torch"] is not None


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def test_git_state(tmp_path: Path) -> None:
    assert git_state(tmp_path) is None  # not a git checkout
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    assert git_state(repo) == {"commit": None, "dirty": False}
    (repo / "a.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text("venv/\n")
    _git(repo, "add", "a.py", ".gitignore")
    _git(repo, "commit", "-q", "-m", "init")
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "untracked.txt").write_text("u")
    assert git_state(repo) == {"commit": head, "dirty": False}
    (repo / "a.py").write_text("x = 2\n")
    assert git_state(repo) == {"commit": head, "dirty": True}
    (repo / "venv" / "site").mkdir(parents=True)
    assert git_state(repo / "venv" / "site") is None  # an installed copy inside an ignored folder


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=r"config\.yaml"):
        read_run_config(tmp_path)
    with pytest.raises(RunDirError, match=r"meta\.json: missing"):
        read_run_meta(tmp_path)
    (tmp_path / "config.yaml").write_text("a: !!python/object/apply:os.system ['touch canary']\n")
    with pytest.raises(RunDirError, match=r"config\.yaml"):
        read_run_config(tmp_path)
    (tmp_path / "meta.json").write_text("[1, 2]")
    with pytest.raises(RunDirError, match="expected a JSON object"):
        read_run_meta(tmp_path)
    assert not (tmp_path / "canary").exists() and not Path("canary").exists()


def test_set_status(tmp_path: Path) -> None:
    write_run_metadata(tmp_path, config={"a": 1}, seed=3, argv=["x"])
    set_status(tmp_path, RunStatus.FAILED, error="boom", step=12)
    meta = read_run_meta(tmp_path)
    assert (meta["status"], meta["error"], meta["step"], meta["seed"]) == ("failed", "boom", 12, 3)
    assert datetime.fromisoformat(meta["status_time"]) >= datetime.fromisoformat(meta["created"])
    before = (tmp_path / "meta.json").read_bytes()
    with pytest.raises(RunDirError, match="not JSON-serialisable"):
        set_status(tmp_path, RunStatus.COMPLETED, bad=object())
    assert (tmp_path / "meta.json").read_bytes() == before
    with pytest.raises(ValueError, match="'done' is not a valid RunStatus"):
        set_status(tmp_path, "done")  # type: ignore[arg-type]
    set_status(tmp_path, RunStatus.COMPLETED)
    assert read_run_meta(tmp_path)["status"] == RunStatus.COMPLETED.value == "completed"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_deep_meta_json_is_one_error_naming_it(tmp_path: Path) -> None:
    from modrl.runs import RunDirError, RunStatus, read_run_meta, set_status

    (tmp_path / "meta.json").write_bytes(b"[" * 1000 + b"]" * 1000)
    for call in (lambda: read_run_meta(tmp_path), lambda: set_status(tmp_path, RunStatus.FAILED)):
        with pytest.raises(RunDirError, match=r"meta\.json: nested deeper than"):
            call()
