"""Lint, format and type checks: ``ruff check`` and ``ruff format --check`` with ruff.toml, and mypy with setup.cfg's
``[mypy]`` section.

Both run as subprocesses of the interpreter running pytest, so they use the pinned ruff and mypy of the test extra.
A failure shows the tool's full report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF_PATHS = ["modrl", "envs", "agents", "tests", "experiments", "scripts"]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def _assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        command = " ".join(map(str, result.args))
        pytest.fail(f"exit {result.returncode}: {command}\n{result.stdout}{result.stderr}", pytrace=False)


def test_ruff_check_is_clean() -> None:
    _assert_clean(_run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", *RUFF_PATHS]))


def test_ruff_format_leaves_the_tree_unchanged() -> None:
    """One style: ``ruff format`` (ruff.toml's ``[format]``) has been applied to every source file, and no line opts
    out of it."""
    _assert_clean(_run([sys.executable, "-m", "ruff", "format", "--check", *RUFF_PATHS]))
    opted_out = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in RUFF_PATHS
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "# fmt: " + "skip" in line or "# fmt: " + "off" in line
    ]
    assert not opted_out, f"lines that opt out of the formatter: {opted_out}"


def test_mypy_is_clean() -> None:
    result = _run([sys.executable, str(ROOT / "scripts" / "typecheck.py")])
    _assert_clean(result)
    assert "Success: no issues found in" in result.stdout, result.stdout
