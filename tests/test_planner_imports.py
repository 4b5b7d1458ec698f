"""The planner side imports no stable_baselines3: every module of ``modrl.agents.planning``, ``modrl plan`` (scripted
skills or an option library) and ``modrl eval --planner`` (scripted skills or a run's options). Each check runs in a
fresh interpreter, since this test process may have imported SB3 already."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import modrl.agents.planning
from modrl.options import Option, OptionConfig, OptionLibrary

TINY = OptionConfig(channels=(4,), features_dim=4, hidden=(), embed_dim=2)
TASK = "sequences/open-red-door_then_pickup-blue-key"

#: Runs ``BODY`` (which may set ``code``), then prints the exit code and the stable_baselines3 modules imported.
_SCRIPT = """
import json, sys
code = 0
{body}
sb3 = sorted(name for name in sys.modules if name.split(".")[0] == "stable_baselines3")
print("RESULT " + json.dumps({{"code": code, "sb3": sb3}}))
"""


def _run(body: str) -> dict[str, object]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(body=body)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert out.returncode == 0 and lines, out.stdout[-2000:] + out.stderr[-2000:]
    result: dict[str, object] = json.loads(lines[-1][len("RESULT ") :])
    return result


def _cli(argv: list[str]) -> dict[str, object]:
    return _run(f"from modrl.cli.main import main\ncode = main({argv!r})")


def _library(tmp_path: Path) -> Path:
    """A 'modrl options train'-shaped run: config.yaml naming the suite, an untrained two-option library."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": "tiny", "env": {"suite": "sequences"}}))
    library = OptionLibrary()
    for name in ("open-red-door", "pickup-blue-key"):
        library.add(name, Option(TINY))
    library.save(run_dir / "options")
    return run_dir


def test_every_planning_module_imports_without_sb3() -> None:
    names = sorted(f"modrl.agents.planning.{m.name}" for m in pkgutil.iter_modules(modrl.agents.planning.__path__))
    assert {
        "modrl.agents.planning.episode",
        "modrl.agents.planning.library",
        "modrl.agents.planning.evaluation",
        "modrl.agents.planning.dagger",
        "modrl.agents.planning.recording",
    } <= set(names)
    result = _run("\n".join(f"import {name}" for name in names))
    assert result["sb3"] == []


def test_plan_execute_scripted_imports_no_sb3() -> None:
    result = _cli(["plan", TASK, "--seed", "0", "--execute"])
    assert result == {"code": 0, "sb3": []}


def test_plan_execute_with_options_imports_no_sb3(tmp_path: Path) -> None:
    run_dir = _library(tmp_path)
    result = _cli(
        [
            "plan",
            TASK,
            "--seed",
            "0",
            "--execute",
            "--options",
            str(run_dir / "options"),
            "--option-steps",
            "2",
            "--max-replans",
            "1",
        ]
    )
    assert result["sb3"] == [] and result["code"] in (0, 1)  # untrained options may not solve it: exit 1, no crash


@pytest.mark.parametrize("with_options", [False, True], ids=["scripted", "options"])
def test_planner_eval_imports_no_sb3(tmp_path: Path, with_options: bool) -> None:
    if with_options:
        argv = [
            "eval",
            str(_library(tmp_path)),
            "--planner",
            "--episodes",
            "1",
            "--option-steps",
            "2",
            "--max-replans",
            "1",
            "--out",
            str(tmp_path / "out.json"),
        ]
    else:
        argv = ["eval", "--planner", "--scripted", "--suite", "sequences", "--split", "test", "--episodes", "1"]
    result = _cli(argv)
    assert result == {"code": 0, "sb3": []}
