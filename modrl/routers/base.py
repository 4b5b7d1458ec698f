"""The router interface: which modules compute for each decision, and with what weight.

A router maps observation features and task ids to a ``(B, K)`` weight matrix over ``K`` modules. It never owns
module parameters. :class:`Router.forward` validates its inputs and keeps books (``last``); subclasses implement
:meth:`Router._route`. Learned routers compute logits with :class:`RouterLogits` from the task, the observation
features or both (``condition``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from modrl.config import check
from modrl.registry import Registry

from .config import CONDITIONS, Condition, RouterConfig
from .specialise import task_module_mi


@dataclass(frozen=True)
class RoutingOutput:
    """What a router decided for a batch.

    Attributes:
        weights: ``(B, K)`` float, non-negative, rows summing to 1.
        logits: ``(B, K)`` float pre-normalisation scores, or ``None`` for routers without them (fixed).
        aux_loss: ``()`` float auxiliary loss to add to the training loss (``zeros(())`` when the router has none).
    """

    weights: Tensor
    logits: Tensor | None
    aux_loss: Tensor


class Router(nn.Module, ABC):
    """Base class of routers: ``(obs_features (B, D), task_ids (B,)) -> RoutingOutput``.

    Subclasses implement :meth:`_route` and list in :attr:`config_fields` the :class:`RouterConfig` fields their
    constructor takes beyond the common ones. Constructor arguments are validated with
    :class:`~modrl.config.ConfigError` naming the field.

    Args:
        num_modules: ``K``, the number of modules routed over (>= 1).
        num_tasks: Number of task ids (>= 1); ids must lie in ``[0, num_tasks)``.
        obs_dim: ``D``, size of the observation features (>= 1).
        condition: What learned logits are computed from (``"task"``, ``"obs"``, ``"task+obs"``).

    Attributes:
        last: Detached ``(B, K)`` weights of the latest forward (for telemetry), ``None`` before the first.
    """

    config_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, num_modules: int, num_tasks: int, obs_dim: int, condition: Condition = "task") -> None:
        super().__init__()
        check(num_modules >= 1, "num_modules", f"must be >= 1, got {num_modules}")
        check(num_tasks >= 1, "num_tasks", f"must be >= 1, got {num_tasks}")
        check(obs_dim >= 1, "obs_dim", f"must be >= 1, got {obs_dim}")
        check(condition in CONDITIONS, "condition", f"must be one of {list(CONDITIONS)}, got {condition!r}")
        self.num_modules = num_modules
        self.num_tasks = num_tasks
        self.obs_dim = obs_dim
        self.condition: Condition = condition
        self.last: Tensor | None = None

    @property
    def uses_task(self) -> bool:
        """Whether routing reads the task ids (then they are range-checked)."""
        return "task" in self.condition

    def forward(self, obs_features: Tensor, task_ids: Tensor) -> RoutingOutput:
        """Route a batch.

        Args:
            obs_features: ``(B, obs_dim)`` float.
            task_ids: ``(B,)`` integer (long) task ids in ``[0, num_tasks)``.

        Returns:
            :class:`RoutingOutput` with ``weights`` ``(B, K)``; ``self.last`` is set to them, detached.

        Raises:
            ValueError: Wrong shapes or dtypes, mismatched batch sizes, task ids out of range.
        """
        self._check_inputs(obs_features, task_ids)
        out = self._route(obs_features, task_ids)
        if out.weights.shape != (obs_features.shape[0], self.num_modules):
            raise RuntimeError(f"{type(self).__name__} returned weights of shape {tuple(out.weights.shape)}")
        self.last = out.weights.detach()
        return out

    def set_module_mask(self, mask: Tensor | None) -> None:
        """Restrict the modules each task may route to (off by default); ``None`` lifts the restriction.

        Used by freeze-and-grow continual learning (:mod:`modrl.updates`): capacity is allocated up front and a task
        only sees the modules it was given, so granting a new task a new module leaves old tasks' weights
        bit-identical. The mask is not part of ``state_dict``: whoever sets it owns and restores it.

        Args:
            mask: ``(num_tasks, K)`` bool, at least one ``True`` per row.

        Raises:
            ValueError: Wrong shape or dtype, or a row without any allowed module.
            NotImplementedError: The router cannot restrict its choice (it has no logits to mask).
        """
        if mask is not None:
            if mask.dtype != torch.bool or tuple(mask.shape) != (self.num_tasks, self.num_modules):
                raise ValueError(
                    f"module mask must be ({self.num_tasks}, {self.num_modules}) bool, got "
                    f"{tuple(mask.shape)} {mask.dtype}"
                )
            if not bool(mask.any(dim=1).all()):
                raise ValueError("every task needs at least one allowed module in the module mask")
            mask = mask.detach().clone()
        self._set_module_mask(mask)

    def _set_module_mask(self, mask: Tensor | None) -> None:
        """Hook for :meth:`set_module_mask` (mask validated); routers without logits refuse a mask."""
        if mask is not None:
            raise NotImplementedError(f"{type(self).__name__} cannot restrict routing with a module mask")

    def set_progress(self, fraction: float) -> None:
        """Tell the router how far training has got, ``fraction`` in ``[0, 1]`` (e.g. to anneal a temperature)."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"training progress must be in [0, 1], got {fraction}")
        self._set_progress(float(fraction))

    def _set_progress(self, fraction: float) -> None:
        """Hook for :meth:`set_progress`; the default ignores progress."""

    def reset_parameters(self) -> None:
        """Re-initialise learned parameters (a no-op for routers without any)."""

    @abstractmethod
    def _route(self, obs_features: Tensor, task_ids: Tensor) -> RoutingOutput:
        """Compute the routing of a validated batch (shapes as in :meth:`forward`)."""

    def _check_inputs(self, obs_features: Tensor, task_ids: Tensor) -> None:
        if obs_features.ndim != 2 or obs_features.shape[1] != self.obs_dim:
            raise ValueError(f"obs_features must have shape (B, {self.obs_dim}), got {tuple(obs_features.shape)}")
        if not obs_features.is_floating_point():
            raise ValueError(f"obs_features must be floating point, got {obs_features.dtype}")
        if task_ids.ndim != 1 or task_ids.shape[0] != obs_features.shape[0]:
            batch = obs_features.shape[0]
            raise ValueError(f"task_ids must have shape ({batch},) to match obs_features, got {tuple(task_ids.shape)}")
        if task_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"task_ids must be integer (torch.long), got {task_ids.dtype}")
        if self.uses_task and task_ids.numel():
            low, high = int(task_ids.min()), int(task_ids.max())
            if low < 0 or high >= self.num_tasks:
                raise ValueError(f"task ids must lie in [0, {self.num_tasks}), got min {low} max {high}")


