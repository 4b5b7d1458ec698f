"""experiments/planner/skills_seed_summary.py on stub skill-library runs with known numbers: the planner's mean and
per-task success over seeds (IQM and bootstrap interval, modrl.stats.summarize), calls per operator, per-skill rows,
and refusals naming what is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modrl.stats import summarize
from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "planner" / "skills_seed_summary.py"
EVAL = "planner-test-stochastic.json"


def _cell(values: list[float]) -> str:
    s = summarize(np.asarray(values))
    return f"{s.iqm:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"


def _seed(root: Path, seed: int, *, corridor: float, maze: float, opened: int) -> Path:
    lib = root / f"s{seed}" / "lib"
    (lib / "eval").mkdir(parents=True)
    tasks = [
        {"task": "keycorridor", "success_rate": corridor, "operators": {"unlock": [10, 9]}},
        {"task": "maze", "success_rate": maze, "operators": {"open_box": [20, opened], "unlock": [5, 5]}},
    ]
    (lib / "eval" / EVAL).write_text(json.dumps({"tasks": tasks}))
    for skill, test in (("open", [0.8 - seed / 10, 0.5]), ("drop", None)):
        run = root / f"s{seed}" / skill
        run.mkdir()
        entry: dict[str, Any] = {"skill": skill, "finetune_frames": 1000 * (seed + 1), "seconds": 10.0}
        entry.update(train_success=[1.0, 0.9], test_success=test)
        (run / "results.json").write_text(json.dumps({"skills": [entry]}))
    return lib


def test_rows_are_iqm_and_interval_over_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corridor, maze, opened = [0.9, 0.7, 0.8], [0.3, 0.5, 0.1], [10, 20, 5]
    libs = [
        _seed(tmp_path, s, corridor=c, maze=m, opened=o)
        for s, (c, m, o) in enumerate(zip(corridor, maze, opened, strict=True))
    ]
    pattern = str(tmp_path / "s{seed}" / "*")
    assert load_script(SCRIPT).main([*map(str, libs), "--eval", EVAL, "--skills", pattern]) == 0
    out = capsys.readouterr().out
    means = [(c + m) / 2 for c, m in zip(corridor, maze, strict=True)]
    assert f"| mean of 2 tasks | **{_cell(means)}** | 0.60 0.60 0.45 |" in out
    assert f"| maze | {_cell(maze)} | 0.30 0.50 0.10 |" in out
    assert "| open_box | 60 | 0.58 | 0.50 1.00 0.25 |" in out  # 35 of 60 calls, per seed 10/20, 20/20, 5/20
    assert "| unlock | 45 | 0.93 | 0.93 0.93 0.93 |" in out
    assert f"| open | 2,000 | {_cell([1.0] * 3)} | {_cell([0.9] * 3)} | {_cell([0.8, 0.7, 0.6])} |" in out
    (drop,) = [line for line in out.splitlines() if line.startswith("| drop |")]
    assert drop.startswith("| drop | 2,000 |") and drop.endswith("| - | - | 10 |")  # no test envs: dashes


def test_missing_files_are_refused_with_their_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lib = _seed(tmp_path, 0, corridor=1.0, maze=1.0, opened=1)
    assert load_script(SCRIPT).main([str(lib), "--eval", "planner-train.json"]) == 2
    assert "planner-train.json" in capsys.readouterr().err
    assert load_script(SCRIPT).main([str(lib), "--skills", str(tmp_path / "none{seed}")]) == 2
    assert "no skill results.json matches" in capsys.readouterr().err
