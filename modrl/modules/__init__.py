"""Modules (the computation step of the modular forward pass) and the library that holds them."""

from __future__ import annotations

from .base import ACTIVATIONS, MODULE_KINDS, RoutedModule
from .library import ModuleLibrary, ModulesConfig, ParamCounts, build_module_library
from .lowrank import LowRankModule
from .mlp import MLPModule

__all__ = [
    "ACTIVATIONS",
    "MODULE_KINDS",
    "LowRankModule",
    "MLPModule",
    "ModuleLibrary",
    "ModulesConfig",
    "ParamCounts",
    "RoutedModule",
    "build_module_library",
]
