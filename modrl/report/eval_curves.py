"""The report's "Evaluation during training" section: success per split against frames, from ``eval_curve.jsonl``.

``modrl train`` writes that file when ``train.eval_every`` is set: one line per evaluation of every split (held-out
tasks included) with fixed evaluation seeds. Plotted per split, one line per group with a bootstrap band over seeds,
it shows what the final evaluation cannot: whether held-out success peaked before training ended.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from modrl.report.collect import Collection, TrialStatus
from modrl.report.files import ReportError
from modrl.report.tables import markdown_table, slug
from modrl.safe_load import InputError, loads_json
from modrl.stats import align_curves, bootstrap_ci_curve

logger = logging.getLogger(__name__)

#: The file ``train.eval_every`` writes in a run directory (``modrl.agents.common.run_layout.EVAL_CURVE``).
EVAL_CURVE_FILE = "eval_curve.jsonl"
RESAMPLES = 2_000

SplitCurves = dict[str, tuple[list[int], list[float]]]


def read_eval_curve(path: Path) -> SplitCurves | None:
    """``{split: (steps, mean success)}`` from ``eval_curve.jsonl``; ``None`` if missing or empty.

    A torn last line (a kill mid-write) is skipped with a warning; any other unreadable line raises ReportError naming
    the file and line.
    """
    if not path.is_file():
        return None
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    curves: SplitCurves = {}
    for number, line in enumerate(lines, start=1):
        try:
            record = loads_json(line, f"{path}:{number}")
        except InputError as exc:
            if number < len(lines):
                raise ReportError(str(exc)) from None
            logger.warning("%s:%d: skipping a truncated last line", path, number)
            continue
        try:
            step = int(record["step"])
            for split, values in record["splits"].items():
                steps, success = curves.setdefault(str(split), ([], []))
                steps.append(step)
                success.append(float(values["success"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReportError(f"{path}:{number}: malformed evaluation line ({exc!r})") from None
    return curves or None


def eval_curves_section(collection: Collection, out: Path, *, seed: int) -> str:
    """The section (empty when no trial has an ``eval_curve.jsonl``): a figure per split and a peak/last table."""
    from modrl.report.plots import Band, plot_learning_curves

    per_trial = {
        t.id: curves
        for t in collection.trials
        if t.status is TrialStatus.COMPLETED and (curves := read_eval_curve(t.run_dir / EVAL_CURVE_FILE))
    }
    if not per_trial:
        return ""
    splits = list(dict.fromkeys(split for curves in per_trial.values() for split in curves))
    rows: list[list[str]] = []
    figures: list[str] = []
    taken: set[str] = set()
    for split in splits:
        bands: dict[str, Band] = {}
        for group in collection.groups:
            seeds = [per_trial[t.id][split] for t in collection.trials_of(group) if split in per_trial.get(t.id, {})]
            grid, matrix = align_curves(seeds)
            if not grid.size:
                continue
            low, high = bootstrap_ci_curve(matrix, n_resamples=RESAMPLES, seed=seed)
            mean = matrix.mean(axis=0)
            bands[group] = Band(steps=grid, mean=mean, low=low, high=high, seeds=len(seeds))
            peak = int(np.argmax(mean))
            at_peak, at_end = f"{int(grid[peak]):,}", f"{int(grid[-1]):,}"
            rows.append([group, split, str(len(seeds)), f"{mean[peak]:.3f}", at_peak, f"{mean[-1]:.3f}", at_end])
        if bands:
            name = f"eval_curve_{slug(split, taken)}.png"
            plot_learning_curves(bands, out / name, ylabel=f"{split} success (evaluation, mean over tasks)")
            figures.append(f"![Evaluation during training, {split}]({name})")
    header = ["group", "split", "n", "peak of the mean", "at frame", "last", "at frame"]
    text = (
        "## Evaluation during training\n\nEvery split evaluated during training (`train.eval_every`; fixed evaluation "
        "seeds, the episodes per task and greedy/sampled as configured), mean success over the split's tasks against "
        f"frames: mean over completed trials with a pointwise 95% bootstrap band ({RESAMPLES:,} resamples), seeds "
        "aligned as in the learning curves. The table gives where the mean curve peaks and where it ends."
    )
    return "\n\n".join([text, markdown_table(header, rows, text_columns=2), *figures])
