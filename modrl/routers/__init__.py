"""Routers (the routing step of the modular forward pass): which modules compute, and with what weight."""

from __future__ import annotations

from .base import CONDITIONS, ROUTERS, LearnedRouter, Router, RouterConfig, RouterLogits, RoutingOutput, build_router
from .fixed import FixedRouter
from .gumbel import GumbelRouter
from .soft import SoftRouter
from .topk import TopKRouter

__all__ = [
    "CONDITIONS",
    "ROUTERS",
    "FixedRouter",
    "GumbelRouter",
    "LearnedRouter",
    "Router",
    "RouterConfig",
    "RouterLogits",
    "RoutingOutput",
    "SoftRouter",
    "TopKRouter",
    "build_router",
]
