"""The module library: named modules, the layers they share, freezing, and single-module files.

Parameters live in name-keyed ``nn.ModuleDict``s (the adapters/PEFT layout): ``skills`` for the modules a router
chooses between (the attribute keeps its first name: it is the prefix of every saved state-dict key), ``shared`` for
layers that several modules compute with (the base of low-rank modules). A module can be saved alone to a
safetensors file whose header carries its spec, and loaded into another library without pickle.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from modrl.library import (  # the file helpers are re-exported: older code imports them from here
    NamedModuleLibrary,
    ParamCounts,
    check_tensors_match,
    safetensors_metadata,
    set_requires_grad,
    tensor_digest,
)
from modrl.registry import UnknownNameError
from modrl.safe_load import loads_json

from .base import MODULE_KINDS, RoutedModule
from .config import ModulesConfig
from .lowrank import AdapterModule, LowRankModule
from .mlp import MLPModule, can_stack, stacked_forward

__all__ = [
    "FILE_FORMAT",
    "FORMAT_VERSION",
    "ModuleLibrary",
    "ModulesConfig",
    "ParamCounts",
    "build_module_library",
    "check_tensors_match",
    "safetensors_metadata",
    "tensor_digest",
]

logger = logging.getLogger(__name__)

#: ``format`` value in a module file's header metadata, and the version this code writes and reads.
FILE_FORMAT = "modrl.skill"
FORMAT_VERSION = 1


class ModuleLibrary(NamedModuleLibrary[RoutedModule]):
    """Named modules with a common ``in_dim -> out_dim`` signature, plus the layers they share.

    The first module added fixes ``in_dim`` and ``out_dim``; later ones must match. Module and shared-layer names
    form one namespace (``[A-Za-z0-9_]+``), so :meth:`is_frozen` can answer for either. Names, freezing by name
    (modules only: shared layers have :meth:`freeze_shared`), parameter counts (modules and shared layers) and the
    file checks are :class:`~modrl.library.NamedModuleLibrary`'s.

    Attributes:
        skills: Modules by name, in insertion order (named so in every saved state dict: ``library.skills.*``).
        shared: Layers owned by the library and used by modules (e.g. ``"base"`` for low-rank modules).
    """

    members_attr = "skills"
    member_type = RoutedModule
    noun = "module"
    name_pattern = re.compile(r"[A-Za-z0-9_]+")
    file_format = FILE_FORMAT
    format_version = FORMAT_VERSION
    skills: nn.ModuleDict

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.ModuleDict()

    @property
    def in_dim(self) -> int:
        """Input size of every module (``ValueError`` while the library is empty)."""
        return self._first().in_dim

    @property
    def out_dim(self) -> int:
        """Output size of every module (``ValueError`` while the library is empty)."""
        return self._first().out_dim

    def add_shared(self, name: str, module: nn.Module) -> None:
        """Register a layer owned by the library (saved with it, frozen by :meth:`freeze_shared`)."""
        self._check_new_name(name)
        if not isinstance(module, nn.Module):
            raise TypeError(f"shared layer {name!r} must be an nn.Module, got {type(module).__name__}")
        self.shared[name] = module

    def freeze_shared(self) -> None:
        """Freeze every shared layer (the base of low-rank modules)."""
        set_requires_grad(self.shared, False)

    def unfreeze_shared(self) -> None:
        """Make every shared layer trainable."""
        set_requires_grad(self.shared, True)

    def is_frozen(self, name: str) -> bool:
        """Whether module or shared layer ``name`` has no trainable parameter."""
        if name in self.shared:
            return not any(p.requires_grad for p in self.shared[name].parameters())
        return super().is_frozen(name)

    def forward(self, x: Tensor, names: Sequence[str] | None = None) -> Tensor:
        """Run modules on the same features.

        Args:
            x: Features ``(B, in_dim)`` float.
            names: Modules to run, in output order; default all (:attr:`names` order). Empty gives ``(B, 0, H)``.

        Returns:
            ``(B, len(names), out_dim)``: module ``names[k]``'s output at ``[:, k]``.
        """
        selected = self.names if names is None else self._resolve(names)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"features must have shape (B, {self.in_dim}), got {tuple(x.shape)}")
        if not selected:
            return x.new_zeros(x.shape[0], 0, self.out_dim)
        modules = [self.skills[name] for name in selected]
        if can_stack(modules):
            return stacked_forward(modules, x)  # type: ignore[arg-type]  # all MLPModule, checked by can_stack
        return torch.stack([module(x) for module in modules], dim=1)

    def save_module(self, name: str, path: Path | str) -> None:
        """Write module ``name`` alone to a safetensors file (atomically).

        Its own tensors only (a low-rank module's base stays with the library); the header metadata holds the
        format, format version, name, JSON spec, a sha256 of its tensors (checked on load) and a sha256 of each
        shared layer it depends on (a mismatch on load only warns).
        """
        self.save_member(name, path)

    def load_module(self, path: Path | str, *, name: str | None = None, trainable: bool = True) -> str:
        """Add the module saved in ``path`` (by :meth:`save_module`) to this library; no pickle involved.

        The module is rebuilt from its spec through :data:`~modrl.modules.MODULE_KINDS` and loaded strictly. A low-rank
        module attaches to this library's shared base of the recorded name (same shape required; a base whose
        values differ from the saving library's is accepted with a warning).

        Args:
            path: A module file.
            name: Name to add it under; default the name recorded in the file.
            trainable: ``False`` adds it frozen.

        Returns:
            The name it was added under.

        Raises:
            ValueError: Naming the file and the reason: corrupt or truncated file, not a modrl module file, unknown
                format version or kind, missing/mismatched shared layer, tensor names or shapes that differ from
                what the spec builds, non-finite values, a bad or taken name, or dimensions foreign to the library.
        """
        return self.load_member(path, name=name, trainable=trainable)

    # -- hooks ----------------------------------------------------------------------------------------------------
    def _check_member(self, name: str, member: RoutedModule) -> None:
        if len(self) and (member.in_dim, member.out_dim) != (self.in_dim, self.out_dim):
            raise ValueError(
                f"module {name!r} maps {member.in_dim} -> {member.out_dim}; this library's modules map "
                f"{self.in_dim} -> {self.out_dim}"
            )
        for dep_name, dep in member.shared_dependencies().items():
            if dep_name not in self.shared or self.shared[dep_name] is not dep:
                raise ValueError(
                    f"module {name!r} computes with shared layer {dep_name!r}, which must first be added to this "
                    f"library with add_shared (shared: {sorted(self.shared) or 'none'})"
                )

    def _spec_metadata(self, name: str, member: RoutedModule) -> dict[str, str]:
        digests = {dep_name: tensor_digest(dep.state_dict()) for dep_name, dep in member.shared_dependencies().items()}
        spec = json.dumps(member.spec(), sort_keys=True)
        return {"spec": spec, "shared_digests": json.dumps(digests, sort_keys=True)}

    def _module_class(self, spec: dict[str, Any], metadata: Mapping[str, str]) -> type[RoutedModule]:
        if not isinstance(spec.get("kind"), str) or not isinstance(_shared_digests(metadata), dict):
            raise ValueError("corrupt metadata: the spec must be a mapping with a string 'kind'")
        try:
            return MODULE_KINDS.get(spec["kind"])
        except UnknownNameError as exc:
            raise ValueError(str(exc)) from None

    def _dry_run(self, spec: dict[str, Any], metadata: Mapping[str, str]) -> nn.Module:
        cls = self._module_class(spec, metadata)
        with torch.device("meta"):
            shared = {key: copy.deepcopy(layer).to("meta") for key, layer in self.shared.items()}
            return cls.from_spec(spec, shared=shared)

    def _from_spec(self, spec: dict[str, Any], metadata: Mapping[str, str]) -> RoutedModule:
        return self._module_class(spec, metadata).from_spec(spec, shared=dict(self.shared.items()))

    def _loaded(self, path: Path, name: str, metadata: Mapping[str, str]) -> None:
        digests = _shared_digests(metadata)
        for dep_name, dep in self.get(name).shared_dependencies().items():
            if digests.get(dep_name) != tensor_digest(dep.state_dict()):
                logger.warning("%s: shared layer %r differs from the one %r was saved with", path, dep_name, name)

    def _taken_names(self) -> list[str]:
        return [*self.names, *self.shared.keys()]

    def _unknown_message(self, name: str) -> str:
        return f"{super()._unknown_message(name)}; shared layers: {', '.join(self.shared) or 'none'}"

    def _first(self) -> RoutedModule:
        if not len(self):
            raise ValueError("the module library is empty: add a module first")
        return self.get(self.names[0])


def _shared_digests(metadata: Mapping[str, str]) -> Any:
    try:
        return loads_json(metadata.get("shared_digests", "{}"), "shared_digests")
    except ValueError as exc:
        raise ValueError(f"corrupt metadata ({type(exc).__name__}: {exc})") from None


def build_module_library(config: ModulesConfig, *, in_dim: int, out_dim: int) -> ModuleLibrary:
    """A library of ``config.count`` modules named ``skill_0`` .. ``skill_{count-1}`` mapping ``in_dim -> out_dim``.

    Kinds ``lowrank`` and ``adapter`` also register one shared ``nn.Linear(in_dim, out_dim)`` as
    ``library.shared["base"]``.
    """
    library = ModuleLibrary()
    delta = {"lowrank": LowRankModule, "adapter": AdapterModule}.get(config.kind)
    if delta is not None:
        base = nn.Linear(in_dim, out_dim)
        library.add_shared("base", base)
    for index in range(config.count):
        module: RoutedModule
        if delta is not None:
            module = delta(base=base, base_name="base", rank=config.rank, activation=config.activation)
        else:
            module = MLPModule(in_dim=in_dim, out_dim=out_dim, hidden=config.hidden, activation=config.activation)
        library.add(f"skill_{index}", module)
    return library
