"""The skill library: named skill modules, the layers they share, freezing, and single-module files.

Parameters live in name-keyed ``nn.ModuleDict``s (the adapters/PEFT layout): ``skills`` for the modules a router
chooses between, ``shared`` for layers that several skills compute with (the base of low-rank skills). A module can
be saved alone to a safetensors file whose header carries its spec, and loaded into another library without pickle.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import safetensors.torch
import torch
from torch import Tensor, nn

from modrl._io import atomic_write_bytes
from modrl.config import check, check_sizes
from modrl.registry import UnknownNameError

from .base import ACTIVATIONS, SKILLS, Activation, SkillModule
from .lowrank import LowRankSkill
from .mlp import MLPSkill, can_stack, stacked_forward

logger = logging.getLogger(__name__)

#: ``format`` value in a skill file's header metadata, and the version this code writes and reads.
FILE_FORMAT = "modrl.skill"
FORMAT_VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class ParamCounts:
    """Parameter element counts of a library (skills + shared layers, each parameter once)."""

    trainable: int
    frozen: int

    @property
    def total(self) -> int:
        """``trainable + frozen``."""
        return self.trainable + self.frozen


class SkillLibrary(nn.Module):
    """Named skill modules with a common ``in_dim -> out_dim`` signature, plus the layers they share.

    The first skill added fixes ``in_dim`` and ``out_dim``; later ones must match. Skill and shared-layer names
    form one namespace (``[A-Za-z0-9_]+``), so :meth:`is_frozen` can answer for either.

    Attributes:
        skills: Skill modules by name, in insertion order.
        shared: Layers owned by the library and used by skills (e.g. ``"base"`` for low-rank skills).
    """

    def __init__(self) -> None:
        super().__init__()
        self.skills = nn.ModuleDict()
        self.shared = nn.ModuleDict()

    @property
    def names(self) -> list[str]:
        """Skill names in insertion order (the order of :meth:`forward`'s ``K`` axis by default)."""
        return list(self.skills.keys())

    def __len__(self) -> int:
        return len(self.skills)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.skills

    @property
    def in_dim(self) -> int:
        """Input size of every skill (``ValueError`` while the library is empty)."""
        return self._first().in_dim

    @property
    def out_dim(self) -> int:
        """Output size of every skill (``ValueError`` while the library is empty)."""
        return self._first().out_dim

    def get(self, name: str) -> SkillModule:
        """The skill called ``name``; unknown names raise :class:`~modrl.registry.UnknownNameError`."""
        self._resolve([name])
        module = self.skills[name]
        assert isinstance(module, SkillModule)
        return module

    def add(self, name: str, skill: SkillModule) -> None:
        """Add ``skill`` under ``name``.

        Raises:
            ValueError: Bad or taken name, dimensions that differ from the library's, or a shared dependency
                (e.g. a low-rank base) that is not this library's shared layer of that name.
        """
        self._check_new_name(name)
        if not isinstance(skill, SkillModule):
            raise TypeError(f"skill {name!r} must be a SkillModule, got {type(skill).__name__}")
        if len(self) and (skill.in_dim, skill.out_dim) != (self.in_dim, self.out_dim):
            raise ValueError(
                f"skill {name!r} maps {skill.in_dim} -> {skill.out_dim}; this library's skills map "
                f"{self.in_dim} -> {self.out_dim}"
            )
        for dep_name, dep in skill.shared_dependencies().items():
            if dep_name not in self.shared or self.shared[dep_name] is not dep:
                raise ValueError(
                    f"skill {name!r} computes with shared layer {dep_name!r}, which must first be added to this "
                    f"library with add_shared (shared: {sorted(self.shared) or 'none'})"
                )
        self.skills[name] = skill

    def add_shared(self, name: str, module: nn.Module) -> None:
        """Register a layer owned by the library (saved with it, frozen by :meth:`freeze_shared`)."""
        self._check_new_name(name)
        if not isinstance(module, nn.Module):
            raise TypeError(f"shared layer {name!r} must be an nn.Module, got {type(module).__name__}")
        self.shared[name] = module

    def freeze(self, names: Iterable[str]) -> None:
        """Stop gradients to these skills' own parameters (their ``.grad`` is cleared); shared layers untouched."""
        for name in self._resolve(names):
            _set_trainable(self.skills[name], False)

    def unfreeze(self, names: Iterable[str]) -> None:
        """Make these skills' own parameters trainable again."""
        for name in self._resolve(names):
            _set_trainable(self.skills[name], True)

    def set_trainable(self, names: Iterable[str]) -> None:
        """Exactly these skills trainable, every other skill frozen (shared layers untouched)."""
        active = set(self._resolve(names))
        for name, module in self.skills.items():
            _set_trainable(module, name in active)

    def freeze_shared(self) -> None:
        """Freeze every shared layer (the base of low-rank skills)."""
        _set_trainable(self.shared, False)

    def unfreeze_shared(self) -> None:
        """Make every shared layer trainable."""
        _set_trainable(self.shared, True)

    def is_frozen(self, name: str) -> bool:
        """Whether skill or shared layer ``name`` has no trainable parameter."""
        if name in self.shared:
            module: nn.Module = self.shared[name]
        else:
            module = self.get(name)
        return not any(p.requires_grad for p in module.parameters())

    def parameter_counts(self) -> ParamCounts:
        """Trainable and frozen parameter elements over skills and shared layers, each parameter once."""
        trainable = frozen = 0
        for param in self.parameters():
            if param.requires_grad:
                trainable += param.numel()
            else:
                frozen += param.numel()
        return ParamCounts(trainable=trainable, frozen=frozen)

    def forward(self, x: Tensor, names: Sequence[str] | None = None) -> Tensor:
        """Run skills on the same features.

        Args:
            x: Features ``(B, in_dim)`` float.
            names: Skills to run, in output order; default all (:attr:`names` order). Empty gives ``(B, 0, H)``.

        Returns:
            ``(B, len(names), out_dim)``: skill ``names[k]``'s output at ``[:, k]``.
        """
        selected = self.names if names is None else self._resolve(names)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"features must have shape (B, {self.in_dim}), got {tuple(x.shape)}")
        if not selected:
            return x.new_zeros(x.shape[0], 0, self.out_dim)
        modules = [self.skills[name] for name in selected]
        if can_stack(modules):
            return stacked_forward(modules, x)  # type: ignore[arg-type]  # all MLPSkill, checked by can_stack
        return torch.stack([module(x) for module in modules], dim=1)

    def save_module(self, name: str, path: Path | str) -> None:
        """Write skill ``name`` alone to a safetensors file (atomically).

        Its own tensors only (a low-rank skill's base stays with the library); the header metadata holds the
        format, format version, name, JSON spec, a sha256 of its tensors (checked on load) and a sha256 of each
        shared layer it depends on (a mismatch on load only warns).
        """
        skill = self.get(name)
        tensors = {key: value.detach().cpu().contiguous() for key, value in skill.state_dict().items()}
        digests = {dep_name: tensor_digest(dep.state_dict()) for dep_name, dep in skill.shared_dependencies().items()}
        metadata = {
            "format": FILE_FORMAT,
            "format_version": str(FORMAT_VERSION),
            "name": name,
            "tensors_sha256": tensor_digest(tensors),
            "spec": json.dumps(skill.spec(), sort_keys=True),
            "shared_digests": json.dumps(digests, sort_keys=True),
        }
        atomic_write_bytes(path, safetensors.torch.save(tensors, metadata=metadata))

    def load_module(self, path: Path | str, *, name: str | None = None, trainable: bool = True) -> str:
        """Add the skill saved in ``path`` (by :meth:`save_module`) to this library; no pickle involved.

        The module is rebuilt from its spec through :data:`~modrl.skills.SKILLS` and loaded strictly. A low-rank
        skill attaches to this library's shared base of the recorded name (same shape required; a base whose
        values differ from the saving library's is accepted with a warning).

        Args:
            path: A skill file.
            name: Name to add it under; default the name recorded in the file.
            trainable: ``False`` adds it frozen.

        Returns:
            The name it was added under.

        Raises:
            ValueError: Naming the file and the reason: corrupt or truncated file, not a modrl skill file, unknown
                format version or kind, missing/mismatched shared layer, tensor names or shapes that differ from
                what the spec builds, non-finite values, a bad or taken name, or dimensions foreign to the library.
        """
        path = Path(path)
        try:
            module, saved_name, digests = self._module_from_file(path)
            target = saved_name if name is None else name
            self.add(target, module)
        except ValueError as exc:
            raise ValueError(f"{path}: cannot load skill module: {exc}") from None
        for dep_name, dep in module.shared_dependencies().items():
            if digests.get(dep_name) != tensor_digest(dep.state_dict()):
                logger.warning("%s: shared layer %r differs from the one %r was saved with", path, dep_name, target)
        if not trainable:
            self.freeze([target])
        return target

    def _module_from_file(self, path: Path) -> tuple[SkillModule, str, dict[str, Any]]:
        data = path.read_bytes()
        metadata = safetensors_metadata(data)
        try:
            tensors = safetensors.torch.load(data)
        except Exception as exc:  # safetensors raises its own error types for every malformed input
            raise ValueError(f"corrupt safetensors data ({exc})") from None
        spec, saved_name, digests = _parse_metadata(metadata)
        if metadata.get("tensors_sha256") != tensor_digest(tensors):
            raise ValueError("corrupt tensor data: sha256 differs from the one recorded when saving")
        try:
            cls = SKILLS.get(spec["kind"])
        except UnknownNameError as exc:
            raise ValueError(str(exc)) from None
        shared = dict(self.shared.items())
        # Dry run on the meta device first: a crafted spec cannot make us allocate more than the file holds.
        with torch.device("meta"):
            dry = cls.from_spec(spec, shared={key: copy.deepcopy(layer).to("meta") for key, layer in shared.items()})
        check_tensors_match(dry.state_dict(), tensors)
        module = cls.from_spec(spec, shared=shared)
        reference = next(self.parameters(), None)
        if reference is not None:
            module.to(device=reference.device)
        module.load_state_dict(tensors, strict=True)
        return module, saved_name, digests

    def _check_new_name(self, name: str) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"name {name!r} must match [A-Za-z0-9_]+")
        if name in self.skills or name in self.shared:
            raise ValueError(
                f"name {name!r} is already taken in this library (skills: {self.names}); pick another name"
            )

    def _resolve(self, names: Iterable[str]) -> list[str]:
        if isinstance(names, str):
            raise TypeError(f"expected a collection of skill names, got the string {names!r}")
        names = list(names)
        unknown = [n for n in names if n not in self.skills]
        if unknown:
            raise UnknownNameError(
                f"unknown skill {unknown[0]!r}; known skills: {', '.join(self.names) or 'none'}; "
                f"shared layers: {', '.join(self.shared) or 'none'}"
            )
        return names

    def _first(self) -> SkillModule:
        if not len(self):
            raise ValueError("the skill library is empty: add a skill first")
        return self.get(self.names[0])


