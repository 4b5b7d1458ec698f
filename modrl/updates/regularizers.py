"""Rules that change nothing structurally: naive fine-tuning and the quadratic penalties (L2, EWC).

* ``none`` -- naive fine-tuning: every parameter trains on the new task (the baseline that forgets).
* ``l2`` -- ``strength / 2 * sum_i (theta_i - theta*_i)^2`` over the actor's parameters, ``theta*`` the parameters
  at the end of the previous stage.
* ``ewc`` -- elastic weight consolidation (Kirkpatrick et al. 2017), online form (Schwarz et al. 2018, "Progress &
  Compress"): ``strength / 2 * sum_i F_i (theta_i - theta*_i)^2`` with ``F`` the diagonal Fisher information of the
  policy, ``F <- fisher_decay * F + F_task`` after each task, estimated from ``fisher_samples`` states of the finished
  task with actions sampled from the policy (per-sample squared gradients of ``log pi(a|s)``).

Only actor parameters are pulled back: the critic does not decide actions, so letting it move costs no behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from .base import UPDATE_RULES, ConsolidationData, UpdateRule


class NaiveFineTuning(UpdateRule):
    """``none``: no protection at all; every hook is the base class's no-op."""


class L2Anchor(UpdateRule):
    """``l2``: pull the actor's parameters towards their values at the end of the previous stage.

    Args:
        strength: ``lambda`` (>= 0).
    """

    config_fields: ClassVar[tuple[str, ...]] = ("strength",)
    has_penalty: ClassVar[bool] = True

    def __init__(self, *, strength: float = 1.0) -> None:
        super().__init__()
        self.strength = float(strength)
        self.anchor: dict[str, Tensor] = {}

    def _weights(self) -> Mapping[str, Tensor] | None:
        """Per-parameter importance (``None``: all ones)."""
        return None

    def _penalty(self) -> Tensor:
        if not self.anchor:
            return torch.zeros(())
        params = self.parts.named_parameters("actor")
        weights = self._weights()
        total = torch.zeros(())
        for name, anchor in self.anchor.items():
            diff = (params[name] - anchor).pow(2)
            total = total + (diff * weights[name] if weights is not None else diff).sum()
        return 0.5 * self.strength * total

    def _end_stage(self, data: ConsolidationData | None) -> None:
        self.anchor = {name: p.detach().clone() for name, p in self.parts.named_parameters("actor").items()}

    def _state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        return {f"anchor/{k}": v for k, v in self.anchor.items()}, {}

    def _load_state(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> None:
        super()._load_state(tensors, meta)
        self.anchor = _group(tensors, "anchor/", self.parts.named_parameters("actor"))


class ElasticWeightConsolidation(L2Anchor):
    """``ewc``: the L2 pull weighted by the diagonal Fisher information of the previous tasks.

    Args:
        strength: ``lambda`` (>= 0).
        fisher_samples: States used per task for the Fisher estimate.
        fisher_decay: Online-EWC ``gamma`` in [0, 1].
    """

    config_fields: ClassVar[tuple[str, ...]] = ("strength", "fisher_samples", "fisher_decay")

    def __init__(self, *, strength: float = 1.0, fisher_samples: int = 256, fisher_decay: float = 1.0) -> None:
        super().__init__(strength=strength)
        self.fisher_samples = int(fisher_samples)
        self.fisher_decay = float(fisher_decay)
        self.fisher: dict[str, Tensor] = {}

    def _weights(self) -> Mapping[str, Tensor] | None:
        return self.fisher

    def _end_stage(self, data: ConsolidationData | None) -> None:
        if data is None:
            raise ValueError("ewc needs ConsolidationData (the finished task's log-likelihoods) at end_stage")
        params = self.parts.named_parameters("actor")
        names = [n for n, p in params.items() if p.requires_grad]
        estimate = {name: torch.zeros_like(p) for name, p in params.items()}
        count = 0
        for log_likelihood in data.log_likelihoods(self.fisher_samples):
            grads = torch.autograd.grad(log_likelihood, [params[n] for n in names], allow_unused=True)
            for name, grad in zip(names, grads, strict=True):
                if grad is not None:
                    estimate[name] += grad.detach().pow(2)
            count += 1
        if count == 0:
            raise ValueError("ewc: the finished task yielded no samples for the Fisher estimate")
        for name, value in estimate.items():
            previous = self.fisher.get(name)
            value = value / count
            self.fisher[name] = value if previous is None else self.fisher_decay * previous + value
        super()._end_stage(data)

    def _state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors, meta = super()._state()
        return {**tensors, **{f"fisher/{k}": v for k, v in self.fisher.items()}}, meta

    def _load_state(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> None:
        super()._load_state(tensors, meta)
        self.fisher = _group(tensors, "fisher/", self.parts.named_parameters("actor"))


def _group(tensors: Mapping[str, Tensor], prefix: str, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The tensors under ``prefix``, renamed to parameter names and checked against the parameters' shapes."""
    out = {key[len(prefix) :]: value.clone() for key, value in tensors.items() if key.startswith(prefix)}
    for name, value in out.items():
        if name not in params or params[name].shape != value.shape:
            raise ValueError(f"rule state {prefix}{name} does not match the attached parameters")
    if out and set(out) != set(params):
        raise ValueError(f"rule state {prefix}* covers {len(out)} of the {len(params)} actor parameters")
    return out


UPDATE_RULES.add("none", NaiveFineTuning)
UPDATE_RULES.add("l2", L2Anchor)
UPDATE_RULES.add("ewc", ElasticWeightConsolidation)
