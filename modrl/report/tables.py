"""Per-trial metrics, their summaries across seeds, and the Markdown tables that show them.

Only *usable* trials enter the statistics (completed, with an evaluation file; see :attr:`Trial.usable`); for
frames-to-threshold, completed trials with a training curve. Every summary uses :func:`modrl.stats.summarize` with
the report's bootstrap seed, so the same directory always gives the same numbers.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from modrl.report.collect import Collection, EvalSplit, TaskEval, Trial, TrialStatus
from modrl.routing_health import RoutingHealth, routing_health
from modrl.stats import Summary, frames_to_threshold, summarize

DASH = "—"
TaskValue = Callable[[TaskEval], float]


def success_of(task: TaskEval) -> float:
    """The task's evaluation success rate."""
    return task.success_rate


def return_of(task: TaskEval) -> float:
    """The task's mean evaluation return."""
    return task.mean_return


def task_mean(trial: Trial, value: TaskValue, split: EvalSplit) -> float | None:
    """Mean of ``value`` over the trial's evaluated tasks of ``split``; ``None`` without an evaluation or such tasks."""
    if trial.eval is None:
        return None
    values = [value(t) for t in trial.eval.tasks if t.split is split]
    return sum(values) / len(values) if values else None


def splits_present(collection: Collection) -> list[EvalSplit]:
    """Splits among the usable trials' evaluated tasks, train first; ``[EvalSplit.TRAIN]`` when there are none."""
    found = {t.split for trial in collection.trials if trial.usable and trial.eval for t in trial.eval.tasks}
    return [s for s in EvalSplit if s in found] or [EvalSplit.TRAIN]


def task_keys(collection: Collection) -> list[tuple[str, EvalSplit]]:
    """``(task, split)`` pairs over the usable trials' evaluations, in order of first appearance."""
    keys: dict[tuple[str, EvalSplit], None] = {}
    for trial in collection.trials:
        if trial.usable and trial.eval:
            keys.update(((t.task, t.split), None) for t in trial.eval.tasks)
    return list(keys)


def summarize_or_none(values: Sequence[float], *, seed: int) -> Summary | None:
    """:func:`summarize` of ``values``, or ``None`` for no values."""
    return summarize(values, seed=seed) if values else None


def group_summaries(
    collection: Collection, per_trial: Callable[[Trial], float | None], *, seed: int
) -> dict[str, Summary | None]:
    """``{group: summary of per_trial over its usable trials}`` (trials where it gives ``None`` are left out)."""
    out = {}
    for group in collection.groups:
        values = [per_trial(t) for t in collection.trials_of(group) if t.usable]
        out[group] = summarize_or_none([v for v in values if v is not None], seed=seed)
    return out


def trial_task_value(trial: Trial, task: str, split: EvalSplit, value: TaskValue) -> float | None:
    """``value`` of one ``(task, split)`` in the trial's evaluation, or ``None`` if it was not evaluated."""
    if trial.eval is None:
        return None
    return next((value(t) for t in trial.eval.tasks if t.task == task and t.split is split), None)


@dataclass(frozen=True, kw_only=True)
class FramesSummary:
    """Frames to reach a training-success threshold in one group.

    Attributes:
        reached: Trials whose curve reached the threshold.
        total: Completed trials with a training curve.
        summary: Summary of the frames over the trials that reached it; ``None`` if none did.
    """

    reached: int
    total: int
    summary: Summary | None


def frames_summaries(collection: Collection, threshold: float, *, seed: int) -> dict[str, FramesSummary]:
    """Per group: frames until the training ``success_mean`` (metrics.jsonl) first reaches ``threshold``."""
    out = {}
    for group in collection.groups:
        curves = [t.curve for t in collection.trials_of(group) if t.status is TrialStatus.COMPLETED and t.curve]
        frames = [frames_to_threshold(c.steps, c.success_mean, threshold) for c in curves]
        hits = [float(f) for f in frames if f is not None]
        out[group] = FramesSummary(reached=len(hits), total=len(curves), summary=summarize_or_none(hits, seed=seed))
    return out


def fmt(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals; an em dash for NaN."""
    return DASH if math.isnan(value) else f"{value:.{digits}f}"


def summary_cells(summary: Summary | None, digits: int) -> list[str]:
    """``[n, mean, IQM, "[low, high]"]`` for a table row; dashes (and n = 0) for no summary."""
    if summary is None:
        return ["0", DASH, DASH, DASH]
    ci = f"[{fmt(summary.ci_low, digits)}, {fmt(summary.ci_high, digits)}]"
    return [str(summary.n), fmt(summary.mean, digits), fmt(summary.iqm, digits), ci]


#: Longest :func:`slug` (file names stay far below the usual 255-byte limit, with a prefix and a suffix around it).
MAX_SLUG = 100


def slug(label: str, taken: set[str]) -> str:
    """A file-name-safe form of ``label`` not yet in ``taken`` (``_2``, ``_3``, ... appended); added to ``taken``.

    A label longer than :data:`MAX_SLUG` (a grid value that is a whole config section) is cut and ends in a digest of
    the whole label, so two long labels that share their start still get different names."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_.") or "group"
    if len(base) > MAX_SLUG:
        digest = hashlib.sha256(label.encode("utf-8")).hexdigest()[:10]
        base = f"{base[: MAX_SLUG - len(digest) - 1]}-{digest}"
    name, index = base, 2
    while name in taken:
        name, index = f"{base}_{index}", index + 1
    taken.add(name)
    return name


