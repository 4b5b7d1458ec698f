"""Reading the JSON and YAML files of run, sweep and continual directories, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modrl.config import ConfigError, load_yaml
from modrl.safe_load import read_json as read_json_limited


class ReportError(ValueError):
    """A directory is neither a run nor a sweep, or one of its files is unreadable; the message names the file."""


def read_json(path: Path) -> Any:
    """The JSON value in ``path``.

    Raises:
        ReportError: Unreadable or not JSON (names the file).
    """
    try:
        return read_json_limited(path)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot read: {exc}") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; :class:`ReportError` for anything else."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML mapping read with the strict loader (``safe_load``, duplicate keys refused)."""
    try:
        return load_yaml(path)
    except ConfigError as exc:
        raise ReportError(str(exc)) from None
