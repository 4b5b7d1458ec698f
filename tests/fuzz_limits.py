"""What the Hypothesis fuzz tests share: a wall-clock limit per case and the settings every fuzz test runs with."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator, Sequence
from typing import Any

from hypothesis import HealthCheck, settings


class Hang(BaseException):
    """A case ran past its time limit (a BaseException, so no ``except Exception`` under test swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread if the block runs longer than ``seconds`` (SIGALRM; POSIX)."""

    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"case took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fuzz_settings(cases: int, *, suppress: Sequence[HealthCheck] = (HealthCheck.too_slow,)) -> settings:
    """``cases`` examples, the same ones every run (derandomised), no ``.hypothesis/`` database, no deadline
    (:func:`time_limit` bounds a case; Hypothesis' deadline would be flaky on a busy machine)."""
    return settings(
        max_examples=cases, deadline=None, derandomize=True, database=None, suppress_health_check=list(suppress)
    )
