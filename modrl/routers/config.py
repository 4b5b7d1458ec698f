"""How to build a router: :class:`RouterConfig` and the names a config may give (imports no torch, so configs load
and ``modrl list`` answers without it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from modrl.config import MAX_WIDTH, check

Condition = Literal["task", "obs", "task+obs"]
CONDITIONS: tuple[str, ...] = get_args(Condition)
RouterKind = Literal["fixed", "soft", "gumbel", "topk", "uniform"]
#: The router kinds a config may name; ``modrl.routers.ROUTERS`` registers one class for each (a test checks).
ROUTER_KINDS: tuple[str, ...] = get_args(RouterKind)


@dataclass(frozen=True, kw_only=True)
class RouterConfig:
    """How to build a router (see :func:`build_router`).

    Attributes:
        kind: ``"fixed"``, ``"soft"``, ``"gumbel"``, ``"topk"`` or ``"uniform"`` (every module weighted ``1 / K``;
            no parameters) (:data:`ROUTER_KINDS`, the names in ``ROUTERS``).
        condition: What the logits are computed from: ``"task"``, ``"obs"`` or ``"task+obs"``.
        hidden: 0 for linear logits; > 0 for one hidden tanh layer of this width.
        mi_coef: soft, gumbel, topk: weight of the task-module mutual-information bonus that asks the router to
            specialise (each task's routing sharp, the tasks spread over the modules; >= 0, 0 is off).
        temperature: soft: softmax temperature (> 0).
        tau_start: gumbel: initial Gumbel-softmax temperature (> 0).
        tau_end: gumbel: final temperature (> 0).
        anneal_fraction: gumbel: fraction of training over which tau decays exponentially, in (0, 1].
        k: topk: modules per decision (>= 1, <= number of modules).
        balance_coef: topk: load-balancing auxiliary loss coefficient (>= 0).
        table: fixed: module index per task id; empty means task ``i`` uses module ``i % num_modules``.
    """

    kind: RouterKind = "soft"
    condition: Condition = "task"
    hidden: int = 0
    mi_coef: float = 0.0
    temperature: float = 1.0
    tau_start: float = 1.0
    tau_end: float = 0.1
    anneal_fraction: float = 0.5
    k: int = 2
    balance_coef: float = 0.01
    table: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check(self.kind in ROUTER_KINDS, "kind", f"must be one of {list(ROUTER_KINDS)}, got {self.kind!r}")
        check(self.condition in CONDITIONS, "condition", f"must be one of {list(CONDITIONS)}, got {self.condition!r}")
        check(0 <= self.hidden <= MAX_WIDTH, "hidden", f"must be in [0, {MAX_WIDTH}], got {self.hidden}")
        check(self.mi_coef >= 0, "mi_coef", f"must be >= 0, got {self.mi_coef}")
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check(self.tau_start > 0, "tau_start", f"must be > 0, got {self.tau_start}")
        check(self.tau_end > 0, "tau_end", f"must be > 0, got {self.tau_end}")
        check(0 < self.anneal_fraction <= 1, "anneal_fraction", f"must be in (0, 1], got {self.anneal_fraction}")
        check(self.k >= 1, "k", f"must be >= 1, got {self.k}")
        check(self.balance_coef >= 0, "balance_coef", f"must be >= 0, got {self.balance_coef}")
        check(all(i >= 0 for i in self.table), "table", f"module indices must be >= 0, got {list(self.table)}")
