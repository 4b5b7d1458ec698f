"""Plans by search over ground operators, towards an ordered sequence of goals: shortest plans by breadth-first search
or A*, and (usually far sooner on long chains of doors, keys and boxes) some plan by weighted A* or greedy best-first
search guided by h_FF (:mod:`modrl.planner.relaxed`).

A goal is a :class:`Goal` or a sequence of them, reached in order (like BabyAI's ``BeforeInstr`` chains and
:class:`modrl.envs.task_env.SubtaskSequence`): after every step, the current goal is checked on the transition and,
when reached, so is the next one on the same transition. A goal may ask for atoms that merely *hold* (``holds``: "be
facing the door") and atoms that the last step must newly *achieve* (``achieve``: "pick up the key" is an event, so a
key already carried must be dropped and picked up again). With unit costs BFS and A* return a shortest plan; A*
uses an admissible heuristic (the larger of :func:`heuristic` and h_max) and is exact with it (Hart, Nilsson &
Raphael 1968). Weighted A* (Pohl 1970) and greedy best-first search use h_FF (Hoffmann & Nebel 2001) with negative
preconditions compiled in, which is not admissible: their plans may be longer, and they prune a state only where an
admissible estimate proves it a dead end, so they stay complete (every state within the node bound is searched before
they give up).

An optional filter ``allowed(ground_operator) -> bool`` restricts the search to the operators whose skills the
executor can run (e.g. those a library of learned options serves): the others are pruned before the search starts, so
a plan never calls a skill nobody can execute, and when no plan remains the :class:`NoPlan` says the filter is why.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

from modrl.config import check
from modrl.planner.atoms import AtomIndex, parse_atom
from modrl.planner.domain import Domain
from modrl.planner.frontier import best_first, breadth_first, path
from modrl.planner.operators import GroundOperator
from modrl.planner.plans import (
    ALGORITHMS,
    OPTIMAL,
    Algorithm,
    Allowed,
    Goal,
    NoPlan,
    NoPlanReason,
    Plan,
    SearchConfig,
    advance,
    as_goals,
)
from modrl.planner.relaxed import Relaxation, RelaxedGraph

__all__ = [
    "ALGORITHMS",
    "CLOCK_EVERY",
    "OPTIMAL",
    "PROGRESS_EVERY_S",
    "Algorithm",
    "Allowed",
    "Goal",
    "NoPlan",
    "NoPlanReason",
    "Plan",
    "SearchConfig",
    "advance",
    "as_goals",
    "heuristic",
    "plan",
    "simulate",
    "unreachable_proof",
]

logger = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0
"""A search or grounding that runs longer logs a progress line (INFO: nodes expanded, seconds) this often."""
CLOCK_EVERY = 256
"""Expansions between two readings of the clock for :data:`PROGRESS_EVERY_S`."""

_Node = tuple[frozenset[str], int]


class _Space:
    """The search space: ground operators, closures (cached) and the goal sequence."""

    def __init__(
        self, domain: Domain, state: frozenset[str], goals: tuple[Goal, ...], allowed: Allowed | None = None
    ) -> None:
        self.domain = domain
        self.goals = goals
        every = domain.ground(state)
        keep = [True] * len(every) if allowed is None else [bool(allowed(op)) for op in every]
        self.ops = tuple(op for op, ok in zip(every, keep, strict=True) if ok)
        self.pruned = tuple(op for op, ok in zip(every, keep, strict=True) if not ok)
        self._closures: dict[frozenset[str], tuple[frozenset[str], AtomIndex]] = {}
        derived = domain.derived_predicates
        goal_names = {parse_atom(a)[0] for g in goals for a in g.holds | g.achieve}
        self._goals_on_base = not goal_names & derived  # goals checked without closing successor states
        self._base_goal_atoms = [
            frozenset(a for a in g.holds | g.achieve if parse_atom(a)[0] not in derived) for g in goals
        ]
        self._rates = [max((len(op.add & atoms) for op in self.ops), default=0) for atoms in self._base_goal_atoms]
        # _separate[j]: goals j and j + 1 cannot both be reached by the same step (so each needs a step of its own).
        self._separate = [
            not any(_shares(op, goals[j], goals[j + 1], derived) for op in self.ops) for j in range(len(goals) - 1)
        ]
        # _stuck[j]: goal j's base atoms to achieve that no operator deletes: once true, never achieved again.
        self._stuck = [
            frozenset(
                a
                for a in g.achieve
                if parse_atom(a)[0] not in derived and not any(op.deleted(frozenset({a})) for op in self.ops)
            )
            for g in goals
        ]
        self._state = state
        self._relaxed: dict[bool, tuple[RelaxedGraph, list[tuple[int, ...] | None]]] = {}

    def closure(self, state: frozenset[str]) -> tuple[frozenset[str], AtomIndex]:
        cached = self._closures.get(state)
        if cached is None:
            full = self.domain.closure(state)
            cached = self._closures[state] = (full, AtomIndex(full))
        return cached

    def start(self, state: frozenset[str], stage: int) -> _Node:
        return state, advance(self.goals, stage, None, self.closure(state)[0])

    def successors(self, node: _Node) -> list[tuple[GroundOperator, _Node]]:
        state, stage = node
        full, index = self.closure(state)
        before = state if self._goals_on_base else full
        out = []
        for op in self.ops:
            if op.applicable(full, index):
                nxt = op.apply(state)
                after = nxt if self._goals_on_base else self.closure(nxt)[0]
                out.append((op, (nxt, advance(self.goals, stage, before, after))))
        return out

    def heuristic(self, node: _Node) -> float:
        state, stage = node
        if stage >= len(self.goals):
            return 0.0
        if any(stuck & state for stuck in self._stuck[stage:]):
            return math.inf  # a goal's event can no longer happen (the door it must open is open for good)
        best = 1.0 + sum(self._separate[stage:])
        for atoms, rate in zip(self._base_goal_atoms[stage:], self._rates[stage:], strict=True):
            missing = len(atoms - state)
            if missing and not rate:
                return math.inf
            if missing:
                best = max(best, float(math.ceil(missing / rate)))
        return best

    def dead_end(self, node: _Node) -> str | None:
        """Why no plan reaches the goals not yet reached from ``node``, if an admissible estimate proves it without
        search (:meth:`heuristic` or h_max is infinite there): the goal atom no operator adds, the event that can no
        longer happen, or the goal atoms no relaxed plan reaches (and what stays true for good); ``None`` when
        neither estimate proves it (a plan may still not exist)."""
        state, stage = node
        if stage >= len(self.goals):
            return None
        for j in range(stage, len(self.goals)):
            held = sorted(self._stuck[j] & state)
            if held:
                return f"goal {j + 1} must achieve {held[0]}, which holds already and no operator undoes"
            if self._rates[j] == 0 and self._base_goal_atoms[j] - state:
                return f"no operator adds {sorted(self._base_goal_atoms[j] - state)[0]} (goal {j + 1})"
        if not math.isinf(self.relaxed(node, "hmax")):
            return None
        graph, _ = self._relaxed[False]
        atoms = sorted({a for g in self.goals[stage:] for a in g.holds | g.achieve})
        missing, stuck = graph.unreached(self.closure(state)[0], atoms)
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        why = f"no relaxed plan reaches {shown or 'the goals'} (h_max = inf)"
        if stuck:
            why += f"; stays true for good: {', '.join(stuck[:3])}" + (" ..." if len(stuck) > 3 else "")
        return why

    def relaxed(self, node: _Node, kind: Relaxation) -> float:
        """The delete-relaxation estimate ``kind`` of the atoms of every goal not yet reached, at least
        :meth:`heuristic` (see :mod:`modrl.planner.relaxed`). h_max drops negative literals (admissible); h_add and
        h_FF compile them (not admissible, and an ``inf`` from them does not prove a dead end) and add one step per
        atom the current goal must achieve that already holds (it has to be undone first)."""
        state, stage = node
        if stage >= len(self.goals):
            return 0.0
        negations = kind != "hmax"
        if negations not in self._relaxed:
            atoms = [a for g in self.goals for a in g.holds | g.achieve]
            graph = RelaxedGraph(self.domain, self.ops, self._state, atoms, negations=negations)
            remaining = [
                graph.goal_ids(sorted({a for g in self.goals[j:] for a in g.holds | g.achieve}))
                for j in range(len(self.goals))
            ]
            self._relaxed[negations] = graph, remaining
        graph, remaining = self._relaxed[negations]
        full = self.closure(state)[0]
        estimate = graph.evaluate(full, remaining[stage], kind)
        if negations:
            estimate += len(self.goals[stage].achieve & full)
        return max(estimate, self.heuristic(node))


def _shares(op: GroundOperator, first: Goal, second: Goal, derived: frozenset[str]) -> bool:
    """Whether one application of ``op`` could reach ``first`` and then ``second`` on the same transition: it adds
    every atom both must achieve and deletes no base atom either needs to hold (unless it adds it back)."""
    if not first.achieve | second.achieve <= op.add:
        return False
    needed = frozenset(a for a in first.holds | second.holds if parse_atom(a)[0] not in derived)
    return not (op.deleted(needed) - op.add)


def heuristic(
    domain: Domain,
    state: frozenset[str],
    goals: Goal | Sequence[Goal],
    stage: int = 0,
    *,
    allowed: Allowed | None = None,
) -> float:
    """A*'s admissible estimate of the plan length from ``state`` (unit costs).

    The larger of two lower bounds: (1) for each goal not yet reached, the number of its base (non-derived) atoms
    still false, divided by the most such atoms any one ground operator adds, rounded up (the maximum over the goals);
    (2) one step for the current goal plus one for each later goal that no single operator can reach together with
    the goal before it (it must add both goals' ``achieve`` atoms and delete none of their ``holds`` atoms). ``inf``
    when a missing atom is added by no operator, or an atom a goal must achieve already holds and no operator deletes
    it (the goal is unreachable: "open the purple door" once that door is open, with no operator that closes one).
    Only operators ``allowed`` passes count.
    """
    space = _Space(domain, state, as_goals(goals), allowed)
    return space.heuristic(space.start(state, stage))


def unreachable_proof(
    domain: Domain,
    state: frozenset[str],
    goals: Goal | Sequence[Goal],
    stage: int = 0,
    *,
    allowed: Allowed | None = None,
) -> str | None:
    """Why no sequence of the (``allowed``) operators reaches ``goals[stage:]`` from ``state``, if an admissible
    estimate proves it without search (:func:`heuristic` or h_max infinite there; what :attr:`NoPlan.proof` says);
    ``None`` when neither does (a plan may still not exist)."""
    space = _Space(domain, frozenset(state), as_goals(goals), allowed)
    return space.dead_end(space.start(frozenset(state), stage))


class _Progress:
    """Logs ``searching: N nodes expanded, T s`` at most every :data:`PROGRESS_EVERY_S` seconds (the clock is read
    every :data:`CLOCK_EVERY` expansions only)."""

    def __init__(self, started: float) -> None:
        self.started = self.last = started

    def tick(self, expanded: int) -> None:
        if expanded % CLOCK_EVERY:
            return
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            logger.info("searching: %d nodes expanded, %.0f s", expanded, now - self.started)


def plan(
    domain: Domain,
    state: frozenset[str],
    goals: Goal | Sequence[Goal],
    config: SearchConfig | None = None,
    *,
    stage: int = 0,
    allowed: Allowed | None = None,
) -> Plan | NoPlan:
    """A shortest plan from ``state`` reaching ``goals[stage:]`` in order, or :class:`NoPlan`.

    Args:
        domain: Operators, types and rules.
        state: Base atoms (no derived atoms).
        goals: One goal or a sequence reached in order.
        config: Algorithm and node bound (default: A*, 100 000 nodes).
        stage: Goals before this index count as reached.
        allowed: Only ground operators it returns ``True`` for may be used (``None``: all of them).

    Returns:
        A :class:`Plan` (possibly empty) or a :class:`NoPlan` saying whether the goal is unreachable, unreachable with
        the allowed operators only (:attr:`NoPlanReason.PRUNED`, when the filter removed some), or the bound hit.
    """
    config = config or SearchConfig()
    goal_list = as_goals(goals)
    check(isinstance(stage, int) and 0 <= stage <= len(goal_list), "stage", f"must lie in [0, {len(goal_list)}]")
    started = time.perf_counter()
    space = _Space(domain, frozenset(state), goal_list, allowed)
    grounding = time.perf_counter() - started
    if grounding >= PROGRESS_EVERY_S:
        logger.info("grounded %d operators in %.0f s", len(space.ops) + len(space.pruned), grounding)
    start = space.start(frozenset(state), stage)
    if start[1] == len(goal_list):
        return Plan(steps=(), expanded=0, algorithm=config.algorithm)
    progress = _Progress(started)
    if config.algorithm == "bfs":
        found, parents, expanded, bounded = breadth_first(space, start, config.max_nodes, progress)
    else:
        found, parents, expanded, bounded = best_first(space, start, config, progress)
    if found is not None:
        return Plan(steps=path(parents, found), expanded=expanded, algorithm=config.algorithm)
    if bounded:
        return NoPlan(
            reason=NoPlanReason.BOUND,
            expanded=expanded,
            message=f"node bound hit: {expanded} nodes expanded without reaching the goal",
        )
    if space.pruned:
        skills = sorted({op.symbol for op in space.pruned})
        shown = ", ".join(skills[:6]) + (f" and {len(skills) - 6} more" if len(skills) > 6 else "")
        return NoPlan(
            reason=NoPlanReason.PRUNED,
            expanded=expanded,
            message=f"no plan with the allowed skills only: exhausted after {expanded} expansions; "
            f"{len(space.pruned)} operator(s) pruned, calling {shown}",
        )
    proof = space.dead_end(start)
    if proof is not None:
        return NoPlan(
            reason=NoPlanReason.UNREACHABLE,
            expanded=expanded,
            message=f"goal unreachable, proven from the state planned from: {proof}",
            proof=proof,
        )
    return NoPlan(
        reason=NoPlanReason.UNREACHABLE,
        expanded=expanded,
        message=f"goal unreachable: the search space was exhausted after {expanded} expansions",
    )


def simulate(
    domain: Domain, state: frozenset[str], steps: Sequence[GroundOperator], goals: Goal | Sequence[Goal], stage: int = 0
) -> int | None:
    """Run ``steps`` symbolically from ``state``; the goal index reached, or ``None`` if a step is not applicable."""
    goal_list = as_goals(goals)
    full = domain.closure(state)
    stage = advance(goal_list, stage, None, full)
    for step in steps:
        if not step.applicable(full):
            return None
        state = step.apply(state)
        after = domain.closure(state)
        stage = advance(goal_list, stage, full, after)
        full = after
    return stage
