"""Routing statistics checked by hand, and TensorBoard events (scalars, the labelled figure, layout, config, hparams)
read back with EventAccumulator."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing import event_accumulator as ea
from torch.utils.tensorboard import SummaryWriter

from modrl.telemetry import RoutingStats, RoutingSummary, TelemetryWriter

MODULES = ("a", "b", "c")
TASKS = ("t0", "t1", "t2")
# Row 2 is not normalised (sum 2): RoutingStats normalises it to (0, 0, 1). Row 1 ties: argmax takes module a.
WEIGHTS = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 2.0], [0.25, 0.25, 0.5]])
TASK_IDS = torch.tensor([0, 0, 1, 1])


def _entropy(p: list[float]) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


def _stats(histogram_rows: int = 4096) -> RoutingStats:
    stats = RoutingStats(MODULES, TASKS, histogram_rows=histogram_rows)
    stats.update(WEIGHTS, TASK_IDS)
    return stats


def test_routing_stats_hand_checked() -> None:
    summary = _stats().summary()
    assert summary is not None
    assert summary.module_names == MODULES and summary.task_names == TASKS and summary.count == 4
    np.testing.assert_allclose(summary.usage, [0.5, 0.0, 0.5])
    np.testing.assert_allclose(summary.mean_weight, [1.75 / 4, 0.75 / 4, 1.5 / 4])
    assert summary.entropy == pytest.approx((0 + math.log(2) + 0 + 1.5 * math.log(2)) / 4)
    assert summary.load_balance == pytest.approx(_entropy([1.75 / 4, 0.75 / 4, 1.5 / 4]) / math.log(3))
    np.testing.assert_allclose(summary.task_usage, [[0.75, 0.25, 0.0], [0.125, 0.125, 0.75], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(summary.task_counts, [2, 2, 0])


def test_routing_stats_accumulate_across_updates_and_dtypes() -> None:
    stats = RoutingStats(MODULES, TASKS)
    stats.update(WEIGHTS[:1].to(torch.float16), TASK_IDS[:1].to(torch.int32))
    stats.update(WEIGHTS[1:].requires_grad_(), TASK_IDS[1:])
    one, two = _stats().summary(), stats.summary()
    assert one is not None and two is not None
    for field in ("usage", "mean_weight", "task_usage", "task_counts"):
        np.testing.assert_allclose(getattr(two, field), getattr(one, field))
    assert two.entropy == pytest.approx(one.entropy) and two.count == 4


def test_load_balance_extremes() -> None:
    collapsed = RoutingStats(MODULES, TASKS)
    collapsed.update(torch.tensor([[0.0, 1.0, 0.0]] * 5), torch.zeros(5, dtype=torch.long))
    balanced = RoutingStats(MODULES, TASKS)
    balanced.update(torch.full((4, 3), 1 / 3), torch.tensor([0, 1, 2, 0]))
    c, b = collapsed.summary(), balanced.summary()
    assert c is not None and b is not None
    assert c.load_balance == pytest.approx(0.0) and c.entropy == pytest.approx(0.0)
    np.testing.assert_allclose(c.usage, [0, 1, 0])
    assert b.load_balance == pytest.approx(1.0) and b.entropy == pytest.approx(math.log(3))
    single = RoutingStats(["only"], ["t"])
    single.update(torch.ones(2, 1), torch.zeros(2, dtype=torch.long))
    assert single.summary().load_balance == 1.0  # type: ignore[union-attr]


def test_weights_sample_keeps_most_recent_rows_in_order() -> None:
    stats = _stats(histogram_rows=3)
    np.testing.assert_allclose(stats.weights_sample(), [[0.5, 0.5, 0], [0, 0, 1], [0.25, 0.25, 0.5]])
    stats.update(torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), torch.tensor([2, 2]))
    np.testing.assert_allclose(stats.weights_sample(), [[0.25, 0.25, 0.5], [0, 1, 0], [0, 0, 1]])
    small = _stats(histogram_rows=8)
    assert small.weights_sample().shape == (4, 3)


def test_reset_and_empty_state() -> None:
    stats = _stats()
    stats.reset()
    assert stats.summary() is None and stats.count == 0
    assert stats.weights_sample().shape == (0, 3)
    stats.update(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([2]))
    summary = stats.summary()
    assert summary is not None and summary.count == 1
    np.testing.assert_allclose(summary.usage, [0, 0, 1])


def test_routing_stats_reject_bad_input() -> None:
    stats = RoutingStats(MODULES, TASKS)
    with pytest.raises(ValueError, match=r"shape \(B, 3\)"):
        stats.update(torch.ones(2, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="task_ids must have shape"):
        stats.update(torch.ones(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        stats.update(torch.ones(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="non-negative"):
        stats.update(torch.tensor([[1.0, -0.5, 0.5]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="finite"):
        stats.update(torch.tensor([[float("nan"), 0.5, 0.5]]), torch.tensor([0]))
    assert stats.summary() is None
    with pytest.raises(ValueError, match="module_names"):
        RoutingStats(["a", "a"], TASKS)


def _read(logdir: Path) -> ea.EventAccumulator:
    acc = ea.EventAccumulator(str(logdir), size_guidance=dict.fromkeys(ea.DEFAULT_SIZE_GUIDANCE, 0))
    acc.Reload()
    return acc


def test_writer_events_read_back(tmp_path: Path) -> None:
    stats = _stats()
    summary = stats.summary()
    assert summary is not None
    with TelemetryWriter(tmp_path) as writer:
        writer.log_routing(summary, 100, stats.weights_sample())
        writer.log_success({"t0": 1.0, "t1": 0.5}, 100)
        writer.log_param_counts(trainable=1234, frozen=56, step=100)
        writer.log_scalar("modrl/custom", 2.5, 7)
        writer.log_text("modrl/plan", "go to key, open door", 3)
    acc = _read(tmp_path)
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    expected = {
        "modrl/router/entropy": summary.entropy,
        "modrl/router/load_balance": summary.load_balance,
        "modrl/success/t0": 1.0,
        "modrl/success/t1": 0.5,
        "modrl/success/mean": 0.75,
        "modrl/params/trainable": 1234.0,
        "modrl/params/frozen": 56.0,
    }
    for i, name in enumerate(MODULES):
        expected[f"modrl/module/{name}/usage"] = summary.usage[i]
        expected[f"modrl/module/{name}/mean_weight"] = summary.mean_weight[i]
    for tag, value in expected.items():
        assert len(scalars[tag]) == 1 and scalars[tag][0][0] == 100
        assert scalars[tag][0][1] == pytest.approx(value, rel=1e-6)
    assert scalars["modrl/custom"] == [(7, 2.5)]
    # Per task seen (t2 never was), its mean weight on each module: rows 0-1 for t0, rows 2-3 (row 2 normalised) t1.
    per_task = {"t0": (0.75, 0.25, 0.0), "t1": (0.125, 0.125, 0.75)}
    for task, weights in per_task.items():
        for name, value in zip(MODULES, weights, strict=True):
            assert scalars[f"modrl/task/{task}/weight/{name}"] == [(100, pytest.approx(value))]
    assert not any(tag.startswith("modrl/task/t2/") for tag in scalars)
    from modrl.routing_health import routing_health

    health = routing_health(summary.task_usage, summary.task_counts)
    assert scalars["modrl/router/task_mi"] == [(100, pytest.approx(health.normalised_mi))]
    assert scalars["modrl/task/t1/top_weight"] == [(100, pytest.approx(0.75))]
    assert scalars["modrl/router/specialised"] == [(100, float(health.specialised))]
    # The labelled matplotlib figure (names, values, colour bar), not a bare 3x3 block of colours.
    (image,) = acc.Images("modrl/routing/task_module_heatmap")
    assert image.step == 100 and image.height > 150 and image.width > 200
    histograms = {tag: acc.Histograms(tag) for tag in acc.Tags()["histograms"]}
    assert set(histograms) == {"modrl/routing/weights", *(f"modrl/routing/weights/{m}" for m in MODULES)}
    assert histograms["modrl/routing/weights"][0].histogram_value.num == 12
    column_c = histograms["modrl/routing/weights/c"][0].histogram_value
    assert (column_c.num, column_c.min, column_c.max) == (4, 0.0, 1.0)
    (text,) = acc.Tensors("modrl/plan/text_summary")
    assert text.step == 3 and text.tensor_proto.string_val[0] == b"go to key, open door"


def test_figure_throttle_layout_config_and_hparams(tmp_path: Path) -> None:
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.plugins.custom_scalar import metadata as custom_scalars
    from tensorboard.plugins.hparams import plugin_data_pb2

    summary = _stats().summary()
    assert summary is not None
    with TelemetryWriter(tmp_path, figure_every_s=3600.0) as writer:
        for step in (10, 20, 30):
            writer.log_routing(summary, step, figure=step == 30)  # 20: too soon after 10; 30: asked for
        writer.log_config({"seed": 3, "agent": {"kind": "modular"}})
        writer.log_hparams({"seed": 3, "agent.kind": "modular", "agent.modules.hidden": (64,)}, {"hparam/x": 0.5}, 30)
    acc = _read(tmp_path)
    assert [image.step for image in acc.Images("modrl/routing/task_module_heatmap")] == [10, 30]
    assert len(acc.Scalars("modrl/task/t0/weight/a")) == 3
    (layout,) = acc.Tensors(custom_scalars.CONFIG_SUMMARY_TAG)  # written once: one chart per task
    charts = layout_pb2.Layout.FromString(layout.tensor_proto.string_val[0]).category[0].chart
    assert [c.title for c in charts] == list(TASKS)
    assert list(charts[0].multiline.tag) == ["^modrl/task/t0/weight/"]
    (config,) = acc.Tensors("modrl/config/text_summary")
    assert b"seed: 3" in config.tensor_proto.string_val[0] and b"kind: modular" in config.tensor_proto.string_val[0]
    assert acc.Scalars("hparam/x")[0].value == 0.5  # in this run, not in a sub-directory
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []
    content = acc.PluginTagToContent("hparams")
    info = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert info.session_start_info.hparams["agent.modules.hidden"].string_value == "(64,)"


def test_per_task_scalars_only_when_asked(tmp_path: Path) -> None:
    summary = _stats().summary()
    assert summary is not None
    with TelemetryWriter(tmp_path) as writer:
        for step in (10, 20, 30):
            writer.log_routing(summary, step, per_task=step != 20)
    acc = _read(tmp_path)
    assert [e.step for e in acc.Scalars("modrl/task/t0/weight/a")] == [10, 30]
    assert [e.step for e in acc.Scalars("modrl/task/t1/top_weight")] == [10, 30]
    assert [e.step for e in acc.Scalars("modrl/router/entropy")] == [10, 20, 30]  # the rest on every call


def test_per_task_cadence_depends_on_the_step_alone() -> None:
    from types import SimpleNamespace

    from modrl.agents.common.callbacks import EpisodeStatsCallback, TelemetryCallback

    callback = TelemetryCallback(
        TelemetryWriter.__new__(TelemetryWriter), EpisodeStatsCallback(TASKS), total_timesteps=5120, task_every=2000
    )
    callback.model = SimpleNamespace(n_steps=128, n_envs=4)  # 512 frames per rollout
    due = [step for step in range(512, 5121, 512) if callback._per_task_due(step)]
    assert due == [512, 2048, 4096, 5120]  # first rollout, crossing 2000 and 4000, last
    with pytest.raises(ValueError, match="task_every"):
        TelemetryCallback(
            TelemetryWriter.__new__(TelemetryWriter), EpisodeStatsCallback(TASKS), total_timesteps=1, task_every=0
        )


def test_purge_step_hides_steps_of_the_interrupted_run(tmp_path: Path) -> None:
    with TelemetryWriter(tmp_path) as first:
        for step in range(6):
            first.log_scalar("modrl/x", float(step), step)
    # Event files are read in name order, "events.out.tfevents.<second>.<host>.<pid>.<writer count in the process>":
    # within one second the count decides, and it sorts as text (writer 10 before writer 9), so after enough earlier
    # writers in this process (files in random order) the resumed file was read first. A resumed run is a later
    # process, in a later second: so is this one.
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    with TelemetryWriter(tmp_path, purge_step=4) as resumed:
        for step in range(4, 6):
            resumed.log_scalar("modrl/x", 10.0 + step, step)
    values = [(e.step, e.value) for e in _read(tmp_path).Scalars("modrl/x")]
    assert values == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0), (4, 14.0), (5, 15.0)]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "modrl.telemetry" and r.levelno == logging.WARNING]


def _use_everything(writer: TelemetryWriter) -> None:
    summary = _stats().summary()
    assert isinstance(summary, RoutingSummary)
    writer.log_scalar("modrl/x", 1.0, 0)
    writer.log_routing(summary, 1, np.ones((2, 3)) / 3)
    writer.log_success({"t0": 1.0}, 1)
    writer.log_param_counts(trainable=1, frozen=0, step=1)
    writer.log_text("modrl/t", "x", 1)
    writer.flush()
    writer.close()


def test_write_failure_warns_once_and_disables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    writer = TelemetryWriter(tmp_path)
    assert writer.enabled
    monkeypatch.setattr(SummaryWriter, "add_scalar", broken)
    with caplog.at_level(logging.WARNING, logger="modrl.telemetry"):
        _use_everything(writer)
    (record,) = _warnings(caplog)
    assert "No space left on device" in record.getMessage() and str(tmp_path) in record.getMessage()
    assert not writer.enabled


def test_unwritable_logdir_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the log directory should go")
    with caplog.at_level(logging.WARNING, logger="modrl.telemetry"):
        writer = TelemetryWriter(blocker / "tb")
        _use_everything(writer)
    assert len(_warnings(caplog)) == 1 and not writer.enabled

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    caplog.clear()
    monkeypatch.setattr(SummaryWriter, "__init__", refuse)
    with caplog.at_level(logging.WARNING, logger="modrl.telemetry"):
        _use_everything(TelemetryWriter(tmp_path / "other"))
    assert len(_warnings(caplog)) == 1


def test_other_errors_still_raise(tmp_path: Path) -> None:
    summary = _stats().summary()
    assert summary is not None
    with TelemetryWriter(tmp_path) as writer, pytest.raises(ValueError, match=r"\(N, 3\)"):
        writer.log_routing(summary, 0, np.ones((2, 4)))


def test_heatmap_figure_draws_unseen_tasks_blank_not_as_zero_weights() -> None:
    """A task with no routing decision in the window (held out, or not drawn) is labelled "(not seen)" and its cells
    hold no value, so it cannot be read as a task that gives every module weight 0."""
    from modrl.report.plots import module_usage_figure

    matrix = np.array([[0.7, 0.3], [0.0, 0.0]])
    fig = module_usage_figure(matrix, ["seen", "held-out"], ["m0", "m1"], seen=[True, False])
    (ax,) = [a for a in fig.axes if a.get_ylabel() == "task"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["seen", "held-out (not seen)"]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert cells == {(0, 0): "0.70", (0, 1): "0.30", (1, 0): "-", (1, 1): "-"}
    assert np.isnan(ax.images[0].get_array().filled(np.nan)[1]).all()
    with pytest.raises(ValueError, match="seen has 1 entries for 2 tasks"):
        module_usage_figure(matrix, ["seen", "held-out"], ["m0", "m1"], seen=[True])
