"""Report sections for continual runs: the rule comparison across seeds, R tables and heatmaps, parameter growth.

Definitions are :mod:`modrl.continual`'s (Continual World / GEM): average forgetting ``F``, backward transfer
``BWT``, forward transfer ``FT`` (needs the from-scratch reference, ``sequence.reference: scratch``), final mean
success (mean of the last row of ``R``) and the parameters added after the first task. Only complete runs (status
``completed``, a row of ``R`` for every task) enter the comparison; see :attr:`Trial.continual_usable`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from modrl.continual import format_r_table
from modrl.report.collect import Collection, Trial
from modrl.report.continual import Continual
from modrl.report.tables import DASH, fmt, markdown_table, slug, summarize_or_none

ContinualValue = Callable[[Continual], float | None]


def _forgetting(c: Continual) -> float | None:
    m = c.metrics()
    return m.average_forgetting if m else None


def _bwt(c: Continual) -> float | None:
    m = c.metrics()
    return m.backward_transfer if m else None


def _ft(c: Continual) -> float | None:
    m = c.metrics()
    return m.forward_transfer if m else None


def _final_success(c: Continual) -> float | None:
    m = c.metrics()
    return m.average_success if m else None


def _added(c: Continual) -> float | None:
    added = c.params_added
    return float(added) if added is not None else None


#: Comparison columns: header, value of one run (``None`` when it has none), decimals.
COLUMNS: tuple[tuple[str, ContinualValue, int], ...] = (
    ("average forgetting", _forgetting, 3),
    ("BWT", _bwt, 3),
    ("FT", _ft, 3),
    ("final mean success", _final_success, 3),
    ("parameters added", _added, 0),
)


def _complete(trials: list[Trial]) -> list[Continual]:
    return [t.continual for t in trials if t.continual_usable and t.continual is not None]


def mean_ci_cell(values: list[float], digits: int, *, seed: int) -> str:
    """``"mean [low, high]"`` (95% percentile bootstrap of the mean over seeds, :func:`modrl.stats.summarize`)."""
    summary = summarize_or_none(values, seed=seed)
    if summary is None:
        return DASH
    return f"{fmt(summary.mean, digits)} [{fmt(summary.ci_low, digits)}, {fmt(summary.ci_high, digits)}]"


def comparison_table(collection: Collection, *, seed: int) -> str:
    """Rows = rule (group); per column the mean and 95% bootstrap CI across the group's complete runs (seeds)."""
    rows = []
    for group in collection.groups:
        trials = collection.trials_of(group)
        records = _complete(trials)
        seeds = sorted(t.seed for t in trials if t.continual_usable and t.seed is not None)
        row = [group, f"{len(records)}/{len(trials)}", ", ".join(map(str, seeds)) or DASH]
        for _, value, digits in COLUMNS:
            found = [value(r) for r in records]
            row.append(mean_ci_cell([v for v in found if v is not None], digits, seed=seed))
        rows.append(row)
    headers = ["rule", "complete", "seeds", *(f"{name} (mean [95% CI])" for name, _, _ in COLUMNS)]
    return markdown_table(headers, rows, text_columns=3)


def runs_table(collection: Collection) -> str:
    """One row per run: rule, seed, status, rows of R evaluated, and its own metrics."""
    rows = []
    for trial in collection.trials:
        c = trial.continual
        cells = [trial.id, trial.group, DASH if trial.seed is None else str(trial.seed), trial.status.value]
        cells.append(f"{len(c.matrix)}/{len(c.tasks)}" if c else DASH)
        for _, value, digits in COLUMNS:
            found = value(c) if c is not None else None
            cells.append(fmt(found, digits) if found is not None else DASH)
        rows.append(cells)
    headers = ["run", "rule", "seed", "status", "stages evaluated", *(name for name, _, _ in COLUMNS)]
    return markdown_table(headers, rows, text_columns=4)


