"""The ``scheduler`` of a sweep file: Ray Tune's ASHA or Population Based Training over modrl's training metrics.

::

    scheduler:
      kind: asha               # asha | pbt
      metric: success_mean     # a field of the trials' metrics.jsonl rows: success_mean | return_mean
      mode: max                # max | min
      grace_steps: 2048        # asha: frames every trial trains before it can be stopped
      reduction_factor: 2      # asha: keep the best 1/reduction_factor at each rung
      max_steps: null          # asha: frames of the last rung (null: the trials' own budget ends them)
      interval_steps: 4096     # pbt: frames between exploit/explore decisions

Trials report one row per rollout (``step`` = frames so far, the scheduler's time axis). A trial ASHA stops, or whose
frames PBT replaces, is stopped with SIGTERM and checkpoints like any interrupted ``modrl train``. Only
``backend: tune`` runs a scheduler (:mod:`modrl.sweep.tune_backend`); nothing here imports ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modrl.config import check, check_int, from_dict

SchedulerKind = Literal["asha", "pbt"]
Metric = Literal["success_mean", "return_mean"]
#: Frames: the scheduler's time axis, the ``step`` of every metrics row.
TIME_ATTR = "step"
MAX_FRAMES = 10**12


@dataclass(frozen=True, kw_only=True)
class SchedulerSpec:
    """A validated ``scheduler`` section (see the module docstring for each field)."""

    kind: SchedulerKind
    metric: Metric = "success_mean"
    mode: Literal["max", "min"] = "max"
    grace_steps: int = 2048
    reduction_factor: int = 2
    max_steps: int | None = None
    interval_steps: int = 4096

    def __post_init__(self) -> None:
        check(self.kind in ("asha", "pbt"), "kind", f"{self.kind!r} is not allowed; allowed: asha, pbt")
        allowed = ("success_mean", "return_mean")
        check(self.metric in allowed, "metric", f"{self.metric!r} is not allowed; allowed: {', '.join(allowed)}")
        check(self.mode in ("max", "min"), "mode", f"{self.mode!r} is not allowed; allowed: max, min")
        check_int(self.grace_steps, "grace_steps", low=1, high=MAX_FRAMES)
        check_int(self.reduction_factor, "reduction_factor", low=2, high=100)
        check_int(self.interval_steps, "interval_steps", low=1, high=MAX_FRAMES)
        if self.max_steps is not None:
            check_int(self.max_steps, "max_steps", low=self.grace_steps, high=MAX_FRAMES)

    def to_dict(self) -> dict[str, Any]:
        """The sweep-file form."""
        return {
            "kind": self.kind,
            "metric": self.metric,
            "mode": self.mode,
            "grace_steps": self.grace_steps,
            "reduction_factor": self.reduction_factor,
            "max_steps": self.max_steps,
            "interval_steps": self.interval_steps,
        }


def parse_scheduler(value: Any) -> SchedulerSpec | None:
    """The ``scheduler`` section (``None``: no scheduler). Raises ConfigError naming the key."""
    if value is None:
        return None
    check(isinstance(value, Mapping), "scheduler", f"expected a mapping with kind: asha|pbt, got {value!r}")
    check("kind" in value, "scheduler.kind", "missing; allowed: asha, pbt")
    return from_dict(SchedulerSpec, dict(value), "scheduler")
