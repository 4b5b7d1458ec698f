"""``modrl options merge``: option libraries of several runs put together in a new run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from modrl.cli.main import main
from modrl.options import Option, OptionConfig, OptionLibrary


def _library(directory: Path, names: list[str], side: int = 7, config: dict | None = None) -> Path:
    library = OptionLibrary()
    for name in names:
        library.add(
            name,
            Option(OptionConfig(image_shape=(side, side, 3), channels=(4,), features_dim=4, hidden=(), embed_dim=2)),
        )
    library.save(directory / "options")
    if config is not None:
        (directory / "config.yaml").write_text(yaml.safe_dump(config))
    return directory


def test_merge_puts_every_option_in_one_library_with_the_first_runs_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    first = _library(tmp_path / "a", ["goto", "pickup"], config={"suite": "sequences", "seed": 3, "skills": ["goto"]})
    second = _library(tmp_path / "b", ["putnext"])
    out = tmp_path / "merged"
    assert main(["options", "merge", str(first), str(second / "options"), "--run-dir", str(out)]) == 0
    assert "putnext from" in capsys.readouterr().out
    merged = OptionLibrary.load(out / "options")
    assert merged.names == ["goto", "pickup", "putnext"] and all(merged.is_frozen(n) for n in merged.names)
    source = OptionLibrary.load(second / "options")
    assert all(
        torch.equal(v, merged.get("putnext").state_dict()[k]) for k, v in source.get("putnext").state_dict().items()
    )
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["suite"] == "sequences" and config["skills"] == ["goto", "pickup", "putnext"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["seed"] == 3 and len(meta["merged_from"]) == 2


def test_merge_refuses_a_name_twice_other_shapes_and_a_used_run_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _library(tmp_path / "a", ["goto"])
    twice = _library(tmp_path / "b", ["goto"])
    wide = _library(tmp_path / "c", ["open"], side=9)
    assert main(["options", "merge", str(first), str(twice), "--run-dir", str(tmp_path / "m1")]) == 2
    assert "'goto' is in both" in capsys.readouterr().err and not (tmp_path / "m1").exists()
    assert main(["options", "merge", str(first), str(wide), "--run-dir", str(tmp_path / "m2")]) == 2
    assert "does not fit" in capsys.readouterr().err and not (tmp_path / "m2").exists()
    assert main(["options", "merge", str(first), "--run-dir", str(tmp_path / "b")]) == 2  # not empty: refused
    assert OptionLibrary.load(tmp_path / "b" / "options").names == ["goto"]
    assert main(["options", "merge", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "m3")]) == 2
    assert "no such directory" in capsys.readouterr().err and not (tmp_path / "m3").exists()
