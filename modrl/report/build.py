"""Assemble ``report.md`` and its figures from a run or sweep directory (see :func:`build_report`)."""

from __future__ import annotations

import importlib.metadata
import logging
import shlex
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from modrl._io import atomic_write_text
from modrl.report.collect import Collection, Trial, TrialStatus, collect
from modrl.report.continual_tables import comparison_table, heatmaps_section, runs_table, single_run_sections
from modrl.report.eval_curves import eval_curves_section
from modrl.report.tables import (
    DASH,
    frames_table,
    group_summaries,
    markdown_table,
    per_task_table,
    return_of,
    routing_health_table,
    slug,
    split_metric_table,
    success_of,
    task_keys,
    trial_task_value,
)
from modrl.routing_health import COLLAPSE_SHARE, SPECIALISED_TOP
from modrl.stats import align_curves, bootstrap_ci_curve

logger = logging.getLogger(__name__)

REPORT_FILE = "report.md"
ERROR_TAIL_LINES = 20
CURVE_RESAMPLES = 2_000  # per-step bootstrap of the learning-curve band; tables use 10 000


def build_report(
    path: Path | str,
    *,
    out_dir: Path | str | None = None,
    threshold: float = 0.9,
    seed: int = 0,
    extra_sections: Sequence[str] = (),
) -> Path:
    """Write ``report.md`` with tables, figures, trial states and provenance for a run or sweep directory.

    A continual run (``continual.json``) or a directory of continual runs (e.g. ``runs/continual/``, runs with
    different ``rule.kind`` and seeds) gets the continual report instead: the comparison of rules (rows = rule;
    average forgetting, BWT, FT, final mean success, parameters added, each as mean and 95% bootstrap CI across
    seeds), R heatmaps, and for a single run its R table, per-task metrics and per-stage parameter counts.

    Args:
        path: A run directory (``config.yaml``), a sweep directory (``trials.json``), a continual run directory or
            a directory holding continual runs (up to two levels down).
        out_dir: Where to write ``report.md`` and the PNGs; default ``<path>/report``.
        threshold: Training success (``success_mean`` in ``metrics.jsonl``) for the frames-to-threshold table.
        seed: Seed of every bootstrap resampling in the report.
        extra_sections: Markdown sections placed before the provenance (e.g. the episode strips ``modrl report``
            renders for a run with a checkpoint; files they link to belong in ``out_dir``).

    Returns:
        The path of ``report.md``.

    Raises:
        ReportError: ``path`` is neither a run nor a sweep directory, or one of its files is unreadable.
    """
    collection = collect(path)
    out = Path(out_dir) if out_dir is not None else collection.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    if collection.kind == "continual":
        sections = _continual_sections(collection, out, seed=seed)
    else:
        sections = [
            _header(collection, seed),
            _tables_section(collection, out, threshold=threshold, seed=seed),
            _curves_section(collection, out, seed=seed),
            eval_curves_section(collection, out, seed=seed),
            _module_usage_section(collection, out, seed=seed),
            heatmaps_section(collection, out),
            _trials_section(collection),
            *extra_sections,
            _provenance_section(collection),
        ]
    report = out / REPORT_FILE
    atomic_write_text(report, "\n\n".join(s for s in sections if s) + "\n")
    logger.debug("report written to %s", report)
    return report


def _header(collection: Collection, seed: int) -> str:
    usable = sum(t.usable for t in collection.trials)
    return "\n".join(
        [
            f"# Report: {collection.name}",
            "",
            f"Source: `{collection.root}` ({collection.kind}, {len(collection.trials)} trial(s), {usable} completed "
            "with an evaluation). Statistics are across seeds (one value per trial): mean, interquartile mean (IQM, "
            "mean of the middle 50%: `scipy.stats.trim_mean(x, 0.25)` semantics; Agarwal et al. 2021) and the 95% "
            "percentile bootstrap interval of the mean "
            f"(10 000 resamples of the seeds, numpy seed {seed}). Only completed trials with an evaluation enter the "
            "tables; see Trials for the others. Evaluation numbers come from each trial's "
            "latest evaluation file (highest step; deterministic before stochastic; most episodes).",
        ]
    )


def _tables_section(collection: Collection, out: Path, *, threshold: float, seed: int) -> str:
    parts = [
        "## Success rate (mean over tasks)\n\n" + split_metric_table(collection, success_of, digits=3, seed=seed),
        "## Return (mean over tasks)\n\n" + split_metric_table(collection, return_of, digits=3, seed=seed),
        "## Success per task\n\n" + per_task_table(collection, success_of, digits=3, seed=seed),
    ]
    figure = _success_bars(collection, out, seed=seed)
    if figure:
        parts[-1] += f"\n\n![Success per task (mean over seeds, 95% CI)]({figure})"
    parts.append(
        f"## Frames to {threshold:g} training success\n\n"
        f"First frame at which the training success (stochastic policy, mean over tasks, `success_mean` in "
        f"`metrics.jsonl`) reached {threshold:g}; mean, IQM and CI over the completed trials that reached it.\n\n"
        + frames_table(collection, threshold, seed=seed)
    )
    return "\n\n".join(parts)


