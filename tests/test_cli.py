"""The `modrl` command as a user runs it: help, config errors, a tiny training, eval, resume, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import TINY

MODRL = [sys.executable, "-m", "modrl.cli.main"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def modrl(*args: object, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MODRL, *map(str, args)], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def write_config(tmp_path: Path, **train: int) -> Path:
    data = {**TINY, "train": {**TINY["train"], **train}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def only_run_dir(root: Path) -> Path:
    dirs = [p for p in root.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_help_describes_commands(tmp_path: Path) -> None:
    out = modrl("--help", cwd=tmp_path)
    assert out.returncode == 0
    for command in ("train", "eval", "list"):
        assert command in out.stdout
    train_help = modrl("train", "--help", cwd=tmp_path).stdout
    for option in ("--set", "--run-dir", "--resume"):
        assert option in train_help
    assert "--episodes" in modrl("eval", "--help", cwd=tmp_path).stdout


def test_list_shows_registries(tmp_path: Path) -> None:
    out = modrl("list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for name in ("soft", "gumbel", "topk", "fixed", "mlp", "lowrank", "modular", "monolithic", "minigrid-basic"):
        assert name in out.stdout


def test_bad_config_key_fails_before_creating_anything(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = modrl("train", config, "--set", "agent.router.kindd=soft", "--runs-root", tmp_path / "runs", cwd=tmp_path)
    assert out.returncode == 2
    assert "agent.router.kindd" in out.stderr and "allowed keys" in out.stderr
    assert not (tmp_path / "runs").exists()
    out = modrl("train", tmp_path / "missing.yaml", "--runs-root", tmp_path / "runs", cwd=tmp_path)
    assert out.returncode == 2 and "missing.yaml" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_train_then_eval_end_to_end(tmp_path: Path) -> None:
    out = modrl("train", write_config(tmp_path), "--runs-root", tmp_path / "runs", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    assert "tensorboard --logdir" in out.stdout and "success" in out.stdout
    assert "routing: task-module MI " in out.stdout  # the table says whether routing specialised
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["seed"] == 0
    assert meta["packages"]["torch"] and "git" in meta
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["env"]["suite"] == "minigrid-tiny"
    checkpoints = sorted((run_dir / "checkpoints").glob("step-*"))
    assert checkpoints and checkpoints[-1].name == "step-000000000256"
    results = list((run_dir / "eval").glob("*.json"))
    assert len(results) == 1
    report = json.loads(results[0].read_text())
    assert [t["task"] for t in report["tasks"]] == ["empty5", "emptyrandom5"] or len(report["tasks"]) == 2
    from modrl.envs import get_suite, make_task_env

    suite = get_suite("minigrid-tiny")
    for task in report["tasks"]:
        n, wins = task["episodes"], task["success_rate"] * task["episodes"]
        assert n == 2 and wins in (0.0, 1.0, 2.0)
        # Empty rooms: an episode fails only by timing out after max_steps steps, and a success after L steps pays
        # 1 - 0.9 L / max_steps, so the mean return follows from the success count and the mean length by hand.
        limit = make_task_env(suite, suite.task_names.index(task["task"])).unwrapped.max_steps
        success_steps = n * task["mean_length"] - (n - wins) * limit
        expected = (wins - 0.9 * success_steps / limit) / n
        assert task["mean_return"] == pytest.approx(expected, abs=1e-6), task
        assert task["module_usage"] is not None and abs(sum(task["module_usage"]) - 1) < 1e-3
    # TensorBoard: the resolved config as text, and the HParams entry with the final evaluation, in the run itself.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    assert "modrl/config/text_summary" in events.Tags()["tensors"]
    final = sum(t["success_rate"] for t in report["tasks"]) / len(report["tasks"])
    assert events.Scalars("hparam/success_train")[0].value == pytest.approx(final)
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")

    out = modrl("eval", run_dir, "--episodes", 3, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    files = list((run_dir / "eval").glob("*.json"))
    assert len(files) == 2
    again = json.loads(next(f for f in files if f != results[0]).read_text())
    # An independent evaluation: its first two episodes are the final evaluation's (same seeds, greedy policy).
    for first, second in zip(report["tasks"], again["tasks"], strict=True):
        assert first["task"] == second["task"] and second["episodes"] == 3
        extra = second["success_rate"] * 3 - first["success_rate"] * 2
        assert extra == pytest.approx(round(extra)) and round(extra) in (0, 1), (first, second)


def test_existing_run_dir_is_refused_and_untouched(tmp_path: Path) -> None:
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "precious.txt").write_text("keep me")
    out = modrl("train", write_config(tmp_path), "--run-dir", run_dir, cwd=tmp_path)
    assert out.returncode == 2
    assert str(run_dir) in out.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["precious.txt"]


def _start_training(tmp_path: Path, total: int) -> tuple[subprocess.Popen[str], Path]:
    config = write_config(tmp_path, total_timesteps=total, checkpoint_every=128)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [*MODRL, "train", str(config), "--run-dir", str(run_dir)],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, run_dir


def _wait_for_checkpoint(run_dir: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any((run_dir / "checkpoints").glob("step-*/manifest.json")):
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended before its first checkpoint: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("no checkpoint appeared")


def test_resume_after_sigkill_completes_the_step_budget(tmp_path: Path) -> None:
    proc, run_dir = _start_training(tmp_path, total=100_000)
    _wait_for_checkpoint(run_dir, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = max(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*"))
    out = modrl("train", "--resume", run_dir, "--set", "train.total_timesteps=50000", cwd=tmp_path)
    assert out.returncode == 2 and "differs" in out.stderr, "a changed config must not resume silently"
    # Resume as stored: it must pick up the killed run's last checkpoint and keep counting from there.
    proc2 = subprocess.Popen(
        [*MODRL, "train", "--resume", str(run_dir)],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    resumed_line = ""
    assert proc2.stdout is not None
    while time.monotonic() < deadline and not resumed_line:
        line = proc2.stdout.readline()
        if "resumed from" in line:
            resumed_line = line
    assert f"step {killed_at}" in resumed_line, resumed_line
    # Let it train past the checkpoint, then stop it cleanly: steps add up beyond the killed run's checkpoint.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        steps = [int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*")]
        if max(steps) > killed_at:
            break
        time.sleep(0.2)
    proc2.send_signal(signal.SIGINT)
    assert proc2.wait(timeout=60) == 130
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["step"] > killed_at


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_checkpoints_and_marks_interrupted(tmp_path: Path, sig: signal.Signals) -> None:
    proc, run_dir = _start_training(tmp_path, total=100_000)
    _wait_for_checkpoint(run_dir, proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 128 + sig
    output = proc.stdout.read() if proc.stdout else ""
    assert "modrl train --resume" in output
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    last = max((run_dir / "checkpoints").glob("step-*"))
    assert int(last.name.split("-")[1]) == meta["step"]


def test_eval_falls_back_from_a_corrupt_checkpoint_and_refuses_when_none_is_left(tmp_path: Path) -> None:
    out = modrl("train", write_config(tmp_path), "--runs-root", tmp_path / "runs", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    checkpoints = sorted((run_dir / "checkpoints").glob("step-*"))
    assert len(checkpoints) == 2
    newest = checkpoints[-1] / "policy.safetensors"
    data = bytearray(newest.read_bytes())
    data[-1] ^= 0xFF
    newest.write_bytes(bytes(data))
    out = modrl("eval", run_dir, "--episodes", 1, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "policy.safetensors" in out.stdout + out.stderr  # the warning names the bad file
    assert "evaluation at step 128" in out.stdout
    older = checkpoints[0] / "policy.safetensors"
    older.write_bytes(older.read_bytes()[:100])  # truncate
    out = modrl("eval", run_dir, "--episodes", 1, cwd=tmp_path)
    assert out.returncode == 1
    assert "no complete checkpoint" in out.stderr


def test_suite_show_prints_splits_and_held_out_pairs(tmp_path: Path) -> None:
    out = modrl("suite", "show", "colour-type", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "train split (36 tasks)" in out.stdout and "test split (12 tasks)" in out.stdout
    assert "ModRL-colour-type-pickup-red-ball-v0" in out.stdout
    assert "held out of training:" in out.stdout
    out = modrl("suite", "show", "nope", cwd=tmp_path)
    assert out.returncode == 2 and "minigrid-basic" in out.stderr


def _write_sweep(tmp_path: Path, grid: dict) -> Path:
    base = write_config(tmp_path, total_timesteps=128, eval_episodes=1)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny-sweep", "base": base.name, "seeds": [0], "grid": grid, "workers": 2}))
    return path


def test_sweep_then_report_end_to_end(tmp_path: Path) -> None:
    spec = _write_sweep(tmp_path, {"agent.kind": ["modular", "monolithic"]})
    out = modrl("sweep", spec, "--runs-root", tmp_path / "sweeps", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 completed, 0 failed" in out.stdout
    sweep_dir = only_run_dir(tmp_path / "sweeps")
    again = modrl("sweep", "--resume", sweep_dir, cwd=tmp_path)
    assert again.returncode == 0 and "all 2 trials already completed" in again.stdout, again.stdout  # none re-run
    out = modrl("report", sweep_dir, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = (sweep_dir / "report" / "report.md").read_text()
    assert "agent.kind=modular" in report and "agent.kind=monolithic" in report
    assert (sweep_dir / "report" / "success_per_task.png").is_file()


def test_sweep_with_a_bad_grid_key_fails_before_running_anything(tmp_path: Path) -> None:
    spec = _write_sweep(tmp_path, {"agent.routr.kind": ["soft"]})
    out = modrl("sweep", spec, "--runs-root", tmp_path / "sweeps", cwd=tmp_path)
    assert out.returncode == 2
    assert "agent.routr" in out.stderr and "allowed keys" in out.stderr
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("agent.kind=monolithic", "agent: expected monolithic (ppo), found modular (ppo)"),
        ("env.mission_tokens=true", "observation_space: expected Dict("),
        ("agent.modules.count=4", "the agent's settings (the config's agent section) differ"),
    ],
)
def test_eval_of_a_checkpoint_made_for_another_agent_names_what_differs(
    tmp_path: Path, override: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from modrl.agents.common.builders import build_policy, model_fingerprint
    from modrl.agents.common.config import load_experiment_config
    from modrl.agents.common.evaluation import load_run_policy
    from modrl.agents.common.training import model_identity
    from modrl.checkpoint import FingerprintMismatchError
    from modrl.checkpoint_writer import save_checkpoint
    from modrl.cli.main import main
    from modrl.config import to_dict

    made_for = load_experiment_config(TINY)
    policy, obs_space, act_space = build_policy(made_for)
    save_checkpoint(
        tmp_path / "checkpoints",
        step=64,
        tensors={"policy": policy.state_dict()},
        meta={},
        fingerprint=model_fingerprint(made_for, obs_space, act_space),
        identity=model_identity(made_for, obs_space, act_space),
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(to_dict(load_experiment_config(TINY, [override]))))
    with pytest.raises(FingerprintMismatchError, match="fingerprint mismatch") as info:
        load_run_policy(tmp_path)
    assert expected in str(info.value) and "step-000000000064" in str(info.value)
    if override.startswith("env."):  # the found space is named too
        assert "found Dict(" in str(info.value) and "'mission'" in str(info.value)
    assert main(["eval", str(tmp_path), "--episodes", "1"]) == 1
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()  # nothing written


def test_a_run_directory_written_before_agent_skills_became_agent_modules_still_evaluates(tmp_path: Path) -> None:
    from modrl.agents.common.builders import build_policy, model_fingerprint
    from modrl.agents.common.config import load_experiment_config
    from modrl.agents.common.evaluation import load_run_policy
    from modrl.agents.common.training import model_identity
    from modrl.checkpoint_writer import save_checkpoint
    from modrl.config import to_dict

    config = load_experiment_config(TINY)
    policy, obs_space, act_space = build_policy(config)
    save_checkpoint(
        tmp_path / "checkpoints",
        step=64,
        tensors={"policy": policy.state_dict()},
        meta={},
        fingerprint=model_fingerprint(config, obs_space, act_space),
        identity=model_identity(config, obs_space, act_space),
    )
    old = to_dict(config)
    old["agent"]["skills"] = old["agent"].pop("modules")  # the config.yaml an older modrl wrote
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    loaded_config, loaded, _ = load_run_policy(tmp_path)
    assert loaded_config == config
    state = loaded.state_dict()
    assert state.keys() == policy.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in policy.state_dict().items())


def test_a_closed_output_pipe_ends_quietly(tmp_path: Path) -> None:
    """``modrl list | head -1``: the reader leaves early; no BrokenPipeError traceback, a clean exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "modrl.cli.main", "list"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.stdout is not None
    proc.stdout.close()  # before modrl writes anything: every write hits a closed pipe
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err and "BrokenPipeError" not in err, err


