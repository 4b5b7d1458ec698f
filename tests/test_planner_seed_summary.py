"""experiments/planner/seed_summary.py on stub library runs with known numbers: the planner's mean success per seed
and per task group, IQM and bootstrap interval over seeds (modrl.stats.summarize), per-option rows, and a refusal
naming the file when a seed lacks one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modrl.stats import summarize
from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "planner" / "seed_summary.py"


def _script() -> Any:
    return load_script(SCRIPT)


def _library(root: Path, seed: int, *, putnext: float, goto: float) -> Path:
    run = root / f"lib-s{seed}"
    run.mkdir()
    options = [
        {"name": "goto-green-ball", "stage": {"steps": 20_000, "passed": True}, "train_success": goto},
        {"name": "putnext-yellow-box-blue-key", "stage": {"steps": 250_000, "passed": seed % 2 == 0}},
    ]
    options[0]["train_success_det"] = goto / 2
    options[1].update(train_success=putnext, train_success_det=0.0)
    (run / "results.json").write_text(json.dumps({"options": options}))
    tasks = {  # two episodes per task: putnext tasks succeed once at most, the others per `goto`
        "goto-green-ball_then_putnext-yellow-box-blue-key": [{"success": True}, {"success": putnext > 0.5}],
        "goto-green-ball_then_open-red-door": [{"success": True}, {"success": goto > 0.5}],
    }
    (run / "planner.json").write_text(json.dumps({"tasks": tasks}))
    return run


def test_rows_are_iqm_and_interval_over_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    putnext = [0.9, 0.2, 0.7]
    runs = [_library(tmp_path, s, putnext=p, goto=0.8) for s, p in enumerate(putnext)]
    assert _script().main([*map(str, runs), "--planner", "planner.json", "--mark", "putnext"]) == 0
    out = capsys.readouterr().out
    with_putnext = [1.0 if p > 0.5 else 0.5 for p in putnext]
    expected = summarize(np.asarray(with_putnext))
    cell = f"{expected.iqm:.3f} [{expected.ci_low:.3f}, {expected.ci_high:.3f}]"
    assert f"| planner.json | with putnext | {cell} | 1.00 0.50 1.00 |" in out
    assert "| planner.json | without putnext | 1.000 [1.000, 1.000] | 1.00 1.00 1.00 |" in out
    overall = summarize(np.asarray([(w + 1.0) / 2 for w in with_putnext]))
    assert f"| planner.json | all | {overall.iqm:.3f} [{overall.ci_low:.3f}, {overall.ci_high:.3f}] |" in out
    sampled = summarize(np.asarray(putnext))
    assert (
        f"| putnext-yellow-box-blue-key | 250 k | 2/3 | {sampled.iqm:.3f} [{sampled.ci_low:.3f}, "
        f"{sampled.ci_high:.3f}] | 0.000 [0.000, 0.000] |"
    ) in out


def test_a_seed_without_the_planner_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [_library(tmp_path, s, putnext=0.5, goto=0.5) for s in range(2)]
    (runs[1] / "planner.json").unlink()
    assert _script().main([*map(str, runs), "--planner", "planner.json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("modrl: error:") and "lib-s1/planner.json" in err and "\n" not in err
    (runs[1] / "planner.json").write_text("[1, 2")
    assert _script().main([*map(str, runs), "--planner", "planner.json"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
