"""Signals during a sweep: SIGINT/SIGTERM recorded (not raised), so the sweep can stop its trials cleanly."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class SignalTrap:
    """Records SIGINT/SIGTERM instead of raising (main thread only); restores the previous handlers on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal: int | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalTrap:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.signal is None:
            self.signal = signum
