"""Learning operators from experience, and how well learned operators agree with declared ones.

From recorded transitions (state before, skill call such as ``pickup(key,red)``, state after, success) one operator
per skill is induced, lifted over the skill's arguments (``?a0``, ``?a1``, ...), in the spirit of LOCM/ARMS-style
action-model learning restricted to fully observed, deterministic STRIPS (see e.g. Arora et al. 2018, "A review of
learning planning action models"):

* positive preconditions: the lifted atoms true before **every** successful execution;
* negative preconditions: generalised atoms (non-argument values replaced by ``*``) that held before some failed
  execution and before no successful one;
* add effects: the lifted atoms true after every successful execution and false before at least one;
* delete effects: the lifted atoms false after every successful execution and true before at least one; deletes that
  vary over non-argument values become a wildcard delete (``facing(*,*)``) when every matching atom was deleted every
  time, and the exact deletes it covers are dropped.

Ground atoms without arguments of the skill that hold in every recorded state are dropped (static facts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from modrl.planner.atoms import WILDCARD, format_atom, is_variable, parse_atom
from modrl.planner.operators import Operator, Param


@dataclass(frozen=True, kw_only=True)
class Transition:
    """One recorded skill execution.

    Attributes:
        before: Atoms before (include derived atoms if preconditions may use them).
        skill: The skill call, e.g. ``"pickup(key,red)"``.
        after: Atoms after.
        success: The skill reported success.
    """

    before: frozenset[str]
    skill: str
    after: frozenset[str]
    success: bool = True


def _lift(atoms: Iterable[str], args: tuple[str, ...]) -> frozenset[str]:
    """Replace each value equal to a skill argument by that argument's variable (the first one on repeats)."""
    names: dict[str, str] = {}
    for i, value in enumerate(args):
        names.setdefault(value, f"?a{i}")
    out = set()
    for atom in atoms:
        name, values = parse_atom(atom)
        out.add(format_atom(name, (names.get(v, v) for v in values)))
    return frozenset(out)


def _generalise(atom: str) -> str:
    """Values that are not variables become wildcards."""
    name, values = parse_atom(atom)
    return format_atom(name, (v if is_variable(v) else WILDCARD for v in values))


def _matches(pattern: str, atoms: Iterable[str]) -> set[str]:
    """The atoms ``pattern`` matches, where only ``*`` is free (``?a0`` is a value here: a lifted argument)."""
    name, args = parse_atom(pattern)
    out = set()
    for atom in atoms:
        other, values = parse_atom(atom)
        if (
            other == name
            and len(values) == len(args)
            and all(p in (WILDCARD, v) for p, v in zip(args, values, strict=True))
        ):
            out.add(atom)
    return out


def _subsumes(general: str, specific: str) -> bool:
    """``general`` differs from ``specific`` only by wildcards where ``specific`` has values."""
    (name, a), (other, b) = parse_atom(general), parse_atom(specific)
    return (
        general != specific
        and name == other
        and len(a) == len(b)
        and all(x in (WILDCARD, y) for x, y in zip(a, b, strict=True))
    )


def _intersection(sets: Sequence[frozenset[str]]) -> frozenset[str]:
    return frozenset.intersection(*sets) if sets else frozenset()


def _wildcard_deletes(
    runs: list[tuple[frozenset[str], frozenset[str], frozenset[str]]], exact: frozenset[str], adds: frozenset[str]
) -> frozenset[str]:
    """Wildcard delete patterns consistent with every run (before, after, deleted), all lifted."""
    candidates = {_generalise(a) for _, _, gone in runs for a in gone}
    accepted = set()
    for pattern in sorted(candidates):
        if pattern in exact:
            continue
        ok = all(not (_matches(pattern, before) - adds) & after for before, after, _ in runs)
        if ok and any(_matches(pattern, gone) for _, _, gone in runs):
            accepted.add(pattern)
    return frozenset(accepted)


def _learn_one(skill: str, arity: int, group: list[Transition], static: frozenset[str]) -> Operator | None:
    good = [t for t in group if t.success]
    if not good:
        return None
    lifted = [(_lift(t.before, parse_atom(t.skill)[1]), _lift(t.after, parse_atom(t.skill)[1])) for t in good]
    pre = _intersection([before for before, _ in lifted]) - static
    ever_added = frozenset().union(*(after - before for before, after in lifted))
    adds = _intersection([after for _, after in lifted]) & ever_added
    runs = [(before, after, before - after) for before, after in lifted]
    ever_true_after = frozenset().union(*(after for _, after in lifted))
    exact = frozenset().union(*(gone for _, _, gone in runs)) - ever_true_after
    wild = _wildcard_deletes(runs, exact, adds)
    exact = frozenset(a for a in exact if not any(_matches(p, [a]) for p in wild))
    bad_states = [_lift(t.before, parse_atom(t.skill)[1]) for t in group if not t.success]
    neg_candidates = {_generalise(a) for state in bad_states for a in state} - static
    neg = {n for n in neg_candidates if not any(_matches(n, before) for before, _ in lifted)}
    neg = {n for n in neg if not any(_subsumes(m, n) for m in neg)}  # keep the most general
    params = tuple(Param(name=f"?a{i}") for i in range(arity))
    return Operator(
        name=skill,
        params=params,
        pre=tuple(sorted(pre)),
        neg=tuple(sorted(neg)),
        add=tuple(sorted(adds)),
        delete=tuple(sorted(exact | wild)),
        skill=skill,
    )


