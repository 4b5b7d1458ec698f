"""Option-critic duration curves: mean option duration, termination probability and training success vs frames.

Reads the TensorBoard scalars that ``modrl options critic`` logs (steps are frames) from groups of run directories,
one group per label (e.g. one termination_reg value, several seeds), and

* writes a PNG with three panels: mean option duration (``modrl/options/mean_duration``, log scale), termination
  probability of the running option (``modrl/option_critic/termination_prob``) and training success
  (``modrl/success/mean``); per label the mean over its runs, with the min-max band over runs;
* prints (and with ``--out`` writes) a markdown table of the same means at ``--points`` frame counts spread evenly
  over the frames every run reached.

Runs of a label are compared at the same frames by linear interpolation between logged points; ``--smooth N`` first
replaces every logged value by the mean of the last N logged values of its run (non-finite values are dropped).

    python experiments/options/option_critic_curve.py \\
        --runs "reg 0=RUN_A,RUN_B,RUN_C" --runs "reg 0.01=RUN_D,RUN_E,RUN_F" \\
        --png curve.png --out curve.md

A run directory is the one ``modrl options critic --run-dir`` made (its events are under ``tb/``) or the ``tb``
directory itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from modrl._io import atomic_write_text

#: (TensorBoard tag, row / panel name, table number format).
METRICS: tuple[tuple[str, str, str], ...] = (
    ("modrl/options/mean_duration", "mean option duration (steps)", ".1f"),
    ("modrl/option_critic/termination_prob", "termination prob", ".3f"),
    ("modrl/success/mean", "training success", ".2f"),
)


class CurveError(Exception):
    """A run directory, its event files or one of its tags is missing or unusable."""


@dataclass(frozen=True, kw_only=True)
class Series:
    """One scalar tag of one run: ``steps (N,) int64`` frames and ``values (N,) float64``, finite, steps sorted."""

    steps: np.ndarray
    values: np.ndarray


def parse_group(text: str) -> tuple[str, list[Path]]:
    """``"LABEL=DIR1,DIR2"`` -> (label, directories); argparse ``type=`` for ``--runs``."""
    label, sep, dirs = text.partition("=")
    paths = [Path(d.strip()) for d in dirs.split(",") if d.strip()]
    if not sep or not label.strip() or not paths:
        raise argparse.ArgumentTypeError(f"expected LABEL=DIR[,DIR...], got {text!r}")
    return label.strip(), paths


def event_dir(run: Path) -> Path:
    """The directory holding ``run``'s event files: ``run/tb`` if it exists, else ``run`` itself."""
    if not run.is_dir():
        raise CurveError(f"{run}: no such run directory")
    folder = run / "tb" if (run / "tb").is_dir() else run
    if not any(p.name.startswith("events.out.tfevents") for p in folder.iterdir()):
        raise CurveError(f"{run}: no TensorBoard event files in {folder}")
    return folder


