"""experiments/options/out_of_view.py on an untrained library: episodes split by whether the target was in
MiniGrid's 7x7 view at the start (checked against the observation itself), on the view the option was trained with,
and a refusal naming a missing option."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modrl.envs.subtask_env import SubtaskEnv
from modrl.options import Option, OptionConfig, OptionLibrary
from modrl.seeds import EVAL_SEED_BASE
from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "options" / "out_of_view.py"
TINY = dict(channels=(4,), features_dim=4, hidden=(), embed_dim=2)
BALL, GREEN = 6, 1  # minigrid OBJECT_TO_IDX["ball"], COLOR_TO_IDX["green"]


def _library(root: Path, config: OptionConfig) -> Path:
    library = OptionLibrary()
    library.add("goto-green-ball", Option(config))
    library.save(root / "options")
    return root / "options"


def test_episodes_are_split_by_the_target_in_view_at_the_start(tmp_path: Path) -> None:
    script: Any = load_script(SCRIPT)
    out = tmp_path / "split.json"
    path = _library(tmp_path, OptionConfig(**TINY))  # type: ignore[arg-type]
    assert script.main([str(path), "--option", "goto-green-ball", "--episodes", "6", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["in_view"]["episodes"] + result["out_of_view"]["episodes"] == 6
    # The split agrees with the 7x7 observations of the same episodes.
    env = SubtaskEnv(
        script.option_tasks("sequences", "train", "goto-green-ball", "first_subtask"),
        suite="sequences",
        parameterised=False,
    )
    seen = []
    for k in range(6):
        obs, _ = env.reset(seed=EVAL_SEED_BASE + k)
        seen.append(bool(((obs["image"][..., 0] == BALL) & (obs["image"][..., 1] == GREEN)).any()))
        assert script.target_in_view(env) == seen[-1]
    assert result["in_view"]["episodes"] == sum(seen)
    assert len(result["failed_lengths"]) == sum(
        round(part["episodes"] * (1 - part["success"]))
        for part in (result["in_view"], result["out_of_view"])
        if part["success"] is not None
    )
    assert all(0 < n <= 1000 for n in result["failed_lengths"])


def test_a_map_view_option_runs_on_its_own_view(tmp_path: Path) -> None:
    script: Any = load_script(SCRIPT)
    path = _library(tmp_path, OptionConfig(image_shape=(25, 25, 3), map_view=True, **TINY))  # type: ignore[arg-type]
    out = tmp_path / "split.json"
    assert (
        script.main([str(path), "--option", "goto-green-ball", "--episodes", "2", "--greedy", "--out", str(out)]) == 0
    )
    assert json.loads(out.read_text())["mode"] == "greedy"


def test_a_missing_option_is_refused_with_its_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script: Any = load_script(SCRIPT)
    path = _library(tmp_path, OptionConfig(**TINY))  # type: ignore[arg-type]
    with pytest.raises(SystemExit) as exc:
        script.main([str(path), "--option", "pickup-blue-key"])
    assert exc.value.code == 2 and "'pickup-blue-key' is not a per-symbol option" in capsys.readouterr().err
