"""The option library: named options sharing one observation/action interface, frozen or trainable, saved one by one.

Each option is written alone to a safetensors file whose header metadata carries its spec (:meth:`Option.spec`) and a
sha256 of its tensors, so any agent can load it into its own library without pickle; a library directory adds an
index (``library.json``) naming the files in order and which options were frozen. The file checks (truncated or
corrupt header, tensor digest, names and shapes against what the spec builds, finite values) are the skill files'
(:mod:`modrl.skills.library`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
from torch import Tensor, nn

from modrl._io import atomic_write_bytes, atomic_write_json
from modrl.config import ConfigError
from modrl.registry import UnknownNameError
from modrl.skills import ParamCounts
from modrl.skills.library import check_tensors_match, safetensors_metadata, tensor_digest

from .option import Option, OptionConfig, Predicate

FILE_FORMAT = "modrl.option"
FORMAT_VERSION = 1
INDEX_FILE = "library.json"
INDEX_FORMAT = "modrl.option-library"
#: The config fields every option of one library shares (what a router or planner feeds and expects back).
INTERFACE_FIELDS: tuple[str, ...] = ("image_shape", "image_high", "num_directions", "num_actions")
_NAME = re.compile(r"[A-Za-z0-9_-]+")


class OptionLibrary(nn.Module):
    """Named :class:`Option` modules with one observation/action interface (fixed by the first one added).

    Attributes:
        options: The options by name, in insertion order (the action order of a router over them).
    """

    def __init__(self) -> None:
        super().__init__()
        self.options = nn.ModuleDict()

    @property
    def names(self) -> list[str]:
        """Option names in insertion order."""
        return list(self.options.keys())

    def __len__(self) -> int:
        return len(self.options)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.options

    def get(self, name: str) -> Option:
        """The option called ``name``; unknown names raise :class:`~modrl.registry.UnknownNameError`."""
        if name not in self.options:
            raise UnknownNameError(f"unknown option {name!r}; options: {', '.join(self.names) or 'none'}")
        option = self.options[name]
        assert isinstance(option, Option)
        return option

    def add(self, name: str, option: Option) -> None:
        """Add ``option`` under ``name``.

        Raises:
            ValueError: Bad or taken name, or an interface (image shape/maxima, headings, actions) unlike the
                library's (the message names the fields that differ).
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"option name {name!r} must match [A-Za-z0-9_-]+")
        if name in self.options:
            raise ValueError(f"option {name!r} is already in the library")
        if not isinstance(option, Option):
            raise TypeError(f"option {name!r} must be an Option, got {type(option).__name__}")
        if len(self):
            first = self.get(self.names[0]).config
            differ = [f"{f}: {getattr(option.config, f)} vs {getattr(first, f)}" for f in INTERFACE_FIELDS
                      if getattr(option.config, f) != getattr(first, f)]
            if differ:
                raise ValueError(f"option {name!r} does not fit this library's interface ({'; '.join(differ)})")
        self.options[name] = option

    def freeze(self, names: Iterable[str]) -> None:
        """Stop gradients to these options (their ``.grad`` is cleared)."""
        for name in self._resolve(names):
            _set_trainable(self.get(name), False)

    def unfreeze(self, names: Iterable[str]) -> None:
        """Make these options trainable again."""
        for name in self._resolve(names):
            _set_trainable(self.get(name), True)

    def set_trainable(self, names: Iterable[str]) -> None:
        """Exactly these options trainable, every other one frozen."""
        active = set(self._resolve(names))
        for name in self.names:
            _set_trainable(self.get(name), name in active)

    def is_frozen(self, name: str) -> bool:
        """Whether option ``name`` has no trainable parameter."""
        return not any(p.requires_grad for p in self.get(name).parameters())

    def parameter_counts(self) -> ParamCounts:
        """Trainable and frozen parameter elements over all options."""
        params = list(self.parameters())
        trainable = sum(p.numel() for p in params if p.requires_grad)
        return ParamCounts(trainable=trainable, frozen=sum(p.numel() for p in params) - trainable)

    # -- single-option files ------------------------------------------------------------------------------------
    def save_option(self, name: str, path: Path | str) -> None:
        """Write option ``name`` alone to a safetensors file (atomically), its spec and tensor sha256 in the header."""
        option = self.get(name)
        tensors = {key: value.detach().cpu().contiguous() for key, value in option.state_dict().items()}
        metadata = {
            "format": FILE_FORMAT,
            "format_version": str(FORMAT_VERSION),
            "name": name,
            "tensors_sha256": tensor_digest(tensors),
            "spec": json.dumps(option.spec(), sort_keys=True),
        }
        atomic_write_bytes(path, safetensors.torch.save(tensors, metadata=metadata))

    def load_option(self, path: Path | str, *, name: str | None = None, trainable: bool = True,
                    initiation: Predicate | None = None, termination_predicate: Predicate | None = None) -> str:
        """Add the option saved in ``path`` (by :meth:`save_option`); no pickle involved.

        Args:
            path: An option file. name: Name to add it under (default: the recorded one).
            trainable: ``False`` adds it frozen.
            initiation, termination_predicate: Callables to attach (they are never saved).

        Returns:
            The name it was added under.

        Raises:
            ValueError: Naming the file and the reason: corrupt or truncated file, not an option file, unknown
                version, a spec that does not build, tensor names or shapes unlike what the spec builds (both shapes
                given), non-finite values, a taken name, or an interface foreign to this library.
        """
        path = Path(path)
        try:
            option, saved_name = read_option(path)
            target = saved_name if name is None else name
            if initiation is not None:
                option.initiation = initiation
            option.termination_predicate = termination_predicate
            self.add(target, option)
        except ValueError as exc:
            raise ValueError(f"{path}: cannot load option: {exc}") from None
        if not trainable:
            self.freeze([target])
        return target

    # -- library directories ------------------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        """Write every option to ``directory/<name>.safetensors`` and the index ``library.json`` (written last)."""
        directory = Path(directory)
        for name in self.names:  # an option that cannot be saved (an ensemble) is refused before anything is written
            self.get(name).spec()
        directory.mkdir(parents=True, exist_ok=True)
        entries = []
        for name in self.names:
            self.save_option(name, directory / f"{name}.safetensors")
            entries.append({"name": name, "file": f"{name}.safetensors", "frozen": self.is_frozen(name)})
        atomic_write_json(directory / INDEX_FILE, {"format": INDEX_FORMAT, "version": FORMAT_VERSION,
                                                   "options": entries})
        return directory / INDEX_FILE

    @classmethod
    def load(cls, directory: Path | str, *, predicates: Mapping[str, Predicate] | None = None,
             frozen: bool | None = None) -> OptionLibrary:
        """A library from a directory written by :meth:`save` (options in the recorded order).

        Args:
            predicates: Termination predicates to attach, by option name.
            frozen: ``None`` keeps each option's recorded state; ``True``/``False`` overrides it for all.

        Raises:
            ValueError: A missing or malformed index, or an option file that does not load (named).
        """
        directory = Path(directory)
        index = _read_index(directory / INDEX_FILE)
        library = cls()
        for entry in index:
            library.load_option(directory / entry["file"], name=entry["name"],
                                trainable=not (entry["frozen"] if frozen is None else frozen),
                                termination_predicate=(predicates or {}).get(entry["name"]))
        return library

    def _resolve(self, names: Iterable[str]) -> list[str]:
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            self.get(name)
        return names


