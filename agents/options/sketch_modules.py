"""The modules of sketch-guided training (:mod:`modrl.agents.options.sketch`): one :class:`modrl.options.Option` per
sketch symbol (``per_symbol``) or per verb conditioned on the object (``parameterised``), each with a learned STOP
(termination) head, and the map from sketch symbols to module calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from modrl.agents.options.critic_config import SketchConfig
from modrl.envs.grammar import Subtask
from modrl.envs.subtask_symbols import argument_slots, subtask_arguments
from modrl.options import Option, OptionConfig, OptionLibrary

MAX_ARGS = 4  # putnext: colour, type, target colour, target type
_EPS = 1e-6


@dataclass(frozen=True)
class ModuleCall:
    """A sketch symbol's module and its argument slot ids (empty for a per-symbol module)."""

    module: int
    args: tuple[int, ...] = ()


class SketchModules(nn.Module):
    """The modules (an :class:`OptionLibrary`) and the map from sketch symbols to module calls."""

    def __init__(self, library: OptionLibrary, calls: dict[str, ModuleCall]) -> None:
        super().__init__()
        self.library = library
        self.calls = calls

    @classmethod
    def build(cls, config: SketchConfig, subtasks: Sequence[Subtask], *, num_actions: int = 7) -> SketchModules:
        """Fresh modules for ``subtasks`` (first appearance order), STOP heads biased to ``config.stop_bias``."""
        net, library, calls = config.net, OptionLibrary(), dict[str, ModuleCall]()
        for sub in dict.fromkeys(subtasks):
            name = sub.name if config.mode == "per_symbol" else sub.verb
            if name not in library:
                slots = argument_slots(sub.verb) if config.mode == "parameterised" else ()
                option = Option(
                    OptionConfig(
                        num_actions=num_actions,
                        embed_dim=net.embed_dim,
                        channels=net.channels,
                        features_dim=net.features_dim,
                        hidden=net.hidden,
                        arg_slots=slots,
                        arg_dim=net.arg_dim,
                        termination="learned",
                    )
                )
                assert option.beta is not None
                nn.init.constant_(option.beta.bias, config.stop_bias)
                library.add(name, option)
            option = library.get(name)
            args = tuple(option.encode_args(subtask_arguments(sub)).tolist()) if option.parameterised else ()
            calls[sub.symbol] = ModuleCall(module=library.names.index(name), args=args)
        return cls(library, calls)

    def calls_for(self, sketch: Sequence[str]) -> list[ModuleCall]:
        """The module calls of a sketch (``ValueError`` naming a symbol without a module)."""
        missing = [s for s in sketch if s not in self.calls]
        if missing:
            raise ValueError(f"no module for sketch symbol(s) {', '.join(missing)}")
        return [self.calls[s] for s in sketch]

    def heads(self, image: Tensor, direction: Tensor, module: Tensor, args: Tensor) -> tuple[Tensor, Tensor]:
        """Action logits ``(B, A)`` and STOP probabilities ``(B,)`` of module ``module[b]`` (``(B,)`` long) with
        argument ids ``args[b]`` (``(B, MAX_ARGS)`` long, padded) for every row."""
        batch = image.shape[0]
        logits = torch.zeros(batch, self.library.get(self.library.names[0]).config.num_actions)
        beta = torch.zeros(batch)
        for index, name in enumerate(self.library.names):
            rows = (module == index).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            option = self.library.get(name)
            out = option(
                image[rows], direction[rows], args[rows, : option.config.num_args] if option.parameterised else None
            )
            assert out.termination is not None
            logits = logits.index_copy(0, rows, out.logits)
            beta = beta.index_copy(0, rows, out.termination)
        return logits, beta.clamp(_EPS, 1 - _EPS)


def call_tensors(calls: Sequence[ModuleCall]) -> tuple[Tensor, Tensor]:
    """Module ids ``(B,) long`` and padded argument ids ``(B, MAX_ARGS) long`` of a batch of calls."""
    args = torch.zeros(len(calls), MAX_ARGS, dtype=torch.long)
    for row, call in enumerate(calls):
        args[row, : len(call.args)] = torch.as_tensor(call.args, dtype=torch.long)
    return torch.as_tensor([c.module for c in calls], dtype=torch.long), args