def per_task_table(c: Continual) -> str:
    """One row per task: ``R[i][i]``, final score, forgetting, AUC of its stage, reference AUC, forward transfer."""
    metrics = c.metrics()
    rows = []
    for i, task in enumerate(c.tasks):
        own = c.matrix[i][i] if i < len(c.matrix) else None
        final = c.matrix[-1][i] if c.complete else None
        stage = c.stages[i] if i < len(c.stages) else None
        reference = c.reference_auc.get(task)
        ft = metrics.forward_transfer_per_task[i] if metrics and metrics.forward_transfer_per_task else None
        forgetting = metrics.forgetting[i] if metrics else None
        values = [own, final, forgetting, stage.auc if stage else None, reference, ft]
        rows.append([str(i), task, *(DASH if v is None else fmt(v, 3) for v in values)])
    headers = ["stage", "task", "R[i][i]", "R[N-1][i]", "forgetting", "AUC", "reference AUC", "FT"]
    return markdown_table(headers, rows, text_columns=2)


def params_table(c: Continual) -> str:
    """Per stage: parameter elements trainable during it, frozen, active after it, added by it, and the rule phase."""
    rows = []
    for i, s in enumerate(c.stages):
        steps = f"{s.start_step}-{s.end_step}" if s.start_step is not None and s.end_step is not None else DASH
        counts = [s.trainable, s.frozen, s.active, s.added]
        rows.append([str(i), s.task, steps, *(DASH if n is None else f"{n:,}" for n in counts), s.rule_phase or DASH])
    headers = ["stage", "task", "steps", "trainable", "frozen", "active", "added", "rule phase"]
    return markdown_table(headers, rows, text_columns=3)


def heatmaps_section(collection: Collection, out: Path, *, title: str = "Continual learning (R matrix)") -> str:
    """Per group, the mean ``R`` over its complete runs as a heatmap PNG (runs with another task list left out)."""
    from modrl.report.plots import plot_r_matrix

    parts: list[str] = []
    taken: set[str] = set()
    for group in collection.groups:
        results = [t.continual for t in collection.trials_of(group) if t.continual is not None and t.continual.complete]
        if not results:
            continue
        same = [r for r in results if r.tasks == results[0].tasks]
        matrix = np.mean(np.asarray([r.matrix for r in same], dtype=np.float64), axis=0)
        name = f"r_matrix_{slug(group, taken)}.png"
        plot_r_matrix(matrix, same[0].tasks, out / name, title=f"{group} (mean of {len(same)})")
        parts.append(f"### {group}\n\n![R matrix, {group}]({name})")
    if not parts:
        return ""
    intro = (
        f"## {title}\n\n`R[i][j]`: score on task j after training on task i (`continual.json`), averaged over "
        "the complete runs of each group."
    )
    return "\n\n".join([intro, *parts])


def single_run_sections(trial: Trial, out: Path) -> str:
    """R table (with the untrained agent's row), heatmap, per-task metrics and per-stage parameter counts."""
    from modrl.report.plots import plot_r_matrix

    c = trial.continual
    assert c is not None
    state = "complete" if c.complete else f"in progress: {len(c.matrix)} of {len(c.tasks)} stages evaluated"
    r_text = (
        f"## R matrix\n\nRows: after training on task i; columns: evaluated on task j (success rate, "
        f"deterministic policy, fixed evaluation seeds). Rule `{c.rule_kind or DASH}`; {state}.\n\n"
        + format_r_table(c.matrix, c.tasks, initial=c.initial)
    )
    if c.complete:
        plot_r_matrix(c.matrix, c.tasks, out / "r_matrix.png", title=f"R ({c.rule_kind or '?'}, {trial.id})")
        r_text += "\n\n![R matrix](r_matrix.png)"
    metrics = c.metrics()
    lines = ["## Continual metrics"]
    if metrics is None:
        lines.append("Not computed until every task has its row of R.")
    else:
        values = [
            ("average forgetting", metrics.average_forgetting),
            ("backward transfer (BWT)", metrics.backward_transfer),
            ("forward transfer (FT)", metrics.forward_transfer),
            ("final mean success", metrics.average_success),
        ]
        added = c.params_added
        table = [[name, DASH if v is None else fmt(v, 3)] for name, v in values]
        table.append(["parameters added after the first task", DASH if added is None else f"{added:,}"])
        lines.append(markdown_table(["metric", "value"], table))
        if metrics.forward_transfer is None:
            lines.append("FT needs the from-scratch reference (`sequence.reference: scratch`).")
    lines += ["### Per task", per_task_table(c), "### Parameters per stage", params_table(c)]
    return r_text + "\n\n" + "\n\n".join(lines)
