"""Sparse top-k routing with a load-balancing auxiliary loss.

Shazeer et al. 2017, "Outrageously Large Neural Networks: The Sparsely-Gated Mixture-of-Experts Layer"; the
balance loss is the Switch Transformer's (Fedus, Zoph & Shazeer 2021).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from modrl.config import check

from .base import ROUTERS, LearnedRouter, RoutingOutput


class TopKRouter(LearnedRouter):
    """Softmax over the logits, keep the ``k`` largest probabilities per row, renormalise them to sum to 1.

    ``aux_loss = balance_coef * K * sum_i f_i * P_i`` where ``f_i`` is the fraction of the batch's top-k
    assignments that went to module ``i`` (not differentiable) and ``P_i`` the mean router probability of module
    ``i`` (differentiable). It equals ``balance_coef`` when routing is perfectly balanced and grows as it collapses
    onto few modules. Add it to the training loss (:func:`modrl.composition.attach_aux_loss` does that).

    Args:
        k: Modules per decision (1 <= k <= num_modules).
        balance_coef: Coefficient of the load-balancing loss (>= 0; 0 disables it).
        hidden: Width of the logits network's hidden tanh layer (0: linear logits).
        **kwargs: The common :class:`~modrl.routers.Router` arguments.

    Shapes:
        ``weights`` ``(B, K)`` with exactly ``k`` non-zeros per row; ``logits`` ``(B, K)``; ``aux_loss`` ``()``.
    """

    config_fields: ClassVar[tuple[str, ...]] = ("hidden", "mi_coef", "k", "balance_coef")

    def __init__(self, *, k: int = 2, balance_coef: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check(1 <= k <= self.num_modules, "k", f"must be in [1, num_modules={self.num_modules}], got {k}")
        check(balance_coef >= 0, "balance_coef", f"must be >= 0, got {balance_coef}")
        self.k = k
        self.balance_coef = float(balance_coef)

    def _route(self, obs_features: Tensor, task_ids: Tensor) -> RoutingOutput:
        logits = self.logits_net(obs_features, task_ids)
        probs = torch.softmax(logits, dim=-1)
        top_logits, top_index = logits.topk(self.k, dim=-1)
        # Softmax over the kept logits == the kept probabilities renormalised, without a division by their sum.
        weights = torch.zeros_like(probs).scatter(-1, top_index, torch.softmax(top_logits, dim=-1))
        return RoutingOutput(weights=weights, logits=logits, aux_loss=self._balance_loss(probs, top_index))

    def _balance_loss(self, probs: Tensor, top_index: Tensor) -> Tensor:
        if self.balance_coef == 0 or probs.shape[0] == 0:
            return probs.new_zeros(())
        counts = nn.functional.one_hot(top_index, self.num_modules).sum(dim=(0, 1))
        fractions = counts.to(probs.dtype) / top_index.numel()
        return self.balance_coef * self.num_modules * (fractions * probs.mean(dim=0)).sum()


ROUTERS.add("topk", TopKRouter)
