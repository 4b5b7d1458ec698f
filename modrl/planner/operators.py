"""STRIPS operators with typed parameters, negative and wildcard preconditions, and their ground instances.

An :class:`Operator` is data: a name, typed parameters, preconditions (positive and negative), add and delete effects,
and the skill it runs (``skill`` with ``skill_args``, e.g. ``pickup(?t,?c)``; several operators may share one skill,
for instance ``open`` and ``unlock`` both run the ``open`` skill). Applying a ground operator deletes, then adds
(STRIPS semantics, Fikes & Nilsson 1971). Rules (:class:`Rule`) derive atoms from others (PDDL's derived predicates);
effects never touch derived atoms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from modrl.config import check
from modrl.planner.atoms import (
    WILDCARD,
    AtomIndex,
    Binding,
    format_atom,
    is_variable,
    matching,
    parse_atom,
    substitute,
    variables,
)


@dataclass(frozen=True, kw_only=True)
class Param:
    """A typed operator parameter.

    Attributes:
        name: ``?x``.
        type: A type of the :class:`~modrl.planner.domain.Domain`'s type table, or ``None`` for any value.
    """

    name: str
    type: str | None = None

    def __post_init__(self) -> None:
        check(
            isinstance(self.name, str) and is_variable(self.name) and len(self.name) > 1,
            "name",
            f"a parameter name looks like ?x, got {self.name!r}",
        )


def _atoms(values: Iterable[str], field_name: str) -> tuple[str, ...]:
    out = tuple(values)
    for atom in out:
        check(isinstance(atom, str), field_name, f"atoms are strings, got {atom!r}")
        parse_atom(atom)
    return out


@dataclass(frozen=True, kw_only=True)
class Operator:
    """A lifted operator (see the module docstring).

    Attributes:
        name: Unique within a domain (``"unlock"``).
        params: Typed parameters; every variable of the atoms below must be one of them.
        pre: Positive preconditions (``*`` = some value).
        neg: Negative preconditions (``*`` = any value: no matching atom may hold).
        add: Add effects (no wildcards).
        delete: Delete effects (``*`` deletes every match).
        skill: The skill (option) this operator runs; defaults to ``name``.
        skill_args: The skill's arguments (parameters or constants); defaults to every parameter, in order.
        distinct: Pairs of parameter tuples whose bound values must differ (``((("?t", "?c"), ("?u", "?d")),)``:
            an object is not put next to itself); bindings that violate one are never ground.
    """

    name: str
    params: tuple[Param, ...] = ()
    pre: tuple[str, ...] = ()
    neg: tuple[str, ...] = ()
    add: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    skill: str = ""
    skill_args: tuple[str, ...] | None = None
    distinct: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        check(
            isinstance(self.name, str) and bool(self.name) and "(" not in self.name,
            "name",
            f"must be a non-empty name without parentheses, got {self.name!r}",
        )
        object.__setattr__(self, "params", tuple(self.params))
        check(all(isinstance(p, Param) for p in self.params), "params", "every parameter must be a Param")
        names = [p.name for p in self.params]
        check(len(set(names)) == len(names), "params", f"{self.name}: repeated parameter in {names}")
        for field_name in ("pre", "neg", "add", "delete"):
            object.__setattr__(self, field_name, _atoms(getattr(self, field_name), field_name))
        object.__setattr__(self, "skill", self.skill or self.name)
        args = tuple(names) if self.skill_args is None else tuple(self.skill_args)
        object.__setattr__(self, "skill_args", args)
        used = {v for atom in (*self.pre, *self.neg, *self.add, *self.delete) for v in variables(atom)}
        used |= {a for a in args if is_variable(a)}
        object.__setattr__(self, "distinct", tuple((tuple(a), tuple(b)) for a, b in self.distinct))
        check(all(len(a) == len(b) for a, b in self.distinct), "distinct", f"{self.name}: pairs of equal length")
        used |= {v for pair in self.distinct for side in pair for v in side}
        check(used <= set(names), "params", f"{self.name}: undeclared variables {sorted(used - set(names))}")
        wild = [a for a in self.add if WILDCARD in parse_atom(a)[1]]
        check(not wild, "add", f"{self.name}: add effects cannot hold wildcards: {wild}")

    @property
    def signature(self) -> str:
        """``"unlock(?c,?rt,?ri)"``."""
        return format_atom(self.name, (p.name for p in self.params))

    def describe(self) -> str:
        """A PDDL-like multi-line description, for logs and the CLI."""
        lines = [f"{self.signature} -> {format_atom(self.skill, self.skill_args or ())}"]
        for label, atoms in (("pre", self.pre), ("not", self.neg), ("add", self.add), ("del", self.delete)):
            if atoms:
                lines.append(f"  {label}: {', '.join(atoms)}")
        for first, second in self.distinct:
            lines.append(f"  distinct: ({','.join(first)}) != ({','.join(second)})")
        return "\n".join(lines)

    def admits(self, binding: Binding) -> bool:
        """Whether ``binding`` keeps every :attr:`distinct` pair apart."""
        return all(tuple(binding.get(v, v) for v in a) != tuple(binding.get(v, v) for v in b) for a, b in self.distinct)

    def ground(self, binding: Binding) -> GroundOperator:
        """The instance under ``binding`` (every parameter bound)."""
        missing = [p.name for p in self.params if p.name not in binding]
        if missing:
            raise ValueError(f"{self.name}: unbound parameters {missing}")

        def sub(atoms: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(substitute(a, binding) for a in atoms)

        delete = sub(self.delete)
        return GroundOperator(
            operator=self.name,
            args=tuple(binding[p.name] for p in self.params),
            pre=frozenset(sub(self.pre)),
            neg=sub(self.neg),
            add=frozenset(sub(self.add)),
            delete_exact=frozenset(a for a in delete if WILDCARD not in parse_atom(a)[1]),
            delete_patterns=tuple(a for a in delete if WILDCARD in parse_atom(a)[1]),
            skill=self.skill,
            skill_args=tuple(binding.get(a, a) for a in self.skill_args or ()),
        )


@dataclass(frozen=True, kw_only=True)
class GroundOperator:
    """An operator instance: ground preconditions and effects, ready to apply to states (sets of ground atoms).

    Attributes:
        operator: The operator's name.
        args: Parameter values, in parameter order.
        pre: Positive preconditions (may contain ``*``: some value).
        neg: Negative preconditions (may contain ``*``: no value).
        add: Add effects.
        delete_exact: Ground delete effects.
        delete_patterns: Wildcard delete effects.
        skill: The skill to run.
        skill_args: Its ground arguments.
    """

    operator: str
    args: tuple[str, ...]
    pre: frozenset[str]
    neg: tuple[str, ...]
    add: frozenset[str]
    delete_exact: frozenset[str]
    delete_patterns: tuple[str, ...] = ()
    skill: str = ""
    skill_args: tuple[str, ...] = ()
    _pre_exact: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact = frozenset(a for a in self.pre if WILDCARD not in parse_atom(a)[1])
        object.__setattr__(self, "_pre_exact", exact)

    @property
    def name(self) -> str:
        """``"unlock(red,room,0)"``: the operator with its arguments."""
        return format_atom(self.operator, self.args)

    @property
    def symbol(self) -> str:
        """``"open(door,red)"``: the skill call."""
        return format_atom(self.skill, self.skill_args)

    def applicable(self, state: frozenset[str], index: AtomIndex | None = None) -> bool:
        """Every precondition holds in ``state`` (include derived atoms); ``index`` may be given to save a rebuild."""
        if not self._pre_exact <= state:
            return False
        wild = [a for a in self.pre if a not in self._pre_exact]
        if not wild and not self.neg:
            return True
        index = index if index is not None else AtomIndex(state)
        return all(index.holds(a, {}) for a in wild) and not any(index.holds(a, {}) for a in self.neg)

    def deleted(self, state: frozenset[str]) -> frozenset[str]:
        """The atoms of ``state`` this operator deletes."""
        gone = set(self.delete_exact & state)
        for pattern in self.delete_patterns:
            gone |= matching(state, pattern)
        return frozenset(gone)

    def apply(self, state: frozenset[str]) -> frozenset[str]:
        """The successor of a base state (no derived atoms): delete, then add."""
        return (state - self.deleted(state)) | self.add

    def effect_mismatches(self, before: frozenset[str], after: frozenset[str]) -> tuple[str, ...]:
        """How ``after`` (observed) departs from the effects expected from ``before``, as readable lines.

        ``+atom missing``: an add effect does not hold; ``-atom still true``: a delete effect did not happen.
        """
        missing = sorted(f"+{a} missing" for a in self.add - after)
        remaining = sorted(f"-{a} still true" for a in self.deleted(before) - self.add if a in after)
        return tuple(missing + remaining)


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A derived predicate: ``head`` holds whenever ``body`` holds and no atom of ``neg`` does (Datalog, stratified:
    ``neg`` may only name predicates that no rule derives).

    Attributes:
        head: A lifted atom whose variables all occur in ``body``.
        body: Positive lifted atoms (``*`` = some value).
        neg: Negative lifted atoms (``*`` = any value).
    """

    head: str
    body: tuple[str, ...]
    neg: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        parse_atom(self.head)
        object.__setattr__(self, "body", _atoms(self.body, "body"))
        object.__setattr__(self, "neg", _atoms(self.neg, "neg"))
        check(bool(self.body), "body", f"{self.head}: a rule needs a body")
        bound = {v for atom in self.body for v in variables(atom)}
        free = set(variables(self.head)) - bound
        check(not free, "head", f"{self.head}: variables {sorted(free)} do not occur in the body")
        check(WILDCARD not in parse_atom(self.head)[1], "head", f"{self.head}: a head cannot hold wildcards")

    @property
    def predicate(self) -> str:
        """The derived predicate's name."""
        return parse_atom(self.head)[0]