def _success_bars(collection: Collection, out: Path, *, seed: int) -> str | None:
    keys = task_keys(collection)
    if not keys:
        return None
    from modrl.report.plots import Bars, plot_grouped_bars

    columns: dict[str, list[tuple[float, float, float]]] = {group: [] for group in collection.groups}
    for task, split in keys:
        summaries = group_summaries(
            collection, partial(trial_task_value, task=task, split=split, value=success_of), seed=seed
        )
        for group, summary in summaries.items():
            columns[group].append((summary.mean, summary.ci_low, summary.ci_high) if summary else (np.nan,) * 3)
    bars: dict[str, Bars] = {}
    for group, values in columns.items():
        mean, low, high = (np.array(c, dtype=np.float64) for c in zip(*values, strict=True))
        bars[group] = Bars(mean=mean, low=low, high=high)
    labels = [task if split.value == "train" else f"{task} ({split.value})" for task, split in keys]
    path = plot_grouped_bars(bars, labels, out / "success_per_task.png", ylabel="evaluation success rate")
    return path.name


def _curves_section(collection: Collection, out: Path, *, seed: int) -> str:
    from modrl.report.plots import Band, plot_learning_curves

    bands: dict[str, Band] = {}
    for group in collection.groups:
        curves = [t.curve for t in collection.trials_of(group) if t.status is TrialStatus.COMPLETED and t.curve]
        grid, matrix = align_curves([(c.steps, c.success_mean) for c in curves])
        if grid.size:
            low, high = bootstrap_ci_curve(matrix, n_resamples=CURVE_RESAMPLES, seed=seed)
            bands[group] = Band(steps=grid, mean=matrix.mean(axis=0), low=low, high=high, seeds=len(curves))
    text = (
        "## Learning curves\n\nTraining success (stochastic policy, mean over tasks) against frames, per group: mean "
        "over completed trials with a pointwise 95% percentile bootstrap band (seeds resampled jointly, "
        f"{CURVE_RESAMPLES:,} resamples). Seeds are aligned on the union of their logged steps by linear "
        "interpolation, over the range every seed covers (no extrapolation)."
    )
    if not bands:
        return text + "\n\nNo training curve with a measured success yet."
    plot_learning_curves(bands, out / "learning_curves.png")
    return text + "\n\n![Learning curves](learning_curves.png)"


def _usage_matrix(trials: Sequence[Trial]) -> tuple[list[str], list[str], np.ndarray] | None:
    """Mean ``(tasks, modules)`` routing weights over trials that share the first trial's tasks and modules."""
    matrices, names, tasks = [], None, None
    for trial in trials:
        ev = trial.eval
        if ev is None or ev.module_names is None or any(t.module_usage is None for t in ev.tasks):
            continue
        labels = [t.task if t.split.value == "train" else f"{t.task} ({t.split.value})" for t in ev.tasks]
        if names is None:
            names, tasks = list(ev.module_names), labels
        if list(ev.module_names) != names or labels != tasks:
            logger.warning(
                "%s: tasks or modules differ from the group's first trial; left out of the heatmap", trial.id
            )
            continue
        matrices.append([list(t.module_usage or ()) for t in ev.tasks])
    if not matrices or names is None or tasks is None:
        return None
    return tasks, names, np.mean(np.asarray(matrices, dtype=np.float64), axis=0)


def _module_usage_section(collection: Collection, out: Path, *, seed: int) -> str:
    from modrl.report.plots import plot_module_usage

    parts: list[str] = []
    taken: set[str] = set()
    for group in collection.groups:
        found = _usage_matrix([t for t in collection.trials_of(group) if t.usable])
        if found is None:
            continue
        tasks, modules, matrix = found
        name = f"module_usage_{slug(group, taken)}.png"
        plot_module_usage(matrix, tasks, modules, out / name, title=f"{group}: mean routing weight")
        parts.append(f"### {group}\n\n![Module usage, {group}]({name})")
    health = routing_health_table(collection, seed=seed)
    if not parts and not health:
        return ""
    intro = "## Module usage\n\nMean routing weight per task and module in the evaluation, averaged over seeds."
    if health:
        intro += (
            "\n\nRouting health of each trial's train tasks (`modrl.routing_health`): task-module mutual "
            "information, normalised (0: every task routes alike, 1: each task on its own module), across seeds; "
            f"specialised: every task puts >= {SPECIALISED_TOP:g} of its weight on one module, not all on the same "
            f"one; collapsed: one module carries >= {COLLAPSE_SHARE:g} of all weight; lowest top weight: the smallest "
            "of the tasks' largest mean weights, averaged over trials.\n\n" + health
        )
    return "\n\n".join([intro, *parts])