def read_run(run: Path, tags: list[str], smooth: int) -> dict[str, Series]:
    """Every tag of ``tags`` from ``run``'s events (all points kept; the last value wins on a repeated step)."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    folder = event_dir(run)
    acc = EventAccumulator(str(folder), size_guidance={SCALARS: 0}).Reload()
    present = set(acc.Tags()["scalars"])
    out: dict[str, Series] = {}
    for tag in tags:
        if tag not in present:
            raise CurveError(f"{run}: tag {tag!r} not logged (scalar tags there: {', '.join(sorted(present))})")
        points = {int(e.step): float(e.value) for e in acc.Scalars(tag)}
        steps = np.array(sorted(points), dtype=np.int64)
        values = np.array([points[s] for s in steps.tolist()], dtype=np.float64)
        keep = np.isfinite(values)
        if not keep.any():
            raise CurveError(f"{run}: tag {tag!r} has no finite value")
        out[tag] = Series(steps=steps[keep], values=trailing_mean(values[keep], smooth))
    return out


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """``(N,)`` -> ``(N,)``: element i is the mean of ``values[max(0, i - window + 1) : i + 1]``."""
    sums = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(1, len(values) + 1)
    start = np.maximum(index - window, 0)
    means: np.ndarray = (sums[index] - sums[start]) / (index - start)
    return means


def frame_range(runs: list[dict[str, Series]], tag: str) -> tuple[int, int]:
    """The frames every run in ``runs`` logged ``tag`` over: (largest first step, smallest last step)."""
    return max(int(r[tag].steps[0]) for r in runs), min(int(r[tag].steps[-1]) for r in runs)


def at(runs: list[dict[str, Series]], tag: str, frames: np.ndarray) -> np.ndarray:
    """``(R, F)`` values of ``tag`` of every run at ``frames (F,)``, linearly interpolated between logged points."""
    return np.stack([np.interp(frames, r[tag].steps, r[tag].values) for r in runs])


def table_frames(groups: dict[str, list[dict[str, Series]]], points: int) -> np.ndarray:
    """``(points,)`` frame counts spread evenly over the frames that every run of every group logged every tag."""
    ranges = [frame_range(runs, tag) for runs in groups.values() for tag, _, _ in METRICS]
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    if lo > hi:
        raise CurveError(f"the runs share no logged frame range (latest first point {lo}, earliest last point {hi})")
    return np.unique(np.rint(np.linspace(lo, hi, points)).astype(np.int64))


def _frames_label(frames: int) -> str:
    return f"{frames / 1000:.4g} k"


def markdown_table(groups: dict[str, list[dict[str, Series]]], frames: np.ndarray) -> str:
    """Rows metric x label (mean over the label's runs), columns ``frames``."""
    lines = ["| frames | " + " | ".join(_frames_label(int(f)) for f in frames) + " |", "|---|" + "---|" * len(frames)]
    for tag, name, fmt in METRICS:
        for label, runs in groups.items():
            means = at(runs, tag, frames.astype(np.float64)).mean(axis=0)
            lines.append(f"| {name}, {label} | " + " | ".join(format(float(v), fmt) for v in means) + " |")
    return "\n".join(lines) + "\n"


def plot(groups: dict[str, list[dict[str, Series]]], png: Path, title: str) -> None:
    """Three panels (duration, termination prob, success) vs frames; per label the mean line and min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(5.5 * len(METRICS), 4.2), constrained_layout=True)
    for ax, (tag, name, _) in zip(axes, METRICS, strict=True):
        for label, runs in groups.items():
            lo, hi = frame_range(runs, tag)
            steps = np.unique(np.concatenate([r[tag].steps for r in runs]))
            frames = steps[(steps >= lo) & (steps <= hi)].astype(np.float64)
            values = at(runs, tag, frames)
            line = ax.plot(frames, values.mean(axis=0), label=f"{label} ({len(runs)} runs)")[0]
            ax.fill_between(frames, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
        if tag == "modrl/options/mean_duration":
            ax.set_yscale("log")
            ax.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlabel("frames")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--runs",
        type=parse_group,
        action="append",
        required=True,
        metavar="LABEL=DIR[,DIR...]",
        help="one curve: a label and its run directories (seeds), comma-separated; repeat per label",
    )
    parser.add_argument("--png", type=Path, required=True, help="where to write the figure")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument("--points", type=int, default=8, help="frame points of the table (default: 8)")
    parser.add_argument(
        "--smooth",
        type=int,
        default=1,
        help="trailing mean over this many logged points of each run before anything else (default: 1, raw values)",
    )
    parser.add_argument("--title", default="option-critic", help="figure title")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, read every run, plot, print the table; 2 on an unusable run or tag (the message names it)."""
    args = _parser().parse_args(argv)
    if args.points < 1 or args.smooth < 1:
        print("error: --points and --smooth must be >= 1", file=sys.stderr)
        return 2
    labels = [label for label, _ in args.runs]
    if len(set(labels)) != len(labels):
        print(f"error: a label is given twice: {labels}", file=sys.stderr)
        return 2
    tags = [tag for tag, _, _ in METRICS]
    try:
        groups = {label: [read_run(run, tags, args.smooth) for run in runs] for label, runs in args.runs}
        frames = table_frames(groups, args.points)
    except CurveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = markdown_table(groups, frames)
    plot(groups, args.png, args.title)
    print(table, end="")
    print(f"figure: {args.png}")
    if args.out is not None:
        atomic_write_text(args.out, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
