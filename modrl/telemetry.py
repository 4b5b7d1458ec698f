"""Routing telemetry: cheap running statistics of router weights and a fail-safe TensorBoard writer.

:class:`RoutingStats` accumulates, with a few vectorised torch ops per call, how a router spreads its weight over
modules: per-module usage (how often a module gets the largest weight), mean weight, per-decision entropy, load
balance (collapse onto one module shows up here first) and a task x module matrix. :class:`TelemetryWriter` writes
those summaries, success rates and parameter counts to TensorBoard under ``modrl/...`` tags; if the disk fails it
logs one warning and turns itself off, because training must never die for want of a log file.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import torch

from modrl.config import check
from modrl.routing_health import routing_health

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, eq=False)
class RoutingSummary:
    """Routing statistics over all decisions since the last reset (K modules, T tasks).

    Attributes:
        module_names: The K module names, in weight-column order.
        task_names: The T task names, in task-id order.
        usage: ``(K,) float64``, fraction of decisions in which the module had the largest weight (ties go to the
            lowest index); sums to 1.
        mean_weight: ``(K,) float64``, mean (row-normalised) routing weight; sums to 1.
        entropy: Mean per-decision entropy of the weights, in nats (0 = hard routing, log K = uniform).
        load_balance: Entropy of ``mean_weight`` divided by log K, in [0, 1]: 1 = balanced, 0 = collapsed on one
            module (1 when K = 1).
        task_usage: ``(T, K) float64``, mean routing weight per task; rows of tasks never seen are 0 (the heatmap
            figure draws them blank, "not seen").
        task_counts: ``(T,) int64``, decisions per task.
        count: Total number of decisions.
    """

    module_names: tuple[str, ...]
    task_names: tuple[str, ...]
    usage: np.ndarray
    mean_weight: np.ndarray
    entropy: float
    load_balance: float
    task_usage: np.ndarray
    task_counts: np.ndarray
    count: int


def _unique_names(names: Sequence[str], field: str) -> tuple[str, ...]:
    out = tuple(names)
    check(len(out) > 0, field, "needs at least one name")
    check(all(isinstance(n, str) and n for n in out), field, "names must be non-empty strings")
    check(len(set(out)) == len(out), field, f"names must be unique, got {list(out)}")
    return out


class RoutingStats:
    """Running routing statistics, cheap enough to update on every env step.

    Accumulators live on the CPU in float64; an update is a handful of vectorised ops on a ``(B, K)`` batch (one
    device-to-host copy, no Python loop over the batch). Each weight row is normalised to sum to 1 (soft, hard
    one-hot and top-k routers all qualify); rows must be finite and non-negative with a positive sum.

    Args:
        module_names: K module names (weight-column order).
        task_names: T task names (task-id order).
        histogram_rows: How many of the most recent weight rows :meth:`weights_sample` keeps (a ring buffer).
    """

    def __init__(self, module_names: Sequence[str], task_names: Sequence[str], *, histogram_rows: int = 4096) -> None:
        self.module_names = _unique_names(module_names, "module_names")
        self.task_names = _unique_names(task_names, "task_names")
        check(
            isinstance(histogram_rows, int) and histogram_rows >= 1,
            "histogram_rows",
            f"must be an integer >= 1, got {histogram_rows!r}",
        )
        self.histogram_rows = histogram_rows
        k, t = len(self.module_names), len(self.task_names)
        self._argmax_counts = torch.zeros(k, dtype=torch.float64)
        self._weight_sum = torch.zeros(k, dtype=torch.float64)
        self._entropy_sum = torch.zeros((), dtype=torch.float64)
        self._task_weight_sum = torch.zeros(t, k, dtype=torch.float64)
        self._task_counts = torch.zeros(t, dtype=torch.int64)
        self._hist = torch.zeros(histogram_rows, k, dtype=torch.float32)
        self._rows_seen = 0  # total rows ever offered to the ring buffer since the last reset

    @property
    def count(self) -> int:
        """Decisions seen since the last reset."""
        return int(self._task_counts.sum())

    def update(self, weights: torch.Tensor, task_ids: torch.Tensor) -> None:
        """Add a batch of routing decisions.

        Args:
            weights: ``(B, K)`` routing weights (any float dtype and device; detached here).
            task_ids: ``(B,)`` integer task ids in ``[0, T)``.

        Raises:
            ValueError: Wrong shapes, task ids out of range, or weights that are not finite, non-negative rows with a
                positive sum.
        """
        k, t = len(self.module_names), len(self.task_names)
        if weights.dim() != 2 or weights.shape[1] != k:
            raise ValueError(f"weights must have shape (B, {k}), got {tuple(weights.shape)}")
        if task_ids.shape != (weights.shape[0],):
            raise ValueError(f"task_ids must have shape ({weights.shape[0]},), got {tuple(task_ids.shape)}")
        if weights.shape[0] == 0:
            return
        w = weights.detach().to("cpu", torch.float64)
        ids = task_ids.detach().to("cpu", torch.int64)
        total = w.sum(dim=1, keepdim=True)
        if bool((~torch.isfinite(w)).any() | (w < 0).any() | (total <= 0).any()):
            raise ValueError("routing weights must be finite and non-negative, with a positive sum in every row")
        if bool((ids < 0).any() | (ids >= t).any()):
            raise ValueError(f"task_ids must lie in [0, {t}), got min {int(ids.min())} max {int(ids.max())}")
        w = w / total
        self._argmax_counts += torch.bincount(w.argmax(dim=1), minlength=k).to(torch.float64)
        self._weight_sum += w.sum(dim=0)
        self._entropy_sum += torch.special.entr(w).sum()
        self._task_weight_sum.index_add_(0, ids, w)
        self._task_counts += torch.bincount(ids, minlength=t)
        self._push_histogram(w)

    def _push_histogram(self, w: torch.Tensor) -> None:
        batch = w.shape[0]
        keep = w[-self.histogram_rows :]
        start = self._rows_seen + batch - keep.shape[0]
        index = (start + torch.arange(keep.shape[0])) % self.histogram_rows
        self._hist[index] = keep.to(torch.float32)
        self._rows_seen += batch

    def summary(self) -> RoutingSummary | None:
        """Statistics over every decision since the last reset; ``None`` before the first update."""
        count = self.count
        if count == 0:
            return None
        k = len(self.module_names)
        mean_weight = self._weight_sum / count
        balance = float(torch.special.entr(mean_weight).sum()) / math.log(k) if k > 1 else 1.0
        task_usage = self._task_weight_sum / self._task_counts.clamp_min(1).to(torch.float64).unsqueeze(1)
        return RoutingSummary(
            module_names=self.module_names,
            task_names=self.task_names,
            usage=(self._argmax_counts / count).numpy().copy(),
            mean_weight=mean_weight.numpy().copy(),
            entropy=float(self._entropy_sum) / count,
            load_balance=min(max(balance, 0.0), 1.0),
            task_usage=task_usage.numpy().copy(),
            task_counts=self._task_counts.numpy().copy(),
            count=count,
        )

    def weights_sample(self) -> np.ndarray:
        """``(N, K) float32``: the most recent ``N <= histogram_rows`` normalised weight rows, oldest first."""
        n = min(self._rows_seen, self.histogram_rows)
        if self._rows_seen <= self.histogram_rows:
            return self._hist[:n].numpy().copy()
        start = self._rows_seen % self.histogram_rows
        return torch.cat([self._hist[start:], self._hist[:start]]).numpy()

    def reset(self) -> None:
        """Forget every decision (e.g. after each logging interval)."""
        for acc in (
            self._argmax_counts,
            self._weight_sum,
            self._entropy_sum,
            self._task_weight_sum,
            self._task_counts,
            self._hist,
        ):
            acc.zero_()
        self._rows_seen = 0


_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def tag_segment(name: str) -> str:
    """A name made safe for one TensorBoard tag segment (anything but ``[A-Za-z0-9_.-]`` becomes ``_``)."""
    return _TAG_UNSAFE.sub("_", name)


class TelemetryWriter:
    """TensorBoard writer for modrl's own tags (``modrl/...``), fail-safe.

    The first ``OSError`` (unwritable or full disk, directory removed, ...) logs one warning and disables the writer;
    every later call is a no-op. Other errors (bad shapes, wrong types) still raise: they are bugs.

    Args:
        logdir: Directory for the event files (created if missing).
        purge_step: On resume, the first step to be written again: TensorBoard hides events at or after it from the
            earlier run, so steps are not duplicated.
        figure_every_s: The labelled task x module figure (matplotlib, tens of milliseconds to draw) is drawn on the
            first routing summary, then at most once per this many seconds, and on ``log_routing(figure=True)``
            (an image: exact-resume comparisons read scalars only). Scalars are written on every call; the
            per-task ones (``modrl/task/...``: T x (K + 2) of them, tens of milliseconds for dozens of tasks) only when
            the caller says ``per_task=True``, which callers decide from the step alone (see
            ``TelemetryCallback``), so a resumed run writes them at the same steps as a run in one go.
    """

    def __init__(self, logdir: Path | str, *, purge_step: int | None = None, figure_every_s: float = 60.0) -> None:
        check(
            purge_step is None or (isinstance(purge_step, int) and purge_step >= 0),
            "purge_step",
            f"must be None or an integer >= 0, got {purge_step!r}",
        )
        check(figure_every_s >= 0, "figure_every_s", f"must be >= 0, got {figure_every_s!r}")
        self.logdir = Path(logdir)
        self._writer: SummaryWriter | None = None
        self._failed = False
        self.figure_every_s = figure_every_s
        self._last_figure: float | None = None
        self._layout_tasks: tuple[str, ...] | None = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.logdir), purge_step=purge_step)
        except OSError as exc:
            self._disable("open the event file", exc)

    @property
    def enabled(self) -> bool:
        """False once writing has failed or the writer was closed."""
        return self._writer is not None

    def _disable(self, what: str, exc: OSError) -> None:
        writer, self._writer = self._writer, None
        if not self._failed:
            self._failed = True
            logger.warning(
                "TensorBoard telemetry disabled: could not %s in %s (%s); training continues without it",
                what,
                self.logdir,
                exc,
            )
        if writer is not None:
            with contextlib.suppress(OSError):  # the writer is already broken; the warning above said so
                writer.close()

    def _write(self, what: str, fn: Callable[[SummaryWriter], object]) -> None:
        if self._writer is None:
            return
        try:
            fn(self._writer)
        except OSError as exc:
            self._disable(what, exc)

    def log_routing(
        self,
        summary: RoutingSummary,
        step: int,
        weights_sample: np.ndarray | None = None,
        *,
        figure: bool = False,
        per_task: bool = True,
    ) -> None:
        """Write a routing summary (and optionally weight histograms) at ``step``.

        Tags: ``modrl/module/<name>/usage``, ``modrl/module/<name>/mean_weight``, ``modrl/router/entropy``,
        ``modrl/router/load_balance``, the :mod:`modrl.routing_health` numbers ``modrl/router/task_mi``
        (normalised task-module mutual information), ``modrl/router/specialised`` and ``modrl/router/collapsed`` (0/1);
        per task seen, ``modrl/task/<task>/weight/<module>`` (the task's mean weight on each module; a custom-scalars
        layout, written once, draws one chart per task with one line per module), ``modrl/task/<task>/entropy`` and
        ``modrl/task/<task>/top_weight``;
        image ``modrl/routing/task_module_heatmap``: the labelled figure of ``summary.task_usage`` (task and module
        names, values in the cells, colour bar on [0, 1]; drawn as ``figure_every_s`` says, see the class);
        histograms ``modrl/routing/weights`` and ``modrl/routing/weights/<name>``.

        Args:
            summary: From :meth:`RoutingStats.summary`.
            step: Global step (environment frames).
            weights_sample: Optional ``(N, K)`` weight rows, e.g. :meth:`RoutingStats.weights_sample`.
            figure: Draw the labelled figure now, whenever it was last drawn (e.g. the last summary of a run).
            per_task: Write the per-task scalars (``modrl/task/...``) at this step.
        """
        k = len(summary.module_names)
        sample = None if weights_sample is None else np.asarray(weights_sample)
        if sample is not None and (sample.ndim != 2 or sample.shape[1] != k):
            raise ValueError(f"weights_sample must have shape (N, {k}), got {sample.shape}")
        now = time.monotonic()
        due = figure or self._last_figure is None or now - self._last_figure >= self.figure_every_s
        heatmap = self._routing_figure(summary) if due and self._writer is not None else None
        if heatmap is not None:
            self._last_figure = now
        seen = [i for i in range(len(summary.task_names)) if summary.task_counts[i] > 0] if per_task else []
        health = routing_health(summary.task_usage, summary.task_counts)
        layout = None
        if self._layout_tasks != summary.task_names:
            self._layout_tasks = summary.task_names
            layout = {
                "modrl: module weights per task": {
                    task: ["Multiline", [f"^modrl/task/{re.escape(tag_segment(task))}/weight/"]]
                    for task in summary.task_names
                }
            }

        def write(w: SummaryWriter) -> None:
            for i, name in enumerate(summary.module_names):
                w.add_scalar(f"modrl/module/{tag_segment(name)}/usage", float(summary.usage[i]), step)
                w.add_scalar(f"modrl/module/{tag_segment(name)}/mean_weight", float(summary.mean_weight[i]), step)
            w.add_scalar("modrl/router/entropy", summary.entropy, step)
            w.add_scalar("modrl/router/load_balance", summary.load_balance, step)
            w.add_scalar("modrl/router/task_mi", health.normalised_mi, step)
            w.add_scalar("modrl/router/specialised", float(health.specialised), step)
            w.add_scalar("modrl/router/collapsed", float(health.collapsed), step)
            for t in seen:
                task = tag_segment(summary.task_names[t])
                for i, name in enumerate(summary.module_names):
                    w.add_scalar(f"modrl/task/{task}/weight/{tag_segment(name)}", float(summary.task_usage[t, i]), step)
                w.add_scalar(f"modrl/task/{task}/entropy", float(health.task_entropy[t]), step)
                w.add_scalar(f"modrl/task/{task}/top_weight", float(health.top_share[t]), step)
            if layout is not None:
                w.add_custom_scalars(layout)
            if heatmap is not None and heatmap.size:
                w.add_image("modrl/routing/task_module_heatmap", heatmap, step, dataformats="HWC")
            if sample is not None and sample.shape[0] > 0:
                w.add_histogram("modrl/routing/weights", sample.reshape(-1), step)
                for i, name in enumerate(summary.module_names):
                    w.add_histogram(f"modrl/routing/weights/{tag_segment(name)}", sample[:, i], step)

        self._write("write routing telemetry", write)

    @staticmethod
    def _routing_figure(summary: RoutingSummary) -> np.ndarray:
        from modrl.report.plots import figure_rgb, module_usage_figure  # matplotlib: imported when first needed

        title = "mean routing weight per task (rows) and module (columns)"
        return figure_rgb(
            module_usage_figure(
                summary.task_usage,
                summary.task_names,
                summary.module_names,
                title=title,
                seen=list(summary.task_counts > 0),
            )
        )

    def log_config(self, config: Mapping[str, object], step: int = 0) -> None:
        """The run's resolved config as YAML in the text dashboard (tag ``modrl/config``)."""
        import yaml

        text = yaml.safe_dump(dict(config), sort_keys=False)
        self.log_text("modrl/config", "```yaml\n" + text + "```", step)

    def log_hparams(self, hparams: Mapping[str, object], metrics: Mapping[str, float], step: int) -> None:
        """Hyper-parameters and final metrics for TensorBoard's HParams dashboard, in this run (not a sub-run).

        Args:
            hparams: Flat ``{dotted key: value}``; values other than bool, int, float and str are written as text.
            metrics: ``{tag: value}``, also written as scalars at ``step`` (tags such as ``hparam/success_mean``).
        """
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        plain = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in hparams.items()}
        values = {k: float(v) for k, v in metrics.items()}
        experiment, start, end = hparams_summary(plain, values)

        def write(w: SummaryWriter) -> None:
            file_writer = w._get_file_writer()
            for summary in (experiment, start, end):
                file_writer.add_summary(summary, step)
            for tag, value in values.items():
                w.add_scalar(tag, value, step)

        self._write("write hyper-parameters", write)

    def log_success(self, per_task: Mapping[str, float], step: int) -> None:
        """Write ``modrl/success/<task>`` for each task and their mean as ``modrl/success/mean`` (if any)."""
        values = {name: float(v) for name, v in per_task.items()}

        def write(w: SummaryWriter) -> None:
            for name, value in values.items():
                w.add_scalar(f"modrl/success/{tag_segment(name)}", value, step)
            if values:
                w.add_scalar("modrl/success/mean", float(np.mean(list(values.values()))), step)

        self._write("write success rates", write)

    def log_param_counts(self, *, trainable: int, frozen: int, step: int) -> None:
        """Write ``modrl/params/trainable`` and ``modrl/params/frozen``."""

        def write(w: SummaryWriter) -> None:
            w.add_scalar("modrl/params/trainable", float(trainable), step)
            w.add_scalar("modrl/params/frozen", float(frozen), step)

        self._write("write parameter counts", write)

    def log_scalar(self, tag: str, value: float, step: int) -> None:
        """Write one scalar under ``tag`` (used verbatim)."""
        self._write(f"write {tag}", lambda w: w.add_scalar(tag, float(value), step))

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """Write an ``(H, W, 3) uint8`` RGB image under ``tag`` (used verbatim)."""
        self._write(f"write {tag}", lambda w: w.add_image(tag, image, step, dataformats="HWC"))

    def log_animation(self, tag: str, gif: bytes, *, height: int, width: int, step: int) -> None:
        """Write an animated GIF (its encoded bytes, ``height`` x ``width`` pixels) under ``tag``: TensorBoard's Images
        dashboard serves the bytes as they are, so the browser plays it (as for SB3's / torch's ``add_video``, which
        would need moviepy to encode)."""
        from tensorboard.compat.proto.summary_pb2 import Summary  # type: ignore[import-untyped]

        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
        summary = Summary(value=[Summary.Value(tag=tag, image=image)])
        self._write(f"write {tag}", lambda w: w._get_file_writer().add_summary(summary, step))

    def log_text(self, tag: str, text: str, step: int) -> None:
        """Write text (Markdown) under ``tag``; TensorBoard shows it as ``<tag>/text_summary``."""
        self._write(f"write {tag}", lambda w: w.add_text(tag, text, step))

    def flush(self) -> None:
        """Push pending events to disk."""
        self._write("flush", lambda w: w.flush())

    def close(self) -> None:
        """Flush and close; later calls are no-ops."""
        self._write("close", lambda w: w.close())
        self._writer = None

    def __enter__(self) -> TelemetryWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
