"""Exact resume: 2N steps in one go == N steps, stop or SIGKILL, resume to 2N (weights, optimizer, RNG, counters,
env state, metrics.jsonl and TensorBoard scalars; wall-clock fields aside)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from modrl.agents.common.training import CHECKPOINTS, METRICS, TENSORBOARD, TrainStatus, run_training
from modrl.checkpoint import latest_checkpoint, list_checkpoints
from modrl.config import to_dict
from modrl.faults import FAULT_ENV, reset_fault_counters
from modrl.runs import write_run_metadata
from tests.conftest import TINY
from tests.test_cli import ENV, MODRL

#: 2N = 512 steps, N = 256: rollouts of 2 envs x 32 steps, a periodic checkpoint every 256 steps.
STEPS = ("train.total_timesteps=512", "train.checkpoint_every=256")
WALL_CLOCK_METRICS = {"wall_s", "fps"}
WALL_CLOCK_TAGS = {"time/fps", "time/time_elapsed"}


def _new_run(tmp_path: Path, name: str, config: Any) -> Path:
    run_dir = tmp_path / name
    run_dir.mkdir()
    write_run_metadata(run_dir, config=to_dict(config), seed=config.seed, argv=["pytest"])
    return run_dir


def _without_wall_clock(meta: dict[str, Any]) -> dict[str, Any]:
    meta = json.loads(json.dumps(meta))
    for info in meta.get("resume", {}).get("ep_info_buffer", []):
        info.pop("t", None)  # Monitor's episode wall time
    return meta


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / METRICS).read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK_METRICS} for row in rows]


def _scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_dir / TENSORBOARD), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
        if tag not in WALL_CLOCK_TAGS and not tag.startswith("hparam/")  # hparam/*: the CLI's final evaluation
    }


def assert_same_run(one_go: Path, resumed: Path) -> None:
    """Every tensor of the final checkpoints torch.equal, the JSON state equal, the same metrics and scalars."""
    a, b = latest_checkpoint(one_go / CHECKPOINTS), latest_checkpoint(resumed / CHECKPOINTS)
    assert a is not None and b is not None and a.step == b.step == 512
    assert sorted(a.tensors) == sorted(b.tensors) == ["optimizer", "policy", "resume", "rng"]
    for group, tensors in a.tensors.items():
        assert sorted(tensors) == sorted(b.tensors[group]), group
        for key, tensor in tensors.items():
            assert torch.equal(tensor, b.tensors[group][key]), f"{group}.{key} differs"
    assert _without_wall_clock(a.meta) == _without_wall_clock(b.meta)
    assert a.meta["n_updates"] == 512 // 64 * 2 and a.meta["resume"]["envs"]  # 2 epochs of 1 batch per rollout
    rows = _metrics(one_go)
    assert [r["step"] for r in rows] == list(range(64, 513, 64))
    assert _metrics(resumed) == rows
    scalars = _scalars(one_go)
    assert "train/loss" in scalars and "rollout/ep_rew_mean" in scalars and "modrl/success/mean" in scalars
    assert _scalars(resumed) == scalars


@pytest.fixture(scope="module")
def one_go(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted 2N-step run, trained once for this module's tests (they only read it)."""
    from modrl.agents.common.config import load_experiment_config

    config = load_experiment_config(TINY, STEPS)  # what the tiny_config fixture makes, at module scope
    run_dir = _new_run(tmp_path_factory.mktemp("exact-resume"), "one-go", config)
    assert run_training(config, run_dir).steps == 512
    return run_dir


