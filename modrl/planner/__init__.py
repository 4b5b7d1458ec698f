"""Symbolic planning over skills: operators, shortest-plan search, operator learning, monitored execution.

Predicates are plain strings such as ``carrying(key,red)``; nothing here knows about MiniGrid (the MiniGrid operators
and the scripted skills live in :mod:`modrl.envs.operators` and :mod:`modrl.envs.scripted_skills`).
"""

from __future__ import annotations

from modrl.planner.atoms import WILDCARD, AtomIndex, format_atom, parse_atom
from modrl.planner.domain import Domain
from modrl.planner.learning import OperatorAgreement, PartAgreement, Transition, agreement, learn_operators
from modrl.planner.monitor import (
    ExecutionTrace,
    InjectedFailures,
    MonitorConfig,
    Outcome,
    PlanRecord,
    PrunedPolicy,
    ReplanPolicy,
    SkillExecutor,
    SkillResult,
    SkillStatus,
    StepRecord,
    execute,
)
from modrl.planner.operators import GroundOperator, Operator, Param, Rule
from modrl.planner.search import (
    Allowed,
    Goal,
    NoPlan,
    NoPlanReason,
    Plan,
    SearchConfig,
    advance,
    heuristic,
    plan,
    simulate,
    unreachable_proof,
)
from modrl.planner.tensorboard import log_trace, plan_text, timeline_figure, timeline_image

__all__ = [
    "WILDCARD",
    "Allowed",
    "AtomIndex",
    "Domain",
    "ExecutionTrace",
    "Goal",
    "GroundOperator",
    "InjectedFailures",
    "MonitorConfig",
    "NoPlan",
    "NoPlanReason",
    "Operator",
    "OperatorAgreement",
    "Outcome",
    "Param",
    "PartAgreement",
    "Plan",
    "PlanRecord",
    "PrunedPolicy",
    "ReplanPolicy",
    "Rule",
    "SearchConfig",
    "SkillExecutor",
    "SkillResult",
    "SkillStatus",
    "StepRecord",
    "Transition",
    "advance",
    "agreement",
    "execute",
    "format_atom",
    "heuristic",
    "learn_operators",
    "log_trace",
    "parse_atom",
    "plan",
    "plan_text",
    "simulate",
    "timeline_figure",
    "timeline_image",
    "unreachable_proof",
]
