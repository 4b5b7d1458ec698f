"""README's fault table (Reliability), one test per row not proven elsewhere; faults injected with modrl.faults.

Rows proven by other tests:
* SIGKILL mid-training: tests/test_cli.py::test_resume_after_sigkill_completes_the_step_budget and, with identical
  metrics and TensorBoard scalars (no duplicated steps), tests/test_exact_resume.py::test_cli_kill_or_stop_then_resume
* SIGTERM / SIGINT: tests/test_cli.py::test_signal_checkpoints_and_marks_interrupted (+ exact resume as above)
* corrupted checkpoint: tests/test_checkpoint.py::test_corruption_is_refused_naming_file_and_reason,
  ::test_latest_falls_back_to_previous_and_warns, tests/test_cli.py::test_eval_falls_back_from_a_corrupt_checkpoint...
* malicious checkpoint: tests/test_malicious_checkpoints.py
* bad config: tests/test_config_fuzz.py, tests/test_cli.py::test_bad_config_key_fails_before_creating_anything
* run-directory collision (existing name): tests/test_runs.py, tests/test_cli.py::test_existing_run_dir_is_refused...
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from stable_baselines3.common.vec_env import VecEnvWrapper

from modrl.agents.common import training
from modrl.agents.common.guards import NonFiniteError, NonFiniteGuard, all_finite
from modrl.checkpoint import latest_checkpoint, list_checkpoints
from modrl.cli.main import main
from modrl.faults import FAULT_ENV, parse_faults, reset_fault_counters
from modrl.runs import lock_run_dir
from tests.conftest import TINY
from tests.test_cli import ENV, MODRL


@pytest.fixture(autouse=True)
def _fresh_fault_counters() -> None:
    reset_fault_counters()


def _config_file(tmp_path: Path, **train: Any) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "eval_episodes": 0, **train}}))
    return path


def _cli(*args: object, cwd: Path, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**ENV, FAULT_ENV: fault} if fault else ENV
    return subprocess.run([*MODRL, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def _meta(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "meta.json").read_text())


def _steps(run_dir: Path) -> list[int]:
    return [int(p.name.split("-")[1]) for p in list_checkpoints(run_dir / "checkpoints")]


def test_fault_specs_are_validated() -> None:
    assert [(s.point, s.index, s.nth, s.action) for s in parse_faults("env-step#1:5:raise,checkpoint-saved")] == [
        ("env-step", 1, 5, "raise"),
        ("checkpoint-saved", None, 1, "kill"),
    ]
    for bad in ("nowhere", "rollout-end:0", "rollout-end:x", "rollout-end:1:explode", "rollout-end:1:kill:2"):
        with pytest.raises(ValueError, match=FAULT_ENV):
            parse_faults(bad)


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_keeps_the_previous_and_cleans_up(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = _cli("train", _config_file(tmp_path), "--run-dir", run_dir, cwd=tmp_path, fault="checkpoint-after-tensors:2")
    assert out.returncode == -signal.SIGKILL, out.stdout + out.stderr
    assert _steps(run_dir) == [128]
    temp = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    assert len(temp) == 1 and temp[0].startswith(".tmp-step-000000000256-")  # the half-written one, no manifest
    assert latest_checkpoint(run_dir / "checkpoints") is not None  # the previous one loads (and the temp dir is gone)
    (run_dir / "checkpoints" / temp[0]).mkdir()  # put one back: resume must clean it and say so
    out = _cli("train", "--resume", run_dir, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"removing stale temporary checkpoint entry {run_dir / 'checkpoints' / temp[0]}" in out.stdout
    assert "resumed from" in out.stdout and "(step 128)" in out.stdout
    assert _steps(run_dir) == [128, 256] and _meta(run_dir)["status"] == "completed"
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp-")]


def test_disk_full_on_save_names_path_and_errno_and_keeps_the_previous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(FAULT_ENV, "checkpoint-after-tensors:2:enospc")
    run_dir = tmp_path / "run"
    assert main(["train", str(_config_file(tmp_path)), "--run-dir", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "modrl: error: cannot save checkpoint" in err and "step-000000000256" in err and "ENOSPC" in err
    meta = _meta(run_dir)
    assert meta["status"] == "failed" and "ENOSPC" in meta["error"]
    assert _steps(run_dir) == [128]
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    assert latest_checkpoint(run_dir / "checkpoints").step == 128  # type: ignore[union-attr]


class _NaNReward(VecEnvWrapper):
    """Env ``env_index``'s reward becomes NaN on the ``at``-th vector step."""

    def __init__(self, venv: Any, *, env_index: int, at: int) -> None:
        super().__init__(venv)
        self.env_index, self.at, self.calls = env_index, at, 0

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.calls += 1
        if self.calls == self.at:
            rewards = rewards.copy()
            rewards[self.env_index] = np.nan
        return obs, rewards, dones, infos