def test_stop_then_resume_in_process_is_exact(
    tiny_config, tmp_path: Path, one_go: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(*STEPS)
    run_dir = _new_run(tmp_path, "stopped", config)
    monkeypatch.setenv(FAULT_ENV, "rollout-end:3:term")  # SIGTERM at the end of the 3rd rollout (step 192)
    reset_fault_counters()
    first = run_training(config, run_dir)
    assert (first.status, first.steps, first.signal) == (TrainStatus.INTERRUPTED, 192, signal.SIGTERM)
    assert [p.name for p in list_checkpoints(run_dir / CHECKPOINTS)] == ["step-000000000192"]
    monkeypatch.delenv(FAULT_ENV)
    second = run_training(config, run_dir, resume=True)
    assert (second.status, second.resumed_from, second.steps) == (TrainStatus.COMPLETED, 192, 512)
    # The resumed run checkpoints where the uninterrupted one did (its periodic schedule was restored).
    assert [p.name for p in list_checkpoints(run_dir / CHECKPOINTS)] == ["step-000000000256", "step-000000000512"]
    assert_same_run(one_go, run_dir)


def test_resume_keeps_its_steps_when_the_writer_count_crosses_a_digit(
    tiny_config, tmp_path: Path, one_go: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resumed segment's telemetry file (with the purge marker) and SB3's file, numbered 9 and 10 by the process's
    writer count, must still be read in that order, or TensorBoard drops SB3's resumed steps (a CI flake)."""
    from tensorboard.summary.writer import event_file_writer

    config = tiny_config(*STEPS)
    run_dir = _new_run(tmp_path, "stopped", config)
    monkeypatch.setenv(FAULT_ENV, "rollout-end:3:term")
    reset_fault_counters()
    assert run_training(config, run_dir).steps == 192
    monkeypatch.delenv(FAULT_ENV)
    monkeypatch.setattr(event_file_writer, "_global_uid", event_file_writer.AtomicCounter(9))
    assert run_training(config, run_dir, resume=True).steps == 512
    assert any(path.name.endswith(".10") for path in (run_dir / TENSORBOARD).iterdir())
    assert_same_run(one_go, run_dir)


def test_resume_on_a_split_with_episodes_in_flight_is_exact(tiny_config, tmp_path: Path, monkeypatch) -> None:
    """SplitTaskEnv draws task and task seed from its own RNG per episode: that state must come back too."""
    overrides = ("env.suite=colour-type", "env.split=train", "env.max_episode_steps=20", *STEPS)
    config = tiny_config(*overrides)
    one_go = _new_run(tmp_path, "one-go", config)
    run_training(config, one_go)
    run_dir = _new_run(tmp_path, "stopped", config)
    monkeypatch.setenv(FAULT_ENV, "rollout-end:2:term")
    reset_fault_counters()
    assert run_training(config, run_dir).steps == 128
    state = latest_checkpoint(run_dir / CHECKPOINTS).meta["resume"]["envs"]  # type: ignore[union-attr]
    assert all(env["actions"] for env in state), "want episodes in flight at the checkpoint"
    monkeypatch.delenv(FAULT_ENV)
    run_training(config, run_dir, resume=True)
    assert_same_run(one_go, run_dir)


@pytest.mark.parametrize("engine", ["minigrid", "fast"])
def test_replay_that_does_not_reproduce_the_observation_is_refused(
    tiny_config, tmp_path: Path, monkeypatch, engine: str
) -> None:
    from modrl.checkpoint import CheckpointError

    config = tiny_config(*STEPS, f"env.engine={engine}")
    run_dir = _new_run(tmp_path, "run", config)
    monkeypatch.setenv(FAULT_ENV, "rollout-end:1:term")
    reset_fault_counters()
    run_training(config, run_dir)
    monkeypatch.delenv(FAULT_ENV)
    checkpoint = list_checkpoints(run_dir / CHECKPOINTS)[-1]
    state = json.loads((checkpoint / "state.json").read_text())
    state["resume"]["envs"][1]["actions"].append(2)  # one step too many: env 1 ends up elsewhere
    _rewrite_member(checkpoint, "state.json", json.dumps(state).encode())
    with pytest.raises(CheckpointError, match="env 1 did not replay"):
        run_training(config, run_dir, resume=True)


def _rewrite_member(checkpoint: Path, name: str, data: bytes) -> None:
    import hashlib

    from modrl.checkpoint import manifest_digest_line

    (checkpoint / name).write_bytes(data)
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))
    # The manifest's own digest (manifest.sha256) must follow, or the edit is refused before the replay is tried.
    (checkpoint / "manifest.sha256").write_text(manifest_digest_line((checkpoint / "manifest.json").read_bytes()))


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["checkpoint-saved:1:kill", "rollout-end:3:term"], ids=["SIGKILL", "SIGTERM"])
def test_cli_kill_or_stop_then_resume_is_exact(tmp_path: Path, one_go: Path, fault: str) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump({**TINY, "train": {**TINY["train"], "total_timesteps": 512, "checkpoint_every": 256}})
    )
    run_dir = tmp_path / "cli-run"
    first = subprocess.run(
        [*MODRL, "train", str(config), "--run-dir", str(run_dir)],
        cwd=tmp_path,
        env={**ENV, FAULT_ENV: fault},
        capture_output=True,
        text=True,
        timeout=240,
    )
    expected_code = -signal.SIGKILL if "kill" in fault else 128 + signal.SIGTERM
    assert first.returncode == expected_code, first.stdout + first.stderr
    second = subprocess.run(
        [*MODRL, "train", "--resume", str(run_dir)], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=240
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resumed from" in second.stdout
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "completed"
    assert_same_run(one_go, run_dir)


def test_env_state_recorder_round_trip() -> None:
    """Unit level: a fresh env given a recorded state is at the same observation and steps on identically."""
    from modrl.agents.common.env_state import slot_env
    from modrl.envs import get_suite, make_split_env

    def make() -> Any:
        return slot_env(lambda: make_split_env(get_suite("colour-type"), "train", max_episode_steps=50), 0)

    env = make()
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(60):  # crosses at least one episode end (max 50 steps)
        _, _, terminated, truncated, _ = env.step(int(rng.integers(3)))
        if terminated or truncated:
            env.reset()
    state = json.loads(json.dumps(env.get_env_state()))
    assert "rng" in state["start"] and state["actions"]
    other = make()
    other.reset(seed=99)
    obs = other.set_env_state(state)
    for action in (0, 1, 2, 2, 1):
        a, b = env.step(action), other.step(action)
        assert all(np.array_equal(a[0][k], b[0][k]) for k in a[0]) and a[1:4] == b[1:4]
    assert obs is not None
