"""The configs that ship with modrl, usable by name: ``modrl train quickstart``.

They live in the repository's ``experiments/configs/`` and install as package data ``modrl/configs/`` (setup.cfg maps
one to the other), so a name works in a source checkout, an editable install and a wheel alike.
"""

from __future__ import annotations

import re
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def shipped_config_dirs() -> list[Path]:
    """Where shipped configs are looked for: the installed ``modrl/configs``, then the checkout's
    ``experiments/configs`` (the directories that exist)."""
    package = Path(__file__).resolve().parent
    candidates = [package / "configs", package.parent / "experiments" / "configs"]
    return [path for path in candidates if path.is_dir()]


def shipped_config_names() -> list[str]:
    """Names of the shipped experiment configs (file stems), sorted."""
    return sorted({p.stem for d in shipped_config_dirs() for p in d.glob("*.yaml")})


def resolve_config(source: str | Path) -> Path:
    """``source`` itself when it is a file (or looks like a path: it has a ``/`` or ends in ``.yaml``/``.yml``), else
    the shipped config of that name.

    Raises:
        modrl.config.ConfigError: A bare name that is neither a file nor a shipped config (the message lists them).
    """
    text = str(source)
    path = Path(text)
    if path.exists() or "/" in text or path.suffix in (".yaml", ".yml") or not _NAME.match(text):
        return path
    for directory in shipped_config_dirs():
        candidate = directory / f"{text}.yaml"
        if candidate.is_file():
            return candidate
    from modrl.config import ConfigError

    shipped = ", ".join(shipped_config_names())
    raise ConfigError(f"config file not found: {text} (nor a shipped config of that name; shipped: {shipped})")
