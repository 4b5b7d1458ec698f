"""Oracle pre-training (``pretrain``): demonstrations from the train split only, behaviour cloning through the SB3
policy, reproducible weights, exact resume around the stage, and the config errors."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from modrl.agents.common.builders import build_model, make_vec_env
from modrl.agents.common.pretrain import (
    PRETRAIN_FILE,
    SEEDS_PER_RUN,
    TAG,
    TB_SUBDIR,
    collect_run_demos,
    pretrain_policy,
)
from modrl.agents.common.training import CHECKPOINTS, TrainStatus, run_training
from modrl.checkpoint import latest_checkpoint, list_checkpoints
from modrl.config import ConfigError
from modrl.envs import get_suite
from modrl.faults import FAULT_ENV, InjectedFault, reset_fault_counters
from modrl.seeds import DEMO_SEED_BASE
from tests.conftest import TINY
from tests.test_cli import ENV, MODRL, modrl, write_config
from tests.test_exact_resume import STEPS, _new_run, assert_same_run

#: The tiny agent on colour-type's train split (mission tokens, so the mission is part of what is cloned).
SPLIT = ("env.suite=colour-type", "env.split=train", "env.max_episode_steps=20", "env.mission_tokens=true")
PRETRAIN = ("pretrain.episodes=40", "pretrain.epochs=4", "pretrain.batch_size=64")


def _config(tiny_config, *overrides: str):
    return tiny_config(*SPLIT, *PRETRAIN, *overrides)


def _model(config):
    torch.set_num_threads(1)
    venv = make_vec_env(config)
    return build_model(config, venv), venv


def _without_seconds(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if k not in ("wall_s", "cpu_s")}


def _pretrain_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_dir / "tb" / TB_SUBDIR), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_demonstrations_come_from_the_train_split_only(tiny_config) -> None:
    config = _config(tiny_config)
    demos = collect_run_demos(config)
    suite = get_suite("colour-type")
    train, test = set(suite.splits["train"]), set(suite.splits["test"])
    assert set(demos.tasks) == train  # 40 episodes cycle through all 36 train tasks
    assert not set(demos.tasks) & test
    task_ids = {suite.task_names[int(i)] for i in np.unique(demos.observations["task"])}
    assert task_ids <= train
    assert min(demos.seeds) >= DEMO_SEED_BASE and len(set(demos.seeds)) == len(demos.seeds)
    assert demos.size == sum(demos.lengths) == len(demos.returns) and demos.frames >= demos.size
    assert set(demos.observations) == {"image", "direction", "task", "mission"}


def test_without_a_split_the_demonstrations_cover_the_runs_tasks(tiny_config) -> None:
    config = tiny_config("env.suite=colour-type", "env.n_envs=48", "pretrain.episodes=50")
    assert set(collect_run_demos(config).tasks) == set(get_suite("colour-type").task_names)


@pytest.mark.parametrize("agent", [("modular", "ppo"), ("monolithic", "a2c")], ids=["modular-ppo", "monolithic-a2c"])
def test_cloning_lowers_the_loss_and_reports_the_true_accuracy(tiny_config, tmp_path: Path, agent) -> None:
    config = _config(tiny_config, f"agent.kind={agent[0]}", f"agent.algo={agent[1]}", "pretrain.epochs=8")
    model, venv = _model(config)
    stats = pretrain_policy(model.policy, config, tmp_path)
    venv.close()
    record = json.loads((tmp_path / PRETRAIN_FILE).read_text())
    history = record["history"]
    assert len(history) == stats.epochs == 8
    assert history[-1]["bc_loss"] < history[0]["bc_loss"]
    # Independent recomputation: SB3's own greedy predict on the same (deterministic) demonstrations.
    demos = collect_run_demos(config)
    predicted, _ = model.policy.predict(demos.observations, deterministic=True)
    assert stats.accuracy == pytest.approx(float(np.mean(predicted == demos.actions)), abs=1e-6)
    assert stats.accuracy > stats.accuracy_before
    assert (stats.pairs, stats.demo_frames, stats.episodes) == (demos.size, demos.frames, 40)
    scalars = _pretrain_scalars(tmp_path)
    assert [step for step, _ in scalars[f"{TAG}/bc_loss"]] == list(range(1, 9))
    assert scalars[f"{TAG}/accuracy"][-1][1] == pytest.approx(stats.accuracy)
    assert scalars[f"{TAG}/demo_frames"] == [(0, float(demos.frames))]


def test_same_seed_same_weights_and_another_seed_differs(tiny_config, tmp_path: Path) -> None:
    weights = []
    for i, seed in enumerate((0, 0, 1)):
        config = _config(tiny_config, f"seed={seed}")
        model, venv = _model(config)
        pretrain_policy(model.policy, config, tmp_path / str(i))
        venv.close()
        weights.append({k: v.clone() for k, v in model.policy.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


@pytest.fixture(scope="module")
def one_go(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run with pre-training, trained once for this module's tests (they only read it)."""
    from modrl.agents.common.config import load_experiment_config

    config = load_experiment_config(TINY, (*SPLIT, *PRETRAIN, *STEPS))  # _config(tiny_config, *STEPS), module-wide
    run_dir = _new_run(tmp_path_factory.mktemp("pretrain"), "one-go", config)
    outcome = run_training(config, run_dir)
    assert outcome.steps == 512 and outcome.pretrain is not None and outcome.pretrain.episodes == 40
    return run_dir