def test_printed_commands_work_without_an_activated_virtualenv(monkeypatch: pytest.MonkeyPatch) -> None:
    """After scripts/quickstart.sh, ``modrl`` and ``tensorboard`` live in .venv/bin only: the lines modrl prints for
    the user to run next name them by full path unless the shell's PATH finds this environment's copy."""
    from modrl.cli.hints import runnable

    beside = Path(sys.executable).parent
    assert (beside / "tensorboard").is_file() and (beside / "modrl").is_file()
    monkeypatch.setenv("PATH", "/nonexistent")
    assert runnable("tensorboard") == str(beside / "tensorboard")
    assert runnable("modrl") == str(beside / "modrl")
    monkeypatch.setenv("PATH", str(beside))
    assert runnable("tensorboard") == "tensorboard"
    assert runnable("no-such-program-here") == "no-such-program-here"


def test_shipped_configs_are_usable_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modrl.shipped import resolve_config, shipped_config_names

    monkeypatch.chdir(tmp_path)  # not the repository: names resolve through the package, not the working directory
    assert {"quickstart", "baseline_monolithic"} <= set(shipped_config_names())
    found = resolve_config("quickstart")
    assert found.name == "quickstart.yaml" and found.is_file() and found.is_absolute()
    (tmp_path / "quickstart").write_text("seed: 1\n")  # a file of that name is the user's, and wins
    assert resolve_config("quickstart") == Path("quickstart")
    assert resolve_config("mine.yaml") == Path("mine.yaml") and resolve_config("sub/x") == Path("sub/x")
    out = modrl("train", "no_such_config", "--runs-root", tmp_path / "runs", cwd=tmp_path)
    assert out.returncode == 2 and not (tmp_path / "runs").exists()
    assert "config file not found: no_such_config (nor a shipped config of that name; shipped: " in out.stderr
