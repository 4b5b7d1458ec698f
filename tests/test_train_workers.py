"""Data-parallel ``modrl train`` (``train.workers``): shards, merged episodes, checkpoints with every worker's state,
exact resume, refused worker-count changes, a failing or dying worker, no orphan after the main process is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from modrl.agents.common.builders import make_vec_env
from modrl.agents.common.guards import EnvWorkerError
from modrl.agents.common.training import CHECKPOINTS, METRICS, TrainStatus, run_training
from modrl.agents.common.worker_process import local_config, shard
from modrl.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints
from modrl.config import ConfigError, to_dict
from modrl.faults import FAULT_ENV, reset_fault_counters
from modrl.runs import write_run_metadata
from tests.conftest import TINY
from tests.test_cli import ENV, MODRL

#: 2N = 512 frames over 2 processes (1 env slot each, 32 steps a rollout: 64 frames), a checkpoint every 256.
STEPS = ("train.workers=2", "train.total_timesteps=512", "train.checkpoint_every=256")


def _new_run(tmp_path: Path, name: str, config: Any) -> Path:
    run_dir = tmp_path / name
    run_dir.mkdir()
    write_run_metadata(run_dir, config=to_dict(config), seed=config.seed, argv=["pytest"])
    return run_dir


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / METRICS).read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("wall_s", "fps")} for row in rows]


def _without_wall_clock(meta: dict[str, Any]) -> dict[str, Any]:
    meta = json.loads(json.dumps(meta))
    for resume in [meta.get("resume", {}), *(w["resume"] for w in meta.get("workers", []))]:
        for info in resume.get("ep_info_buffer", []):
            info.pop("t", None)  # Monitor's episode wall time
    return meta


@pytest.fixture(scope="module")
def one_go(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modrl.agents.common.config import load_experiment_config

    config = load_experiment_config(TINY, STEPS)
    run_dir = _new_run(tmp_path_factory.mktemp("workers"), "one-go", config)
    outcome = run_training(config, run_dir)
    assert (outcome.status, outcome.steps) == (TrainStatus.COMPLETED, 512)
    return run_dir


def test_uneven_shares_are_refused(tiny_config) -> None:
    with pytest.raises(ConfigError, match=r"env.n_envs: 3 does not split evenly across train.workers=2"):
        tiny_config("train.workers=2", "env.n_envs=3")
    with pytest.raises(ConfigError, match=r"algo.batch_size: 33 does not split evenly across train.workers=2"):
        tiny_config("train.workers=2", "algo.batch_size=33")
    with pytest.raises(ConfigError, match=r"train.workers: must be an integer in \[1, 64\]"):
        tiny_config("train.workers=0")


def test_a_share_is_the_same_slots_as_in_the_whole_vector_env(tiny_config) -> None:
    config = tiny_config("train.workers=2", "env.n_envs=4", "algo.batch_size=64")
    local = local_config(config)
    assert (local.env.n_envs, local.algo.batch_size) == (2, 32)
    assert [shard(config, r) for r in (0, 1)] == [range(0, 2), range(2, 4)]
    whole = make_vec_env(config)
    part = make_vec_env(local, slots=shard(config, 1))
    try:
        full_obs, part_obs = whole.reset(), part.reset()
        for key in full_obs:
            assert np.array_equal(full_obs[key][2:], part_obs[key]), key  # same tasks, same seeds
    finally:
        whole.close()
        part.close()


def test_two_processes_train_one_run(one_go: Path) -> None:
    checkpoint = latest_checkpoint(one_go / CHECKPOINTS)
    assert checkpoint is not None and checkpoint.step == 512
    assert sorted(checkpoint.tensors) == ["optimizer", "policy", "resume", "rng", "worker1"]
    worker = checkpoint.meta["workers"][0]
    assert len(worker["resume"]["envs"]) == 1 and "torch_cpu" in {k[4:] for k in checkpoint.tensors["worker1"]}
    # the worker's torch RNG is its own (its action samples must not repeat the main process's)
    assert not torch.equal(checkpoint.tensors["worker1"]["rng.torch_cpu"], checkpoint.tensors["rng"]["torch_cpu"])
    rows = _metrics(one_go)
    assert [r["step"] for r in rows] == list(range(64, 513, 64))  # frames of both processes
    # slot 0 (main process) runs empty5, slot 1 (the worker) emptyrand5: the worker's episodes reach the statistics
    assert {"empty5", "emptyrand5"} <= set(rows[-1]["success"])


def test_stop_then_resume_is_exact(tiny_config, tmp_path: Path, one_go: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config(*STEPS)
    run_dir = _new_run(tmp_path, "stopped", config)
    monkeypatch.setenv(FAULT_ENV, "rollout-end:3:term")  # SIGTERM to the main process at step 192
    reset_fault_counters()
    first = run_training(config, run_dir)
    assert (first.status, first.steps) == (TrainStatus.INTERRUPTED, 192)
    assert [p.name for p in list_checkpoints(run_dir / CHECKPOINTS)] == ["step-000000000192"]
    monkeypatch.delenv(FAULT_ENV)
    second = run_training(config, run_dir, resume=True)
    assert (second.status, second.resumed_from, second.steps) == (TrainStatus.COMPLETED, 192, 512)
    a, b = latest_checkpoint(one_go / CHECKPOINTS), latest_checkpoint(run_dir / CHECKPOINTS)
    assert a is not None and b is not None and sorted(a.tensors) == sorted(b.tensors)
    for group, tensors in a.tensors.items():
        assert sorted(tensors) == sorted(b.tensors[group]), group
        for key, tensor in tensors.items():
            assert torch.equal(tensor, b.tensors[group][key]), f"{group}.{key} differs"
    assert _without_wall_clock(a.meta) == _without_wall_clock(b.meta)
    assert _metrics(run_dir) == _metrics(one_go)

    with pytest.raises(CheckpointError, match=r"train.workers=2, this config has train.workers=1"):
        run_training(tiny_config("train.total_timesteps=1024"), run_dir, resume=True)


def test_a_malformed_worker_state_is_refused_naming_the_checkpoint(
    tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modrl.checkpoint_writer import save_checkpoint

    config = tiny_config(*STEPS)
    run_dir = _new_run(tmp_path, "stopped", config)
    monkeypatch.setenv(FAULT_ENV, "rollout-end:1:term")
    reset_fault_counters()
    assert run_training(config, run_dir).status is TrainStatus.INTERRUPTED
    monkeypatch.delenv(FAULT_ENV)
    checkpoint = latest_checkpoint(run_dir / CHECKPOINTS)
    assert checkpoint is not None
    meta = {**checkpoint.meta, "workers": [{"resume": checkpoint.meta["workers"][0]["resume"]}]}  # no "rng"
    manifest = checkpoint.manifest
    save_checkpoint(
        run_dir / CHECKPOINTS,
        step=checkpoint.step,
        tensors=checkpoint.tensors,
        meta=meta,
        fingerprint=manifest["fingerprint"],
        identity=manifest.get("identity"),
    )
    with pytest.raises(CheckpointError, match=r"step-0+64: training worker 1's state is malformed: KeyError\('rng'\)"):
        run_training(config, run_dir, resume=True)


def test_a_worker_env_failure_stops_the_run_naming_its_slot(
    tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(*STEPS)
    monkeypatch.setenv(FAULT_ENV, "env-step#1:40:raise")  # slot 1 is the worker's, in its second rollout
    with pytest.raises(EnvWorkerError, match=r"env 1: step raised at step \d+") as caught:
        run_training(config, _new_run(tmp_path, "failing", config))
    assert caught.value.env_index == 1


def test_a_dying_worker_stops_the_run(tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config(*STEPS)
    monkeypatch.setenv(FAULT_ENV, "env-step#1:40:exit")  # os._exit(70) in the worker, no report
    with pytest.raises(EnvWorkerError, match=r"env 1: training worker 1 died \(exit code 70\)"):
        run_training(config, _new_run(tmp_path, "dying", config))


def _spawned_children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError):
            continue
        if f"\nPPid:\t{pid}\n" in status and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_workers_die_with_a_killed_main_process(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "total_timesteps": 10_000_000}}))
    proc = subprocess.Popen(
        [*MODRL, "train", str(config), "--run-dir", str(tmp_path / "run"), "--set", "train.workers=2"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (workers := _spawned_children(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers, "no training worker started"
        while not (tmp_path / "run" / METRICS).exists() and time.monotonic() < deadline:
            time.sleep(0.2)  # training under way
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), "a training worker outlived its killed main process"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_workers_spawned_before_a_failing_set_up_are_reaped(
    tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modrl.agents.common import training

    spawned: list[int] = []

    def failing_envs(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + 30  # spawned first, so their start-up overlaps this process's set-up
        while not spawned and time.monotonic() < deadline:
            spawned.extend(_spawned_children(os.getpid()))
            time.sleep(0.05)
        raise RuntimeError("env construction failed")

    monkeypatch.setattr(training, "make_vec_env", failing_envs)
    config = tiny_config(*STEPS)
    with pytest.raises(RuntimeError, match="env construction failed"):
        run_training(config, _new_run(tmp_path, "failing-set-up", config))
    assert spawned, "the worker was not started before the main process built its envs"
    assert not any(_alive(pid) for pid in spawned), "a training worker outlived its run's failed set-up"


def test_run_errors_survive_the_trip_from_a_worker() -> None:
    """A worker sends its error to the main process pickled by multiprocessing: the same type, slot and message."""
    import pickle  # what multiprocessing's queue does (tests only; the package never imports it)

    from modrl.agents.common.guards import NonFiniteError

    for error in (NonFiniteError("reward", env_index=3, step=96, detail="x"), EnvWorkerError(5, "boom")):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error) and back.env_index == error.env_index