def _same_pretraining(one_go: Path, run_dir: Path) -> None:
    assert _without_seconds(run_dir / PRETRAIN_FILE) == _without_seconds(one_go / PRETRAIN_FILE)
    assert _pretrain_scalars(run_dir) == _pretrain_scalars(one_go)
    a, b = latest_checkpoint(one_go / CHECKPOINTS), latest_checkpoint(run_dir / CHECKPOINTS)
    assert a is not None and b is not None and a.meta["pretrain"] == b.meta["pretrain"]


def test_a_run_killed_during_pretraining_restarts_it_and_ends_identical(
    tiny_config, tmp_path: Path, one_go: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tiny_config, *STEPS)
    run_dir = _new_run(tmp_path, "killed", config)
    monkeypatch.setenv(FAULT_ENV, "pretrain-epoch:2:raise")  # the process dies in the 2nd cloning epoch
    reset_fault_counters()
    with pytest.raises(InjectedFault):
        run_training(config, run_dir)
    assert not list_checkpoints(run_dir / CHECKPOINTS) and not (run_dir / PRETRAIN_FILE).exists()
    monkeypatch.delenv(FAULT_ENV)
    second = run_training(config, run_dir, resume=True)
    assert (second.status, second.resumed_from, second.steps) == (TrainStatus.COMPLETED, None, 512)
    assert_same_run(one_go, run_dir)
    _same_pretraining(one_go, run_dir)


def test_a_stop_during_pretraining_leaves_no_checkpoint_and_a_restart_is_identical(
    tiny_config, tmp_path: Path, one_go: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tiny_config, *STEPS)
    run_dir = _new_run(tmp_path, "stopped", config)
    monkeypatch.setenv(FAULT_ENV, "pretrain-epoch:1:term")
    reset_fault_counters()
    first = run_training(config, run_dir)
    assert (first.status, first.steps, first.checkpoint, first.signal) == (
        TrainStatus.INTERRUPTED,
        0,
        None,
        signal.SIGTERM,
    )
    assert not list_checkpoints(run_dir / CHECKPOINTS)
    monkeypatch.delenv(FAULT_ENV)
    run_training(config, run_dir, resume=True)
    assert_same_run(one_go, run_dir)
    _same_pretraining(one_go, run_dir)


def test_a_resume_after_pretraining_does_not_repeat_it_and_is_exact(
    tiny_config, tmp_path: Path, one_go: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tiny_config, *STEPS)
    run_dir = _new_run(tmp_path, "stopped", config)
    monkeypatch.setenv(FAULT_ENV, "rollout-end:3:term")
    reset_fault_counters()
    assert run_training(config, run_dir).steps == 192
    monkeypatch.delenv(FAULT_ENV)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pre-training ran again on resume")

    monkeypatch.setattr("modrl.agents.common.training.pretrain_policy", refuse)
    second = run_training(config, run_dir, resume=True)
    assert second.resumed_from == 192 and second.pretrain is not None and second.pretrain.episodes == 40
    assert_same_run(one_go, run_dir)
    _same_pretraining(one_go, run_dir)


