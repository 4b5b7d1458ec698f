"""``train.eval_every``: every split evaluated during training, changing nothing in training, resumed exactly."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from modrl.agents.common.periodic_eval import EVAL_CURVE
from modrl.agents.common.training import CHECKPOINTS, TrainStatus, run_training
from modrl.checkpoint import latest_checkpoint
from modrl.config import ConfigError
from modrl.faults import FAULT_ENV, reset_fault_counters
from tests.test_exact_resume import _new_run, _scalars

#: A split suite (train and held-out test tasks); rollouts of 2 envs x 32 steps = 64 frames; evaluation every 128.
SPLIT = ("env.suite=colour-type", "env.split=train", "env.mission_tokens=true", "agent.router_input=mission")
STEPS = ("train.total_timesteps=384", "train.checkpoint_every=128", "train.eval_episodes=0")
EVAL = ("train.eval_every=128", "train.eval_every_episodes=1", "train.eval_every_stochastic=true")


def _curve(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / EVAL_CURVE).read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "wall_s"} for row in rows]


@pytest.fixture(scope="module")
def with_eval(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modrl.agents.common.config import load_experiment_config
    from tests.conftest import TINY

    config = load_experiment_config(TINY, (*SPLIT, *STEPS, *EVAL))
    run_dir = _new_run(tmp_path_factory.mktemp("periodic-eval"), "one-go", config)
    assert run_training(config, run_dir).steps == 384
    return run_dir


def test_every_split_is_evaluated_at_each_multiple_and_logged(with_eval: Path) -> None:
    curve = _curve(with_eval)
    assert [row["step"] for row in curve] == [128, 256, 384]
    for row in curve:
        assert row["deterministic"] is False and row["episodes"] == 1
        assert sorted(row["splits"]) == ["test", "train"]
        assert len(row["tasks"]) == 48  # colour-type: 36 train + 12 held-out tasks
        assert "pickup-green-box" in row["tasks"]  # a held-out pair, evaluated though never trained
        for values in row["splits"].values():
            assert 0.0 <= values["success"] <= 1.0
    scalars = _scalars(with_eval)
    assert [step for step, _ in scalars["eval/success_test"]] == [128, 256, 384]
    assert [value for _, value in scalars["eval/success_train"]] == pytest.approx(
        [row["splits"]["train"]["success"] for row in curve]
    )


def test_evaluating_during_training_changes_nothing_in_training(tiny_config, tmp_path: Path, with_eval: Path) -> None:
    config = tiny_config(*SPLIT, *STEPS)
    run_dir = _new_run(tmp_path, "no-eval", config)
    run_training(config, run_dir)
    assert not (run_dir / EVAL_CURVE).exists()
    a, b = latest_checkpoint(with_eval / CHECKPOINTS), latest_checkpoint(run_dir / CHECKPOINTS)
    assert a is not None and b is not None and a.step == b.step == 384
    for group in ("policy", "optimizer", "rng"):
        for key, tensor in a.tensors[group].items():
            assert torch.equal(tensor, b.tensors[group][key]), f"{group}.{key} differs"


def test_a_killed_run_resumes_to_the_same_curve(
    tiny_config, tmp_path: Path, with_eval: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(*SPLIT, *STEPS, *EVAL)
    run_dir = _new_run(tmp_path, "stopped", config)
    monkeypatch.setenv(FAULT_ENV, "rollout-end:3:term")  # SIGTERM at the end of the 3rd rollout (step 192)
    reset_fault_counters()
    first = run_training(config, run_dir)
    assert (first.status, first.steps, first.signal) == (TrainStatus.INTERRUPTED, 192, signal.SIGTERM)
    monkeypatch.delenv(FAULT_ENV)
    # What a segment killed after its checkpoint would have left: a line past it, then a torn one.
    with (run_dir / EVAL_CURVE).open("a") as f:
        f.write(json.dumps({"step": 256, "splits": {}}) + '\n{"step": 3')
    second = run_training(config, run_dir, resume=True)
    assert (second.status, second.resumed_from) == (TrainStatus.COMPLETED, 192)
    assert _curve(run_dir) == _curve(with_eval)


@pytest.mark.parametrize(
    ("override", "field"),
    [("train.eval_every=-1", "eval_every"), ("train.eval_every_episodes=0", "eval_every_episodes")],
)
def test_bad_settings_name_the_key(tiny_config, override: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        tiny_config(override)


def test_the_report_draws_the_curve_of_a_real_run(with_eval: Path, tmp_path: Path) -> None:
    import shutil

    from modrl.report import build_report
    from modrl.runs import RunStatus, set_status

    run_dir = shutil.copytree(with_eval, tmp_path / "run")  # the fixture is shared: mark a copy completed, as the CLI
    set_status(run_dir, RunStatus.COMPLETED)
    md = build_report(run_dir, out_dir=tmp_path).read_text()
    assert "## Evaluation during training" in md
    assert (tmp_path / "eval_curve_test.png").is_file() and (tmp_path / "eval_curve_train.png").is_file()
