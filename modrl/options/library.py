"""The option library: named options sharing one observation/action interface, frozen or trainable, saved one by one.

Each option is written alone to a safetensors file whose header metadata carries its spec (:meth:`Option.spec`) and a
sha256 of its tensors, so any agent can load it into its own library without pickle; a library directory adds an
index (``library.json``) naming the files in order and which options were frozen. The file checks (truncated or
corrupt header, tensor digest, names and shapes against what the spec builds, finite values) are those of every
named-module library (:class:`modrl.library.NamedModuleLibrary`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from modrl._io import atomic_write_json
from modrl.config import ConfigError
from modrl.library import NamedModuleLibrary
from modrl.safe_load import read_json

from .option import Option, OptionConfig, Predicate

FILE_FORMAT = "modrl.option"
FORMAT_VERSION = 1
INDEX_FILE = "library.json"
INDEX_FORMAT = "modrl.option-library"
#: The folder of a run directory that holds its option library (every agent that trains options saves it there).
LIBRARY_DIR = "options"
#: The config fields every option of one library shares (what a router or planner feeds and expects back).
INTERFACE_FIELDS: tuple[str, ...] = ("image_shape", "image_high", "num_directions", "num_actions")


class OptionLibrary(NamedModuleLibrary[Option]):
    """Named :class:`Option` modules with one observation/action interface (fixed by the first one added).

    Names (``[A-Za-z0-9_-]+``), freezing, parameter counts and the single-option file checks are
    :class:`~modrl.library.NamedModuleLibrary`'s; this class adds the interface check and library directories.

    Attributes:
        options: The options by name, in insertion order (the action order of a router over them).
    """

    members_attr = "options"
    member_type = Option
    noun = "option"
    name_pattern = re.compile(r"[A-Za-z0-9_-]+")
    file_format = FILE_FORMAT
    format_version = FORMAT_VERSION
    options: nn.ModuleDict

    # -- single-option files ------------------------------------------------------------------------------------
    def save_option(self, name: str, path: Path | str) -> None:
        """Write option ``name`` alone to a safetensors file (atomically), its spec and tensor sha256 in the header."""
        self.save_member(name, path)

    def load_option(
        self,
        path: Path | str,
        *,
        name: str | None = None,
        trainable: bool = True,
        initiation: Predicate | None = None,
        termination_predicate: Predicate | None = None,
    ) -> str:
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

        def attach(option: Option) -> None:
            if initiation is not None:
                option.initiation = initiation
            option.termination_predicate = termination_predicate

        return self._load_member(path, name=name, trainable=trainable, prepare=attach)

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
        atomic_write_json(
            directory / INDEX_FILE, {"format": INDEX_FORMAT, "version": FORMAT_VERSION, "options": entries}
        )
        return directory / INDEX_FILE

    @classmethod
    def load(
        cls, directory: Path | str, *, predicates: Mapping[str, Predicate] | None = None, frozen: bool | None = None
    ) -> OptionLibrary:
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
            library.load_option(
                directory / entry["file"],
                name=entry["name"],
                trainable=not (entry["frozen"] if frozen is None else frozen),
                termination_predicate=(predicates or {}).get(entry["name"]),
            )
        return library

    # -- hooks ----------------------------------------------------------------------------------------------------
    def _check_member(self, name: str, member: Option) -> None:
        if len(self):
            first = self.get(self.names[0]).config
            differ = [
                f"{f}: {getattr(member.config, f)} vs {getattr(first, f)}"
                for f in INTERFACE_FIELDS
                if getattr(member.config, f) != getattr(first, f)
            ]
            if differ:
                raise ValueError(f"option {name!r} does not fit this library's interface ({'; '.join(differ)})")

    def _spec_metadata(self, name: str, member: Option) -> dict[str, str]:
        return {"spec": json.dumps(member.spec(), sort_keys=True)}

    def _from_spec(self, spec: dict[str, Any], metadata: Mapping[str, str]) -> Option:
        try:
            return Option.from_spec(spec)
        except (KeyError, ValueError, TypeError) as exc:
            kind = "invalid spec" if isinstance(exc, ConfigError) else "corrupt metadata"
            raise ValueError(f"{kind} ({exc})") from None


def read_option(path: Path) -> tuple[Option, str]:
    """The option stored in ``path`` and its recorded name (``ValueError`` explaining what is wrong)."""
    option, name, _ = OptionLibrary().read_member(path)
    return option, name


def _read_index(path: Path) -> list[dict[str, Any]]:
    try:
        index = read_json(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no option library index here (expected {INDEX_FILE})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    entries = index.get("options") if isinstance(index, dict) else None
    if (
        not isinstance(index, dict)
        or index.get("format") != INDEX_FORMAT
        or not isinstance(entries, list)
        or not all(
            isinstance(e, dict)
            and isinstance(e.get("name"), str)
            and isinstance(e.get("file"), str)
            and isinstance(e.get("frozen"), bool)
            and "/" not in e["file"]
            for e in entries
        )
    ):
        raise ValueError(f"{path}: not a modrl option library index")
    return entries


def interface_of(config: OptionConfig) -> dict[str, Any]:
    """The interface fields of ``config`` (:data:`INTERFACE_FIELDS`) as a plain dict."""
    return {field: getattr(config, field) for field in INTERFACE_FIELDS}
