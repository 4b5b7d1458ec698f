"""experiments/generalisation/routing_parts.py on stub runs whose routing follows the verb: consistency, information
and held-out agreement per part, by hand; a run without routing weights or evaluation is one error line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "generalisation" / "routing_parts.py"
# Train: goto on module 0, pickup on module 1; held out: goto-blue-ball follows its verb, pickup-red-key does not.
TASKS = [
    ("goto-red-ball", "train", 0),
    ("goto-blue-key", "train", 0),
    ("pickup-red-ball", "train", 1),
    ("pickup-blue-box", "train", 1),
    ("goto-blue-ball", "test", 0),
    ("pickup-red-key", "test", 0),
]


def _script() -> Any:
    return load_script(SCRIPT)


def _run(root: Path, name: str, tasks: list[tuple[str, str, int]], *, routed: bool = True) -> Path:
    run = root / name
    (run / "eval").mkdir(parents=True)
    rows = []
    for task, split, module in tasks:
        usage = [0.1, 0.1, 0.1]
        usage[module] = 0.8
        rows.append({"task": task, "split": split, "success_rate": 1.0, "module_usage": usage if routed else None})
    (run / "eval" / "step-000000000100-det-20ep.json").write_text(json.dumps({"tasks": rows}))
    (run / "eval" / "step-000000000050-det-20ep.json").write_text(json.dumps({"tasks": []}))  # older: ignored
    return run


def test_scores_of_a_router_that_follows_the_verb(tmp_path: Path) -> None:
    script = _script()
    rows = script.task_modules(_run(tmp_path, "r", TASKS))
    assert rows[-1] == ("pickup-red-key", "test", 0)
    assert script.part_scores(rows, "verb") == {"consistency": 1.0, "information": 1.0, "held_out_agreement": 0.5}
    colour = script.part_scores(rows, "colour")  # red and blue each split over both modules
    assert colour["consistency"] == 0.5
    assert colour["information"] == pytest.approx(0.0, abs=1e-12)
    one_module = script.part_scores([(t, s, 2) for t, s, _ in TASKS], "type")
    assert one_module["information"] is None and one_module["consistency"] == 1.0


def test_information_of_a_partly_informative_part(tmp_path: Path) -> None:
    """Types ball, key, ball, box on modules 0, 0, 1, 1: H(module) = log 2, H(module | type) = (2/4) log 2."""
    script = _script()
    scores = script.part_scores(script.task_modules(_run(tmp_path, "r", TASKS)), "type")
    assert scores["information"] == pytest.approx(0.5)
    assert scores["consistency"] == 0.75  # ball's majority module 0 holds one of its two tasks
    assert scores["held_out_agreement"] == 1.0  # held-out ball and key both land on their type's train module 0


def test_command_prints_the_table_and_refuses_runs_without_routing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script()
    good = _run(tmp_path, "good", TASKS)
    assert script.main([str(good), "--out", str(tmp_path / "parts.md")]) == 0
    out = capsys.readouterr().out
    assert "| good | verb | 1.00 | 1.00 | 0.50 |" in out and "| mean of 1 | verb | 1.00 | 1.00 | 0.50 |" in out
    assert (tmp_path / "parts.md").read_text() == out
    flat = _run(tmp_path, "flat", TASKS, routed=False)
    assert script.main([str(good), str(flat)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("modrl: error:") and "no routing weights" in err[0]
    assert script.main([str(tmp_path / "missing")]) == 2
    assert "no greedy evaluation" in capsys.readouterr().err
