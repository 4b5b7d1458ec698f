"""Delete-relaxation heuristics over ground operators and ground rules: h_max, h_add and h_FF.

The relaxed problem ignores delete effects: an atom once reached stays. Every ground operator is a relaxed action of
cost 1; every ground instance of a derived-predicate rule is one of cost 0 (its head follows from its body for
free); a wildcard atom (``connects(door,red,room,0,room,*)``) is a fact of its own, reached at cost 0 from any atom
it matches. From a state, facts get costs by the generalised Dijkstra propagation of Bonet & Geffner (2001): an
action is enabled once all its preconditions have a cost, and gives its effects ``cost(action) + combine(costs of its
preconditions)``, with ``combine`` the maximum (h_max) or the sum (h_add). h_FF (Hoffmann & Nebel 2001) follows the
h_add best supporters back from the goal atoms and counts the distinct operators on the way (the length of a relaxed
plan). ``inf`` when the relaxation cannot reach a goal atom.

Negative literals (``not locked(door,red)``, a rule's ``not blocked(...)``) are either dropped (``negations=False``: a
true relaxation, so h_max is admissible; except those over a base predicate no operator adds, such as ``locked``: once
false they stay false, so their ``!L`` facts below are exact and are compiled in this mode too) or compiled into
positive facts ``!L`` (``negations=True``, after the usual compilation of negative preconditions, e.g. Gazen & Knoblock
1997): ``!L`` holds in a state where nothing matches ``L``, and is reached by every operator that deletes an atom
matching ``L`` -- for a derived ``L``, an atom of the body of a rule instance deriving it, or adds one its negative
literals name. Without this, a locked door opens in the relaxation with no key and a door a ball blocks lets the agent
through, and h_FF cannot see the key fetches and the ball moves that ObstructedMaze's plans are made of. The compiled
achievers are an estimate (no admissibility is claimed): callers should not prune a state on an ``inf`` from it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from typing import Literal

from modrl.planner.atoms import WILDCARD, AtomIndex, is_variable, match, parse_atom, substitute
from modrl.planner.domain import Domain
from modrl.planner.operators import GroundOperator

Relaxation = Literal["hmax", "hadd", "hff"]
RELAXATIONS: tuple[Relaxation, ...] = ("hmax", "hadd", "hff")


def _unify(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Two ground-or-wildcard argument tuples can name one atom."""
    return len(a) == len(b) and all(x in (y, WILDCARD) or y == WILDCARD for x, y in zip(a, b, strict=True))


def _wild(atom: str) -> str:
    """``atom`` with its unbound variables as wildcards (a negative literal's free variable is universal)."""
    name, args = parse_atom(atom)
    if not any(is_variable(a) for a in args):
        return atom
    return f"{name}({','.join(WILDCARD if is_variable(a) else a for a in args)})"


def _never_added(literal: str, ops: Sequence[GroundOperator], derived: frozenset[str]) -> bool:
    """``literal`` is over a base predicate and no operator adds an atom it matches: once nothing matches it, nothing
    ever will, so its ``!L`` fact is exact and compiling it keeps a relaxation a relaxation (h_max admissible)."""
    name, args = parse_atom(literal)
    if name in derived:
        return False
    return not any(
        other_name == name and _unify(args, other) for op in ops for other_name, other in map(parse_atom, op.add)
    )