def _finite(model: Any) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.policy.parameters())


def test_nan_reward_stops_at_that_step_marks_failed_writes_no_later_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_make, real_build, models = training.make_vec_env, training.build_model, []
    monkeypatch.setattr(training, "make_vec_env", lambda config: _NaNReward(real_make(config), env_index=1, at=100))
    monkeypatch.setattr(training, "build_model", lambda *a, **kw: models.append(real_build(*a, **kw)) or models[-1])
    run_dir = tmp_path / "run"
    assert main(["train", str(_config_file(tmp_path)), "--run-dir", str(run_dir)]) == 1
    message = "non-finite reward from env 1 at step 200"  # vector step 100 of 2 envs
    assert message in capsys.readouterr().err
    meta = _meta(run_dir)
    assert meta["status"] == "failed" and message in meta["error"]
    assert _steps(run_dir) == [128] and _finite(models[0])


def test_nan_loss_stops_before_the_parameters_change(tiny_config, tmp_path: Path, monkeypatch) -> None:
    real_build, models = training.build_model, []

    def build(config: Any, venv: Any, **kwargs: Any) -> Any:
        model = real_build(config, venv, **kwargs)
        nan_after = {"calls": 0}

        def poison(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            if module.training:  # only in PPO's update, never while collecting
                nan_after["calls"] += 1
                if nan_after["calls"] > 8:  # the third update (2 epochs x 2 batches each)
                    return output * float("nan")
            return output

        model.policy.value_net.register_forward_hook(poison)
        models.append(model)
        return model

    monkeypatch.setattr(training, "build_model", build)
    (tmp_path / "run").mkdir()
    with pytest.raises(NonFiniteError, match=r"non-finite gradient at step 192: parameter '.*' after the loss") as info:
        training.run_training(tiny_config(), tmp_path / "run")
    assert (info.value.source, info.value.env_index, info.value.step) == ("gradient", None, 192)
    assert _finite(models[0]) and models[0]._n_updates == 4  # two updates of 2 epochs went through, not the third
    assert _steps(tmp_path / "run") == [128]


@pytest.mark.parametrize(("key", "source"), [("new_obs", "observation"), ("actions", "action")])
def test_nan_observation_or_action_is_named_with_env_index(key: str, source: str) -> None:
    guard = NonFiniteGuard()
    good = {
        "new_obs": {"image": np.zeros((3, 2), np.uint8), "x": np.zeros((3, 2))},
        "rewards": np.zeros(3),
        "actions": np.zeros((3, 2)),
        "infos": [{}, {}, {}],
    }
    guard.locals, guard.num_timesteps = good, 30
    assert guard._on_step()
    bad = {k: (dict(v) if isinstance(v, dict) else v.copy()) if k == key else v for k, v in good.items()}
    target = bad[key]["x"] if key == "new_obs" else bad[key]
    target[2, 1] = np.inf
    guard.locals = bad
    with pytest.raises(NonFiniteError, match=f"non-finite {source} from env 2 at step 30"):
        guard._on_step()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", [0, 1, -1])
def test_all_finite_finds_a_bad_value_anywhere_and_huge_finite_values_pass(bad: float, where: int) -> None:
    tensors = [torch.full((3, 4), 3.0e38), torch.full((1000,), -3.0e38), torch.ones(7, dtype=torch.float64)]
    assert all_finite(tensors) and all_finite([])  # a sum or a norm of these would overflow to inf
    tensors[1][where] = bad
    assert not all_finite(tensors)


def _guarded_linear(lr: float) -> tuple[torch.nn.Module, NonFiniteGuard]:
    policy = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    policy.optimizer = torch.optim.SGD(policy.parameters(), lr=lr)  # type: ignore[assignment]
    guard = NonFiniteGuard()
    guard.model = SimpleNamespace(policy=policy, num_timesteps=64, _n_updates=2)  # type: ignore[assignment]
    guard._init_callback()
    return policy, guard


def test_guard_hooks_name_the_first_bad_gradient_and_refuse_a_blown_up_update() -> None:
    policy, guard = _guarded_linear(lr=0.1)
    policy(torch.ones(1, 3)).sum().backward()
    before = [p.detach().clone() for p in policy.parameters()]
    policy.optimizer.step()  # finite: passes
    policy[1].weight.grad[0, 1] = float("nan")
    with pytest.raises(NonFiniteError, match=r"non-finite gradient at step 64: parameter '1.weight' .* update 3"):
        policy.optimizer.step()
    assert not any(torch.equal(b, p) for b, p in zip(before, policy.parameters(), strict=True))  # first step moved
    policy, guard = _guarded_linear(lr=float("inf"))
    policy(torch.ones(1, 3)).sum().backward()
    with pytest.raises(NonFiniteError, match=r"non-finite parameter at step 64: '0.weight' after optimizer step"):
        policy.optimizer.step()
    guard.remove_hooks()


def _processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (workers inherit the CLI's environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("action", "expect"),
    [("raise", "InjectedFault: injected fault at env-step#1"), ("exit", "worker process exited with 70")],
)
def test_env_worker_crash_names_the_env_and_reaps_the_workers(tmp_path: Path, action: str, expect: str) -> None:
    marker = f"MODRL_TEST_MARKER=worker-crash-{os.getpid()}-{action}"
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [*MODRL, "train", str(_config_file(tmp_path)), "--run-dir", str(run_dir), "--set", "env.vec_env=subproc"],
        cwd=tmp_path,
        env={**ENV, FAULT_ENV: f"env-step#1:40:{action}", "MODRL_TEST_MARKER": marker.split("=")[1]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "modrl: error: env 1: " in done.stderr and expect in done.stderr
    meta = _meta(run_dir)
    assert meta["status"] == "failed" and meta["error"].startswith("env 1: ")
    deadline = time.monotonic() + 10  # the forkserver notices its parent is gone on its own schedule
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(marker) == []


def test_a_locked_run_is_refused_and_a_dead_holder_does_not_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(TINY))
    with lock_run_dir(run_dir):
        assert main(["train", "--resume", str(run_dir)]) == 2
    assert f"run directory {run_dir} is in use by another modrl process (pid {os.getpid()})" in capsys.readouterr().err
    code = f"import os, signal, modrl.runs as r\nwith r.lock_run_dir({str(run_dir)!r}): os.kill(os.getpid(), 9)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    with lock_run_dir(run_dir):  # the SIGKILLed holder's lock died with it
        pass


def _completed_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    assert main(["train", str(_config_file(tmp_path)), "--run-dir", str(run_dir)]) == 0
    return run_dir


def test_resume_with_a_changed_config_needs_the_flag_and_is_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _completed_run(tmp_path)
    assert main(["train", "--resume", str(run_dir), "--set", "train.total_timesteps=384"]) == 2
    assert "--allow-config-change" in capsys.readouterr().err
    assert _meta(run_dir).get("config_changes") is None
    assert main(["train", "--resume", str(run_dir), "--set", "train.total_timesteps=384", "--allow-config-change"]) == 0
    meta = _meta(run_dir)
    assert meta["status"] == "completed" and meta["step"] == 384
    [change] = meta["config_changes"]
    assert change["changes"] == {"train.total_timesteps": [256, 384]} and change["argv"] and change["time"]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["total_timesteps"] == 384


def test_resume_with_another_task_names_spaces_and_fingerprints_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _completed_run(tmp_path)
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    args = [
        "train",
        "--resume",
        str(run_dir),
        "--set",
        "env.suite=minigrid-basic",
        "--set",
        "env.n_envs=6",
        "--set",
        "train.total_timesteps=512",
        "--allow-config-change",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "fingerprint mismatch: expected" in err and "found" in err
    assert "suite: expected minigrid-basic" in err and "found minigrid-tiny" in err
    after = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after.keys() == before.keys() and all(after[k] == before[k] for k in before if k.name != ".lock")


def test_tensorboard_failure_mid_run_warns_once_and_training_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(FAULT_ENV, "tensorboard-write:2:enospc")
    run_dir = tmp_path / "run"
    with caplog.at_level("WARNING"):
        assert main(["train", str(_config_file(tmp_path)), "--run-dir", str(run_dir)]) == 0
    warnings = [r.getMessage() for r in caplog.records if "TensorBoard" in r.getMessage()]
    assert len(warnings) == 1 and "No space left on device" in warnings[0] and str(run_dir / "tb") in warnings[0]
    assert _steps(run_dir) == [128, 256] and _meta(run_dir)["status"] == "completed"
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 4