def _continual_sections(collection: Collection, out: Path, *, seed: int) -> list[str]:
    runs = len(collection.trials)
    complete = sum(t.continual_usable for t in collection.trials)
    header = "\n".join(
        [
            f"# Continual report: {collection.name}",
            "",
            f"Source: `{collection.root}` ({runs} continual run(s), {complete} complete). `R[i][j]` is the success "
            "rate on task j after training on task i. Average forgetting `F = mean_i (R[i][i] - R[N-1][i])`, backward "
            "transfer `BWT = mean_{i<N-1} (R[N-1][i] - R[i][i])`, forward transfer `FT = mean_i (AUC_i - AUC_i^ref) / "
            "(1 - AUC_i^ref)` against the task learned from scratch with the same budget (Continual World; GEM); final "
            "mean success is the mean of R's last row; parameters added counts the elements that became active after "
            "the first task. Across seeds: mean and the 95% percentile bootstrap interval of the mean (10 000 "
            f"resamples, numpy seed {seed}); only complete runs (status completed, every row of R) enter it.",
        ]
    )
    sections = [header, "## Comparison of rules\n\n" + comparison_table(collection, seed=seed)]
    if runs == 1:
        sections.append(single_run_sections(collection.trials[0], out))
    else:
        sections.append(heatmaps_section(collection, out, title="R matrices (mean per rule)"))
    sections += ["## Runs\n\n" + runs_table(collection), _errors_section(collection), _provenance_section(collection)]
    return sections


def _eval_cell(trial: Trial) -> str:
    ev = trial.eval
    if ev is None:
        return DASH
    mode = "deterministic" if ev.deterministic else "stochastic"
    return f"step {ev.step}, {mode}, {ev.episodes} ep/task"


def _trials_section(collection: Collection) -> str:
    rows = []
    for t in collection.trials:
        used = "yes" if t.usable else ("no (no evaluation)" if t.status is TrialStatus.COMPLETED else "no")
        seed = DASH if t.seed is None else str(t.seed)
        rows.append([t.id, t.group, seed, t.status.value, _eval_cell(t), used])
    table = markdown_table(["trial", "group", "seed", "status", "evaluation", "in tables"], rows, text_columns=6)
    return "\n\n".join(s for s in ["## Trials\n\n" + table, _errors_section(collection)] if s)


def _errors_section(collection: Collection) -> str:
    """The tail of each failed or interrupted trial's recorded error."""
    parts = []
    for t in collection.trials:
        if t.error:
            tail = "\n".join(t.error.rstrip().splitlines()[-ERROR_TAIL_LINES:]).replace("```", "'''")
            parts.append(f"### Error: {t.id} ({t.status.value})\n\n```\n{tail}\n```")
    return "\n\n".join(parts)


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}"


def _environment(meta: dict[str, Any]) -> dict[str, str]:
    packages = meta.get("packages") or {}
    env = {"python": str(meta.get("python", DASH)), "platform": str(meta.get("platform", DASH))}
    return env | {str(k): str(v) for k, v in sorted(packages.items())}


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _provenance_section(collection: Collection) -> str:
    parts = ["## Provenance"]
    if collection.sweep_spec is not None:
        parts.append("Sweep spec (`sweep.yaml`):\n\n```yaml\n" + collection.sweep_spec.rstrip() + "\n```")
    lines = []
    envs: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for t in collection.trials:
        if t.meta is None:
            lines.append(f"- `{t.id}`: not started (no meta.json)")
            continue
        git = t.meta.get("git")
        commit = f"git {git.get('commit') or 'no commit'}{' (dirty)' if git.get('dirty') else ''}" if git else "no git"
        argv = t.meta.get("argv") or []
        lines.append(f"- `{t.id}` ({commit}): {_code(shlex.join(map(str, argv)))}")
        envs.setdefault(tuple(_environment(t.meta).items()), []).append(t.id)
    parts.append("Commands:\n\n" + "\n".join(lines))
    drawn = ", ".join(f"{name} {_version(name)}" for name in ("modrl", "numpy", "matplotlib"))
    parts.append(f"Report computed with {drawn}.")
    for env, ids in envs.items():
        who = "all trials" if len(envs) == 1 else "trials " + ", ".join(f"`{i}`" for i in ids)
        parts.append(
            f"Versions ({who}):\n\n" + markdown_table(["package", "version"], [list(kv) for kv in env], text_columns=2)
        )
    return "\n\n".join(parts)
