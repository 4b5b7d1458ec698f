"""Option telemetry: which call the high level chose, how long calls ran and how they ended, per task.

:class:`OptionStats` counts high-level decisions. :meth:`OptionStats.log` writes them with modrl's TensorBoard writer:
the choice as routing telemetry (:meth:`modrl.telemetry.TelemetryWriter.log_routing`: per-call usage
``modrl/module/<call>/usage``, router entropy and load balance, and the task x call usage heatmap image
``modrl/routing/task_module_heatmap``), plus ``modrl/option/<call>/mean_duration``,
``modrl/option/<call>/termination_rate`` (share of calls ended by their own termination, not by the step cap or the
episode end), and the same over all calls as ``modrl/options/mean_duration`` and ``modrl/options/termination_rate``.
Option-critic options tend to shrink to one step; ``mean_duration`` is where that shows.

When callers pass the env slot to :meth:`OptionStats.record` and call :meth:`OptionStats.end_episode`, ``log`` also
draws the calls of the last finished episode as a labelled timeline, image ``modrl/options/timeline`` (one row per
call name, primitive steps left to right, each call a bar coloured by how it ended, the task and the outcome in the
title): which option ran when, and for how long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from modrl.telemetry import RoutingStats, TelemetryWriter, tag_segment

from .call_and_return import END_REASONS, EndReason


@dataclass(frozen=True, kw_only=True)
class EpisodeCalls:
    """The option calls of one finished episode, in order: ``(call index, primitive steps, end reason)`` each."""

    task: str
    calls: tuple[tuple[int, int, EndReason], ...]
    success: bool


@dataclass(frozen=True, kw_only=True)
class OptionSummary:
    """Decision statistics since the last reset (K calls, R end reasons).

    Attributes:
        names: The K call names. calls: ``(K,) int64`` decisions per call.
        mean_duration: ``(K,) float64`` mean primitive steps per call (NaN for calls never made).
        ends: ``(K, R) int64`` calls per end reason (:data:`~modrl.options.call_and_return.END_REASONS` order).
    """

    names: tuple[str, ...]
    calls: np.ndarray
    mean_duration: np.ndarray
    ends: np.ndarray

    @property
    def total_mean_duration(self) -> float:
        """Mean primitive steps per decision over all calls."""
        count = int(self.calls.sum())
        return float(np.nansum(self.mean_duration * self.calls) / count) if count else float("nan")

    def termination_rate(self, index: int | None = None) -> float:
        """Share of calls (of call ``index``, or all) that ended by their own termination."""
        ends = self.ends.sum(axis=0) if index is None else self.ends[index]
        total = int(ends.sum())
        return float(ends[END_REASONS.index(EndReason.TERMINATED)] / total) if total else float("nan")


class OptionStats:
    """Counts of high-level option decisions, per call and per task.

    Args:
        names: Call names (the high-level action order). task_names: Task names (task-id order).
    """

    def __init__(self, names: Sequence[str], task_names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.task_names = tuple(task_names)
        self.routing = RoutingStats(self.names, task_names)
        self._running: dict[int, list[tuple[int, int, EndReason]]] = {}
        self.last_episode: EpisodeCalls | None = None
        self._drawn: EpisodeCalls | None = None
        self._calls = np.zeros(len(self.names), dtype=np.int64)
        self._durations = np.zeros(len(self.names), dtype=np.float64)
        self._ends = np.zeros((len(self.names), len(END_REASONS)), dtype=np.int64)

    @property
    def count(self) -> int:
        """Decisions since the last reset."""
        return int(self._calls.sum())

    def record(self, call: int, task: int, duration: int, end: EndReason | str, *, slot: int | None = None) -> None:
        """Count one decision: call index, task id, primitive steps it ran, why it ended; with ``slot`` (the env
        slot it ran in) it is also kept for that slot's episode timeline until :meth:`end_episode`."""
        reason = EndReason(end)
        if slot is not None:
            self._running.setdefault(slot, []).append((call, int(duration), reason))
        weights = torch.zeros(1, len(self.names))
        weights[0, call] = 1.0
        self.routing.update(weights, torch.tensor([task]))
        self._calls[call] += 1
        self._durations[call] += duration
        self._ends[call, END_REASONS.index(reason)] += 1

    def end_episode(self, slot: int, task: int, success: bool) -> None:
        """Slot ``slot``'s episode ended: its recorded calls become :attr:`last_episode` (drawn by the next log)."""
        calls = self._running.pop(slot, [])
        if calls:
            self.last_episode = EpisodeCalls(task=self.task_names[task], calls=tuple(calls), success=bool(success))

    def summary(self) -> OptionSummary | None:
        """Statistics since the last reset; ``None`` before the first decision."""
        if self.count == 0:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self._calls > 0, self._durations / np.maximum(self._calls, 1), np.nan)
        return OptionSummary(names=self.names, calls=self._calls.copy(), mean_duration=mean, ends=self._ends.copy())

    def log(self, writer: TelemetryWriter, step: int) -> OptionSummary | None:
        """Write the statistics at ``step`` (tags in the module docstring) and reset; returns what was written."""
        summary, routing = self.summary(), self.routing.summary()
        if summary is None or routing is None:
            return None
        writer.log_routing(routing, step, self.routing.weights_sample())
        for index, name in enumerate(self.names):
            if summary.calls[index]:
                prefix = f"modrl/option/{tag_segment(name)}"
                writer.log_scalar(f"{prefix}/mean_duration", summary.mean_duration[index], step)
                writer.log_scalar(f"{prefix}/termination_rate", summary.termination_rate(index), step)
        writer.log_scalar("modrl/options/mean_duration", summary.total_mean_duration, step)
        writer.log_scalar("modrl/options/termination_rate", summary.termination_rate(), step)
        if self.last_episode is not None and self.last_episode is not self._drawn:
            self._drawn = self.last_episode
            writer.log_image("modrl/options/timeline", timeline_figure(self.last_episode, self.names), step)
        self.reset()
        return summary

    def reset(self) -> None:
        """Forget every decision."""
        self.routing.reset()
        self._calls[:] = 0
        self._durations[:] = 0
        self._ends[:] = 0


#: Bar colours per end reason (matplotlib names).
_END_COLOURS = {
    EndReason.TERMINATED.value: "tab:green",
    EndReason.STEP_CAP.value: "tab:orange",
    EndReason.EPISODE_END.value: "tab:blue",
}


def timeline_figure(episode: EpisodeCalls, names: Sequence[str]) -> np.ndarray:
    """The episode's option calls as a labelled timeline, ``(H, W, 3) uint8`` RGB (matplotlib, Agg).

    One row per call name that ran (in order of first call), primitive steps on the x axis, each call a bar
    coloured by its end reason (legend), the task and the episode's outcome in the title.
    """
    from modrl.report.plots import Bar, figure_rgb, gantt_figure  # matplotlib: imported when first needed

    bars, start = [], 0
    for call, steps, end in episode.calls:
        bars.append(Bar(names[call], start, max(steps, 1), end.value))
        start += max(steps, 1)
    outcome = "success" if episode.success else "failure"
    title = f"{episode.task}: {len(episode.calls)} option calls, {start} steps, {outcome}"
    return figure_rgb(gantt_figure(bars, colours=_END_COLOURS, title=title, legend_title="call ended by"))
