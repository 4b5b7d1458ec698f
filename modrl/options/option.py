"""Options (Sutton, Precup & Singh, 1999): a policy over primitive actions, a termination β(s), an initiation set.

An :class:`Option` owns its observation encoder (:class:`~modrl.options.encoders.GridEncoder`), a policy head over
the primitive actions and, with ``termination="learned"``, a termination head β(s) in [0, 1]. A termination
*predicate* (e.g. "the subtask's effect holds") and the initiation set are plain callables supplied from outside;
they are not parameters and are never saved. Both are called as ``predicate(info, args)`` with the env's step
``info`` mapping (MiniGrid task envs put the symbolic state there) and the option's argument words.

An option is *parameterised* when its config lists argument slots (``arg_slots``, e.g. colours and object types):
one ``pickup`` option then serves every ``pickup(colour, type)`` call, conditioned on the embedded argument. With no
slots it is one module per symbol (``pickup-red-key``). Everything that shapes the parameters is in
:class:`OptionConfig`, whose plain-dict form is the option's spec (saved with its tensors, no pickle).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from modrl.config import check, check_bool, from_dict, to_dict

from .encoders import GridEncoder

#: ``predicate(info, args) -> bool``: a condition on the env's step ``info`` and the option's argument words.
Predicate = Callable[[Mapping[str, Any], tuple[str, ...]], bool]
Termination = Literal["learned", "predicate"]


def everywhere(info: Mapping[str, Any], args: tuple[str, ...]) -> bool:
    """The default initiation set: every state."""
    return True


@dataclass(frozen=True, kw_only=True)
class OptionConfig:
    """Everything that shapes an option's parameters (its JSON spec).

    Attributes:
        image_shape: ``(H, W, C)`` of the category image.
        image_high: Largest category index per image channel (MiniGrid: ``modrl.envs.IMAGE_HIGH``).
        num_directions: Size of the heading space.
        num_actions: Number of primitive actions.
        embed_dim: Category embedding width. channels: 2x2 convolution widths. features_dim: Encoder output width.
        hidden: Hidden sizes of the policy head (tanh).
        arg_slots: Allowed words of each argument slot (e.g. colours, then types); empty = not parameterised.
        arg_dim: Embedding width of each argument slot.
        termination: ``"learned"`` (a β head) or ``"predicate"`` (β supplied from outside as a callable).
        map_view: The image is a map of the cells the agent has seen so far (unknown cells unseen), centred on the
            agent like the whole-grid view, instead of MiniGrid's 7x7 view or the whole grid: memory without
            privileged state (``modrl.envs.own_view.MapView``). In the spec only when true.
    """

    image_shape: tuple[int, int, int] = (7, 7, 3)
    image_high: tuple[int, ...] = (10, 5, 2)
    num_directions: int = 4
    num_actions: int = 7
    embed_dim: int = 8
    channels: tuple[int, ...] = (16, 32)
    features_dim: int = 64
    hidden: tuple[int, ...] = (64,)
    arg_slots: tuple[tuple[str, ...], ...] = ()
    arg_dim: int = 8
    termination: Termination = "predicate"
    map_view: bool = False

    def __post_init__(self) -> None:
        check(all(v >= 1 for v in self.image_shape), "image_shape", f"sizes must be >= 1, got {self.image_shape}")
        check(
            len(self.image_high) == self.image_shape[2],
            "image_high",
            f"needs one maximum per image channel ({self.image_shape[2]}), got {list(self.image_high)}",
        )
        check(all(v >= 0 for v in self.image_high), "image_high", "maxima must be >= 0")
        for name in ("num_directions", "num_actions", "embed_dim", "features_dim", "arg_dim"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        check(
            1 <= len(self.channels) < min(self.image_shape[:2]),
            "channels",
            f"needs 1 to {min(self.image_shape[:2]) - 1} convolutions for a {self.image_shape[:2]} image",
        )
        check(all(c >= 1 for c in self.channels), "channels", f"widths must be >= 1, got {list(self.channels)}")
        check(all(h >= 1 for h in self.hidden), "hidden", f"sizes must be >= 1, got {list(self.hidden)}")
        for i, slot in enumerate(self.arg_slots):
            check(
                len(slot) >= 1 and len(set(slot)) == len(slot),
                f"arg_slots[{i}]",
                f"needs at least one word, each once, got {list(slot)}",
            )
        check_bool(self.map_view, "map_view")
        check(
            self.termination in ("learned", "predicate"),
            "termination",
            f"must be 'learned' or 'predicate', got {self.termination!r}",
        )

    @property
    def num_args(self) -> int:
        """Number of argument slots (0 = one module per symbol)."""
        return len(self.arg_slots)


@dataclass(frozen=True)
class OptionOutput:
    """One forward pass.

    Attributes:
        logits: ``(B, num_actions)`` float, action logits.
        termination: ``(B,)`` float β(s) in [0, 1], or ``None`` without a learned termination head.
    """

    logits: Tensor
    termination: Tensor | None


class Option(nn.Module):
    """A policy head + termination + initiation set over MiniGrid observations.

    Args:
        config: The parameter layout.
        initiation: Where the option may start (default :func:`everywhere`).
        termination_predicate: A predicate that ends the option when it holds (e.g. its subtask's effect); works
            alongside a learned β, and is the only termination of a ``termination="predicate"`` option.
    """

    def __init__(
        self,
        config: OptionConfig,
        *,
        initiation: Predicate = everywhere,
        termination_predicate: Predicate | None = None,
    ) -> None:
        super().__init__()
        check(isinstance(config, OptionConfig), "config", f"must be an OptionConfig, got {type(config).__name__}")
        self.config = config
        self.initiation = initiation
        self.termination_predicate = termination_predicate
        cond_dim = config.arg_dim * config.num_args
        self.arguments = nn.ModuleList(nn.Embedding(len(slot), config.arg_dim) for slot in config.arg_slots)
        self.encoder = GridEncoder(
            image_shape=config.image_shape,
            image_high=config.image_high,
            num_directions=config.num_directions,
            embed_dim=config.embed_dim,
            channels=config.channels,
            features_dim=config.features_dim,
            cond_dim=cond_dim,
        )
        layers: list[nn.Module] = []
        width = config.features_dim + cond_dim
        for size in config.hidden:
            layers += [nn.Linear(width, size), nn.Tanh()]
            width = size
        logits = nn.Linear(width, config.num_actions)
        nn.init.orthogonal_(logits.weight, gain=0.01)  # near-uniform actions at the start (as SB3 does)
        nn.init.zeros_(logits.bias)
        self.policy = nn.Sequential(*layers, logits)
        self.beta = nn.Linear(config.features_dim + cond_dim, 1) if config.termination == "learned" else None
        self._slot_index = [{word: i for i, word in enumerate(slot)} for slot in config.arg_slots]

    @property
    def parameterised(self) -> bool:
        """Whether the option takes arguments."""
        return self.config.num_args > 0

    def encode_args(self, args: Sequence[str]) -> Tensor:
        """Argument words -> ``(num_args,)`` long slot indices.

        Raises:
            ValueError: Wrong number of words, or a word not allowed in its slot (the message lists the allowed).
        """
        if len(args) != self.config.num_args:
            raise ValueError(f"option takes {self.config.num_args} arguments, got {list(args)}")
        ids = []
        for i, (word, index) in enumerate(zip(args, self._slot_index, strict=True)):
            if word not in index:
                raise ValueError(f"argument {i} {word!r} is not one of {', '.join(self.config.arg_slots[i])}")
            ids.append(index[word])
        return torch.as_tensor(ids, dtype=torch.long)

    @property
    def features_dim(self) -> int:
        """Width of :meth:`features`: the encoder output plus the embedded argument."""
        return self.config.features_dim + self.config.arg_dim * self.config.num_args

    def features(self, image: Tensor, direction: Tensor, args: Tensor | None = None) -> Tensor:
        """The state features both heads read, ``(B, features_dim)`` (a learner's critic may read them too).

        Args:
            image: ``(B, H, W, C)`` category indices. direction: ``(B,)`` headings.
            args: ``(B, num_args)`` long slot indices (see :meth:`encode_args`); required iff parameterised.
        """
        cond = self._condition(args, image.shape[0])
        features = self.encoder(image, direction, cond)
        return features if cond is None else torch.cat([features, cond], dim=1)

    def heads(self, features: Tensor) -> OptionOutput:
        """Action logits and β from :meth:`features` output."""
        beta = None if self.beta is None else torch.sigmoid(self.beta(features)).squeeze(1)
        return OptionOutput(logits=self.policy(features), termination=beta)

    def forward(self, image: Tensor, direction: Tensor, args: Tensor | None = None) -> OptionOutput:
        """Action logits ``(B, A)`` and β ``(B,)`` for a batch (arguments as for :meth:`features`)."""
        return self.heads(self.features(image, direction, args))

    def _condition(self, args: Tensor | None, batch: int) -> Tensor | None:
        if not self.parameterised:
            if args is not None and args.numel() > 0:
                raise ValueError("this option takes no arguments")
            return None
        if args is None or tuple(args.shape) != (batch, self.config.num_args):
            shape = None if args is None else tuple(args.shape)
            raise ValueError(f"args must have shape ({batch}, {self.config.num_args}), got {shape}")
        ids = args.long()
        return torch.cat([embed(ids[:, i]) for i, embed in enumerate(self.arguments)], dim=1)

    @torch.no_grad()
    def act(
        self,
        image: Tensor,
        direction: Tensor,
        args: Tensor | None = None,
        *,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Actions ``(B,)`` long (argmax or sampled) and β ``(B,)`` (or ``None``), without gradients."""
        out = self.forward(image, direction, args)
        if deterministic:
            actions = out.logits.argmax(dim=1)
        else:
            probs = torch.softmax(out.logits, dim=1)
            actions = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return actions, out.termination

    def can_start(self, info: Mapping[str, Any], args: tuple[str, ...] = ()) -> bool:
        """Whether the initiation set holds for this step's ``info``."""
        return bool(self.initiation(info, args))

    def terminates(
        self, info: Mapping[str, Any], args: tuple[str, ...], beta: float | None, rng: np.random.Generator
    ) -> bool:
        """Whether the option ends after a step: its predicate holds, or the learned β fires (one Bernoulli draw)."""
        if self.termination_predicate is not None and self.termination_predicate(info, args):
            return True
        return beta is not None and bool(rng.random() < beta)

    def spec(self) -> dict[str, Any]:
        """The JSON-able config from which :meth:`from_spec` rebuilds the (freshly initialised) option."""
        spec = dict(to_dict(self.config))
        if not spec["map_view"]:
            del spec["map_view"]  # the spec of every option saved before the map view existed, byte for byte
        return spec

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], **kwargs: Any) -> Option:
        """Rebuild from :meth:`spec` output (``kwargs``: initiation / termination predicate); bad specs raise
        :class:`modrl.config.ConfigError` naming the key."""
        return cls(from_dict(OptionConfig, dict(spec), "option"), **kwargs)
