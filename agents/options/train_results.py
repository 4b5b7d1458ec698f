"""What ``modrl options train`` reports: each option's curriculum stage and its success on training and held-out
arguments (:class:`OptionResult`), written as ``results.json`` and the ``results.md`` table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from modrl._io import atomic_write_json, atomic_write_text
from modrl.agents.options.demos import DemoStats
from modrl.options import StageResult

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


@dataclass(frozen=True, kw_only=True)
class OptionTaskEval:
    """One task's evaluation of an option: its split (``train``: training arguments, ``test``: held-out ones) and
    success rates over ``eval_episodes`` sampled (``stoch``) and greedy (``det``)."""

    split: str
    stoch: float
    det: float


@dataclass(frozen=True, kw_only=True)
class OptionResult:
    """How one option trained and evaluated (success rates over ``eval_episodes`` per task; ``None``: no tasks).

    ``demos``: its demonstration warm start (``None`` without one); ``seconds``: wall time of warm start + PPO.
    """

    name: str
    stage: StageResult
    train_success: float | None
    train_success_det: float | None
    test_success: float | None
    test_success_det: float | None
    per_task: dict[str, OptionTaskEval]
    demos: DemoStats | None = None
    seconds: float = 0.0


def split_mean(per_task: dict[str, OptionTaskEval], split: str, *, det: bool) -> float | None:
    """The mean success over the tasks of ``split`` (greedy with ``det``); ``None`` when it has no tasks."""
    values = [row.det if det else row.stoch for row in per_task.values() if row.split == split]
    return float(np.mean(values)) if values else None


def fmt_rate(value: float | None) -> str:
    """A success rate with two decimals, ``-`` for none."""
    return "-" if value is None else f"{value:.2f}"


def write_results(run_dir: Path, results: Sequence[OptionResult]) -> None:
    """``results.json`` (everything) and ``results.md`` (the per-option table) in ``run_dir``."""
    atomic_write_json(run_dir / RESULTS_JSON, {"options": [asdict(r) for r in results]})
    atomic_write_text(run_dir / RESULTS_MD, format_results(results) + "\n")


def format_results(results: Sequence[OptionResult]) -> str:
    """The per-option table: curriculum outcome, frames, success on training and held-out arguments."""
    lines = [
        "| option | demos (BC accuracy) | curriculum | frames | wall s | train success (stoch / det) | "
        "held-out success (stoch / det) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        outcome = (
            f"passed ({fmt_rate(r.stage.success)})" if r.stage.passed else f"budget spent ({fmt_rate(r.stage.success)})"
        )
        demos = "-" if r.demos is None else f"{r.demos.episodes} ({fmt_rate(r.demos.accuracy)})"
        lines.append(
            f"| {r.name} | {demos} | {outcome} | {r.stage.steps} | {r.seconds:.0f} | "
            f"{fmt_rate(r.train_success)} / {fmt_rate(r.train_success_det)} | "
            f"{fmt_rate(r.test_success)} / {fmt_rate(r.test_success_det)} |"
        )
    return "\n".join(lines)
