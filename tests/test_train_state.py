"""Optimizer and RNG state through a checkpoint: exact Adam resume, exact RNG restore, refusal of bad state."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from modrl.checkpoint import CheckpointError, load_checkpoint, verify_checkpoint
from modrl.checkpoint_writer import save_checkpoint
from modrl.train_state import (
    capture_rng_state,
    flatten_optimizer_state,
    restore_rng_state,
    unflatten_optimizer_state,
)

FP = "0123456789abcdef"


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def _adam_step(model: nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(seed))
    opt.zero_grad()
    model(x).pow(2).mean().backward()
    opt.step()


def test_round_trip_layout_and_exact_adam_resume(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for seed in range(3):
        _adam_step(model, opt, seed)
    opt_tensors, opt_data = flatten_optimizer_state(opt.state_dict())
    path = save_checkpoint(
        tmp_path / "ckpts",
        step=3,
        tensors={"model": model.state_dict(), "optimizer": opt_tensors},
        meta={"optimizer": opt_data, "counters": {"updates": 3}},
        fingerprint=FP,
    )
    assert path == tmp_path / "ckpts" / "step-000000000003"
    assert sorted(p.name for p in path.iterdir()) == [
        "manifest.json",
        "manifest.sha256",  # the manifest's own digest (modrl/checkpoint.py)
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
    ]
    manifest = verify_checkpoint(path, expected_fingerprint=FP)
    assert manifest["format_version"] == 1 and manifest["step"] == 3 and manifest["fingerprint"] == FP
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["files"]["state.json"]["bytes"] == (path / "state.json").stat().st_size

    ckpt = load_checkpoint(path, expected_fingerprint=FP)
    assert ckpt.step == 3 and ckpt.meta["counters"] == {"updates": 3}
    model2 = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    model2.load_state_dict(ckpt.tensors["model"])
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-3)  # lr restored from the checkpoint
    opt2.load_state_dict(unflatten_optimizer_state(ckpt.tensors["optimizer"], ckpt.meta["optimizer"]))
    assert opt2.param_groups[0]["lr"] == 1e-2
    for key, value in opt.state_dict()["state"][0].items():
        assert torch.equal(opt2.state_dict()["state"][0][key], value)
    _adam_step(model, opt, 99)
    _adam_step(model2, opt2, 99)
    for p1, p2 in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p1, p2)


def test_rng_capture_restore_through_a_checkpoint(tmp_path: Path) -> None:
    np.random.randn()  # leave a cached gaussian in numpy's state
    tensors, data = capture_rng_state()
    path = save_checkpoint(tmp_path, step=1, tensors={"rng": tensors}, meta={"rng": data}, fingerprint=FP)
    first = (torch.rand(4), np.random.randn(4), [random.random() for _ in range(4)], random.gauss(0, 1))
    ckpt = load_checkpoint(path)
    restore_rng_state(ckpt.tensors["rng"], ckpt.meta["rng"])
    second = (torch.rand(4), np.random.randn(4), [random.random() for _ in range(4)], random.gauss(0, 1))
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    assert first[2:] == second[2:]


def test_bad_rng_state_is_refused_and_changes_nothing() -> None:
    tensors, data = capture_rng_state()
    torch.rand(3)  # move on, so restoring the captured torch state would be visible
    before = torch.get_rng_state()
    with pytest.raises(CheckpointError, match="rng state"):
        restore_rng_state({**tensors, "python_state": torch.zeros(3, dtype=torch.int64)}, data)
    with pytest.raises(CheckpointError, match="numpy_keys"):
        restore_rng_state({"torch_cpu": tensors["torch_cpu"]}, data)
    assert torch.equal(torch.get_rng_state(), before)


def test_optimizer_state_with_non_tensor_values_round_trips() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _adam_step(model, opt, 0)
    state = opt.state_dict()
    tensors, data = flatten_optimizer_state(state)
    assert set(tensors) == {f"state.{i}.momentum_buffer" for i in range(4)}
    json.dumps(data)
    rebuilt = unflatten_optimizer_state(tensors, data)
    assert rebuilt["param_groups"] == state["param_groups"]
    with pytest.raises(CheckpointError, match="unexpected tensor key"):
        unflatten_optimizer_state({"bogus.0.x": torch.ones(1)}, data)
