"""``--import MODULE``: the user's own modules (their gymnasium env registrations), imported before a command runs.

Every command takes ``--import MODULE`` (repeatable). The modules are imported with the current directory on
``sys.path`` (as ``python -m`` would), so a ``my_envs.py`` beside the user's configs is found. A run records the
modules it was started with in ``meta.json`` (``"imports"``); evaluating or resuming it needs the same ``--import``
again: modrl never imports a module named by a file it reads (a run directory from elsewhere cannot run code),
it asks for the flag instead (:func:`missing_imports`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

FLAG = "--import"


def add_import_argument(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` the repeatable ``--import MODULE`` option (``args.imports``: a list, empty by default)."""
    parser.add_argument(
        FLAG,
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (e.g. one that registers your gymnasium envs); repeatable, recorded in the run",
    )


def leaf_parsers(parser: argparse.ArgumentParser) -> Iterable[argparse.ArgumentParser]:
    """The parsers under ``parser`` that parse a command's own options (those without sub-commands)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
        return
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
            yield from leaf_parsers(child)


def import_modules(names: Sequence[str]) -> str | None:
    """Import ``names`` in order (the current directory first on ``sys.path``); ``None``, or what went wrong."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the user's module: any error it raises is reported, not a traceback
            return f"--import {name}: {type(exc).__name__}: {exc}"
    return None


def missing_imports(run_dir: Path, given: Sequence[str]) -> str | None:
    """The error for a run started with ``--import`` modules that ``given`` lacks, or ``None``."""
    from modrl.runs import read_run_meta

    try:
        recorded = read_run_meta(run_dir).get("imports") or []
    except Exception:  # an unreadable meta.json is reported by the command itself
        return None
    if not isinstance(recorded, list):
        return None
    missing = [str(name) for name in recorded if name not in given]
    if not missing:
        return None
    flags = " ".join(f"{FLAG} {name}" for name in missing)
    return f"{run_dir} was started with {flags} (its envs come from there): give the same {flags}"
