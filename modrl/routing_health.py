"""Is the router specialising? Numbers from the task x module allocation that say it without reading weights.

Given each task's mean routing weights (``task_usage``, rows ``p(module | task)``) and how often each task was seen,
:func:`routing_health` computes the mutual information between task and module (how much knowing the task tells which
module computes; 0 when every task routes alike, e.g. a uniform or collapsed router), each task's routing entropy and
top weight, and two flags: **collapsed** (one module carries almost all the weight of all tasks) and **specialised**
(every task puts most of its weight on one module, and not every task on the same one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Collapsed: one module carries at least this share of the mean weight over all decisions.
COLLAPSE_SHARE = 0.9
#: Specialised: every task's largest mean weight is at least this.
SPECIALISED_TOP = 0.6


@dataclass(frozen=True, kw_only=True, eq=False)
class RoutingHealth:
    """What :func:`routing_health` found (``T`` tasks, ``K`` modules; tasks never seen are NaN in the arrays).

    Attributes:
        mutual_information: ``I(task; module)`` in nats, tasks weighted by how often they were seen and a task's
            module drawn from its mean allocation.
        normalised_mi: ``mutual_information / log(min(tasks seen, K))`` in [0, 1] (1: as many tasks as possible each
            on its own module; 0 with one task seen or one module).
        task_entropy: ``(T,)`` entropy (nats) of each task's mean allocation (0: one module; log K: uniform).
        top_share: ``(T,)`` each task's largest mean weight.
        collapsed: ``K >= 2`` and one module carries at least :data:`COLLAPSE_SHARE` of all weight.
        specialised: At least two tasks seen, each with a top weight of at least :data:`SPECIALISED_TOP`, and their
            top modules not all the same.
    """

    mutual_information: float
    normalised_mi: float
    task_entropy: np.ndarray
    top_share: np.ndarray
    collapsed: bool
    specialised: bool

    def line(self) -> str:
        """``routing: task-module MI 0.83 (normalised) | top weight per task 0.61-0.97 | specialised``."""
        seen = self.top_share[~np.isnan(self.top_share)]
        tops = f"{seen.min():.2f}-{seen.max():.2f}" if seen.size else "-"
        verdict = "collapsed" if self.collapsed else "specialised" if self.specialised else "not specialised"
        return f"routing: task-module MI {self.normalised_mi:.2f} (normalised) | top weight per task {tops} | {verdict}"


def routing_health(task_usage: np.ndarray, task_counts: np.ndarray) -> RoutingHealth:
    """The :class:`RoutingHealth` of a ``(T, K)`` allocation (rows: a task's mean weights) seen ``task_counts`` times.

    Raises:
        ValueError: Shapes that do not match, negative counts, or a seen task whose row is not a distribution.
    """
    usage = np.asarray(task_usage, dtype=np.float64)
    counts = np.asarray(task_counts, dtype=np.float64)
    if usage.ndim != 2 or counts.shape != (usage.shape[0],):
        raise ValueError(f"task_usage must be (T, K) and task_counts (T,), got {usage.shape} and {counts.shape}")
    if np.any(counts < 0):
        raise ValueError("task_counts must be >= 0")
    tasks, k = usage.shape
    seen = counts > 0
    rows = usage[seen]
    # Rows rounded for display (evaluation files keep 4 decimals) are renormalised; anything further off is refused.
    if rows.size and (np.any(rows < -1e-9) or not np.allclose(rows.sum(axis=1), 1.0, atol=1e-2)):
        raise ValueError("each seen task's row of task_usage must be a distribution over the modules")
    task_entropy = np.full(tasks, np.nan)
    top_share = np.full(tasks, np.nan)
    if not rows.size:
        return RoutingHealth(
            mutual_information=0.0,
            normalised_mi=0.0,
            task_entropy=task_entropy,
            top_share=top_share,
            collapsed=False,
            specialised=False,
        )
    rows = np.clip(rows, 0.0, None)
    rows = rows / rows.sum(axis=1, keepdims=True)
    p_task = counts[seen] / counts[seen].sum()
    joint = p_task[:, None] * rows
    p_module = joint.sum(axis=0)
    ratio = np.divide(joint, p_task[:, None] * p_module[None, :], out=np.ones_like(joint), where=joint > 0)
    mi = float(np.sum(joint * np.log(ratio)))
    bound = math.log(min(int(seen.sum()), k))
    task_entropy[seen] = -np.sum(np.where(rows > 0, rows * np.log(np.where(rows > 0, rows, 1.0)), 0.0), axis=1)
    top_share[seen] = rows.max(axis=1)
    tops = rows.argmax(axis=1)
    return RoutingHealth(
        mutual_information=max(mi, 0.0),
        normalised_mi=min(max(mi / bound, 0.0), 1.0) if bound > 0 else 0.0,
        task_entropy=task_entropy,
        top_share=top_share,
        collapsed=k >= 2 and float(p_module.max()) >= COLLAPSE_SHARE,
        specialised=len(tops) >= 2 and bool(np.all(rows.max(axis=1) >= SPECIALISED_TOP)) and len(set(tops)) > 1,
    )
