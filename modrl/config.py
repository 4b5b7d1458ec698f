"""Strict, typed configuration: frozen dataclasses built from YAML mappings.

Every configurable thing is a frozen, keyword-only dataclass that validates its values in ``__post_init__`` and
raises :class:`ConfigError` naming the field. :func:`from_dict` builds such a dataclass (recursively) from a plain
mapping, refusing unknown keys with the list of allowed ones and values of the wrong type with the expected type.
YAML is only ever read with ``yaml.SafeLoader`` under the limits of :mod:`modrl.safe_load` (a key repeated in one
mapping is refused); ``--set a.b=c`` overrides go through the same validation. Values quoted in errors are bounded
(:func:`~modrl.safe_load.short_repr`). Number fields refuse inf and nan. A key renamed since a file was written is
still read under its old name: a dataclass lists ``{old: new}`` in its ``renamed_keys`` class attribute.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from modrl.safe_load import InputError, loads_yaml, read_yaml, short_repr

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value, key or file is invalid; the message names the key (dotted path) or the file."""


#: Largest layer width, embedding size or module count a config may ask for: far above anything that trains on
#: MiniGrid, low enough that a typo (``channels: [16000000]``) is refused before torch tries to allocate it.
MAX_WIDTH = 65_536
#: Longest episode (step limit) an env or a config may ask for: far beyond any MiniGrid task.
MAX_EPISODE_STEPS = 1_000_000
#: Largest image side an env may observe (MiniGrid's ``agent_view_size``, a whole-grid view's ``view_size``): the
#: whole-grid view of a 51-cell grid from any cell, four times the default 25.
MAX_VIEW_SIZE = 101
#: Largest grid side (cells) a MiniGrid env's keyword arguments may ask for: the stock grids are at most 25 cells a
#: side; a huge one would only exhaust memory when the grid is built at reset.
MAX_GRID_SIDE = 128


def check_sizes(values: int | Sequence[int], field: str, *, high: int = MAX_WIDTH) -> None:
    """Raise :class:`ConfigError` unless every size in ``values`` lies in ``[1, high]``."""
    sizes = [values] if isinstance(values, int) else list(values)
    bad = [v for v in sizes if not 1 <= v <= high]
    if bad:
        raise ConfigError(f"{field}: sizes must be in [1, {high}], got {bad[0]}")


def check_int(value: object, field: str, *, low: int, high: int) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an integer (not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{field}: must be an integer in [{low}, {high}], got {short_repr(value)}")


def check_bool(value: object, field: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` is ``True`` or ``False`` (``'yes'`` and ``1`` are refused)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{field}: must be true or false, got {short_repr(value)}")


def check(condition: bool, field: str, message: str) -> None:
    """Raise :class:`ConfigError` ``"<field>: <message>"`` unless ``condition`` holds (for ``__post_init__``)."""
    if not condition:
        raise ConfigError(f"{field}: {message}")


def load_yaml(path: Path | str) -> dict[str, Any]:
    """Read a YAML mapping under the parsing limits of :mod:`modrl.safe_load` (size, nesting, aliases counted
    before expansion, UTF-8 only, base-60 numbers and repeated keys refused).

    A missing file, bad YAML (message on one line) or a non-mapping raises ConfigError.
    """
    path = Path(path)
    try:
        data = read_yaml(path)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``key.sub=value`` overrides applied (values parsed as YAML under the same limits).

    Keys are only checked for existence later, by :func:`from_dict`, so a typo still gets the full error message.
    """
    out: dict[str, Any] = _deep_copy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key segment")
        try:
            value = loads_yaml(raw, f"override {key}") if raw.strip() else ""
        except InputError as exc:
            raise ConfigError(str(exc)) from None
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {key}: {'.'.join(parts[: depth + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, strictly (see module docstring)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    where = path or "config"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__} {short_repr(data)}")
    spelled = {new: old for old, new in getattr(cls, "renamed_keys", {}).items() if old in data and new not in data}
    data = _rename_keys(cls, data, path)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        raise ConfigError(
            f"unknown key {short_repr(_join(path, str(key)))}; allowed keys{' in ' + path if path else ''}: "
            f"{', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, _join(path, spelled.get(name, name))) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        # Field names raised from __post_init__ are relative to cls: prefix the section path.
        raise ConfigError(f"{path}.{exc}" if path else str(exc)) from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _rename_keys(cls: type, data: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    """``data`` with the old names in ``cls.renamed_keys`` (``{old: new}``) read as the new ones.

    Old and new both given: two mappings merge (the new name's keys win, so ``--set new.key=v`` overrides a file
    written with the old name); anything else is refused.
    """
    renames: Mapping[str, str] = getattr(cls, "renamed_keys", {})
    if not any(old in data for old in renames):
        return data
    out = dict(data)
    for old, new in renames.items():
        if old not in out:
            continue
        value = out.pop(old)
        if new not in out:
            out[new] = value
        elif isinstance(value, Mapping) and isinstance(out[new], Mapping):
            out[new] = {**value, **out[new]}
        else:
            raise ConfigError(
                f"{_join(path, old)}: {old!r} is the old name of {new!r} and both are given; keep {_join(path, new)}"
            )
    return out


def to_dict(obj: Any) -> Any:
    """Plain (YAML/JSON-able) form of a config dataclass; tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against type hint ``tp``; return it (nested dataclasses built, lists made tuples)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{path}: expected {' or '.join(_type_name(a) for a in args)}, got {short_repr(value)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"{path}: {short_repr(value)} is not allowed; allowed values: {', '.join(map(repr, args))}"
            )
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (tuple, list, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {short_repr(value)}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            item_types = [args[0]] * len(value)
        elif origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{path}: expected a list of {len(args)} items, got {len(value)}")
            item_types = list(args)
        else:
            item_types = [args[0] if args else Any] * len(value)
        return tuple(_coerce(t, v, f"{path}[{i}]") for i, (t, v) in enumerate(zip(item_types, value, strict=True)))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {short_repr(value)}")
        key_t, val_t = args if args else (Any, Any)
        return {_coerce(key_t, k, path): _coerce(val_t, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {short_repr(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {short_repr(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {short_repr(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {short_repr(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {short_repr(value)}")
        return value
    raise TypeError(f"{path}: unsupported config type {tp!r}")
