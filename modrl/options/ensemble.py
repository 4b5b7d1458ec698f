"""Option ensembles: several independently trained options of one skill acting as one.

A cloned option fails in states its demonstrations never showed, and options trained with other seeds (or other
recipes) fail in *other* such states. :class:`OptionEnsemble` acts with the mixture of its members' action
distributions -- the mean of their softmax probabilities, sampled or taken greedily -- so a state where one member
loops but the others agree is crossed (policy averaging, as in ensembles of behaviour-cloned policies). The ensemble
keeps the interface of an :class:`~modrl.options.Option` (same observation, arguments, initiation set and termination
predicate, all taken from the first member; a learned β is the members' mean), so a planner or router runs it as any
option. It acts only: train, save and load its members, not the ensemble.

:func:`ensemble_library` builds a library of ensembles from several option libraries: each skill name gets the
options of every library that has one (the first library's order, then names only later libraries have).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .library import INTERFACE_FIELDS, OptionLibrary
from .option import Option, OptionOutput

#: Config fields the members must share besides the library interface: what their arguments and β mean.
_SHARED_FIELDS: tuple[str, ...] = (*INTERFACE_FIELDS, "arg_slots", "termination")


class OptionEnsemble(Option):
    """Options of one skill acting with the mixture of their action distributions (see the module docstring).

    Args:
        members: Two or more options with the same observation interface, argument slots and termination kind
            (their network sizes may differ). The ensemble's initiation set and termination predicate are the first
            member's.

    Raises:
        ValueError: Fewer than two members, or members that differ in a shared field (the message names it).
    """

    def __init__(self, members: Sequence[Option]) -> None:
        nn.Module.__init__(self)  # no networks of its own: Option.__init__ would build (unused) ones
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"an option ensemble needs at least two members, got {len(members)}")
        if not all(isinstance(m, Option) for m in members):
            raise TypeError("ensemble members must be Options")
        first = members[0].config
        for i, member in enumerate(members[1:], start=1):
            differ = [
                f"{f}: {getattr(member.config, f)} vs {getattr(first, f)}"
                for f in _SHARED_FIELDS
                if getattr(member.config, f) != getattr(first, f)
            ]
            if differ:
                raise ValueError(f"ensemble member {i} does not fit member 0 ({'; '.join(differ)})")
        self.members = nn.ModuleList(members)
        self.config = first
        self.initiation = members[0].initiation
        self.termination_predicate = members[0].termination_predicate
        self._slot_index = [{word: i for i, word in enumerate(slot)} for slot in first.arg_slots]

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, image: Tensor, direction: Tensor, args: Tensor | None = None) -> OptionOutput:
        """Log of the members' mean action probabilities ``(B, A)`` (so :meth:`act`'s softmax is the mixture) and the
        mean β (``None`` without a learned one)."""
        outputs = [member(image, direction, args) for member in self.members]
        probs = torch.stack([torch.softmax(out.logits, dim=1) for out in outputs]).mean(dim=0)
        betas = [out.termination for out in outputs]
        beta = None if betas[0] is None else torch.stack([b for b in betas if b is not None]).mean(dim=0)
        return OptionOutput(logits=torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny)), termination=beta)

    def features(self, image: Tensor, direction: Tensor, args: Tensor | None = None) -> Tensor:
        raise TypeError("an OptionEnsemble only acts; train its members (it has no features of its own)")

    def heads(self, features: Tensor) -> OptionOutput:
        raise TypeError("an OptionEnsemble only acts; train its members (it has no heads of its own)")

    def spec(self) -> dict[str, object]:
        raise TypeError("an OptionEnsemble is not saved; save its members (each is an option of its own library)")


def ensemble_library(libraries: Sequence[OptionLibrary]) -> OptionLibrary:
    """One library whose every skill runs the options of all ``libraries`` that have it as an :class:`OptionEnsemble`
    (a skill only one library has runs that library's option). Names follow the first library's order, then names
    only later libraries have. Members keep their termination predicates and initiation sets.

    Raises:
        ValueError: Fewer than two libraries, or options of one name that cannot form an ensemble, or libraries with
            different interfaces (the message names the option and the field).
    """
    if len(libraries) < 2:
        raise ValueError(f"an ensemble library needs at least two libraries, got {len(libraries)}")
    names = list(dict.fromkeys(name for library in libraries for name in library.names))
    out = OptionLibrary()
    for name in names:
        members = [library.get(name) for library in libraries if name in library]
        try:
            out.add(name, members[0] if len(members) == 1 else OptionEnsemble(members))
        except ValueError as exc:
            raise ValueError(f"option {name!r}: {exc}") from None
    return out
