"""Packaging: regular and editable installs expose modrl, modrl.envs, modrl.agents and no top-level envs/agents."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["modrl", "envs", "agents", "experiments/configs", "setup.cfg", "pyproject.toml", "README.md", "LICENSE"]
CHECK = """
import importlib.util, json, sys
import modrl, modrl.envs, modrl.agents, modrl.agents.common.policies
from modrl.shipped import resolve_config
print(json.dumps({
    "modrl": modrl.__file__, "envs": modrl.envs.__file__, "agents": modrl.agents.__file__,
    "quickstart": str(resolve_config("quickstart")),
    "top_envs": importlib.util.find_spec("envs") is not None,
    "top_agents": importlib.util.find_spec("agents") is not None,
}))
"""

pytestmark = pytest.mark.slow


def _copy_sources(dest: Path) -> Path:
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def _run_check(python: str, cwd: Path, env: dict[str, str]) -> dict:
    import json

    out = subprocess.run([python, "-c", CHECK], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _pip(python: str, *args: str, cwd: Path) -> None:
    out = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_regular_install(tmp_path: Path) -> None:
    source = _copy_sources(tmp_path / "src")
    target = tmp_path / "target"
    _pip(sys.executable, "--target", str(target), str(source), cwd=tmp_path)
    assert (target / "modrl" / "envs" / "suites.py").is_file()
    assert (target / "modrl" / "agents" / "common" / "policies.py").is_file()
    assert (target / "modrl" / "configs" / "quickstart.yaml").is_file()  # shipped configs, usable by name
    assert not (target / "envs").exists() and not (target / "agents").exists()
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    found = _run_check(sys.executable, tmp_path, env)
    assert found["modrl"].startswith(str(target))
    assert found["envs"] == str(target / "modrl" / "envs" / "__init__.py")
    assert found["quickstart"] == str(target / "modrl" / "configs" / "quickstart.yaml")
    assert found["agents"] == str(target / "modrl" / "agents" / "__init__.py")
    assert not found["top_envs"] and not found["top_agents"]


def test_editable_install(tmp_path: Path) -> None:
    source = _copy_sources(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # Dependencies (torch, SB3, ...) come from this test's environment through a plain path entry: .pth files there
    # (including this checkout's own editable modrl) are not processed, so only the new install provides modrl.
    venv_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(venv_site, "outer_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _pip(python, "-e", str(source), cwd=tmp_path)
    found = _run_check(python, tmp_path, {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""})
    assert found["modrl"] == str(source / "modrl" / "__init__.py")
    assert found["envs"] == str(source / "envs" / "__init__.py")
    assert found["quickstart"] == str(source / "experiments" / "configs" / "quickstart.yaml")
    assert found["agents"] == str(source / "agents" / "__init__.py")
    assert not found["top_envs"] and not found["top_agents"]


def test_setup_cfg_lists_every_package() -> None:
    """A subpackage missing from setup.cfg's explicit ``packages`` would be left out of a regular install."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    listed = set(parser["options"]["packages"].split())
    core = ROOT / "modrl"
    found = {".".join(("modrl", *p.parent.relative_to(core).parts)) for p in core.rglob("__init__.py")}
    for folder, package in (("envs", "modrl.envs"), ("agents", "modrl.agents")):
        inits = (ROOT / folder).rglob("__init__.py")
        found |= {".".join((package, *p.parent.relative_to(ROOT / folder).parts)) for p in inits}
    found.add("modrl.configs")  # data only: experiments/configs/*.yaml, the shipped configs (no __init__.py)
    assert listed == found, f"setup.cfg packages: missing {sorted(found - listed)}, extra {sorted(listed - found)}"
