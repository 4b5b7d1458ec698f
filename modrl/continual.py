"""Continual-learning metrics from the success matrix ``R`` and learning curves.

``R[i, j]`` is the success rate on task ``j`` (the ``j``-th of the sequence) after training stage ``i``. Definitions
follow Continual World (Wolczyk et al. 2021) and, for backward transfer, GEM (Lopez-Paz & Ranzato 2017):

* forgetting of task ``i``: ``F_i = R[i, i] - R[N-1, i]`` (success right after its stage minus at the end);
  average forgetting ``F = mean_i F_i`` over all ``N`` tasks (the last one cannot forget: ``F_{N-1} = 0``);
* backward transfer ``BWT = mean_{i < N-1} (R[N-1, i] - R[i, i])`` (``= -F * N / (N-1)``; positive when later
  training helped earlier tasks);
* forward transfer of task ``i``: ``FT_i = (AUC_i - AUC_i^ref) / (1 - AUC_i^ref)`` where ``AUC`` is the normalised
  area under the task's success curve during its stage and ``AUC^ref`` the same for the task learned from scratch
  with the same budget (when ``AUC^ref = 1`` the normaliser is dropped: ``FT_i = AUC_i - 1``); ``FT = mean_i FT_i``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _square(matrix: ArrayLike) -> NDArray[np.float64]:
    r = np.asarray(matrix, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] == 0:
        raise ValueError(f"R must be a non-empty N x N matrix, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("R must be finite")
    return r


def forgetting(matrix: ArrayLike) -> NDArray[np.float64]:
    """``(N,)`` forgetting per task, ``R[i, i] - R[N-1, i]`` (0 for the last task)."""
    r = _square(matrix)
    return np.diag(r) - r[-1]


def average_forgetting(matrix: ArrayLike) -> float:
    """Mean of :func:`forgetting` over all ``N`` tasks (Continual World's ``F``)."""
    return float(forgetting(matrix).mean())


def backward_transfer(matrix: ArrayLike) -> float | None:
    """GEM's ``BWT = mean_{i < N-1} (R[N-1, i] - R[i, i])``; ``None`` for a single task."""
    r = _square(matrix)
    if r.shape[0] < 2:
        return None
    return float((r[-1, :-1] - np.diag(r)[:-1]).mean())


def area_under_curve(steps: Sequence[float], values: Sequence[float], *, start: float, end: float) -> float:
    """Normalised area under a step-function learning curve on ``[start, end]``.

    Point ``k`` ``(steps[k], values[k])`` is the value measured at the end of the interval ``(steps[k-1], steps[k]]``
    (``steps[-1] := start``), e.g. a success rate logged after each rollout; the curve is 0 before its first point
    and holds its last value until ``end``. Points outside ``[start, end]`` are clipped to it.

    Returns:
        ``(1 / (end - start)) * integral``, in the units of ``values`` (in [0, 1] for success rates).
    """
    if end <= start:
        raise ValueError(f"end must be > start, got [{start}, {end}]")
    if len(steps) != len(values):
        raise ValueError(f"steps and values differ in length: {len(steps)} != {len(values)}")
    s = np.clip(np.asarray(steps, dtype=np.float64), start, end)
    v = np.asarray(values, dtype=np.float64)
    if s.size and np.any(np.diff(s) < 0):
        raise ValueError("steps must be non-decreasing")
    widths = np.diff(np.concatenate([[start], s]))
    total = float((widths * v).sum())
    if s.size:
        total += float(v[-1] * (end - s[-1]))
    return total / (end - start)


def forward_transfer(auc: float, auc_reference: float) -> float:
    """Continual World's ``FT_i = (AUC_i - AUC_ref) / (1 - AUC_ref)`` (``AUC_i - 1`` when ``AUC_ref = 1``)."""
    gap = 1.0 - auc_reference
    return (auc - auc_reference) / gap if gap > 1e-12 else auc - auc_reference


@dataclass(frozen=True, kw_only=True)
class ContinualMetrics:
    """Summary of a (possibly partial) continual run over its first ``N`` tasks.

    Attributes:
        tasks: Number of tasks the metrics cover.
        average_success: Mean of the last row of ``R`` (success on every task at the end).
        average_forgetting: Continual World ``F``.
        backward_transfer: GEM ``BWT`` (``None`` for one task).
        forgetting: Per task.
        forward_transfer: Mean ``FT_i`` (``None`` without reference curves).
        forward_transfer_per_task: Per task (``None`` without reference curves).
        auc: Per-task area under the success curve during its own stage (``None`` without curves).
        auc_reference: Per-task area for the from-scratch reference (``None`` without reference curves).
    """

    tasks: int
    average_success: float
    average_forgetting: float
    backward_transfer: float | None
    forgetting: list[float]
    forward_transfer: float | None = None
    forward_transfer_per_task: list[float] | None = None
    auc: list[float] | None = None
    auc_reference: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def continual_metrics(
    matrix: ArrayLike, *, auc: Sequence[float] | None = None, auc_reference: Sequence[float] | None = None
) -> ContinualMetrics:
    """All metrics of an ``N x N`` matrix ``R`` and, when given, ``N`` AUCs and ``N`` reference AUCs."""
    r = _square(matrix)
    n = r.shape[0]
    for name, seq in (("auc", auc), ("auc_reference", auc_reference)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} needs one value per task ({n}), got {len(seq)}")
    per_task = None
    if auc is not None and auc_reference is not None:
        per_task = [forward_transfer(a, b) for a, b in zip(auc, auc_reference, strict=True)]
    return ContinualMetrics(
        tasks=n,
        average_success=float(r[-1].mean()),
        average_forgetting=average_forgetting(r),
        backward_transfer=backward_transfer(r),
        forgetting=forgetting(r).tolist(),
        forward_transfer=float(np.mean(per_task)) if per_task is not None else None,
        forward_transfer_per_task=per_task,
        auc=list(map(float, auc)) if auc is not None else None,
        auc_reference=list(map(float, auc_reference)) if auc_reference is not None else None,
    )


def format_r_table(matrix: ArrayLike, tasks: Sequence[str], *, initial: Sequence[float] | None = None) -> str:
    """A Markdown table of ``R`` (rows: after training task ``i``; columns: evaluated on task ``j``).

    ``matrix`` may have fewer rows than columns (a run still in progress); ``initial`` adds a first row for the
    untrained agent.
    """
    r = np.asarray(matrix, dtype=np.float64).reshape(-1, len(tasks))
    header = "| after \\ on | " + " | ".join(tasks) + " |"
    lines = [header, "|" + "---|" * (len(tasks) + 1)]
    if initial is not None:
        lines.append("| (untrained) | " + " | ".join(f"{v:.2f}" for v in initial) + " |")
    for i, row in enumerate(r):
        lines.append(f"| {tasks[i]} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    return "\n".join(lines)
