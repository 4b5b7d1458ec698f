"""PNG figures for reports, drawn with matplotlib's Agg backend (no display needed).

Figures are built as :class:`matplotlib.figure.Figure` objects and saved directly, without pyplot's global figure
registry, so nothing leaks between calls. This is the only module of modrl that imports matplotlib (the TensorBoard
writer draws its routing figure through :func:`module_usage_figure`, imported when first needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray

DPI = 110


@dataclass(frozen=True, kw_only=True)
class Band:
    """A mean curve with a confidence band, all ``(T,)`` on the same ``steps``."""

    steps: NDArray[np.float64]
    mean: NDArray[np.float64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    seeds: int


@dataclass(frozen=True, kw_only=True)
class Bars:
    """One group's bars: ``(K,)`` means and interval ends, NaN where a task has no value."""

    mean: NDArray[np.float64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png")
    return path


def plot_learning_curves(
    bands: Mapping[str, Band], path: Path, *, ylabel: str = "training success (mean over tasks)"
) -> Path:
    """One line per group (mean over seeds) with a shaded confidence band; x = frames."""
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.add_subplot()
    for label, band in bands.items():
        (line,) = ax.plot(band.steps, band.mean, label=f"{label} (n={band.seeds})")
        ax.fill_between(band.steps, band.low, band.high, color=line.get_color(), alpha=0.25, linewidth=0)
    ax.set_xlabel("frames")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if bands:
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_grouped_bars(bars: Mapping[str, Bars], labels: Sequence[str], path: Path, *, ylabel: str) -> Path:
    """Grouped bars: ``len(labels)`` clusters (e.g. tasks), one bar per group, error bars from the intervals."""
    fig = Figure(figsize=(max(6.0, 0.9 * len(labels) * max(1, len(bars)) + 2.0), 4.2))
    ax = fig.add_subplot()
    x = np.arange(len(labels), dtype=np.float64)
    width = 0.8 / max(1, len(bars))
    for i, (group, b) in enumerate(bars.items()):
        errors = np.stack([np.nan_to_num(b.mean - b.low), np.nan_to_num(b.high - b.mean)])
        ax.bar(x + (i - (len(bars) - 1) / 2) * width, np.nan_to_num(b.mean), width, yerr=errors, capsize=3, label=group)
    ax.set_xticks(x, list(labels), rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0.0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    if bars:
        ax.legend(fontsize="small")
    return _save(fig, path)


def _annotated_heatmap(ax: Axes, matrix: NDArray[np.float64], *, vmin: float, vmax: float) -> None:
    image = ax.imshow(matrix, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    ax.figure.colorbar(image, ax=ax)
    middle = (vmin + vmax) / 2.0
    for (i, j), value in np.ndenumerate(matrix):
        if np.isnan(value):  # drawn blank: no value to show
            ax.text(j, i, "-", ha="center", va="center", color="grey", fontsize="small")
            continue
        color = "black" if value > middle else "white"
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", color=color, fontsize="small")


def module_usage_figure(
    matrix: ArrayLike,
    task_names: Sequence[str],
    module_names: Sequence[str],
    *,
    title: str = "",
    seen: Sequence[bool] | None = None,
) -> Figure:
    """Heatmap of ``(tasks, modules)`` mean routing weights: task and module names on the axes, the values written in
    the cells, a colour bar on the fixed scale [0, 1] (so figures of one run compare over time). Rows whose ``seen``
    is false (tasks with no routing decision in the window, e.g. held-out tasks during training) are drawn blank and
    labelled "(not seen)" instead of as weights of 0.

    Raises:
        ValueError: The matrix shape does not match the names.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (len(task_names), len(module_names)):
        raise ValueError(f"matrix shape {m.shape} != (tasks, modules) = ({len(task_names)}, {len(module_names)})")
    if seen is not None:
        if len(seen) != len(task_names):
            raise ValueError(f"seen has {len(seen)} entries for {len(task_names)} tasks")
        m = m.copy()
        m[~np.asarray(seen, dtype=bool)] = np.nan
        task_names = [t if s else f"{t} (not seen)" for t, s in zip(task_names, seen, strict=True)]
    fig = Figure(figsize=(1.0 + 0.8 * len(module_names) + 1.5, 1.2 + 0.45 * len(task_names)))
    ax = fig.add_subplot()
    _annotated_heatmap(ax, m, vmin=0.0, vmax=max(1.0, float(np.nanmax(m, initial=0.0))))
    ax.set_xticks(range(len(module_names)), list(module_names), rotation=30, ha="right")
    ax.set_yticks(range(len(task_names)), list(task_names))
    ax.set_xlabel("module")
    ax.set_ylabel("task")
    ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Bar:
    """One bar of :func:`gantt_figure`: ``row`` label, ``start`` and ``width`` on the x axis, a legend ``kind``."""

    row: str
    start: float
    width: float
    kind: str


def gantt_figure(
    bars: Sequence[Bar],
    *,
    colours: Mapping[str, str],
    title: str,
    xlabel: str = "primitive steps",
    legend_title: str = "",
    marks: Sequence[float] = (),
) -> Figure:
    """A labelled timeline: one row per distinct ``row`` (in order of first appearance), each bar coloured by its
    ``kind`` (``colours``: kind -> matplotlib colour; the legend lists every kind), vertical dashed lines at
    ``marks`` (e.g. re-plans)."""
    rows = list(dict.fromkeys(bar.row for bar in bars)) or ["(none)"]
    fig = Figure(figsize=(8.0, 1.4 + 0.35 * len(rows)))
    ax = fig.add_subplot()
    for bar in bars:
        y = rows.index(bar.row)
        ax.broken_barh([(bar.start, bar.width)], (y - 0.4, 0.8), facecolors=colours[bar.kind], edgecolor="black")
    for x in marks:
        ax.axvline(x, color="black", linestyle="--", linewidth=1.0)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(0, max([bar.start + bar.width for bar in bars], default=1.0))
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    from matplotlib.patches import Patch

    handles = [Patch(color=colour, label=kind) for kind, colour in colours.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", title=legend_title)
    fig.tight_layout()
    return fig


def figure_rgb(fig: Figure) -> NDArray[np.uint8]:
    """The figure drawn into an ``(H, W, 3) uint8`` RGB array (for TensorBoard images)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def plot_module_usage(
    matrix: ArrayLike, task_names: Sequence[str], module_names: Sequence[str], path: Path, *, title: str = ""
) -> Path:
    """:func:`module_usage_figure` saved as a PNG at ``path``."""
    return _save(module_usage_figure(matrix, task_names, module_names, title=title), path)


def r_matrix_figure(matrix: ArrayLike, task_names: Sequence[str], *, title: str = "") -> Figure:
    """Heatmap of a continual-learning matrix ``R`` with its values written in the cells.

    ``R[i][j]`` is the score on task ``j`` (column) after training on task ``i`` (row), as in Lopez-Paz & Ranzato
    2017 (GEM) and Díaz-Rodríguez et al. 2018; the colour scale spans at least [0, 1].

    Args:
        matrix: ``(S, K)`` scores after the first ``S`` stages (``S <= K``; ``K x K`` once every task is trained).
        task_names: ``K`` task names, in training order.
        title: Optional figure title.

    Raises:
        ValueError: ``matrix`` is not ``S x K`` with ``1 <= S <= K = len(task_names)``, or not finite.
    """
    m = np.asarray(matrix, dtype=np.float64)
    k = len(task_names)
    if m.ndim != 2 or m.shape[1] != k or not 1 <= m.shape[0] <= k:
        raise ValueError(f"R must be S x {k} (a row per stage done, a column per task), got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("R must be finite")
    fig = Figure(figsize=(2.5 + 0.9 * k, 1.5 + 0.7 * m.shape[0]))
    ax = fig.add_subplot()
    _annotated_heatmap(ax, m, vmin=min(0.0, float(m.min(initial=0.0))), vmax=max(1.0, float(m.max(initial=0.0))))
    ax.set_xticks(range(k), list(task_names), rotation=30, ha="right")
    ax.set_yticks(range(m.shape[0]), list(task_names)[: m.shape[0]])
    ax.set_xlabel("evaluated on task")
    ax.set_ylabel("after training on task")
    ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    return fig


def plot_r_matrix(matrix: ArrayLike, task_names: Sequence[str], path: Path | str, *, title: str = "") -> Path:
    """:func:`r_matrix_figure` of a complete ``K x K`` matrix saved as a PNG at ``path``.

    Raises:
        ValueError: ``matrix`` is not ``K x K`` for ``K = len(task_names)``, or not finite.
    """
    m = np.asarray(matrix, dtype=np.float64)
    k = len(task_names)
    if m.shape != (k, k):
        raise ValueError(f"R must be {k} x {k} (one row and column per task), got shape {m.shape}")
    return _save(r_matrix_figure(m, task_names, title=title), Path(path))
