"""``--device auto|cpu|cuda``: resolution, the one-line error without a GPU, and the device recorded in meta.json.

No GPU on the machines these tests were written on: CUDA itself is never exercised here, only what the commands do
when torch sees (or, monkeypatched, claims to see) a CUDA device.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from modrl.cli.main import main
from modrl.devices import DeviceError, resolve_device
from tests.conftest import TINY


@pytest.mark.parametrize(
    ("choice", "available", "expected"),
    [("cpu", True, "cpu"), ("auto", False, "cpu"), ("auto", True, "cuda"), ("cuda", True, "cuda")],
)
def test_resolve_device(monkeypatch: pytest.MonkeyPatch, choice: str, available: bool, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    assert resolve_device(choice) == expected


@pytest.mark.parametrize("choice", ["cuda", "gpu", ""])
def test_resolve_device_refuses_cuda_without_a_gpu_and_unknown_names(
    monkeypatch: pytest.MonkeyPatch, choice: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="--device"):
        resolve_device(choice)


def _tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.mark.parametrize("command", ["train", "continual", "options", "eval", "show", "export", "report"])
def test_cuda_without_a_gpu_is_one_usage_error_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(TINY))  # an existing run for the commands that load one
    runs = tmp_path / "runs"
    argv = {
        "train": ["train", str(_tiny(tmp_path)), "--runs-root", str(runs)],
        "continual": ["continual", "experiments/continual/keys.yaml", "--runs-root", str(runs)],
        "options": ["options", "train", "experiments/options/colour_type.yaml", "--runs-root", str(runs)],
        "eval": ["eval", str(run_dir)],
        "show": ["show", str(run_dir)],
        "export": ["export", str(run_dir), str(tmp_path / "out.zip")],
        "report": ["report", str(run_dir)],
    }[command]
    assert main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("modrl: error: --device cuda: torch "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tiny.yaml"]  # no run directory, no zip


def test_auto_without_a_gpu_trains_on_cpu_records_it_and_the_run_loads_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run_dir = tmp_path / "run"
    assert main(["train", str(_tiny(tmp_path)), "--run-dir", str(run_dir), "--device", "auto"]) == 0
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["device"] == "cpu" and meta["status"] == "completed"
    from modrl.agents.common.evaluation import load_run_policy

    _, policy, checkpoint = load_run_policy(run_dir, device="cpu")
    assert {p.device.type for p in policy.parameters()} == {"cpu"}
    # Checkpoints hold CPU tensors whatever device wrote them: what makes a CUDA run load on a CPU-only machine.
    assert {t.device.type for group in checkpoint.tensors.values() for t in group.values()} == {"cpu"}
    assert main(["eval", str(run_dir), "--episodes", "1", "--device", "auto"]) == 0
    assert len(list((run_dir / "eval").glob("*-1ep.json"))) == 1
