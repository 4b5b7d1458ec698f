"""A planning domain (operators + type table + derived-predicate rules): closure of states and grounding.

Grounding follows the relaxed-reachability idea of modern grounders (e.g. Fast Downward, Helmert 2009): starting from
the atoms of the initial state, every operator is instantiated by joining its positive preconditions against the atoms
reachable so far, ignoring deletes and negative preconditions, until nothing new is added. Only instances that can
possibly apply are produced, and they range over the objects that actually occur in the state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import product

from modrl.config import ConfigError, check
from modrl.planner.atoms import AtomIndex, parse_atom, substitute
from modrl.planner.operators import GroundOperator, Operator, Rule


@dataclass(frozen=True, kw_only=True)
class Domain:
    """Operators, the types their parameters range over, and rules for derived predicates.

    Attributes:
        operators: The operators (unique names).
        types: Type name to the values of that type (a parameter of type ``None`` takes any value).
        rules: Derived-predicate rules, applied to a fixpoint by :meth:`closure`, stratum by stratum (a rule that
            negates a derived predicate runs after every rule deriving it; cycles through negation are refused).
    """

    operators: tuple[Operator, ...]
    types: Mapping[str, frozenset[str]] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    _strata: tuple[tuple[Rule, ...], ...] = field(init=False, repr=False, compare=False)
    _read: frozenset[str] = field(init=False, repr=False, compare=False)
    _derived: dict[frozenset[str], frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "operators", tuple(self.operators))
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "types", {str(k): frozenset(v) for k, v in dict(self.types).items()})
        names = [op.name for op in self.operators]
        check(len(set(names)) == len(names), "operators", f"duplicate operator names in {names}")
        unknown = sorted({p.type for op in self.operators for p in op.params if p.type is not None} - set(self.types))
        check(not unknown, "types", f"parameter types {unknown} are not in the type table {sorted(self.types)}")
        derived = self.derived_predicates
        object.__setattr__(self, "_strata", _strata(self.rules))
        read = {parse_atom(a)[0] for rule in self.rules for a in (*rule.body, *rule.neg)}
        object.__setattr__(self, "_read", frozenset(read))
        object.__setattr__(self, "_derived", {})
        for op in self.operators:
            touched = {parse_atom(a)[0] for a in (*op.add, *op.delete)} & derived
            check(not touched, "operators", f"{op.name}: effects on derived predicates {sorted(touched)}")

    @property
    def derived_predicates(self) -> frozenset[str]:
        """Names of the predicates the rules derive."""
        return frozenset(rule.predicate for rule in self.rules)

    def operator(self, name: str) -> Operator:
        """The operator called ``name``."""
        for op in self.operators:
            if op.name == name:
                return op
        raise KeyError(f"no operator {name!r}; operators: {', '.join(op.name for op in self.operators)}")

    def closure(self, state: frozenset[str], *, relaxed: bool = False) -> frozenset[str]:
        """``state`` plus every atom the rules derive from it.

        Args:
            state: Base atoms.
            relaxed: Ignore the rules' negative literals (an over-approximation, used for grounding).
        """
        if not self.rules:
            return state
        if relaxed:
            return self._fixpoint(state, relaxed=True)
        # What the rules derive depends only on the atoms of the predicates they read: states that agree there (the
        # same rooms, doors and object places, another object faced or carried) share one derivation.
        read = frozenset(a for a in state if parse_atom(a)[0] in self._read)
        derived = self._derived.get(read)
        if derived is None:
            if len(self._derived) >= _CLOSURE_CACHE:
                self._derived.clear()
            derived = self._derived[read] = self._fixpoint(read, relaxed=False) - read
        return state | derived

    def _fixpoint(self, state: frozenset[str], *, relaxed: bool) -> frozenset[str]:
        """:meth:`closure` computed: the rules applied stratum by stratum until nothing new is derived."""
        atoms = set(state)
        for level in self._strata:
            while True:
                index = AtomIndex(atoms)
                new = set()
                for rule in level:
                    for binding in index.join(rule.body, {}):
                        if not relaxed and any(index.holds(a, binding) for a in rule.neg):
                            continue
                        head = substitute(rule.head, binding)
                        if head not in atoms:
                            new.add(head)
                if not new:
                    break
                atoms |= new
        return frozenset(atoms)

    def ground(self, state: frozenset[str]) -> tuple[GroundOperator, ...]:
        """Every operator instance reachable from ``state`` under the delete relaxation, in a stable order.

        Args:
            state: Base atoms (the closure is taken here).

        Returns:
            Ground operators sorted by operator order, then arguments.
        """
        reached = set(self.closure(state, relaxed=True))
        found: dict[tuple[str, tuple[str, ...]], GroundOperator] = {}
        changed = True
        while changed:
            changed = False
            index = AtomIndex(reached)
            for op in self.operators:
                for binding in self._bindings(op, index):
                    key = (op.name, tuple(binding[p.name] for p in op.params))
                    if key in found:  # found in an earlier round: grounding it again would change nothing
                        continue
                    found[key] = ground = op.ground(binding)
                    if not ground.add <= reached:
                        reached |= ground.add
                        changed = True
            if changed:
                reached = set(self.closure(frozenset(reached), relaxed=True))
        order = {op.name: i for i, op in enumerate(self.operators)}
        return tuple(sorted(found.values(), key=lambda g: (order[g.operator], g.args)))

    def applicable(self, state: frozenset[str]) -> tuple[GroundOperator, ...]:
        """The ground operators whose preconditions hold in ``state`` (base atoms; the closure is taken here), in
        :meth:`ground`'s order."""
        full = self.closure(state)
        index = AtomIndex(full)
        return tuple(op for op in self.ground(state) if op.applicable(full, index))

    def _bindings(self, op: Operator, index: AtomIndex) -> Iterator[dict[str, str]]:
        """Type-correct bindings of every parameter of ``op`` under which its positive preconditions can hold."""
        for binding in index.join(op.pre, {}):
            unbound = [p for p in op.params if p.name not in binding]
            if any(p.type is None for p in unbound):
                continue  # an untyped parameter that no precondition binds has no finite range
            choices = [sorted(self.types[p.type]) for p in unbound if p.type is not None]
            for values in product(*choices):
                full = {**binding, **{p.name: v for p, v in zip(unbound, values, strict=True)}}
                if all(p.type is None or full[p.name] in self.types[p.type] for p in op.params) and op.admits(full):
                    yield full


_CLOSURE_CACHE = 200_000
"""Derivations a :class:`Domain` keeps (see :meth:`Domain.closure`); the cache is emptied when full."""


def _strata(rules: tuple[Rule, ...]) -> tuple[tuple[Rule, ...], ...]:
    """Rules grouped by stratum, lowest first (Apt, Blair & Walker 1988); raises on recursion through negation."""
    derived = {rule.predicate for rule in rules}
    level = dict.fromkeys(derived, 0)
    for _ in range(len(derived) + 1):
        changed = False
        for rule in rules:
            positive = [level[parse_atom(a)[0]] for a in rule.body if parse_atom(a)[0] in derived]
            negative = [level[parse_atom(a)[0]] + 1 for a in rule.neg if parse_atom(a)[0] in derived]
            need = max([0, *positive, *negative])
            if need > level[rule.predicate]:
                level[rule.predicate], changed = need, True
        if not changed:
            return tuple(tuple(r for r in rules if level[r.predicate] == k) for k in sorted(set(level.values())))
    raise ConfigError("rules: a derived predicate depends on its own negation (the rules are not stratified)")
