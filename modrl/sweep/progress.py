"""What a running sweep reports: a progress snapshot for a live line, and the result of a run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: A training progress line of ``modrl train``: ``[ 42.0%] step 10080/24000 | ...``.
TRAIN_PROGRESS = re.compile(r"\[\s*(\d+(?:\.\d+)?)%\] step (\d+)/(\d+)[^\n]*")
#: A running trial's own progress counts towards the ETA once it is this far in (before, the rate is noise).
MIN_FRACTION_FOR_ETA = 0.02


def estimate_eta(
    durations: Sequence[float], running: Sequence[tuple[float, float | None]], pending: int, slots: int
) -> float | None:
    """Seconds until a sweep ends, as both backends print it (``eta`` of :meth:`SweepProgress.line`).

    A trial takes the mean of ``durations`` (seconds of the trials this run finished); before one finishes, the mean
    of the running trials' own extrapolations, ``elapsed / fraction`` of each ``(elapsed seconds, fraction of its
    budget done)`` in ``running`` (``None``: not known yet) at least :data:`MIN_FRACTION_FOR_ETA` in. What is left --
    the running trials' rest and ``pending`` trials not started -- shares ``slots`` parallel slots. ``None`` while
    nothing says yet.
    """
    if not durations:
        durations = [
            elapsed / fraction
            for elapsed, fraction in running
            if fraction is not None and fraction >= MIN_FRACTION_FOR_ETA
        ]
    if not durations:
        return None
    mean = sum(durations) / len(durations)
    left = sum(max(0.0, mean - elapsed) for elapsed, _ in running) + mean * pending
    return left / max(1, slots)


def last_progress(text: str) -> tuple[float, str] | None:
    """``(fraction done, the line)`` of the last training progress line in ``text``, or ``None``."""
    matches = list(TRAIN_PROGRESS.finditer(text))
    if not matches:
        return None
    found = matches[-1]
    done, total = int(found.group(2)), int(found.group(3))
    return (min(done / total, 1.0) if total > 0 else 0.0), found.group(0).strip()


@dataclass(frozen=True)
class SweepProgress:
    """A snapshot for a live progress line.

    Attributes:
        total: Trials in the sweep.
        done: Trials completed, including ``skipped``.
        running: Trials running now.
        failed: Trials that failed in this run.
        skipped: Trials already completed before this run (not re-run).
        eta_s: Estimated seconds until the sweep ends (from this run's finished trials, or before one ends from the
            running trials' own progress), ``None`` while nothing says yet.
        trial_lines: ``"<trial id>: <its latest progress line>"`` for each running trial that printed one.
    """

    total: int
    done: int
    running: int
    failed: int
    skipped: int
    eta_s: float | None
    trial_lines: tuple[str, ...] = ()

    def line(self) -> str:
        """``"trials 3/8 done | 2 running | 1 failed | eta 4m10s"``."""
        eta = "?" if self.eta_s is None else format_duration(self.eta_s)
        return f"trials {self.done}/{self.total} done | {self.running} running | {self.failed} failed | eta {eta}"


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` did.

    Attributes:
        sweep_dir: The sweep directory.
        total: Number of trials in the sweep.
        completed: Number of trials completed now (including ``skipped``).
        skipped: Number of trials completed before this run (not re-run).
        failed: Ids of the trials that failed in this run (their errors are in ``status/<id>.json``).
        interrupted: Ids of the trials stopped by a signal (resumed on the next run).
        not_started: Ids of the trials not started because the sweep was stopped.
        signal: The signal that stopped the sweep, if any (exit with ``128 + signal``).
        stopped: Ids of the trials the scheduler (ASHA, PBT) ended early in this run (``backend: tune``).
    """

    sweep_dir: Path
    total: int
    completed: int
    skipped: int
    failed: tuple[str, ...]
    interrupted: tuple[str, ...]
    not_started: tuple[str, ...]
    signal: int | None
    stopped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every trial completed (or was ended early by the scheduler, which is what it is for)."""
        return self.completed + len(self.stopped) >= self.total


def format_duration(seconds: float) -> str:
    """``"42s"``, ``"4m10s"``, ``"2h05m"``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