def _set_trainable(module: nn.Module, trainable: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(trainable)
        if not trainable:
            param.grad = None


def tensor_digest(state: dict[str, Tensor]) -> str:
    """sha256 over tensors (names, shapes, dtypes, bytes) in sorted name order."""
    digest = hashlib.sha256()
    for key, value in sorted(state.items()):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}|{tuple(value.shape)}|{value.dtype}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` mapping of a safetensors file's JSON header (``ValueError`` if absent or cut)."""
    if len(data) < 8:
        raise ValueError(f"truncated: {len(data)} bytes, shorter than the 8-byte header length")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError(f"truncated: the header claims {size} bytes, only {len(data) - 8} follow")
    try:
        header = json.loads(data[8 : 8 + size])
    except ValueError:
        raise ValueError("corrupt header: not valid JSON") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict):
        raise ValueError("no metadata in the header: not a modrl skill file")
    return metadata


def _parse_metadata(metadata: dict[str, str]) -> tuple[dict[str, Any], str, dict[str, Any]]:
    if metadata.get("format") != FILE_FORMAT:
        raise ValueError(f"not a modrl skill file (format {metadata.get('format')!r}, expected {FILE_FORMAT!r})")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise ValueError(
            f"unsupported format version {metadata.get('format_version')!r}; this modrl reads {FORMAT_VERSION}"
        )
    try:
        spec = json.loads(metadata["spec"])
        digests = json.loads(metadata.get("shared_digests", "{}"))
        saved_name = metadata["name"]
    except (KeyError, ValueError) as exc:
        raise ValueError(f"corrupt metadata ({type(exc).__name__}: {exc})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str) or not isinstance(digests, dict):
        raise ValueError("corrupt metadata: the spec must be a mapping with a string 'kind'")
    return spec, saved_name, digests


def check_tensors_match(expected: dict[str, Tensor], tensors: dict[str, Tensor]) -> None:
    """Same names and shapes as ``expected`` (what the spec builds), finite values."""
    missing, unexpected = sorted(expected.keys() - tensors.keys()), sorted(tensors.keys() - expected.keys())
    if missing or unexpected:
        raise ValueError(f"tensors do not match the spec (missing: {missing}, unexpected: {unexpected})")
    for key, value in sorted(tensors.items()):
        if value.shape != expected[key].shape:
            raise ValueError(
                f"tensor {key!r} has shape {tuple(value.shape)}, the spec builds {tuple(expected[key].shape)}"
            )
        if value.is_floating_point() and not bool(value.isfinite().all()):
            raise ValueError(f"tensor {key!r} holds non-finite values")


@dataclass(frozen=True, kw_only=True)
class SkillsConfig:
    """How to build the initial skill library.

    Attributes:
        kind: ``"mlp"`` (independent MLP heads) or ``"lowrank"`` (LoRA deltas on one shared linear layer).
        count: Number of skills (``>= 1``).
        hidden: MLP hidden sizes (kind ``mlp``), each ``>= 1``.
        rank: Rank of each low-rank delta (kind ``lowrank``, ``>= 1``).
        activation: ``"tanh"`` or ``"relu"``, after every layer including the last.
    """

    kind: Literal["mlp", "lowrank"] = "mlp"
    count: int = 4
    hidden: tuple[int, ...] = (64,)
    rank: int = 4
    activation: Activation = "tanh"

    def __post_init__(self) -> None:
        check(self.kind in SKILLS, "kind", f"must be one of {SKILLS.names()}, got {self.kind!r}")
        check_sizes(self.count, "count", high=1024)
        check_sizes(self.hidden, "hidden")
        check_sizes(self.rank, "rank")
        check(self.activation in ACTIVATIONS, "activation", f"must be one of {sorted(ACTIVATIONS)}")


def build_skill_library(config: SkillsConfig, *, in_dim: int, out_dim: int) -> SkillLibrary:
    """A library of ``config.count`` skills named ``skill_0`` .. ``skill_{count-1}`` mapping ``in_dim -> out_dim``.

    Kind ``lowrank`` also registers one shared ``nn.Linear(in_dim, out_dim)`` as ``library.shared["base"]``.
    """
    library = SkillLibrary()
    if config.kind == "lowrank":
        base = nn.Linear(in_dim, out_dim)
        library.add_shared("base", base)
    for index in range(config.count):
        skill: SkillModule
        if config.kind == "lowrank":
            skill = LowRankSkill(base=base, base_name="base", rank=config.rank, activation=config.activation)
        else:
            skill = MLPSkill(in_dim=in_dim, out_dim=out_dim, hidden=config.hidden, activation=config.activation)
        library.add(f"skill_{index}", skill)
    return library
