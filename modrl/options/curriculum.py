"""A success-threshold curriculum over stages (options or subtasks), as in policy sketches.

Andreas, Klein & Levine (2017, "Modular multitask reinforcement learning with policy sketches") move on to harder
tasks once the training reward passes a threshold. :class:`SuccessCurriculum` keeps the books for that: the trainer
reports finished episodes and frames, asks :meth:`SuccessCurriculum.should_advance`, and calls
:meth:`SuccessCurriculum.advance`, which records how the stage ended. A stage that never passes moves on when its
frame budget is spent, recorded as not passed, so a curriculum always finishes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from modrl.config import check


@dataclass(frozen=True, kw_only=True)
class CurriculumConfig:
    """When a stage is done.

    Attributes:
        threshold: Training success rate (over the last ``window`` episodes) that passes a stage, in (0, 1].
        window: Episodes the success rate is measured over.
        min_episodes: Episodes a stage needs before it can pass (<= ``window``).
        max_steps: Frame budget of a stage; spent, the stage ends unpassed.
    """

    threshold: float = 0.8
    window: int = 50
    min_episodes: int = 20
    max_steps: int = 50_000

    def __post_init__(self) -> None:
        check(0 < self.threshold <= 1, "threshold", f"must be in (0, 1], got {self.threshold}")
        check(self.window >= 1, "window", f"must be >= 1, got {self.window}")
        check(
            1 <= self.min_episodes <= self.window,
            "min_episodes",
            f"must be in [1, window={self.window}], got {self.min_episodes}",
        )
        check(self.max_steps >= 1, "max_steps", f"must be >= 1, got {self.max_steps}")


@dataclass(frozen=True, kw_only=True)
class StageResult:
    """How one stage ended.

    Attributes:
        name: The stage. steps: Frames spent on it. episodes: Episodes finished.
        success: Training success rate over the last window when it ended (``None`` without episodes).
        passed: Whether it reached the threshold (else its budget ran out).
    """

    name: str
    steps: int
    episodes: int
    success: float | None
    passed: bool


class SuccessCurriculum:
    """Stages in order; each ends when training success passes the threshold or its frame budget is spent.

    Args:
        stages: Stage names, in order (at least one, unique).
        config: Thresholds and budgets.
    """

    def __init__(self, stages: Sequence[str], config: CurriculumConfig) -> None:
        check(
            len(stages) >= 1 and len(set(stages)) == len(stages),
            "stages",
            f"needs at least one stage, each once, got {list(stages)}",
        )
        self.stages = tuple(stages)
        self.config = config
        self.results: list[StageResult] = []
        self._window: deque[float] = deque(maxlen=config.window)
        self._steps = 0
        self._episodes = 0

    @property
    def index(self) -> int:
        """Index of the current stage (``len(stages)`` when done)."""
        return len(self.results)

    @property
    def done(self) -> bool:
        """Whether every stage has ended."""
        return self.index >= len(self.stages)

    @property
    def current(self) -> str:
        """The current stage (``RuntimeError`` when done)."""
        if self.done:
            raise RuntimeError("the curriculum is finished")
        return self.stages[self.index]

    @property
    def steps(self) -> int:
        """Frames spent on the current stage."""
        return self._steps

    def success_rate(self) -> float | None:
        """Training success over the current stage's last ``window`` episodes (``None`` before the first)."""
        return sum(self._window) / len(self._window) if self._window else None

    def record_episode(self, success: bool) -> None:
        """Count one finished episode of the current stage."""
        self._window.append(1.0 if success else 0.0)
        self._episodes += 1

    def add_steps(self, frames: int) -> None:
        """Count frames spent on the current stage."""
        check(frames >= 0, "frames", f"must be >= 0, got {frames}")
        self._steps += frames

    def passed(self) -> bool:
        """Whether the current stage has reached the threshold."""
        rate = self.success_rate()
        return len(self._window) >= self.config.min_episodes and rate is not None and rate >= self.config.threshold

    def should_advance(self) -> bool:
        """Whether the current stage is over (passed, or its budget spent)."""
        return not self.done and (self.passed() or self._steps >= self.config.max_steps)

    def advance(self) -> StageResult:
        """End the current stage, record and return how it ended, and start the next."""
        result = StageResult(
            name=self.current,
            steps=self._steps,
            episodes=self._episodes,
            success=self.success_rate(),
            passed=self.passed(),
        )
        self.results.append(result)
        self._window.clear()
        self._steps = self._episodes = 0
        return result
