"""Run mypy on modrl/, envs/ and agents/ as the packages they install as: modrl, modrl.envs and modrl.agents.

setup.cfg's ``package_dir`` maps envs/ to ``modrl.envs`` and agents/ to ``modrl.agents``. mypy cannot see that
mapping (the editable install resolves it with an import hook, which mypy does not run), so a plain ``mypy`` would
check envs/ and agents/ as top-level ``envs`` and ``agents`` and fail to resolve ``modrl.envs`` and ``modrl.agents``.
This script lays the installed package tree out in a temporary directory of symlinks (``modrl/<each entry of
modrl/>``, ``modrl/envs -> envs/``, ``modrl/agents -> agents/``), runs ``mypy -p modrl`` there with the ``[mypy]``
section of setup.cfg and the cache in ``.mypy_cache/``, and prints mypy's report with repository paths.

Usage (from anywhere): ``.venv/bin/python scripts/typecheck.py [extra mypy arguments]``; exits with mypy's status.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_dirs(setup_cfg: Path) -> dict[str, str]:
    """``{package: directory relative to the repository}`` from ``[options] package_dir`` of ``setup_cfg``."""
    parser = configparser.ConfigParser()
    parser.read(setup_cfg, encoding="utf-8")
    mapping = {}
    for line in parser.get("options", "package_dir").splitlines():
        if "=" in line:
            package, directory = (part.strip() for part in line.split("=", 1))
            mapping[package] = directory
    if not mapping:
        raise SystemExit(f"{setup_cfg}: [options] package_dir is empty")
    return mapping


def build_stage(stage: Path, mapping: dict[str, str]) -> str:
    """Symlink the package tree described by ``mapping`` into ``stage``; returns the top-level package name."""
    tops = {package.split(".")[0] for package in mapping}
    if len(tops) != 1:
        raise SystemExit(f"expected one top-level package in package_dir, got {sorted(tops)}")
    for package in sorted(mapping, key=lambda name: name.count(".")):
        source, dest = ROOT / mapping[package], stage.joinpath(*package.split("."))
        if "." in package:
            dest.symlink_to(source, target_is_directory=True)
            continue
        dest.mkdir(parents=True)
        mapped_children = {name.split(".")[-1] for name in mapping if name.startswith(package + ".")}
        for entry in source.iterdir():
            if entry.name not in mapped_children and entry.name != "__pycache__":
                (dest / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return tops.pop()


def repo_paths(text: str, mapping: dict[str, str]) -> str:
    """Rewrite the staged paths at the start of mypy's lines (``modrl/envs/x.py``) to repository paths."""
    for package in sorted(mapping, key=lambda name: -name.count(".")):
        staged = package.replace(".", "/") + "/"
        target = mapping[package].rstrip("/") + "/"
        text = re.sub(rf"(?m)^{re.escape(staged)}", target, text)
    return text


def main(argv: list[str]) -> int:
    mapping = package_dirs(ROOT / "setup.cfg")
    with tempfile.TemporaryDirectory(prefix="modrl-typecheck-") as tmp:
        stage = Path(tmp)
        top = build_stage(stage, mapping)
        command = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "setup.cfg"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "-p",
            top,
            *argv,
        ]
        env = {**os.environ, "MYPYPATH": str(stage)}
        result = subprocess.run(command, cwd=stage, env=env, capture_output=True, text=True, check=False)
    sys.stdout.write(repo_paths(result.stdout, mapping))
    sys.stderr.write(repo_paths(result.stderr, mapping))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
