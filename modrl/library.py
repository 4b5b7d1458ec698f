"""Named-module libraries: the bookkeeping that modules and options share.

A library holds ``nn.Module`` members by name in one ``nn.ModuleDict`` (the adapters/PEFT layout), freezes and
unfreezes them by name, counts parameters, and saves one member alone to a safetensors file whose header metadata
carries its format, version, name, JSON spec and a sha256 of its tensors, so another library can load it without
pickle. :class:`NamedModuleLibrary` does all of that; a subclass says what its members are (class attributes), how a
member's spec is written to the header (:meth:`~NamedModuleLibrary._spec_metadata`) and how a member is rebuilt from
it (:meth:`~NamedModuleLibrary._from_spec`). The two libraries built on it are
:class:`modrl.modules.ModuleLibrary` (modules a router mixes) and :class:`modrl.options.OptionLibrary` (options).
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

import safetensors.torch
import torch
from torch import Tensor, nn

from modrl._io import atomic_write_bytes
from modrl.registry import UnknownNameError
from modrl.safe_load import loads_json

M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class ParamCounts:
    """Parameter element counts (each parameter once).

    Attributes:
        trainable: Elements with ``requires_grad`` (the optimiser may change them).
        frozen: Elements held fixed.
    """

    trainable: int
    frozen: int

    @property
    def total(self) -> int:
        """``trainable + frozen``."""
        return self.trainable + self.frozen


def count_parameters(params: Iterable[nn.Parameter]) -> ParamCounts:
    """Trainable and frozen elements of ``params`` (give each parameter once, as ``module.parameters()`` does)."""
    trainable = frozen = 0
    for param in params:
        if param.requires_grad:
            trainable += param.numel()
        else:
            frozen += param.numel()
    return ParamCounts(trainable=trainable, frozen=frozen)


def set_requires_grad(module: nn.Module, trainable: bool) -> None:
    """Turn gradients on or off for every parameter of ``module``; turning them off also clears ``.grad``."""
    for param in module.parameters():
        param.requires_grad_(trainable)
        if not trainable:
            param.grad = None


class NamedModuleLibrary(nn.Module, ABC, Generic[M]):
    """Members of type ``M`` by name, in insertion order, frozen or trainable, saved and loaded one by one.

    The public methods validate their arguments and keep the books; subclasses set the class attributes below and
    implement two hooks, :meth:`_spec_metadata` (how a member's spec goes into a file header) and :meth:`_from_spec`
    (how a member is rebuilt from it). Optional hooks: :meth:`_check_member` (what else :meth:`add` requires),
    :meth:`_dry_run` (build on the meta device to check shapes before allocating) and :meth:`_loaded` (after a load).

    Class attributes:
        members_attr: Attribute holding the ``nn.ModuleDict`` of members (``"skills"``, ``"options"``): the prefix of
            the members' keys in :meth:`state_dict`, so it is part of every checkpoint format.
        member_type: The class every member must be an instance of.
        noun: What a member is called in messages (``"module"``, ``"option"``).
        name_pattern: Regular expression a member name must match in full.
        file_format: ``format`` value in a member file's header metadata.
        format_version: The member-file version this code writes and reads.
    """

    members_attr: ClassVar[str]
    member_type: ClassVar[type[nn.Module]]
    noun: ClassVar[str]
    name_pattern: ClassVar[re.Pattern[str]]
    file_format: ClassVar[str]
    format_version: ClassVar[int] = 1

    def __init__(self) -> None:
        super().__init__()
        setattr(self, self.members_attr, nn.ModuleDict())

    @property
    def _members(self) -> nn.ModuleDict:
        return cast(nn.ModuleDict, getattr(self, self.members_attr))

    # -- names ----------------------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Member names in insertion order."""
        return list(self._members.keys())

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._members

    def __iter__(self) -> Iterator[str]:
        """Member names in insertion order."""
        return iter(self.names)

    def __getitem__(self, name: str) -> M:
        return self.get(name)

    def get(self, name: str) -> M:
        """The member called ``name``; unknown names raise :class:`~modrl.registry.UnknownNameError`."""
        self._resolve([name])
        return cast(M, self._members[name])

    def add(self, name: str, member: M) -> None:
        """Add ``member`` under ``name``.

        Raises:
            ValueError: A name that does not match :attr:`name_pattern` or is taken, or what :meth:`_check_member`
                refuses.
            TypeError: ``member`` is not a :attr:`member_type`.
        """
        self._check_new_name(name)
        if not isinstance(member, self.member_type):
            raise TypeError(f"{self.noun} {name!r} must be a {self.member_type.__name__}, got {type(member).__name__}")
        self._check_member(name, member)
        self._members[name] = member

    # -- freezing -------------------------------------------------------------------------------------------------
    def freeze(self, names: Iterable[str]) -> None:
        """Stop gradients to these members' own parameters (their ``.grad`` is cleared)."""
        for name in self._resolve(names):
            set_requires_grad(self._members[name], False)

    def unfreeze(self, names: Iterable[str]) -> None:
        """Make these members' own parameters trainable again."""
        for name in self._resolve(names):
            set_requires_grad(self._members[name], True)

    def set_trainable(self, names: Iterable[str]) -> None:
        """Exactly these members trainable, every other one frozen."""
        active = set(self._resolve(names))
        for name, member in self._members.items():
            set_requires_grad(member, name in active)

    def is_frozen(self, name: str) -> bool:
        """Whether member ``name`` has no trainable parameter."""
        return not any(p.requires_grad for p in self.get(name).parameters())

    @property
    def trainable_names(self) -> list[str]:
        """Members with a trainable parameter, in insertion order."""
        return [name for name in self.names if not self.is_frozen(name)]

    @property
    def frozen_names(self) -> list[str]:
        """Members without a trainable parameter, in insertion order."""
        return [name for name in self.names if self.is_frozen(name)]

    def parameter_counts(self) -> ParamCounts:
        """Trainable and frozen parameter elements of the whole library (everything it owns), each parameter once."""
        return count_parameters(self.parameters())

    # -- single-member files --------------------------------------------------------------------------------------
    def save_member(self, name: str, path: Path | str) -> None:
        """Write member ``name`` alone to a safetensors file (atomically).

        Its own state-dict tensors (on the CPU), and in the header metadata the format, format version, name, a
        sha256 of the tensors (checked on load) and what :meth:`_spec_metadata` adds (at least ``"spec"``).
        """
        member = self.get(name)
        tensors = {key: value.detach().cpu().contiguous() for key, value in member.state_dict().items()}
        metadata = {
            "format": self.file_format,
            "format_version": str(self.format_version),
            "name": name,
            "tensors_sha256": tensor_digest(tensors),
            **self._spec_metadata(name, member),
        }
        atomic_write_bytes(path, safetensors_bytes(tensors, metadata))

    def load_member(self, path: Path | str, *, name: str | None = None, trainable: bool = True) -> str:
        """Add the member saved in ``path`` (by :meth:`save_member`); no pickle involved.

        Args:
            path: A member file of this library's :attr:`file_format`.
            name: Name to add it under; default the name recorded in the file.
            trainable: ``False`` adds it frozen.

        Returns:
            The name it was added under.

        Raises:
            ValueError: Naming the file and the reason (see :meth:`read_member`, plus what :meth:`add` refuses).
        """
        return self._load_member(path, name=name, trainable=trainable)

    def read_member(self, path: Path | str) -> tuple[M, str, dict[str, str]]:
        """The member stored in ``path`` (not added), its recorded name and the header metadata.

        The member is rebuilt from its spec by :meth:`_from_spec` (after :meth:`_dry_run`, if it builds one) and
        loaded strictly, on the device of this library's parameters (if any).

        Raises:
            ValueError: What is wrong: a truncated or corrupt file, not a file of this format, an unknown format
                version, a tensor sha256 unlike the recorded one, corrupt metadata, a spec that does not build,
                tensor names or shapes unlike what the spec builds (both shapes given), or non-finite values.
        """
        data = Path(path).read_bytes()
        metadata = safetensors_metadata(data)
        if metadata.get("format") != self.file_format:
            raise ValueError(
                f"not a modrl {self.noun} file (format {metadata.get('format')!r}, expected {self.file_format!r})"
            )
        if metadata.get("format_version") != str(self.format_version):
            raise ValueError(
                f"unsupported format version {metadata.get('format_version')!r}; this modrl reads {self.format_version}"
            )
        try:
            tensors: dict[str, Tensor] = safetensors.torch.load(data)
        except Exception as exc:  # safetensors raises its own error types for every malformed input
            raise ValueError(f"corrupt safetensors data ({exc})") from None
        if metadata.get("tensors_sha256") != tensor_digest(tensors):
            raise ValueError("corrupt tensor data: sha256 differs from the one recorded when saving")
        try:
            spec, saved_name = loads_json(metadata["spec"], "spec"), metadata["name"]
        except (KeyError, ValueError) as exc:
            raise ValueError(f"corrupt metadata ({type(exc).__name__}: {exc})") from None
        if not isinstance(spec, dict):
            raise ValueError("corrupt metadata: the spec must be a JSON object")
        dry = self._dry_run(spec, metadata)
        if dry is not None:
            check_tensors_match(dry.state_dict(), tensors)
        member = self._from_spec(spec, metadata)
        check_tensors_match(member.state_dict(), tensors)
        reference = next(self.parameters(), None)
        if reference is not None:
            member.to(device=reference.device)
        member.load_state_dict(tensors, strict=True)
        return member, saved_name, metadata

    def _load_member(
        self, path: Path | str, *, name: str | None, trainable: bool, prepare: Callable[[M], None] | None = None
    ) -> str:
        """:meth:`load_member`, with ``prepare(member)`` called before the member is added."""
        path = Path(path)
        try:
            member, saved_name, metadata = self.read_member(path)
            target = saved_name if name is None else name
            if prepare is not None:
                prepare(member)
            self.add(target, member)
        except ValueError as exc:
            raise ValueError(f"{path}: cannot load {self.noun}: {exc}") from None
        self._loaded(path, target, metadata)
        if not trainable:
            self.freeze([target])
        return target

    # -- hooks ----------------------------------------------------------------------------------------------------
    @abstractmethod
    def _spec_metadata(self, name: str, member: M) -> dict[str, str]:
        """Header metadata describing ``member``: at least ``"spec"`` (a JSON object, keys sorted), plus anything
        else :meth:`_from_spec` needs. Raise to refuse saving a member that has no spec."""

    @abstractmethod
    def _from_spec(self, spec: dict[str, Any], metadata: Mapping[str, str]) -> M:
        """A freshly initialised member as ``spec`` (and the rest of the header ``metadata``) describes.

        Raises:
            ValueError: The spec or metadata does not build a member (the message says why).
        """

    def _dry_run(self, spec: dict[str, Any], metadata: Mapping[str, str]) -> nn.Module | None:
        """The member built on the meta device, so tensor names and shapes are checked before anything is
        allocated (a crafted spec then cannot make a load allocate more than the file holds); ``None`` (the
        default) skips the dry run."""
        return None

    def _check_member(self, name: str, member: M) -> None:
        """Raise ``ValueError`` if ``member`` cannot join this library (default: any member of the type can)."""

    def _loaded(self, path: Path, name: str, metadata: Mapping[str, str]) -> None:
        """Called after the member from ``path`` was added as ``name`` (default: nothing)."""

    # -- helpers --------------------------------------------------------------------------------------------------
    def _taken_names(self) -> list[str]:
        """Names a new member may not take (default: the members'; a subclass adds its other namespaces)."""
        return self.names

    def _check_new_name(self, name: str) -> None:
        if not isinstance(name, str) or not self.name_pattern.fullmatch(name):
            raise ValueError(f"name {name!r} must match {self.name_pattern.pattern}")
        if name in self._taken_names():
            raise ValueError(
                f"name {name!r} is already taken in this library ({self.noun}s: {self.names}); pick another name"
            )

    def _unknown_message(self, name: str) -> str:
        return f"unknown {self.noun} {name!r}; known {self.noun}s: {', '.join(self.names) or 'none'}"

    def _resolve(self, names: Iterable[str]) -> list[str]:
        """``names`` as a list, checked to be members (``UnknownNameError``) before anything is changed."""
        if isinstance(names, str):
            raise TypeError(f"expected a collection of {self.noun} names, got the string {names!r}")
        names = list(names)
        for name in names:
            if name not in self._members:
                raise UnknownNameError(self._unknown_message(name))
        return names


def tensor_digest(state: Mapping[str, Tensor]) -> str:
    """sha256 over tensors (names, shapes, dtypes, bytes) in sorted name order."""
    digest = hashlib.sha256()
    for key, value in sorted(state.items()):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}|{tuple(value.shape)}|{value.dtype}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def safetensors_bytes(tensors: Mapping[str, Tensor], metadata: Mapping[str, str]) -> bytes:
    """``safetensors.torch.save(tensors, metadata=metadata)`` with its JSON header written in sorted key order, so the
    same tensors and metadata give the same bytes (safetensors writes the metadata map in an arbitrary order, which
    differs from call to call; the header is re-encoded, space-padded to 8 bytes as safetensors pads it, and the
    tensor data after it is unchanged: its offsets are relative to the header's end)."""
    data = safetensors.torch.save(dict(tensors), metadata=dict(metadata))
    size = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + data[8 + size :]


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` mapping of a safetensors file's JSON header (``ValueError`` if absent or cut)."""
    if len(data) < 8:
        raise ValueError(f"truncated: {len(data)} bytes, shorter than the 8-byte header length")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError(f"truncated: the header claims {size} bytes, only {len(data) - 8} follow")
    try:
        header = loads_json(data[8 : 8 + size], "header")
    except ValueError:
        raise ValueError("corrupt header: not valid JSON") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict):
        raise ValueError("no metadata in the header: not a modrl library file")
    return metadata


def check_tensors_match(expected: Mapping[str, Tensor], tensors: Mapping[str, Tensor]) -> None:
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
