"""Training into a run directory: TensorBoard telemetry read back, and a learning test on an easy suite."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from modrl.agents.common.evaluation import evaluate_policy, load_run_policy
from modrl.agents.common.training import METRICS, TENSORBOARD, TrainStatus, run_training
from modrl.config import to_dict
from modrl.runs import write_run_metadata

#: Full-size agent and PPO settings that solve the tiny suite's empty rooms in ~16k frames (4 of 4 seeds measured).
LEARNING = (
    "agent.extractor.channels=[16, 32]",
    "agent.extractor.features_dim=64",
    "agent.extractor.embed_dim=8",
    "agent.modules.hidden=[64]",
    "agent.latent_dim=64",
    "agent.critic_hidden=[64]",
    "env.n_envs=4",
    "algo.n_steps=128",
    "algo.batch_size=128",
    "algo.n_epochs=4",
    "algo.learning_rate=0.001",
)


def _events(tb_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(
        str(tb_dir), size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0}
    )
    accumulator.Reload()
    return accumulator


def _scalars(events: EventAccumulator, tag: str) -> np.ndarray:
    return np.array([e.value for e in events.Scalars(tag)])


def test_training_writes_module_telemetry(tiny_config, tmp_path: Path) -> None:
    config = tiny_config("agent.router.kind=topk", "agent.router.k=2", "train.total_timesteps=384")
    outcome = run_training(config, tmp_path)
    assert outcome.status is TrainStatus.COMPLETED and outcome.steps == 384
    events = _events(tmp_path / TENSORBOARD)
    tags = events.Tags()
    modules = [f"skill_{i}" for i in range(3)]
    for name in modules:
        assert f"modrl/module/{name}/usage" in tags["scalars"]
        assert f"modrl/module/{name}/mean_weight" in tags["scalars"]
        assert f"modrl/routing/weights/{name}" in tags["histograms"]
    usage = np.stack([_scalars(events, f"modrl/module/{m}/usage") for m in modules])
    weight = np.stack([_scalars(events, f"modrl/module/{m}/mean_weight") for m in modules])
    assert usage.shape[1] == 384 // 64  # one point per rollout (2 envs x 32 steps)
    np.testing.assert_allclose(usage.sum(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(weight.sum(0), 1.0, atol=1e-5)
    entropy = _scalars(events, "modrl/router/entropy")
    assert np.all(entropy >= 0) and np.all(entropy <= np.log(2) + 1e-5)  # top-2 of 3: at most 2 non-zero weights
    balance = _scalars(events, "modrl/router/load_balance")
    assert np.all((balance >= 0) & (balance <= 1))
    assert np.all(_scalars(events, "modrl/router/aux_loss") > 0)  # the load-balancing loss is live
    assert "modrl/routing/task_module_heatmap" in tags["images"]
    assert "modrl/routing/weights" in tags["histograms"]
    trainable = _scalars(events, "modrl/params/trainable")
    assert np.all(trainable > 0) and np.all(_scalars(events, "modrl/params/frozen") == 0)
    success_tags = [t for t in tags["scalars"] if t.startswith("modrl/success/")]
    assert "modrl/success/mean" in success_tags
    for tag in success_tags:
        values = _scalars(events, tag)
        assert np.all((values >= 0) & (values <= 1))
    for sb3_tag in ("rollout/ep_rew_mean", "train/loss", "time/fps"):
        assert sb3_tag in tags["scalars"], sb3_tag
    lines = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(64, 385, 64))
    assert set(lines[-1]) == {"step", "wall_s", "fps", "success", "success_mean", "return_mean"}
    assert all(r["fps"] > 0 for r in lines)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [("agent.router.kind=topk",), ("agent.kind=monolithic",)], ids=str)
def test_agent_solves_empty_rooms(tiny_config, tmp_path: Path, overrides: tuple[str, ...]) -> None:
    """A full-size agent learns the two 5x5 empty rooms: deterministic success >= 0.9 on held-out seeds. (The default
    agent: :func:`test_resumed_training_keeps_counting_and_keeps_learning`, the same budget with a resume halfway.)"""
    config = tiny_config(*LEARNING, "train.total_timesteps=16000", "train.checkpoint_every=100000", *overrides)
    write_run_metadata(tmp_path, config=to_dict(config), seed=config.seed, argv=["pytest"])
    assert run_training(config, tmp_path).status is TrainStatus.COMPLETED
    config, policy, checkpoint = load_run_policy(tmp_path)
    report = evaluate_policy(policy, config, episodes=30, step=checkpoint.step)
    for task in report.tasks:
        assert task.success_rate >= 0.9, report
        assert task.mean_return >= 0.8, report


@pytest.mark.slow
def test_resumed_training_keeps_counting_and_keeps_learning(tiny_config, tmp_path: Path) -> None:
    """Half the budget, then resume to the full budget: the steps add up and the default agent ends up solving the
    task (success >= 0.9 and return >= 0.8 on held-out seeds, as the other agents in
    :func:`test_agent_solves_empty_rooms`)."""
    first = tiny_config(*LEARNING, "train.checkpoint_every=2048", "train.total_timesteps=8192")
    write_run_metadata(tmp_path, config=to_dict(first), seed=first.seed, argv=["pytest"])
    assert run_training(first, tmp_path).steps == 8192
    second = tiny_config(*LEARNING, "train.checkpoint_every=2048", "train.total_timesteps=16384")
    outcome = run_training(second, tmp_path, resume=True)
    assert outcome.resumed_from == 8192 and outcome.steps == 16384
    config, policy, checkpoint = load_run_policy(tmp_path)
    assert checkpoint.step == 16384
    report = evaluate_policy(policy, config, episodes=30, step=checkpoint.step)
    assert all(task.success_rate >= 0.9 and task.mean_return >= 0.8 for task in report.tasks), report
    rollouts = _scalars(_events(tmp_path / TENSORBOARD), "modrl/success/mean")
    assert len(rollouts) == 16384 // 512  # one point per rollout, none duplicated across the resume
    lines = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(512, 16385, 512))
    assert all(b["wall_s"] > a["wall_s"] for a, b in itertools.pairwise(lines))
    assert lines[-1]["success_mean"] > lines[0]["success_mean"]  # the training curve went up


def test_truncate_metrics_drops_lines_after_the_checkpoint_and_torn_lines(tmp_path: Path) -> None:
    from modrl.agents.common.callbacks import truncate_metrics

    path = tmp_path / METRICS
    path.write_text('{"step": 64}\n{"step": 128}\n{"step": 192}\n{"step": 2')
    truncate_metrics(path, 128)
    assert path.read_text() == '{"step": 64}\n{"step": 128}\n'
    path.write_text('{"step": 64}\n{"st')
    truncate_metrics(path, 1000)
    assert path.read_text() == '{"step": 64}\n'


def test_training_on_a_split_only_meets_that_splits_tasks(
    tiny_config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """env.split=train: every env slot samples train tasks per episode; test tasks appear only in evaluation."""
    from modrl.envs import get_suite

    config = tiny_config("env.suite=colour-type", "env.split=train", "train.total_timesteps=256")
    write_run_metadata(tmp_path, config=to_dict(config), seed=config.seed, argv=["pytest"])
    assert run_training(config, tmp_path).status is TrainStatus.COMPLETED
    suite = get_suite("colour-type")
    seen = {task for line in (tmp_path / METRICS).read_text().splitlines() for task in json.loads(line)["success"]}
    assert seen, "no episode finished in 256 steps"
    assert seen <= set(suite.splits["train"]), seen - set(suite.splits["train"])
    config, policy, checkpoint = load_run_policy(tmp_path)
    with caplog.at_level("INFO", logger="modrl.progress"):
        report = evaluate_policy(policy, config, episodes=1, step=checkpoint.step, splits=["test"])
    progress = [r.getMessage() for r in caplog.records if r.name == "modrl.progress"]  # one line per task, with ETA
    assert len(progress) == 12 and progress[0].startswith(f"[eval] task 1/12 {suite.splits['test'][0]} (test): ")
    assert "over 1 episodes" in progress[0] and progress[-1].endswith("eta 0s")
    assert [t.task for t in report.tasks] == list(suite.splits["test"])
    assert {t.split for t in report.tasks} == {"test"}
    both = evaluate_policy(policy, config, episodes=1, step=checkpoint.step)
    assert [t.split for t in both.tasks] == ["train"] * 36 + ["test"] * 12
    with pytest.raises(ValueError, match="no split 'validation'"):
        evaluate_policy(policy, config, episodes=1, splits=["validation"])


def test_progress_line_summarises_many_tasks() -> None:
    from modrl.agents.common.callbacks import MAX_TASKS_LISTED, _success_summary

    few = {"a": 0.5, "b": 1.0}
    assert _success_summary(few) == "a 0.50 b 1.00"
    many = {f"t{i}": i / 10 for i in range(MAX_TASKS_LISTED + 2)}
    assert _success_summary(many) == "mean 0.45 over 10 tasks (worst t0 0.00, best t9 0.90)"


def test_progress_lines_say_when_whole_rollouts_pass_the_budget_and_never_repeat(
    tiny_config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_config("train.total_timesteps=100")  # rollouts of 2 envs x 32 steps: 128 steps are trained
    write_run_metadata(tmp_path, config=to_dict(config), seed=config.seed, argv=["pytest"])
    with caplog.at_level("INFO", logger="modrl.progress"):
        assert run_training(config, tmp_path).steps == 128
    lines = [r.getMessage() for r in caplog.records if r.name == "modrl.progress"]
    assert lines and lines[-1].startswith("[100.0%] step 128/100 |")
    assert lines[-1].endswith("| 28 steps past the budget (whole rollouts)")
    assert len(lines) == len(set(lines)), lines  # the last line is not printed twice


def test_stop_success_ends_training_at_the_threshold_and_resume_stays_stopped(tiny_config, tmp_path: Path) -> None:
    config = tiny_config(*LEARNING, "train.total_timesteps=16384", "train.stop_success=0.5")
    write_run_metadata(tmp_path, config=to_dict(config), seed=config.seed, argv=["pytest"])
    outcome = run_training(config, tmp_path)
    assert outcome.status is TrainStatus.COMPLETED and outcome.steps < 16384
    lines = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert lines[-1]["step"] == outcome.steps and lines[-1]["success_mean"] >= 0.5
    assert all(r["success_mean"] is None or r["success_mean"] < 1.0 for r in lines[:1])  # it did have to learn
    _, _, checkpoint = load_run_policy(tmp_path)
    assert checkpoint.step == outcome.steps
    again = run_training(config, tmp_path, resume=True)  # already reached: nothing more is trained
    assert again.resumed_from == outcome.steps and again.steps == outcome.steps


def test_success_stop_needs_episodes_of_every_task_and_the_mean() -> None:
    from modrl.agents.common.callbacks import EpisodeStatsCallback, StopRequest, SuccessStopCallback

    episodes = EpisodeStatsCallback(["a", "b"])
    stop = StopRequest()
    callback = SuccessStopCallback(episodes, 0.75, stop, min_episodes=4)
    episodes.successes[0].extend([1.0] * 10)
    episodes.successes[1].extend([1.0] * 3)
    assert not callback.reached()  # task b has 3 < 4 episodes
    episodes.successes[1].append(0.0)
    assert callback.reached()  # mean of 1.0 and 0.75
    episodes.successes[1].extend([0.0] * 4)
    assert not callback.reached()  # b: 3/8; mean 0.6875
    callback._check()
    assert callback.reached_at is None and not stop.goal_reached


def test_a_resumed_segment_waits_for_a_later_second_than_earlier_event_files(tmp_path: Path) -> None:
    import time

    from modrl.agents.common.training import _after_earlier_event_files

    now = int(time.time())
    (tmp_path / f"events.out.tfevents.{now}.host.123.9").write_bytes(b"")
    _after_earlier_event_files(tmp_path)
    assert int(time.time()) > now  # this segment's files now sort after the earlier ones
    start = time.monotonic()
    _after_earlier_event_files(tmp_path)  # the earlier files' second has passed: no wait
    _after_earlier_event_files(tmp_path / "missing")  # no earlier files: no wait
    assert time.monotonic() - start < 0.5
