"""Soft routing: a softmax mixture over all modules."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from modrl.config import check

from .base import ROUTERS, LearnedRouter, RoutingOutput


class SoftRouter(LearnedRouter):
    """``weights = softmax(logits / temperature)``: every module contributes to every decision.

    Args:
        temperature: Softmax temperature (> 0); lower is sharper.
        hidden: Width of the logits network's hidden tanh layer (0: linear logits).
        **kwargs: The common :class:`~modrl.routers.Router` arguments.

    Shapes:
        ``weights`` ``(B, K)`` strictly positive; ``logits`` ``(B, K)``; ``aux_loss`` ``zeros(())``.
    """

    config_fields: ClassVar[tuple[str, ...]] = ("hidden", "mi_coef", "temperature")

    def __init__(self, *, temperature: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check(temperature > 0, "temperature", f"must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def _route(self, obs_features: Tensor, task_ids: Tensor) -> RoutingOutput:
        logits = self.logits_net(obs_features, task_ids)
        weights = torch.softmax(logits / self.temperature, dim=-1)
        return RoutingOutput(weights=weights, logits=logits, aux_loss=logits.new_zeros(()))

    def choice_probs(self, out: RoutingOutput) -> Tensor:
        """Soft routing's choice probabilities are its weights (the temperature included)."""
        return out.weights


ROUTERS.add("soft", SoftRouter)