def read_option(path: Path) -> tuple[Option, str]:
    """The option stored in ``path`` and its recorded name (``ValueError`` explaining what is wrong)."""
    data = path.read_bytes()
    metadata = safetensors_metadata(data)
    if metadata.get("format") != FILE_FORMAT:
        raise ValueError(f"not a modrl option file (format {metadata.get('format')!r}, expected {FILE_FORMAT!r})")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise ValueError(f"unsupported format version {metadata.get('format_version')!r}; this modrl reads "
                         f"{FORMAT_VERSION}")
    try:
        tensors: dict[str, Tensor] = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own error types for every malformed input
        raise ValueError(f"corrupt safetensors data ({exc})") from None
    if metadata.get("tensors_sha256") != tensor_digest(tensors):
        raise ValueError("corrupt tensor data: sha256 differs from the one recorded when saving")
    try:
        spec, name = json.loads(metadata["spec"]), metadata["name"]
        option = Option.from_spec(spec)
    except (KeyError, ValueError, TypeError) as exc:
        kind = "invalid spec" if isinstance(exc, ConfigError) else "corrupt metadata"
        raise ValueError(f"{kind} ({exc})") from None
    check_tensors_match(option.state_dict(), tensors)
    option.load_state_dict(tensors, strict=True)
    return option, name


def _read_index(path: Path) -> list[dict[str, Any]]:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no option library index here (expected {INDEX_FILE})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    entries = index.get("options") if isinstance(index, dict) else None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("file"), str)
        and isinstance(e.get("frozen"), bool) and "/" not in e["file"] for e in entries
    ):
        raise ValueError(f"{path}: not a modrl option library index")
    return entries


def _set_trainable(module: nn.Module, trainable: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(trainable)
        if not trainable:
            param.grad = None


def interface_of(config: OptionConfig) -> dict[str, Any]:
    """The interface fields of ``config`` (:data:`INTERFACE_FIELDS`) as a plain dict."""
    return {field: getattr(config, field) for field in INTERFACE_FIELDS}