def learn_operators(transitions: Sequence[Transition]) -> tuple[Operator, ...]:
    """One operator per skill (name and arity) with at least one successful execution, sorted by skill.

    Args:
        transitions: Recorded executions of any number of skills.

    Returns:
        The induced operators, parameters ``?a0 ... ?a{n-1}`` (untyped), ``skill`` = the skill's name.
    """
    groups: dict[tuple[str, int], list[Transition]] = defaultdict(list)
    for t in transitions:
        name, args = parse_atom(t.skill)
        groups[(name, len(args))].append(t)
    states = [s for t in transitions for s in (t.before, t.after)]
    static = _intersection(states)
    learned = (_learn_one(name, arity, groups[(name, arity)], static) for name, arity in sorted(groups))
    return tuple(op for op in learned if op is not None)


@dataclass(frozen=True, kw_only=True)
class PartAgreement:
    """Agreement of one part (preconditions, effects, ...) of a learned operator with the declared one.

    Attributes:
        learned: Atoms in the learned part.
        declared: Atoms in the declared part (projected on the skill's arguments).
        common: Atoms in both.
    """

    learned: int
    declared: int
    common: int

    @property
    def precision(self) -> float:
        """Fraction of learned atoms that are declared (1 when nothing was learned)."""
        return self.common / self.learned if self.learned else 1.0

    @property
    def recall(self) -> float:
        """Fraction of declared atoms that were learned (1 when nothing is declared)."""
        return self.common / self.declared if self.declared else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True, kw_only=True)
class OperatorAgreement:
    """How a learned operator agrees with the best-matching declared operator of the same skill.

    Attributes:
        skill: The skill name.
        declared: The declared operator it was compared with.
        pre: Positive preconditions.
        neg: Negative preconditions.
        add: Add effects.
        delete: Delete effects.
    """

    skill: str
    declared: str
    pre: PartAgreement
    neg: PartAgreement
    add: PartAgreement
    delete: PartAgreement

    @property
    def parts(self) -> dict[str, PartAgreement]:
        """``{"pre", "neg", "add", "delete"}`` to their agreement."""
        return {"pre": self.pre, "neg": self.neg, "add": self.add, "delete": self.delete}

    @property
    def mean_f1(self) -> float:
        """Mean F1 over the four parts."""
        return sum(p.f1 for p in self.parts.values()) / 4


def project(op: Operator) -> dict[str, frozenset[str]]:
    """An operator's parts rewritten over its skill's argument positions (``?a0`` ...): atoms that mention other
    variables are dropped, since a skill call cannot name them; constants among the skill's arguments become their
    position's variable, as :func:`learn_operators` lifts them."""
    rename: dict[str, str] = {}
    for i, arg in enumerate(op.skill_args or ()):
        rename.setdefault(arg, f"?a{i}")
    out = {}
    for part in ("pre", "neg", "add", "delete"):
        atoms = set()
        for atom in getattr(op, part):
            name, values = parse_atom(atom)
            new = tuple(rename.get(v, v) for v in values)
            if not any(is_variable(v) and v not in rename.values() for v in new):
                atoms.add(format_atom(name, new))
        out[part] = frozenset(atoms)
    return out


def _compare(learned: Operator, declared: Operator) -> OperatorAgreement:
    mine, theirs = project(learned), project(declared)
    parts = {
        k: PartAgreement(learned=len(mine[k]), declared=len(theirs[k]), common=len(mine[k] & theirs[k])) for k in mine
    }
    return OperatorAgreement(skill=learned.skill, declared=declared.name, **parts)


def agreement(learned: Sequence[Operator], declared: Sequence[Operator]) -> dict[str, OperatorAgreement]:
    """Precision and recall of each learned operator's parts against the declared operators of the same skill.

    When several declared operators run the same skill (``open`` and ``unlock``), the one with the highest mean F1
    is reported. Skills without a declared operator are left out.

    Returns:
        Skill name to :class:`OperatorAgreement`.
    """
    out = {}
    for op in learned:
        candidates = [_compare(op, d) for d in declared if d.skill == op.skill]
        if candidates:
            out[op.skill] = max(candidates, key=lambda a: a.mean_f1)
    return out
