"""The local-update-rule interface: what continual training may change when a new task arrives.

A rule sees the agent as plain torch modules (:class:`ModelParts`: the actor parts that decide actions, the critic,
optionally the skill library and router) and is driven stage by stage::

    rule.attach(parts)                      # once, before training (and before restoring a checkpoint)
    for stage, task in enumerate(tasks):
        rule.begin_stage(stage, task)       # freeze / grow / re-anchor for the new task
        ... training; the loss carries rule.penalty(); rule.after_update(progress) after each update ...
        rule.end_stage(data)                # consolidate (Fisher, pruning, freezing)
        with rule.acting_as(task_j): ...    # evaluate task j as the rule wants it evaluated

The public methods validate the call order and keep the books; subclasses implement the protected hooks. A rule's
whole state round-trips through :meth:`UpdateRule.state_dict` / :meth:`UpdateRule.load_state_dict` (tensors + JSON),
which re-applies freezing and masks to the modules it is attached to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from modrl.composition import attach_aux_loss
from modrl.config import check
from modrl.library import ParamCounts
from modrl.modules import ModuleLibrary
from modrl.registry import Registry
from modrl.routers import Router

from .guard import ParamGuard

RuleKind = Literal["none", "freeze_grow", "ewc", "l2", "packnet"]


@dataclass(frozen=True, kw_only=True)
class UpdateRuleConfig:
    """How to build an update rule (see :func:`build_update_rule`); each rule reads only its own fields.

    Attributes:
        kind: A name in :data:`UPDATE_RULES`.
        strength: ewc / l2: penalty coefficient ``lambda`` in ``lambda / 2 * sum w_i (theta_i - theta*_i)^2``.
        fisher_samples: ewc: states (with actions sampled from the policy) used to estimate the Fisher diagonal.
        fisher_decay: ewc: online-EWC decay ``gamma`` of the previous tasks' Fisher (1 = plain sum).
        modules_per_task: freeze_grow: modules granted to a task that grows.
        assimilation: freeze_grow: first train only the new task's routing over the old modules, and grow only if
            training success stays below ``assimilation_threshold`` after ``assimilation_fraction`` of the stage.
        assimilation_threshold: freeze_grow: success rate that counts as solved by the old modules.
        assimilation_fraction: freeze_grow: fraction of the stage spent trying the old modules.
        prune_fraction: packnet: fraction of the weights still free at a stage that is released for later tasks.
        retrain_fraction: packnet: fraction of the stage left for retraining the kept weights after pruning.
    """

    kind: RuleKind = "none"
    strength: float = 1.0
    fisher_samples: int = 256
    fisher_decay: float = 1.0
    modules_per_task: int = 1
    assimilation: bool = False
    assimilation_threshold: float = 0.8
    assimilation_fraction: float = 0.25
    prune_fraction: float = 0.5
    retrain_fraction: float = 0.2

    def __post_init__(self) -> None:
        check(self.kind in UPDATE_RULES, "kind", f"must be one of {UPDATE_RULES.names()}, got {self.kind!r}")
        check(self.strength >= 0, "strength", f"must be >= 0, got {self.strength}")
        check(self.fisher_samples >= 1, "fisher_samples", f"must be >= 1, got {self.fisher_samples}")
        check(0 <= self.fisher_decay <= 1, "fisher_decay", f"must be in [0, 1], got {self.fisher_decay}")
        check(self.modules_per_task >= 1, "modules_per_task", f"must be >= 1, got {self.modules_per_task}")
        for name in ("assimilation_threshold", "assimilation_fraction", "retrain_fraction"):
            value = getattr(self, name)
            check(0 <= value <= 1, name, f"must be in [0, 1], got {value}")
        check(0 < self.prune_fraction < 1, "prune_fraction", f"must be in (0, 1), got {self.prune_fraction}")


@dataclass(frozen=True, kw_only=True)
class ModelParts:
    """The agent as an update rule sees it: named plain torch modules, no algorithm types.

    Attributes:
        actor: Every module whose parameters decide actions (features extractor, skill network or policy MLP,
            action head), by name. A module shared with the critic belongs here.
        critic: The modules only the value estimate uses.
        library: The skill library inside ``actor`` (modular agents), else ``None``.
        router: The router inside ``actor`` (modular agents), else ``None``.
        optimizer: The optimiser training all of it (the rule watches its steps), or ``None``.
    """

    actor: Mapping[str, nn.Module]
    critic: Mapping[str, nn.Module] = field(default_factory=dict)
    library: ModuleLibrary | None = None
    router: Router | None = None
    optimizer: torch.optim.Optimizer | None = None

    def named_parameters(self, which: Literal["actor", "critic", "all"] = "all") -> dict[str, nn.Parameter]:
        """``{"<part>.<param name>": parameter}``, each parameter once (first name wins), actor parts first."""
        groups = {"actor": [self.actor], "critic": [self.critic], "all": [self.actor, self.critic]}[which]
        seen: set[int] = set()
        out: dict[str, nn.Parameter] = {}
        for parts in groups:
            for part, module in parts.items():
                for name, param in module.named_parameters():
                    if id(param) not in seen:
                        seen.add(id(param))
                        out[f"{part}.{name}"] = param
        return out


@dataclass(frozen=True)
class StageProgress:
    """Where training of the current stage is, given to :meth:`UpdateRule.after_update`.

    Attributes:
        step: Environment steps done in this stage.
        budget: Environment steps the stage trains for.
        success: Recent training success rate on the stage's task, or ``None`` before any episode ended.
    """

    step: int
    budget: int
    success: float | None

    @property
    def fraction(self) -> float:
        """``step / budget`` clipped to [0, 1]."""
        return min(1.0, max(0.0, self.step / self.budget)) if self.budget > 0 else 1.0


@dataclass(frozen=True)
class ConsolidationData:
    """What a rule may read from the finished task at :meth:`UpdateRule.end_stage`.

    Attributes:
        log_likelihoods: ``n -> iterator`` of ``n`` scalar ``()`` tensors ``log pi(a|s)`` with their autograd graph,
            one per state of the finished task, ``a`` sampled from the policy (a Monte-Carlo estimate of the
            Fisher information, as EWC needs).
    """

    log_likelihoods: Callable[[int], Iterator[Tensor]]


@dataclass(frozen=True)
class RuleParamCounts(ParamCounts):
    """Parameter element counts of the parts a rule is attached to: :class:`~modrl.library.ParamCounts`'
    ``trainable`` (the optimiser may change them in the current stage) and ``frozen``, plus ``active``.

    Attributes:
        active: Elements that take part in some task's behaviour (pre-allocated, still unused capacity excluded).
    """

    active: int


@dataclass(frozen=True)
class RuleState:
    """A rule's checkpointable state: named tensors and a JSON-able mapping."""

    tensors: dict[str, Tensor]
    meta: dict[str, Any]


