"""Modules (the computation step of the modular forward pass) and the library that holds them.

The config (:class:`ModulesConfig`, the names :data:`MODULE_KIND_NAMES` and :data:`ACTIVATION_NAMES`) imports no
torch; the modules and the library load on first use (PEP 562), so loading a config does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import ACTIVATION_NAMES, MODULE_KIND_NAMES, ModulesConfig

if TYPE_CHECKING:
    from .base import ACTIVATIONS, MODULE_KINDS, RoutedModule
    from .library import ModuleLibrary, ParamCounts, build_module_library
    from .lowrank import AdapterModule, LowRankModule
    from .mlp import MLPModule

#: Public name -> the submodule defining it (imported on first access).
_LAZY = {
    "ACTIVATIONS": "base",
    "MODULE_KINDS": "base",
    "RoutedModule": "base",
    "ModuleLibrary": "library",
    "ParamCounts": "library",
    "build_module_library": "library",
    "AdapterModule": "lowrank",
    "LowRankModule": "lowrank",
    "MLPModule": "mlp",
}

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_NAMES",
    "MODULE_KINDS",
    "MODULE_KIND_NAMES",
    "AdapterModule",
    "LowRankModule",
    "MLPModule",
    "ModuleLibrary",
    "ModulesConfig",
    "ParamCounts",
    "RoutedModule",
    "build_module_library",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module(f"{__name__}.library")  # imports every module kind, so MODULE_KINDS is complete
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
