"""What the monitor (:mod:`modrl.planner.monitor`, which re-exports these names) talks to and records: the
:class:`SkillExecutor` protocol and its :class:`SkillResult`, how an execution ended (:class:`Outcome`), the
:class:`ExecutionTrace` of every plan and skill execution, and :class:`InjectedFailures` to make skills fail on
purpose."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from modrl.config import check
from modrl.planner.operators import GroundOperator


class SkillStatus(Enum):
    """How a skill execution ended."""

    DONE = "done"
    FAILED = "failed"
    TIMEOUT = "timeout"


@dataclass(frozen=True, kw_only=True)
class SkillResult:
    """What one skill execution returned.

    Attributes:
        status: Done, failed or timed out.
        state: The observed base atoms afterwards.
        steps: Primitive environment steps taken.
        episode_over: The environment ended the episode during the skill.
        success: The environment reported success (meaningful when ``episode_over``).
    """

    status: SkillStatus
    state: frozenset[str]
    steps: int = 0
    episode_over: bool = False
    success: bool = False


class SkillExecutor(Protocol):
    """Runs skills in an environment (scripted controllers now, learned options later)."""

    def observe(self) -> frozenset[str]:
        """The current base atoms."""
        ...

    def execute(self, step: GroundOperator) -> SkillResult:
        """Run ``step.skill`` with ``step.skill_args`` until it is done, fails or times out."""
        ...


class Outcome(Enum):
    """How an execution ended."""

    SUCCESS = "success"
    NO_PLAN = "no_plan"
    REPLAN_LIMIT = "replan_limit"
    NO_PROGRESS = "no_progress"
    """A re-plan starts with a step that has already ended without acting or changing the observed state, from that
    very state: done once (running it again would change nothing either: the operator's effects and the skill
    disagree), or failed or timed out :data:`~modrl.planner.monitor.IDLE_ATTEMPTS` times."""

    SKILL_LIMIT = "skill_limit"
    EPISODE_OVER = "episode_over"


@dataclass(frozen=True, kw_only=True)
class PlanRecord:
    """One plan or re-plan.

    Attributes:
        after_skills: Skills executed before it was made (0 for the first plan).
        reason: Why it was made (``"initial"`` for the first).
        steps: Ground operator names, or ``()`` when no plan was found.
        skills: The skill calls of ``steps``.
        no_plan: The :class:`~modrl.planner.search.NoPlan` message, if search failed.
        stage: Goals already reached when it was made.
        proof: The :attr:`NoPlan.proof <modrl.planner.search.NoPlan.proof>`, if search failed because an admissible
            estimate proved the goals unreachable from the state planned from.
    """

    after_skills: int
    reason: str
    steps: tuple[str, ...]
    skills: tuple[str, ...]
    no_plan: str | None
    stage: int
    proof: str | None = None


@dataclass(frozen=True, kw_only=True)
class StepRecord:
    """One skill execution.

    Attributes:
        operator: The ground operator's name.
        skill: The skill call.
        status: How it ended.
        start: Primitive steps taken before it (its start on the timeline).
        steps: Primitive steps it took.
        mismatches: Expected effects that did not show up (see ``GroundOperator.effect_mismatches``).
        stage: Goals reached after it.
        plan: Index of the plan it belonged to.
    """

    operator: str
    skill: str
    status: SkillStatus
    start: int
    steps: int
    mismatches: tuple[str, ...]
    stage: int
    plan: int


@dataclass(frozen=True, kw_only=True)
class ExecutionTrace:
    """Everything that happened in one monitored execution.

    Attributes:
        goals: The goals, as text, in order.
        plans: The first plan and every re-plan.
        steps: Every skill execution.
        outcome: How it ended.
        stage: Goals reached at the end.
        final_state: The last observed base atoms.
    """

    goals: tuple[str, ...]
    plans: tuple[PlanRecord, ...]
    steps: tuple[StepRecord, ...]
    outcome: Outcome
    stage: int
    final_state: frozenset[str]

    @property
    def replans(self) -> int:
        """Re-plans made (plans after the first)."""
        return max(len(self.plans) - 1, 0)

    @property
    def proven_unreachable(self) -> str | None:
        """Why the goals are unreachable, when the first search proved it (:attr:`PlanRecord.proof`) and the
        execution ended there, before any skill ran; ``None`` otherwise."""
        if self.outcome is not Outcome.NO_PLAN or self.steps or len(self.plans) != 1:
            return None
        return self.plans[0].proof

    @property
    def total_steps(self) -> int:
        """Primitive steps over all skills."""
        return sum(s.steps for s in self.steps)


class InjectedFailures:
    """A :class:`SkillExecutor` wrapper that makes chosen skill executions fail without running them (for tests and
    demonstrations of re-planning).

    Args:
        inner: The executor to wrap.
        fail_at: 0-based indices of the ``execute`` calls that fail.
        status: What the failed calls report (``FAILED`` or ``TIMEOUT``).
    """

    def __init__(
        self, inner: SkillExecutor, fail_at: Collection[int], status: SkillStatus = SkillStatus.FAILED
    ) -> None:
        check(status is not SkillStatus.DONE, "status", "an injected failure cannot report DONE")
        bad = [i for i in fail_at if isinstance(i, bool) or not isinstance(i, int) or i < 0]
        check(not bad, "fail_at", f"indices must be integers >= 0, got {bad[:3]}")
        self.inner = inner
        self.fail_at = frozenset(fail_at)
        self.status = status
        self.calls = 0

    def observe(self) -> frozenset[str]:
        """The wrapped executor's observation."""
        return self.inner.observe()

    def execute(self, step: GroundOperator) -> SkillResult:
        """Fail this call if its index is in ``fail_at``, else run it."""
        index, self.calls = self.calls, self.calls + 1
        if index in self.fail_at:
            return SkillResult(status=self.status, state=self.inner.observe(), steps=0)
        return self.inner.execute(step)