class RouterLogits(nn.Module):
    """Routing logits ``(B, K)`` from the task id, the observation features, or both concatenated.

    ``condition="task"`` with ``hidden=0`` is an embedding table (one logit row per task); otherwise the input is
    the task one-hot and/or the features, mapped by a linear layer or one hidden tanh layer. The output layer starts
    small (std 0.01), so a fresh router spreads its weight almost evenly over the modules.

    Args:
        condition: ``"task"``, ``"obs"`` or ``"task+obs"``.
        num_modules: ``K``. num_tasks: number of task ids. obs_dim: feature size.
        hidden: 0 for linear logits, else the hidden width.
    """

    def __init__(self, *, condition: Condition, num_modules: int, num_tasks: int, obs_dim: int, hidden: int) -> None:
        super().__init__()
        check(hidden >= 0, "hidden", f"must be >= 0, got {hidden}")
        self.condition = condition
        self.num_tasks = num_tasks
        self.net: nn.Module
        if condition == "task" and hidden == 0:
            self.net = nn.Embedding(num_tasks, num_modules)
        else:
            in_dim = (num_tasks if "task" in condition else 0) + (obs_dim if "obs" in condition else 0)
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden), nn.Tanh()] if hidden else []
            self.net = nn.Sequential(*layers, nn.Linear(hidden or in_dim, num_modules))
        #: ``(num_tasks, K)`` bool or None: modules a task may use; the others get logit -inf (see
        #: :meth:`Router.set_module_mask`).
        self.module_mask: Tensor | None
        self.register_buffer("module_mask", None, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise: hidden layer as PyTorch's default, output layer ``N(0, 0.01^2)`` weights and zero bias.

        SB3's ``ortho_init`` re-initialises every ``nn.Linear`` in a policy's ``mlp_extractor`` (orthogonal, gain
        sqrt(2)), which makes a fresh router far from uniform; call this after the policy is built to undo that.
        """
        if isinstance(self.net, nn.Embedding):
            nn.init.normal_(self.net.weight, std=0.01)
            return
        linears = [m for m in self.net.modules() if isinstance(m, nn.Linear)]
        for layer in linears[:-1]:
            layer.reset_parameters()
        nn.init.normal_(linears[-1].weight, std=0.01)
        nn.init.zeros_(linears[-1].bias)

    def forward(self, obs_features: Tensor, task_ids: Tensor) -> Tensor:
        """``(B, D)`` float, ``(B,)`` long -> ``(B, K)`` logits (``-inf`` where :attr:`module_mask` forbids one)."""
        if isinstance(self.net, nn.Embedding):
            logits = self.net(task_ids.long()).to(obs_features.dtype)
        else:
            parts = []
            if "task" in self.condition:
                parts.append(nn.functional.one_hot(task_ids.long(), self.num_tasks).to(obs_features.dtype))
            if "obs" in self.condition:
                parts.append(obs_features)
            logits = self.net(torch.cat(parts, dim=1))
        if self.module_mask is not None:
            logits = logits.masked_fill(~self.module_mask[task_ids.long()], float("-inf"))
        return logits


class LearnedRouter(Router):
    """A router with learned logits (:class:`RouterLogits`); subclasses turn logits into weights.

    With ``mi_coef > 0`` the router asks to specialise: whenever gradients are being computed (an update, not a
    rollout), ``-mi_coef * I(task; module)`` of the batch (:func:`~modrl.routers.specialise.task_module_mi`, on the
    routing probabilities of :meth:`choice_probs`) is added to its ``aux_loss``: it trains the routing (the logits
    network, and the observation features an ``obs``-conditioned router reads), never the modules.

    Args:
        hidden: Width of the logits network's hidden tanh layer; 0 for linear logits.
        mi_coef: Weight of the task-module mutual-information bonus (>= 0; 0 turns it off).
        **kwargs: The common :class:`Router` arguments.
    """

    config_fields: ClassVar[tuple[str, ...]] = ("hidden", "mi_coef")

    def __init__(self, *, hidden: int = 0, mi_coef: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check(mi_coef >= 0, "mi_coef", f"must be >= 0, got {mi_coef}")
        self.mi_coef = float(mi_coef)
        self.logits_net = RouterLogits(
            condition=self.condition,
            num_modules=self.num_modules,
            num_tasks=self.num_tasks,
            obs_dim=self.obs_dim,
            hidden=hidden,
        )

    @property
    def uses_task(self) -> bool:
        """Whether routing or the mutual-information bonus reads the task ids (then they are range-checked)."""
        return "task" in self.condition or self.mi_coef > 0

    def forward(self, obs_features: Tensor, task_ids: Tensor) -> RoutingOutput:
        """:meth:`Router.forward`, plus the mutual-information bonus in ``aux_loss`` (``mi_coef > 0``, grad on)."""
        out = super().forward(obs_features, task_ids)
        if self.mi_coef == 0 or not torch.is_grad_enabled():
            return out
        mi = task_module_mi(self.choice_probs(out), task_ids, self.num_tasks)
        return replace(out, aux_loss=out.aux_loss - self.mi_coef * mi)

    def choice_probs(self, out: RoutingOutput) -> Tensor:
        """``(B, K)`` probabilities of choosing each module: ``softmax(logits)`` (soft routing: its weights)."""
        assert out.logits is not None
        return torch.softmax(out.logits, dim=-1)

    def reset_parameters(self) -> None:
        """Re-initialise the logits so routing starts near uniform (see :meth:`RouterLogits.reset_parameters`)."""
        self.logits_net.reset_parameters()

    def _set_module_mask(self, mask: Tensor | None) -> None:
        self.logits_net.module_mask = mask


#: Router kinds -> classes ("fixed", "soft", "gumbel", "topk", "uniform"); filled by the modules defining them.
ROUTERS: Registry[type[Router]] = Registry("router")


def build_router(config: RouterConfig, *, num_modules: int, num_tasks: int, obs_dim: int) -> Router:
    """Build the router ``config.kind`` names (through :data:`ROUTERS`).

    Raises:
        ConfigError: A combination the router refuses, naming the field (e.g. ``condition`` of a fixed router,
            ``table`` length or indices, ``k`` above ``num_modules``).
    """
    cls = ROUTERS.get(config.kind)
    extra = {name: getattr(config, name) for name in cls.config_fields}
    return cls(num_modules=num_modules, num_tasks=num_tasks, obs_dim=obs_dim, condition=config.condition, **extra)