class UpdateRule:
    """Base class of local-update rules.

    Not abstract on purpose: every hook's default does nothing, which is exactly the ``none`` rule (naive
    fine-tuning); a rule overrides only what it changes. Subclasses list the :class:`UpdateRuleConfig` fields their
    constructor takes in :attr:`config_fields` and override the hooks they need: :meth:`_attach`,
    :meth:`_begin_stage`, :meth:`_penalty`, :meth:`_after_update`, :meth:`_end_stage`, :meth:`_acting_as`,
    :meth:`_state`, :meth:`_load_state`, :meth:`_inactive`.

    Attributes:
        stage: Index of the current (or last) stage, -1 before the first.
        tasks: Task id trained at each stage so far.
        in_stage: Between :meth:`begin_stage` and :meth:`end_stage`.
    """

    config_fields: ClassVar[tuple[str, ...]] = ()
    #: Whether :meth:`penalty` can be non-zero (rules without one skip the loss hook).
    has_penalty: ClassVar[bool] = False

    def __init__(self) -> None:
        self._parts: ModelParts | None = None
        self.guard: ParamGuard | None = None
        self.stage = -1
        self.tasks: list[int] = []
        self.in_stage = False
        self._consolidating = False
        self.last_penalty = 0.0

    @property
    def parts(self) -> ModelParts:
        """The attached parts (``RuntimeError`` before :meth:`attach`)."""
        if self._parts is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a model: call attach(parts) first")
        return self._parts

    def attach(self, parts: ModelParts) -> None:
        """Bind the rule to ``parts`` (once): validates them and installs the parameter guard."""
        if self._parts is not None:
            raise RuntimeError(f"{type(self).__name__} is already attached")
        self._parts = parts
        self.guard = ParamGuard(parts.named_parameters())
        if parts.optimizer is not None:
            self.guard.watch(parts.optimizer)
        self._attach()

    def begin_stage(self, stage: int, task_id: int) -> None:
        """Start stage ``stage`` (0, 1, ... in order) training task ``task_id``."""
        if self.in_stage:
            raise RuntimeError(f"stage {self.stage} has not ended; call end_stage first")
        if stage != self.stage + 1:
            raise ValueError(f"stages run in order: expected stage {self.stage + 1}, got {stage}")
        self.stage = stage
        self.tasks.append(int(task_id))
        self.in_stage = True
        self._begin_stage(int(task_id))

    def penalty(self) -> Tensor:
        """``()`` regularisation term to add to the training loss (zero outside a stage and while consolidating)."""
        if not self.has_penalty or not self.in_stage or self._consolidating:
            return torch.zeros(())
        value = self._penalty()
        self.last_penalty = float(value.detach())
        return value

    def after_update(self, progress: StageProgress) -> None:
        """Called after each policy update of the stage with how far the stage is."""
        if not self.in_stage:
            raise RuntimeError("after_update outside a stage")
        self._after_update(progress)

    def end_stage(self, data: ConsolidationData | None = None) -> None:
        """Consolidate what the stage's task learned; afterwards its behaviour is whatever the rule protects."""
        if not self.in_stage:
            raise RuntimeError("end_stage without begin_stage")
        self._consolidating = True
        try:
            self._end_stage(data)
        finally:
            self._consolidating = False
        self.in_stage = False

    @property
    def acts_per_task(self) -> bool:
        """Whether :meth:`acting_as` changes the model (PackNet): evaluating an old task then needs the rule, not
        just the weights."""
        return type(self)._acting_as is not UpdateRule._acting_as

    @contextlib.contextmanager
    def acting_as(self, task_id: int) -> Iterator[None]:
        """Context in which the model acts for task ``task_id`` (e.g. PackNet masks later tasks' weights)."""
        with self._acting_as(int(task_id)):
            yield

    def parameter_counts(self) -> RuleParamCounts:
        """Trainable / frozen / active element counts over the attached actor and critic parameters."""
        params = self.parts.named_parameters()
        assert self.guard is not None
        trainable, frozen = self.guard.counts()
        total = sum(p.numel() for p in params.values())
        return RuleParamCounts(trainable=trainable, frozen=frozen, active=total - self._inactive())

    def state_dict(self) -> RuleState:
        """Everything needed to continue: ``stage``, ``tasks``, ``in_stage`` and the rule's own state."""
        tensors, meta = self._state()
        meta = {
            "kind": type(self).__name__,
            "stage": self.stage,
            "tasks": list(self.tasks),
            "in_stage": self.in_stage,
            **meta,
        }
        return RuleState(tensors={k: v.detach().clone() for k, v in tensors.items()}, meta=meta)

    def load_state_dict(self, state: RuleState) -> None:
        """Restore :meth:`state_dict` output; call after the model's parameters are restored (freezing snapshots
        the current values)."""
        if state.meta.get("kind") != type(self).__name__:
            raise ValueError(f"state of rule {state.meta.get('kind')!r} cannot load into {type(self).__name__}")
        self.parts  # noqa: B018  (raises unless attached)
        self.stage = int(state.meta["stage"])
        self.tasks = [int(t) for t in state.meta["tasks"]]
        self.in_stage = bool(state.meta["in_stage"])
        self._load_state(state.tensors, state.meta)

    # ---- hooks ---------------------------------------------------------------------------------------------
    def _attach(self) -> None:
        """Validate :attr:`parts` (raise ``ValueError`` naming what does not fit)."""

    def _begin_stage(self, task_id: int) -> None:
        """Prepare the parts for training ``task_id`` (freezing through :attr:`guard`)."""
        assert self.guard is not None
        self.guard.set_frozen({})

    def _penalty(self) -> Tensor:
        return torch.zeros(())

    def _after_update(self, progress: StageProgress) -> None:
        """React to training progress (default: nothing)."""

    def _end_stage(self, data: ConsolidationData | None) -> None:
        """Consolidate the finished stage (default: nothing)."""

    @contextlib.contextmanager
    def _acting_as(self, task_id: int) -> Iterator[None]:
        yield

    def _state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        return {}, {}

    def _load_state(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> None:
        """Restore :meth:`_state` output (default: unfreeze everything, as :meth:`_begin_stage` does)."""
        assert self.guard is not None
        self.guard.set_frozen({})

    def _inactive(self) -> int:
        """Parameter elements not yet used by any task (default 0)."""
        return 0


def attach_penalty(module: nn.Module, rule: UpdateRule) -> RemovableHandle:
    """Make ``rule.penalty()`` part of every loss computed from ``module``'s output.

    A forward hook passes the output through :func:`modrl.composition.attach_aux_loss`: the value is unchanged
    and each backward pass that reaches it adds the penalty's gradient once, exactly as if the penalty had been added
    to the loss. Hook the module every action depends on (the policy's action head); forwards without grad (rollout
    collection, evaluation) are untouched. Rules without a penalty get no hook work at all.

    Returns:
        The hook handle (``handle.remove()`` detaches it).
    """

    def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> Tensor | None:
        if not torch.is_grad_enabled() or not rule.has_penalty:
            return None
        penalty = rule.penalty()
        return attach_aux_loss(output, penalty) if penalty.requires_grad else None

    return module.register_forward_hook(hook)


#: Update-rule kinds -> classes ("none", "freeze_grow", "ewc", "l2", "packnet"); filled by the defining modules.
UPDATE_RULES: Registry[type[UpdateRule]] = Registry("update rule")


def build_update_rule(config: UpdateRuleConfig) -> UpdateRule:
    """The rule ``config.kind`` names, built with its own fields of ``config``."""
    cls = UPDATE_RULES.get(config.kind)
    return cls(**{name: getattr(config, name) for name in cls.config_fields})
