"""Hard routing with the straight-through Gumbel-softmax estimator.

Jang, Gu & Poole 2017, "Categorical Reparameterization with Gumbel-Softmax"; Maddison et al. 2017, "The Concrete
Distribution".
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from modrl.config import check

from .base import ROUTERS, LearnedRouter, RoutingOutput


class GumbelRouter(LearnedRouter):
    """One module per decision, chosen by a straight-through Gumbel-softmax sample.

    Training mode: ``soft = softmax((logits + g) / tau)`` with Gumbel noise ``g`` drawn from torch's RNG (so
    ``torch.manual_seed`` makes it reproducible); the forward weights are the one-hot argmax of ``soft`` and the
    gradient is that of ``soft`` (straight-through). Eval mode: the deterministic one-hot argmax of the logits,
    with the straight-through gradient of ``softmax(logits / tau)`` (so it still trains).

    Note: Stable-Baselines3 collects rollouts in eval mode and updates in training mode. Sampling only in the
    update would make PPO's ratio compare two different routings, so ``ModularActorCriticPolicy`` keeps its router
    in eval mode throughout: on-policy agents route by the argmax in both phases and the temperature shapes the
    gradient. Sampling (training mode) is for callers that route and update in the same pass.

    ``tau`` anneals exponentially from ``tau_start`` to ``tau_end`` over the first ``anneal_fraction`` of training
    (driven by :meth:`~modrl.routers.Router.set_progress`) and is kept in a registered buffer, so it is saved in
    ``state_dict``.

    Args:
        tau_start: Initial temperature (> 0).
        tau_end: Final temperature (> 0).
        anneal_fraction: Fraction of training over which tau decays, in (0, 1].
        hidden: Width of the logits network's hidden tanh layer (0: linear logits).
        **kwargs: The common :class:`~modrl.routers.Router` arguments.

    Shapes:
        ``weights`` ``(B, K)`` one-hot (in value); ``logits`` ``(B, K)``; ``aux_loss`` ``zeros(())``.
    """

    config_fields: ClassVar[tuple[str, ...]] = ("hidden", "mi_coef", "tau_start", "tau_end", "anneal_fraction")

    def __init__(
        self, *, tau_start: float = 1.0, tau_end: float = 0.1, anneal_fraction: float = 0.5, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        check(tau_start > 0, "tau_start", f"must be > 0, got {tau_start}")
        check(tau_end > 0, "tau_end", f"must be > 0, got {tau_end}")
        check(0 < anneal_fraction <= 1, "anneal_fraction", f"must be in (0, 1], got {anneal_fraction}")
        self.tau_start = float(tau_start)
        self.tau_end = float(tau_end)
        self.anneal_fraction = float(anneal_fraction)
        self.tau: Tensor
        self.register_buffer("tau", torch.tensor(self.tau_start))

    def tau_at(self, fraction: float) -> float:
        """The temperature at training progress ``fraction``: exponential from ``tau_start`` to ``tau_end``."""
        step = min(fraction / self.anneal_fraction, 1.0)
        return self.tau_start * math.exp(step * math.log(self.tau_end / self.tau_start))

    def _set_progress(self, fraction: float) -> None:
        self.tau.fill_(self.tau_at(fraction))

    def _route(self, obs_features: Tensor, task_ids: Tensor) -> RoutingOutput:
        logits = self.logits_net(obs_features, task_ids)
        if self.training:
            uniform = torch.rand_like(logits).clamp_(min=torch.finfo(logits.dtype).tiny)
            soft = torch.softmax((logits - torch.log(-torch.log(uniform))) / self.tau.to(logits.dtype), dim=-1)
            hard = nn.functional.one_hot(soft.argmax(dim=-1), self.num_modules).to(soft.dtype)
            weights = hard - soft.detach() + soft
        else:
            soft = torch.softmax(logits / self.tau.to(logits.dtype), dim=-1)
            hard = nn.functional.one_hot(logits.argmax(dim=-1), self.num_modules).to(soft.dtype)
            weights = hard - soft.detach() + soft
        return RoutingOutput(weights=weights, logits=logits, aux_loss=logits.new_zeros(()))


ROUTERS.add("gumbel", GumbelRouter)
