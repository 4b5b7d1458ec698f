"""What a search (:mod:`modrl.planner.search`, which re-exports these names) is given and gives back: the ordered
:class:`Goal` sequence and how a transition advances it, the :class:`SearchConfig` (algorithm, node bound, weight), an
operator filter (:data:`Allowed`), and the result, a :class:`Plan` or a :class:`NoPlan` with its reason."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from modrl.config import check
from modrl.planner.atoms import parse_atom
from modrl.planner.operators import GroundOperator

Algorithm = Literal["bfs", "astar", "wastar", "gbfs"]
Allowed = Callable[[GroundOperator], bool]
"""A filter on ground operators: ``True`` for those the executor can run."""
ALGORITHMS: tuple[Algorithm, ...] = ("bfs", "astar", "wastar", "gbfs")
OPTIMAL: frozenset[Algorithm] = frozenset({"bfs", "astar"})
"""The algorithms that return shortest plans."""


@dataclass(frozen=True, kw_only=True)
class Goal:
    """One goal of a sequence.

    Attributes:
        holds: Atoms (derived ones allowed) that must be true.
        achieve: Atoms the step reaching this goal must make true (false just before it).
    """

    holds: frozenset[str] = frozenset()
    achieve: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "holds", frozenset(self.holds))
        object.__setattr__(self, "achieve", frozenset(self.achieve))
        check(bool(self.holds or self.achieve), "holds", "a goal needs at least one atom to hold or achieve")
        for atom in self.holds | self.achieve:
            parse_atom(atom)

    def reached(self, before: frozenset[str] | None, after: frozenset[str]) -> bool:
        """Reached by the transition ``before -> after`` (``before=None``: already in the state ``after``)."""
        if not self.holds <= after:
            return False
        if not self.achieve:
            return True
        return before is not None and self.achieve <= after and not self.achieve & before

    def __str__(self) -> str:
        parts = [*sorted(self.holds), *(f"achieve {a}" for a in sorted(self.achieve))]
        return " and ".join(parts)


def as_goals(goals: Goal | Sequence[Goal]) -> tuple[Goal, ...]:
    """A goal or a sequence of goals, as a non-empty tuple."""
    out = (goals,) if isinstance(goals, Goal) else tuple(goals)
    check(bool(out) and all(isinstance(g, Goal) for g in out), "goals", "need one Goal or a non-empty sequence")
    return out


def advance(goals: Sequence[Goal], stage: int, before: frozenset[str] | None, after: frozenset[str]) -> int:
    """The index of the first goal not reached after the transition ``before -> after``, starting at ``stage``."""
    while stage < len(goals) and goals[stage].reached(before, after):
        stage += 1
    return stage


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """How to search.

    Attributes:
        algorithm: ``"bfs"`` and ``"astar"`` return shortest plans; ``"wastar"`` (weighted A*, Pohl 1970) and
            ``"gbfs"`` (greedy best-first) return some plan, usually after far fewer nodes, guided by h_FF (see
            :func:`~modrl.planner.search.heuristic`). All four are complete: they find a plan whenever one exists
            within the node bound.
        max_nodes: Node expansions before giving up with :attr:`NoPlanReason.BOUND`.
        weight: ``"wastar"`` expands nodes by ``g + weight * h`` (``weight`` >= 1; plans at most ``weight`` times
            the shortest when ``h`` is admissible, which h_FF is not: no bound is promised).
    """

    algorithm: Algorithm = "astar"
    max_nodes: int = 100_000
    weight: float = 2.0

    def __post_init__(self) -> None:
        check(self.algorithm in ALGORITHMS, "algorithm", f"{self.algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        check(isinstance(self.max_nodes, int) and self.max_nodes >= 1, "max_nodes", "must be an integer >= 1")
        check(
            isinstance(self.weight, int | float) and not isinstance(self.weight, bool) and 1 <= self.weight < math.inf,
            "weight",
            f"must be a number >= 1, got {self.weight!r}",
        )


@dataclass(frozen=True, kw_only=True)
class Plan:
    """A plan found by search.

    Attributes:
        steps: Ground operators, in order (empty when the goals already hold).
        expanded: Nodes expanded.
        algorithm: The search that found it.
    """

    steps: tuple[GroundOperator, ...]
    expanded: int
    algorithm: Algorithm

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def names(self) -> tuple[str, ...]:
        """Ground operator names, e.g. ``("pickup(key,yellow,room,0)", ...)``."""
        return tuple(step.name for step in self.steps)


class NoPlanReason(Enum):
    """Why search returned no plan."""

    UNREACHABLE = "unreachable"
    """The whole reachable state space was searched: no plan exists."""
    BOUND = "bound"
    """The node bound was hit first: a plan may exist."""
    PRUNED = "pruned"
    """The space reachable with the allowed operators was searched: no plan uses only them (the filter removed
    operators a plan might need)."""


@dataclass(frozen=True, kw_only=True)
class NoPlan:
    """No plan, and why.

    Attributes:
        reason: Unreachable goal or node bound.
        expanded: Nodes expanded.
        message: One line for people.
        proof: With :attr:`NoPlanReason.UNREACHABLE`, when an admissible estimate is infinite at the state planned from
            (the goal-count bound or h_max, see ``_Space.dead_end`` in :mod:`modrl.planner.search`): why, naming the
            goal atom; a proof that no sequence of the operators reaches the goals from that state (it holds for the
            operator model, and for the env only as far as the state is the env's whole state). ``None`` otherwise.
    """

    reason: NoPlanReason
    expanded: int
    message: str
    proof: str | None = None