class RelaxedGraph:
    """The relaxed actions of a domain's ground operators and ground rules, ready to evaluate states.

    Args:
        domain: Operators, types and rules.
        ops: The ground operators the search uses (e.g. :meth:`Domain.ground` of the initial state, filtered).
        state: A base state the facts are reachable from (the initial state: every atom a search from it meets is
            reached by ``ops``).
        goals: Goal atoms (wildcards allowed), so that :meth:`goal_ids` knows them.
        negations: Compile negative literals into ``!L`` facts (see the module docstring) instead of dropping them.
    """

    def __init__(
        self,
        domain: Domain,
        ops: Sequence[GroundOperator],
        state: frozenset[str],
        goals: Iterable[str] = (),
        *,
        negations: bool = False,
    ) -> None:
        reached = set(domain.closure(state, relaxed=True))
        for op in ops:
            reached |= op.add
        reached = set(domain.closure(frozenset(reached), relaxed=True))
        self._ids: dict[str, int] = {}
        self._pre: list[tuple[int, ...]] = []
        self._add: list[tuple[int, ...]] = []
        self._cost: list[int] = []
        for atom in (*sorted(reached), *goals):
            self._fact(atom)
        index = AtomIndex(reached)
        rules = [
            (
                substitute(rule.head, b),
                tuple(substitute(a, b) for a in rule.body),
                tuple(_wild(substitute(a, b)) for a in rule.neg),
            )
            for rule in domain.rules
            for b in index.join(rule.body, {})
        ]
        every = {n for op in ops for n in op.neg} | {n for _, _, neg in rules for n in neg}
        negs = every if negations else {n for n in every if _never_added(n, ops, domain.derived_predicates)}
        for op in ops:
            self._action((*op.pre, *(f"!{n}" for n in op.neg if n in negs)), op.add, 1)
        for head, body, neg in rules:
            self._action((*body, *(f"!{n}" for n in neg if n in negs)), (head,), 0)
        self._n_ops = len(ops)
        self._negs: list[tuple[int, str | None, frozenset[str]]] = []
        if negs:
            self._compile_negations(domain, ops, rules, sorted(negs), reached)
        self._link_patterns()

    def _fact(self, atom: str) -> int:
        found = self._ids.get(atom)
        if found is None:
            found = self._ids[atom] = len(self._ids)
        return found

    def _action(self, pre: Iterable[str], add: Iterable[str], cost: int) -> None:
        self._pre.append(tuple(sorted({self._fact(a) for a in pre})))
        self._add.append(tuple(self._fact(a) for a in add))
        self._cost.append(cost)

    def _compile_negations(
        self,
        domain: Domain,
        ops: Sequence[GroundOperator],
        rules: list[tuple[str, tuple[str, ...], tuple[str, ...]]],
        negs: list[str],
        reached: set[str],
    ) -> None:
        """Facts ``!L`` for the negative literals ``negs``, how to test them in a state, and their achievers (the
        operator actions, which are the first ``len(ops)``)."""
        derived = domain.derived_predicates
        deleters: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        adders: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for k, op in enumerate(ops):
            for atom in (*op.delete_exact, *op.delete_patterns):
                name, args = parse_atom(atom)
                deleters.setdefault(name, []).append((args, k))
            for atom in op.add:
                name, args = parse_atom(atom)
                adders.setdefault(name, []).append((args, k))

        def touching(table: dict[str, list[tuple[tuple[str, ...], int]]], atom: str) -> set[int]:
            name, args = parse_atom(atom)
            return {k for other, k in table.get(name, ()) if _unify(args, other)}

        def achievers(literal: str, seen: set[str]) -> set[int]:
            """Operators after which nothing need match ``literal`` any more."""
            if literal in seen:
                return set()
            seen.add(literal)
            name, args = parse_atom(literal)
            if name not in derived:
                return touching(deleters, literal)
            out: set[int] = set()
            for head, body, neg in rules:
                if parse_atom(head)[0] == name and _unify(args, parse_atom(head)[1]):
                    for atom in body:
                        out |= achievers(atom, seen) if parse_atom(atom)[0] in derived else touching(deleters, atom)
                    for atom in neg:
                        out |= touching(adders, atom)
            return out

        by_name: dict[str, list[str]] = {}
        for atom in reached:
            by_name.setdefault(parse_atom(atom)[0], []).append(atom)
        self._negs = []
        for literal in negs:
            fact = self._fact(f"!{literal}")
            name, args = parse_atom(literal)
            if WILDCARD in args:
                matches = frozenset(a for a in by_name.get(name, ()) if match(args, parse_atom(a)[1], {}) is not None)
                self._negs.append((fact, None, matches))
            else:
                self._negs.append((fact, literal, frozenset()))
            for k in achievers(literal, set()):
                self._add[k] = (*self._add[k], fact)

    def _link_patterns(self) -> None:
        """Cost-0 actions from every plain fact to each wildcard fact it matches; then the users of each fact."""
        atoms = [a for a in list(self._ids) if not a.startswith("!")]
        patterns = [(a, parse_atom(a)) for a in atoms if WILDCARD in parse_atom(a)[1]]
        by_name: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for atom in atoms:
            name, args = parse_atom(atom)
            if WILDCARD not in args:
                by_name.setdefault(name, []).append((atom, args))
        for pattern, (name, args) in patterns:
            for atom, values in by_name.get(name, ()):
                if match(args, values, {}) is not None:
                    self._action((atom,), (pattern,), 0)
        self._users: list[list[int]] = [[] for _ in self._ids]
        for k, pre in enumerate(self._pre):
            for fact in pre:
                self._users[fact].append(k)
        self._free = [k for k, pre in enumerate(self._pre) if not pre]

    def goal_ids(self, atoms: Iterable[str]) -> tuple[int, ...] | None:
        """The facts of ``atoms`` (``None`` when one is not a fact: unreachable from any state of the search)."""
        out = []
        for atom in atoms:
            found = self._ids.get(atom)
            if found is None:
                return None
            out.append(found)
        return tuple(out)

    def _initial(self, state: frozenset[str]) -> dict[int, int]:
        """Cost 0 for the facts of ``state`` and for the ``!L`` facts that hold there."""
        ids = self._ids
        cost = {ids[a]: 0 for a in state if a in ids}
        for fact, literal, matches in self._negs:
            if (literal not in state) if literal is not None else state.isdisjoint(matches):
                cost[fact] = 0
        return cost

    def evaluate(self, state: frozenset[str], goal: tuple[int, ...] | None, kind: Relaxation) -> float:
        """The ``kind`` estimate of reaching every fact of ``goal`` (from :meth:`goal_ids`) from ``state`` (atoms,
        derived ones included); ``inf`` if the relaxation cannot reach them."""
        if goal is None:
            return math.inf
        if not goal:
            return 0.0
        cost, support, left = self._propagate(state, goal, kind)
        if left:
            return math.inf
        if kind == "hmax":
            return float(max(cost[f] for f in goal))
        if kind == "hadd":
            return float(sum(cost[f] for f in goal))
        return float(self._relaxed_plan(goal, cost, support))

    def unreached(self, state: frozenset[str], atoms: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Why :meth:`evaluate` is ``inf`` from ``state``: ``(the atoms of atoms the relaxation cannot reach, the
        compiled negative literals it cannot make true there)`` -- for ``negations=False`` the latter are literals
        over base predicates no operator adds (``locked(door,purple)`` when nothing that unlocks that door can be
        reached): they stay true for good. The first is empty when every atom is reached."""
        atoms = sorted(set(atoms))
        missing = [a for a in atoms if a not in self._ids]
        goal = tuple(self._ids[a] for a in atoms if a in self._ids)
        names = {i: a for a, i in self._ids.items()}
        cost, _, left = self._propagate(state, goal, "hmax", to_fixpoint=True)
        stuck = sorted(names[f][1:] for f, _, _ in self._negs if f not in cost)
        return tuple(sorted([*missing, *(names[f] for f in left)])), tuple(stuck)

    def _propagate(
        self, state: frozenset[str], goal: tuple[int, ...], kind: Relaxation, *, to_fixpoint: bool = False
    ) -> tuple[dict[int, int], dict[int, int], set[int]]:
        """Fact costs from ``state`` (the generalised Dijkstra propagation), their best supporters, and the facts of
        ``goal`` left unreached; it stops once every goal fact is reached unless ``to_fixpoint``."""
        total = kind != "hmax"
        cost = self._initial(state)
        support: dict[int, int] = {}
        heap = [(0, f) for f in cost]
        waiting = [len(p) for p in self._pre]
        value = [0] * len(self._pre)
        for k in self._free:
            for fact in self._add[k]:
                if self._cost[k] < cost.get(fact, math.inf):
                    cost[fact], support[fact] = self._cost[k], k
                    heap.append((self._cost[k], fact))
        heapq.heapify(heap)
        left, done = set(goal), set()
        action_cost, add, users = self._cost, self._add, self._users
        while heap and (left or to_fixpoint):
            c, fact = heapq.heappop(heap)
            if fact in done or c > cost[fact]:
                continue
            done.add(fact)
            left.discard(fact)
            for k in users[fact]:
                value[k] = value[k] + c if total else max(value[k], c)
                waiting[k] -= 1
                if waiting[k]:
                    continue
                reach = value[k] + action_cost[k]
                for nxt in add[k]:
                    if reach < cost.get(nxt, math.inf):
                        cost[nxt], support[nxt] = reach, k
                        heapq.heappush(heap, (reach, nxt))
        return cost, support, left

    def _relaxed_plan(self, goal: tuple[int, ...], cost: dict[int, int], support: dict[int, int]) -> int:
        """Operators of the relaxed plan that the best supporters give for ``goal`` (h_FF)."""
        used: set[int] = set()
        seen: set[int] = set()
        stack = [f for f in goal if cost[f] > 0]
        while stack:
            fact = stack.pop()
            if fact in seen:
                continue
            seen.add(fact)
            k = support[fact]
            if k in used:
                continue
            used.add(k)
            stack.extend(f for f in self._pre[k] if cost[f] > 0)
        return sum(1 for k in used if k < self._n_ops)