def escape(cell: str) -> str:
    """A string made safe for one Markdown table cell (no pipes or line breaks)."""
    return cell.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, text_columns: int = 1) -> str:
    """A GitHub-flavoured Markdown table: the first ``text_columns`` columns left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(escape(h) for h in headers) + " |"]
    aligns = [":---" if i < text_columns else "---:" for i in range(len(headers))]
    lines.append("|" + "|".join(aligns) + "|")
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


SUMMARY_HEADERS = ("n", "mean", "IQM", "95% CI")


def split_metric_table(collection: Collection, value: TaskValue, *, digits: int, seed: int) -> str:
    """Rows = groups; per split present, the summary across seeds of the trial's mean over that split's tasks.

    With train and test tasks the splits stand side by side (``train n``, ``train mean``, ..., ``test n``, ...).
    """
    splits = splits_present(collection)
    side_by_side = splits != [EvalSplit.TRAIN]
    headers = ["group"]
    for split in splits:
        headers += [f"{split.value} {h}" if side_by_side else h for h in SUMMARY_HEADERS]
    per_split = {
        split: group_summaries(collection, partial(task_mean, value=value, split=split), seed=seed) for split in splits
    }
    rows = []
    for group in collection.groups:
        row = [group]
        for split in splits:
            row += summary_cells(per_split[split][group], digits)
        rows.append(row)
    return markdown_table(headers, rows)


def per_task_table(collection: Collection, value: TaskValue, *, digits: int, seed: int) -> str:
    """Rows = (task, split, group); columns: the summary across seeds of that task's ``value``."""
    rows = []
    for task, split in task_keys(collection):
        summaries = group_summaries(
            collection, partial(trial_task_value, task=task, split=split, value=value), seed=seed
        )
        for group in collection.groups:
            rows.append([task, split.value, group, *summary_cells(summaries[group], digits)])
    return markdown_table(["task", "split", "group", *SUMMARY_HEADERS], rows, text_columns=3)


def frames_table(collection: Collection, threshold: float, *, seed: int) -> str:
    """Rows = groups; reached k/n, then mean, IQM and CI of the frames over the trials that reached ``threshold``."""
    rows = []
    for group, frames in frames_summaries(collection, threshold, seed=seed).items():
        cells = summary_cells(frames.summary, 0)[1:]
        rows.append([group, f"{frames.reached}/{frames.total}", *cells])
    return markdown_table(["group", "reached", "mean", "IQM", "95% CI"], rows)


def trial_routing_health(trial: Trial) -> RoutingHealth | None:
    """:func:`~modrl.routing_health.routing_health` of the trial's evaluated **train** tasks (their mean routing
    weights, each task weighted by its episodes); ``None`` without an evaluation or routing weights."""
    ev = trial.eval
    tasks = [t for t in ev.tasks if t.split is EvalSplit.TRAIN] if ev is not None else []
    if not tasks or any(t.module_usage is None for t in tasks):
        return None
    usage = [list(t.module_usage or ()) for t in tasks]
    return routing_health(np.asarray(usage, dtype=np.float64), np.asarray([t.episodes for t in tasks]))


def routing_health_table(collection: Collection, *, seed: int) -> str:
    """Rows = groups with routing weights; the task-module MI (normalised) across seeds, how many trials' routers
    are specialised and collapsed, and the smallest top weight of a task (mean over trials); ``""`` for none."""
    rows = []
    for group in collection.groups:
        found = [trial_routing_health(t) for t in collection.trials_of(group) if t.usable]
        health = [h for h in found if h is not None]
        if not health:
            continue
        mi = summarize_or_none([h.normalised_mi for h in health], seed=seed)
        lowest_top = float(np.mean([np.nanmin(h.top_share) for h in health]))
        rows.append(
            [
                group,
                *summary_cells(mi, 2),
                f"{sum(h.specialised for h in health)}/{len(health)}",
                f"{sum(h.collapsed for h in health)}/{len(health)}",
                fmt(lowest_top, 2),
            ]
        )
    if not rows:
        return ""
    headers = ["group", "n", "MI mean", "MI IQM", "MI 95% CI", "specialised", "collapsed", "lowest top weight"]
    return markdown_table(headers, rows)
