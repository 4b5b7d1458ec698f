"""Routers (the routing step of the modular forward pass): which modules compute, and with what weight.

The config (:class:`RouterConfig`, the names :data:`ROUTER_KINDS` and :data:`CONDITIONS`) imports no torch; the
routers themselves load on first use (PEP 562), so loading a config or ``modrl list`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import CONDITIONS, ROUTER_KINDS, RouterConfig

if TYPE_CHECKING:
    from .base import ROUTERS, LearnedRouter, Router, RouterLogits, RoutingOutput, build_router
    from .fixed import FixedRouter, UniformRouter
    from .gumbel import GumbelRouter
    from .soft import SoftRouter
    from .topk import TopKRouter

#: Public name -> the submodule defining it (imported on first access).
_LAZY = {
    "ROUTERS": "base",
    "LearnedRouter": "base",
    "Router": "base",
    "RouterLogits": "base",
    "RoutingOutput": "base",
    "build_router": "base",
    "FixedRouter": "fixed",
    "GumbelRouter": "gumbel",
    "SoftRouter": "soft",
    "TopKRouter": "topk",
    "UniformRouter": "fixed",
}

__all__ = [
    "CONDITIONS",
    "ROUTERS",
    "ROUTER_KINDS",
    "FixedRouter",
    "GumbelRouter",
    "LearnedRouter",
    "Router",
    "RouterConfig",
    "RouterLogits",
    "RoutingOutput",
    "SoftRouter",
    "TopKRouter",
    "UniformRouter",
    "build_router",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for submodule in ("fixed", "gumbel", "soft", "topk"):  # each registers its router in ROUTERS
        importlib.import_module(f"{__name__}.{submodule}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