def test_pretraining_only_run_checkpoints_the_cloned_policy_at_step_0(tiny_config, tmp_path: Path) -> None:
    config = _config(tiny_config, "train.total_timesteps=0")
    run_dir = _new_run(tmp_path, "bc-only", config)
    outcome = run_training(config, run_dir)
    assert (outcome.status, outcome.steps) == (TrainStatus.COMPLETED, 0)
    checkpoint = latest_checkpoint(run_dir / CHECKPOINTS)
    assert checkpoint is not None and checkpoint.step == 0 and checkpoint.meta["pretrain"]["episodes"] == 40
    model, venv = _model(config)
    pretrain_policy(model.policy, config, tmp_path / "again")
    venv.close()
    for key, tensor in model.policy.state_dict().items():
        assert torch.equal(tensor, checkpoint.tensors["policy"][key]), key


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (("pretrain.episodes=-1",), "pretrain.episodes"),
        (("pretrain.epochs=0",), "pretrain.epochs"),
        (("pretrain.learning_rate=0",), "pretrain.learning_rate"),
        (("pretrain.max_grad_norm=0",), "pretrain.max_grad_norm"),
        (("pretrain.nope=1",), "nope"),
        (("pretrain.episodes=0", "train.total_timesteps=0"), "train.total_timesteps"),
        (("env.suite=minigrid-tiny", "env.split=null", "env.mission_tokens=false"), "pretrain.episodes"),
    ],
)
def test_bad_pretrain_config_names_the_key(tiny_config, overrides: tuple[str, ...], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _config(tiny_config, *overrides)


def test_cli_refuses_pretraining_without_an_oracle_before_a_run_dir_exists(tmp_path: Path) -> None:
    out = modrl(  # the quick start's suite, minigrid-basic, is stock MiniGrid envs: no oracle
        "train", "quickstart", "--set", "pretrain.episodes=10", cwd=tmp_path
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modrl: error: pretrain.episodes:") and "no oracle" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_cli_stop_during_pretraining_then_resume_completes_with_frames_recorded(tmp_path: Path) -> None:
    config = write_config(tmp_path, total_timesteps=128, checkpoint_every=128, eval_episodes=0)
    sets = [arg for item in (*SPLIT, *PRETRAIN) for arg in ("--set", item)]
    run_dir = tmp_path / "run"
    out = subprocess.run(
        [*MODRL, "train", str(config), *sets, "--run-dir", str(run_dir)],
        cwd=tmp_path,
        env={**ENV, FAULT_ENV: "pretrain-epoch:2:term"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 128 + signal.SIGTERM, out.stderr
    assert "interrupted during oracle pre-training" in out.stdout
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "interrupted" and "checkpoint" not in meta and "frames" not in meta
    out = modrl("train", "--resume", run_dir, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    meta = json.loads((run_dir / "meta.json").read_text())
    demo_frames = json.loads((run_dir / PRETRAIN_FILE).read_text())["demo_frames"]
    assert meta["status"] == "completed" and meta["frames"] == {"rl": meta["step"], "demo": demo_frames}
    assert meta["step"] == 128 and demo_frames > 0


def test_runs_of_other_seeds_clone_other_demonstrations(tiny_config) -> None:
    """Seed 0's demonstrations are reset at ``DEMO_SEED_BASE + j``; another run seed gets its own disjoint block."""
    zero = collect_run_demos(_config(tiny_config))
    one = collect_run_demos(_config(tiny_config, "seed=1"))
    assert zero.seeds[0] == DEMO_SEED_BASE and one.seeds[0] == DEMO_SEED_BASE + SEEDS_PER_RUN
    assert not set(zero.seeds) & set(one.seeds)
    assert not np.array_equal(zero.observations["image"][:50], one.observations["image"][:50])
