"""An SB3 actor-critic whose actor *is* a :class:`modrl.options.Option`, so PPO trains options unchanged.

The option owns its encoder and its action logits; SB3's pieces are fitted around it through two hooks of
``ActorCriticPolicy`` (written against SB3 2.9): ``_build_mlp_extractor`` puts :class:`OptionActorCritic` in the
``mlp_extractor`` slot (actor latent = the option's logits, critic latent = an MLP over the option's features), and
``_build`` replaces the ``action_net`` SB3 adds on top of the actor latent by the identity (the option's last layer
already gives the logits) and rebuilds the optimizer over the remaining parameters. SB3 one-hot encodes the
``direction`` and ``args`` entries; :class:`OptionObservation` packs them back into category ids for the option.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from modrl.config import from_dict, to_dict
from modrl.options import Option, OptionConfig


class OptionObservation(BaseFeaturesExtractor):
    """Pack SB3-preprocessed ``{"image", "direction"[, "args"]}`` into ``(B, H*W*C + 1 + n_args)`` float category ids.

    No parameters: the option encodes; this only undoes SB3's one-hot encoding of the discrete entries.
    """

    def __init__(self, observation_space: spaces.Dict) -> None:
        image = observation_space["image"]
        args = observation_space.spaces.get("args")
        assert image.shape is not None
        self.image_size = int(np.prod(image.shape))
        self.arg_sizes = [int(n) for n in args.nvec] if isinstance(args, spaces.MultiDiscrete) else []
        super().__init__(observation_space, self.image_size + 1 + len(self.arg_sizes))

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, H*W*C + 1 + n_args)``: the flat image, the heading id, the argument slot ids."""
        image = observations["image"]
        batch = image.shape[0]
        parts = [image.reshape(batch, -1).float(), observations["direction"].reshape(batch, -1).argmax(1, True).float()]
        if self.arg_sizes:
            onehots = observations["args"].reshape(batch, -1).split(self.arg_sizes, dim=1)
            parts += [o.argmax(dim=1, keepdim=True).float() for o in onehots]
        return torch.cat(parts, dim=1)


def unpack_observation(packed: torch.Tensor, option: Option) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Inverse of :class:`OptionObservation`: ``image (B, H, W, C)`` long, ``direction (B,)``, ``args (B, n)``."""
    shape = option.config.image_shape
    size = shape[0] * shape[1] * shape[2]
    image = packed[:, :size].long().reshape(-1, *shape)
    direction = packed[:, size].long()
    args = packed[:, size + 1 :].long() if option.parameterised else None
    return image, direction, args


class OptionActorCritic(nn.Module):
    """Fills SB3's ``mlp_extractor`` slot: actor latent = the option's action logits, critic latent = an MLP over
    the option's features (the encoder is shared, as in SB3's default actor-critic). ``last_termination`` holds the
    β of the last actor forward (``None`` without a learned head)."""

    def __init__(self, option: Option, critic_hidden: Sequence[int]) -> None:
        super().__init__()
        self.option = option
        layers: list[nn.Module] = []
        width = option.features_dim
        for size in critic_hidden:
            layers += [nn.Linear(width, size), nn.Tanh()]
            width = size
        self.critic = nn.Sequential(*layers)
        self.latent_dim_pi = option.config.num_actions
        self.latent_dim_vf = width
        self.last_termination: torch.Tensor | None = None

    def _features(self, packed: torch.Tensor) -> torch.Tensor:
        return self.option.features(*unpack_observation(packed, self.option))

    def forward(self, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self._features(packed)
        out = self.option.heads(features)
        self.last_termination = None if out.termination is None else out.termination.detach()
        return out.logits, self.critic(features)

    def forward_actor(self, packed: torch.Tensor) -> torch.Tensor:
        return self.option.heads(self._features(packed)).logits

    def forward_critic(self, packed: torch.Tensor) -> torch.Tensor:
        return self.critic(self._features(packed))


class OptionActorCriticPolicy(ActorCriticPolicy):
    """SB3 actor-critic around one option (see the module docstring).

    Args:
        observation_space, action_space, lr_schedule: As for SB3's ``ActorCriticPolicy``.
        option: :class:`modrl.options.OptionConfig` fields (a plain mapping, so SB3 can save it).
        critic_hidden: Hidden sizes of the critic MLP.
        **kwargs: Passed to ``ActorCriticPolicy`` (``ortho_init`` defaults to False: the option keeps its own init).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        *,
        option: Mapping[str, Any],
        critic_hidden: Sequence[int] = (64,),
        **kwargs: Any,
    ) -> None:
        self.option_config = from_dict(OptionConfig, dict(option), "option")
        self.critic_hidden = tuple(critic_hidden)
        kwargs.setdefault("features_extractor_class", OptionObservation)
        kwargs.setdefault("normalize_images", False)
        kwargs.setdefault("ortho_init", False)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        # SB3 annotates this slot as MlpExtractor; it only calls forward/forward_actor/forward_critic and reads
        # latent_dim_pi/latent_dim_vf, which OptionActorCritic provides.
        self.mlp_extractor = OptionActorCritic(Option(self.option_config), self.critic_hidden)  # type: ignore[assignment]

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        # The option's logits are the action distribution's input: no extra linear layer on top of them.
        self.action_net = nn.Identity()
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]  # SB3 types the class as the base Optimizer
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    @property
    def actor_critic(self) -> OptionActorCritic:
        """The option + critic (SB3's ``mlp_extractor``)."""
        assert isinstance(self.mlp_extractor, OptionActorCritic)
        return self.mlp_extractor

    @property
    def option(self) -> Option:
        """The option being trained."""
        return self.actor_critic.option

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(option=to_dict(self.option_config), critic_hidden=list(self.critic_hidden))
        return data
