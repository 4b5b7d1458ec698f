"""Execute a plan skill by skill, monitor every step, and re-plan from what was observed when the world differs.

The environment is reached only through a :class:`SkillExecutor`: it runs one ground operator's skill until the skill
reports done, failed or timed out, and returns the observed state. After each skill the monitor compares the expected
effects with the observed state and checks the rest of the plan against it (the triangle-table idea of PLANEX,
Fikes, Hart & Nilsson 1972): when the skill did not finish, or (by policy) its effects differ, or the remaining steps
no longer reach the goals from the observed state, it re-plans from the observed state, up to a bound. A re-plan
that starts with a step which has ended from that very state without acting or changing anything -- done once, or
failed :data:`IDLE_ATTEMPTS` times -- ends the execution (:attr:`Outcome.NO_PROGRESS`) instead of running it again
until the bound. Every plan,
re-plan and step is kept in an :class:`ExecutionTrace`. Every (re-)plan may be restricted to the operators an
``allowed`` filter passes (the skills the executor can run, e.g. :attr:`OptionExecutor.allowed
<modrl.planner.option_executor.OptionExecutor.allowed>`); when those reach no plan, :class:`PrunedPolicy` says
whether to stop or to plan over every operator and let the executor try (a learned option may do more than its
operator says, and the monitor re-plans from what it observes).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from modrl.config import check
from modrl.planner.domain import Domain
from modrl.planner.operators import GroundOperator
from modrl.planner.search import (
    Allowed,
    Goal,
    NoPlan,
    NoPlanReason,
    Plan,
    SearchConfig,
    advance,
    as_goals,
    plan,
    simulate,
)
from modrl.planner.trace import (
    ExecutionTrace,
    InjectedFailures,
    Outcome,
    PlanRecord,
    SkillExecutor,
    SkillResult,
    SkillStatus,
    StepRecord,
)

__all__ = [
    "IDLE_ATTEMPTS",
    "ExecutionTrace",
    "InjectedFailures",
    "MonitorConfig",
    "Outcome",
    "PlanRecord",
    "PrunedPolicy",
    "ReplanPolicy",
    "SkillExecutor",
    "SkillResult",
    "SkillStatus",
    "StepRecord",
    "execute",
]

logger = logging.getLogger(__name__)


class ReplanPolicy(Enum):
    """When a step that finished should trigger a re-plan."""

    INVALID = "invalid"
    """Only when the rest of the plan no longer reaches the goals from the observed state."""
    EFFECTS = "effects"
    """Whenever an expected effect is missing from the observed state (or the rest of the plan is invalid)."""


class PrunedPolicy(Enum):
    """What a (re-)plan does when the ``allowed`` operators reach no plan (:attr:`NoPlanReason.PRUNED`)."""

    STOP = "stop"
    """End the execution with :attr:`Outcome.NO_PLAN`."""
    UNFILTERED = "unfiltered"
    """Plan over every operator instead: steps the executor cannot run fail, and the monitor re-plans from the
    observed state (first with the filter again)."""


IDLE_ATTEMPTS = 3
"""Attempts of one step from one state that fail or time out without acting before a re-plan that starts with it
again ends the execution (:attr:`Outcome.NO_PROGRESS`); a skill that fails at once fails the same way every time,
but an injected or chance failure deserves a retry."""


@dataclass(frozen=True, kw_only=True)
class MonitorConfig:
    """Execution limits.

    Attributes:
        search: Search settings for every (re-)plan.
        max_replans: Re-plans allowed after the first plan.
        max_skills: Skill executions allowed in total.
        replan_on: :class:`ReplanPolicy`.
        on_pruned: :class:`PrunedPolicy` (used only when :func:`execute` gets an ``allowed`` filter).
    """

    search: SearchConfig = field(default_factory=SearchConfig)
    max_replans: int = 5
    max_skills: int = 100
    replan_on: ReplanPolicy = ReplanPolicy.INVALID
    on_pruned: PrunedPolicy = PrunedPolicy.UNFILTERED

    def __post_init__(self) -> None:
        check(isinstance(self.search, SearchConfig), "search", "must be a SearchConfig")
        check(isinstance(self.max_replans, int) and self.max_replans >= 0, "max_replans", "must be an integer >= 0")
        check(isinstance(self.max_skills, int) and self.max_skills >= 1, "max_skills", "must be an integer >= 1")
        check(isinstance(self.replan_on, ReplanPolicy), "replan_on", "must be a ReplanPolicy")
        check(isinstance(self.on_pruned, PrunedPolicy), "on_pruned", "must be a PrunedPolicy")


class _Run:
    """Mutable book-keeping of one :func:`execute` call."""

    def __init__(
        self,
        domain: Domain,
        goals: tuple[Goal, ...],
        config: MonitorConfig,
        state: frozenset[str],
        allowed: Allowed | None,
    ) -> None:
        self.domain, self.goals, self.config, self.allowed = domain, goals, config, allowed
        self.state = state
        self.stage = advance(goals, 0, None, domain.closure(state))
        self.plans: list[PlanRecord] = []
        self.steps: list[StepRecord] = []
        self.queue: list[GroundOperator] = []
        self.elapsed = 0
        self.idle: Counter[tuple[frozenset[str], int, str]] = Counter()
        """(state, stage, operator) -> attempts there that ended without acting or changing anything (a step that
        says it is done counts as :data:`IDLE_ATTEMPTS` at once)."""

    @property
    def replans(self) -> int:
        return max(len(self.plans) - 1, 0)

    def replan(self, reason: str, found: Plan | NoPlan | None = None) -> bool:
        """Plan from the current state (``found``: a search result from it already at hand); False when no plan was
        found."""
        found = self._search() if found is None else found
        failed = found.message if isinstance(found, NoPlan) else None
        steps = () if isinstance(found, NoPlan) else found.steps
        self.plans.append(
            PlanRecord(
                after_skills=len(self.steps),
                reason=reason,
                steps=tuple(s.name for s in steps),
                skills=tuple(s.symbol for s in steps),
                no_plan=failed,
                stage=self.stage,
                proof=found.proof if isinstance(found, NoPlan) else None,
            )
        )
        logger.debug("plan %d (%s): %s", len(self.plans) - 1, reason, failed or " -> ".join(s.name for s in steps))
        self.queue = list(steps)
        return failed is None

    def _search(self) -> Plan | NoPlan:
        found = plan(self.domain, self.state, self.goals, self.config.search, stage=self.stage, allowed=self.allowed)
        if not (
            isinstance(found, NoPlan)
            and found.reason is NoPlanReason.PRUNED
            and self.config.on_pruned is PrunedPolicy.UNFILTERED
        ):
            return found
        logger.debug("%s; planning over every operator", found.message)
        return plan(self.domain, self.state, self.goals, self.config.search, stage=self.stage)

    def run_step(self, executor: SkillExecutor, op: GroundOperator) -> SkillResult:
        result = executor.execute(op)
        if result.steps == 0 and result.state == self.state:
            done = result.status is SkillStatus.DONE
            self.idle[(self.state, self.stage, op.name)] += IDLE_ATTEMPTS if done else 1
        before = self.domain.closure(self.state)
        self.stage = advance(self.goals, self.stage, before, self.domain.closure(result.state))
        mismatches = op.effect_mismatches(self.state, result.state)
        self.steps.append(
            StepRecord(
                operator=op.name,
                skill=op.symbol,
                status=result.status,
                start=self.elapsed,
                steps=result.steps,
                mismatches=mismatches,
                stage=self.stage,
                plan=len(self.plans) - 1,
            )
        )
        self.elapsed += result.steps
        self.state = result.state
        return result

    def why_replan(self, op: GroundOperator, result: SkillResult) -> str | None:
        if result.status is not SkillStatus.DONE:
            return f"{op.symbol} {result.status.value}"
        mismatches = self.steps[-1].mismatches
        if self.config.replan_on is ReplanPolicy.EFFECTS and mismatches:
            return f"{op.symbol}: effects differ ({', '.join(mismatches)})"
        if simulate(self.domain, self.state, self.queue, self.goals, self.stage) != len(self.goals):
            why = f" ({', '.join(mismatches)})" if mismatches else ""
            return f"after {op.symbol} the rest of the plan no longer reaches the goal{why}"
        return None

    def loops(self) -> bool:
        """Whether the plan just made starts with a step that already finished here without effect (see
        :attr:`Outcome.NO_PROGRESS`); if so, its record says so instead of listing the plan."""
        if not self.queue or self.idle[(self.state, self.stage, self.queue[0].name)] < IDLE_ATTEMPTS:
            return False
        op, last = self.queue[0], self.steps[-1].status
        ended = "finished" if last is SkillStatus.DONE else f"{last.value} {IDLE_ATTEMPTS} times"
        self.plans[-1] = replace(
            self.plans[-1],
            steps=(),
            skills=(),
            no_plan=f"re-plan loop: the plan starts with {op.symbol} [{op.name}] again, which has {ended} here after "
            f"0 steps without changing the state (its effects {', '.join(sorted(op.add))} do not show up)",
        )
        return True

    def trace(self, outcome: Outcome) -> ExecutionTrace:
        return ExecutionTrace(
            goals=tuple(str(g) for g in self.goals),
            plans=tuple(self.plans),
            steps=tuple(self.steps),
            outcome=outcome,
            stage=self.stage,
            final_state=self.state,
        )


def execute(
    domain: Domain,
    goals: Goal | Sequence[Goal],
    executor: SkillExecutor,
    config: MonitorConfig | None = None,
    *,
    allowed: Allowed | None = None,
    initial: Plan | None = None,
) -> ExecutionTrace:
    """Plan, run the plan skill by skill, and re-plan from the observed state when it no longer fits.

    Args:
        domain: Operators, types and rules.
        goals: One goal or a sequence reached in order.
        executor: Runs skills and observes the state.
        config: Limits and the re-plan policy.
        allowed: Every (re-)plan uses only the ground operators it passes (``None``: all; see
            :func:`modrl.planner.search.plan`).
        initial: The first plan, when the caller has already searched from the executor's current state with the
            same goals, domain and filter (``modrl plan --execute`` prints it first): it is run without searching
            again.

    Returns:
        The :class:`ExecutionTrace`; ``outcome`` is ``SUCCESS`` when every goal was reached (or the environment ended
        the episode reporting success).
    """
    config = config or MonitorConfig()
    run = _Run(domain, as_goals(goals), config, executor.observe(), allowed)
    if run.stage == len(run.goals):
        return run.trace(Outcome.SUCCESS)
    if not run.replan("initial", initial):
        return run.trace(Outcome.NO_PLAN)
    while True:
        if not run.queue:
            if not run.replan("the plan ran out before the goals were reached"):
                return run.trace(Outcome.NO_PLAN)
            if run.loops():
                return run.trace(Outcome.NO_PROGRESS)
        if len(run.steps) >= config.max_skills:
            return run.trace(Outcome.SKILL_LIMIT)
        op = run.queue.pop(0)
        result = run.run_step(executor, op)
        if run.stage == len(run.goals) or (result.episode_over and result.success):
            return run.trace(Outcome.SUCCESS)
        if result.episode_over:
            return run.trace(Outcome.EPISODE_OVER)
        reason = run.why_replan(op, result)
        if reason is None:
            continue
        if run.replans >= config.max_replans:
            run.plans.append(
                PlanRecord(
                    after_skills=len(run.steps),
                    reason=reason,
                    steps=(),
                    skills=(),
                    no_plan="re-plan limit reached",
                    stage=run.stage,
                )
            )
            return run.trace(Outcome.REPLAN_LIMIT)
        if not run.replan(reason):
            return run.trace(Outcome.NO_PLAN)
        if run.loops():
            return run.trace(Outcome.NO_PROGRESS)
