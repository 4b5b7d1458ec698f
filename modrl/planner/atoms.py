"""Ground and lifted atoms as plain strings: parsing, matching against a state, substitution.

An atom is a string ``name(arg,...)`` (or a bare ``name`` without arguments), e.g. ``carrying(key,red)``. In lifted
atoms (operator preconditions and effects, rule bodies) an argument may be a variable ``?x`` or the wildcard ``*``:

* in a positive precondition or rule body, ``*`` matches any value (an existential: "some door is open");
* in a negative precondition, ``*`` makes it universal: ``not carrying(*,*)`` holds when nothing is carried;
* in a delete effect, ``*`` deletes every matching atom: ``del facing(*,*)`` (the agent faces at most one thing).

Parsing is cached, so the planner keeps atoms as strings at its boundary and pays the parse once per distinct atom.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache

from modrl.config import ConfigError

WILDCARD = "*"
"""Matches any value (see the module docstring for its meaning in each position)."""

Parsed = tuple[str, tuple[str, ...]]
"""``(name, args)`` of an atom."""
Binding = Mapping[str, str]
"""Variable (``?x``) to value."""


def is_variable(token: str) -> bool:
    """``True`` for ``?x``-style variables."""
    return token.startswith("?")


@lru_cache(maxsize=65536)
def parse_atom(text: str) -> Parsed:
    """``"next_to(ball,red,box,blue)"`` -> ``("next_to", ("ball", "red", "box", "blue"))``; ``"at_goal"`` -> no args.

    Raises:
        modrl.config.ConfigError: Not of the form ``name`` or ``name(arg,...)`` with non-empty names and arguments.
    """
    name, paren, rest = text.partition("(")
    if not paren:
        args: tuple[str, ...] = ()
    elif not rest.endswith(")"):
        raise ConfigError(f"atom: {text!r} must look like name(arg,...) or name")
    else:
        args = tuple(a.strip() for a in rest[:-1].split(","))
    if not name or not name.replace("_", "a").isalnum() or any(not a or "(" in a or ")" in a for a in args):
        raise ConfigError(f"atom: {text!r} must look like name(arg,...) with non-empty names and arguments")
    return name, args


def format_atom(name: str, args: Iterable[str]) -> str:
    """The inverse of :func:`parse_atom`."""
    args = tuple(args)
    return f"{name}({','.join(args)})" if args else name


def variables(atom: str) -> tuple[str, ...]:
    """The variables of a lifted atom, in order of first appearance."""
    return tuple(dict.fromkeys(a for a in parse_atom(atom)[1] if is_variable(a)))


def match(pattern: tuple[str, ...], args: tuple[str, ...], binding: Binding) -> Binding | None:
    """Extend ``binding`` so that ``pattern`` (variables, wildcards, constants) matches ``args``; ``None`` if not.
    The result is a new mapping when it binds a variable, else ``binding`` itself (never mutate either: this is the
    planner's innermost loop, so it copies only when it must)."""
    if len(pattern) != len(args):
        return None
    out = binding
    copied = False
    for p, a in zip(pattern, args, strict=True):
        if p == WILDCARD:
            continue
        if p[0] == "?":  # is_variable, inlined
            bound = out.get(p)
            if bound is None:
                if not copied:
                    out, copied = dict(out), True
                out[p] = a  # type: ignore[index]
            elif bound != a:
                return None
        elif p != a:
            return None
    return out


def substitute(atom: str, binding: Binding) -> str:
    """Replace the bound variables of ``atom`` (unbound ones and wildcards stay)."""
    name, args = parse_atom(atom)
    return format_atom(name, (binding.get(a, a) for a in args))


class AtomIndex:
    """A set of ground atoms indexed by predicate name, for joins and pattern queries.

    Args:
        atoms: Ground atoms.
    """

    def __init__(self, atoms: Iterable[str]) -> None:
        self.atoms = frozenset(atoms)
        self._by_name: dict[str, list[tuple[str, ...]]] = {}
        for atom in self.atoms:
            name, args = parse_atom(atom)
            self._by_name.setdefault(name, []).append(args)

    def matches(self, pattern: str, binding: Binding) -> Iterator[Binding]:
        """Every extension of ``binding`` under which ``pattern`` matches an atom of the index."""
        name, args = parse_atom(pattern)
        for candidate in self._by_name.get(name, ()):
            extended = match(args, candidate, binding)
            if extended is not None:
                yield extended

    def holds(self, pattern: str, binding: Binding) -> bool:
        """Some atom matches ``pattern`` under ``binding`` (wildcards and unbound variables match anything)."""
        return next(self.matches(pattern, binding), None) is not None

    def join(self, patterns: tuple[str, ...], binding: Binding) -> Iterator[dict[str, str]]:
        """Every extension of ``binding`` under which all ``patterns`` match atoms of the index (a conjunctive
        query)."""
        if not patterns:
            yield dict(binding)
            return
        first, rest = patterns[0], patterns[1:]
        for extended in self.matches(first, binding):
            yield from self.join(rest, extended)


def matching(atoms: Iterable[str], pattern: str) -> set[str]:
    """The atoms of ``atoms`` matched by a (ground or wildcard) pattern."""
    name, args = parse_atom(pattern)
    prefix = f"{name}(" if args else name
    out = set()
    for atom in atoms:
        if not atom.startswith(prefix):  # a cheap test first: most atoms name another predicate
            continue
        other, values = parse_atom(atom)
        if other == name and match(args, values, {}) is not None:
            out.add(atom)
    return out
