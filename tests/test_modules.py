"""Modules and the module library: shapes, freezing protection, single-module files, parameter counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import safetensors
import safetensors.torch
import torch
from torch import nn

from modrl.config import ConfigError, from_dict
from modrl.modules import (
    MODULE_KINDS,
    AdapterModule,
    LowRankModule,
    MLPModule,
    ModuleLibrary,
    ModulesConfig,
    ParamCounts,
    build_module_library,
)
from modrl.registry import UnknownNameError

IN, OUT, B = 5, 3, 6
KINDS = MODULE_KINDS.names()


def make(kind: str, count: int = 3, seed: int = 0, **kwargs: Any) -> ModuleLibrary:
    torch.manual_seed(seed)
    config = ModulesConfig(kind=kind, count=count, hidden=(7,), rank=2, **kwargs)  # type: ignore[arg-type]
    library = build_module_library(config, in_dim=IN, out_dim=OUT)
    with torch.no_grad():  # move LoRA's zero B away from zero so deltas matter
        for param in library.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return library


def features(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, IN, generator=torch.Generator().manual_seed(seed))


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in module.named_parameters()}


def test_registry_holds_every_kind() -> None:
    assert KINDS == ["adapter", "lowrank", "mlp"]
    assert MODULE_KINDS.get("mlp") is MLPModule and MODULE_KINDS.get("lowrank") is LowRankModule
    assert MODULE_KINDS.get("adapter") is AdapterModule


def test_an_adapter_is_a_low_rank_delta_with_a_relu_in_its_bottleneck() -> None:
    torch.manual_seed(0)
    base = nn.Linear(IN, OUT)
    adapter = AdapterModule(base=base, base_name="base", rank=3, alpha=2.0, activation="tanh")
    x = features()
    assert torch.equal(adapter(x), torch.tanh(base(x)))  # up starts at zero: the shared layer alone
    with torch.no_grad():
        adapter.up.normal_()
    expected = torch.tanh(base(x) + torch.relu(x @ adapter.down.T) @ adapter.up.T * (2.0 / 3))
    assert torch.allclose(adapter(x), expected)
    lowrank = LowRankModule(base=base, base_name="base", rank=3, alpha=2.0, activation="tanh")
    lowrank.load_state_dict(adapter.state_dict())
    assert not torch.allclose(lowrank(x), adapter(x))  # the ReLU is the difference


@pytest.mark.parametrize("kind", KINDS)
def test_library_stacks_module_outputs_in_name_order(kind: str) -> None:
    library = make(kind)
    x = features()
    assert library.names == ["skill_0", "skill_1", "skill_2"]
    assert len(library) == 3 and "skill_1" in library and "skill_9" not in library
    out = library(x)
    assert out.shape == (B, 3, OUT)
    for k, name in enumerate(library.names):
        assert library.get(name)(x).shape == (B, OUT)
        # same-shape MLP skills run stacked (one batched matmul per layer): equal up to float rounding
        torch.testing.assert_close(out[:, k], library.get(name)(x), rtol=1e-6, atol=1e-6)
    picked = library(x, ["skill_2", "skill_0"])
    assert torch.equal(picked, torch.stack([out[:, 2], out[:, 0]], dim=1))
    assert library(x, []).shape == (B, 0, OUT)
    with pytest.raises(ValueError, match=rf"shape \(B, {IN}\)"):
        library(x[:, :-1])


def test_mlp_skill_applies_activation_after_every_layer() -> None:
    skill = MLPModule(in_dim=IN, out_dim=OUT, hidden=(4, 4), activation="relu")
    assert [type(m).__name__ for m in skill.net] == ["Linear", "ReLU"] * 3
    assert bool((skill(features()) >= 0).all())


def test_lowrank_equals_base_at_init_and_owns_only_its_delta() -> None:
    torch.manual_seed(0)
    library = build_module_library(ModulesConfig(kind="lowrank", count=2, rank=3), in_dim=IN, out_dim=OUT)
    base = library.shared["base"]
    x = features()
    for name in library.names:
        skill = library.get(name)
        assert isinstance(skill, LowRankModule) and skill.base is base
        assert torch.equal(skill(x), torch.tanh(base(x)))
        assert set(skill.state_dict()) == {"down", "up"}
        assert skill.down.shape == (3, IN) and skill.up.shape == (OUT, 3)
    assert set(library.state_dict()) == {
        "shared.base.weight",
        "shared.base.bias",
        *(f"skills.skill_{i}.{p}" for i in range(2) for p in ("down", "up")),
    }


def test_lowrank_delta_formula() -> None:
    base = nn.Linear(IN, OUT)
    skill = LowRankModule(base=base, base_name="base", rank=2, alpha=3.0, activation="relu")
    with torch.no_grad():
        skill.up.normal_()
    x = features()
    expected = torch.relu(base(x) + x @ skill.down.T @ skill.up.T * 1.5)
    torch.testing.assert_close(skill(x), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_spec_is_json_and_rebuilds_the_same_structure(kind: str) -> None:
    library = make(kind)
    skill = library.get("skill_0")
    spec = json.loads(json.dumps(skill.spec()))
    assert spec["kind"] == kind
    rebuilt = MODULE_KINDS.get(kind).from_spec(spec, shared=dict(library.shared.items()))
    assert rebuilt.spec() == skill.spec()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in skill.state_dict().items()}


@pytest.mark.parametrize("kind", KINDS)
def test_frozen_tensors_stay_bit_identical_while_trainable_ones_move(kind: str) -> None:
    library = make(kind)
    library.freeze(["skill_0"])
    library.freeze_shared()
    frozen_before = {**snapshot(library.skills["skill_0"]), **snapshot(library.shared)}
    trained_before = {**snapshot(library.skills["skill_1"]), **snapshot(library.skills["skill_2"])}
    # SB3 hands every policy parameter to the optimiser, frozen ones included; AdamW's decay must not touch them.
    optimizer = torch.optim.AdamW(library.parameters(), lr=0.05, weight_decay=0.1)
    for step in range(3):
        optimizer.zero_grad()
        (library(features(step)) ** 2).sum().backward()
        optimizer.step()
    frozen_after = {**snapshot(library.skills["skill_0"]), **snapshot(library.shared)}
    trained_after = {**snapshot(library.skills["skill_1"]), **snapshot(library.skills["skill_2"])}
    assert frozen_after.keys() == frozen_before.keys() and frozen_before
    for name, value in frozen_before.items():
        assert torch.equal(value, frozen_after[name]), name
    for name, value in trained_before.items():
        assert not torch.equal(value, trained_after[name]), name
    assert all(p.grad is None for p in library.skills["skill_0"].parameters())
    assert library.is_frozen("skill_0") and not library.is_frozen("skill_1")
    if kind in ("lowrank", "adapter"):
        assert library.is_frozen("base")


def test_freezing_a_trained_skill_drops_its_stale_gradient() -> None:
    library = make("mlp")
    optimizer = torch.optim.SGD(library.parameters(), lr=0.1)
    library(features()).sum().backward()
    library.freeze(["skill_0"])  # no zero_grad in between: a stale .grad would still be applied by step()
    before = snapshot(library.skills["skill_0"])
    optimizer.step()
    for name, value in snapshot(library.skills["skill_0"]).items():
        assert torch.equal(before[name], value), name


def test_set_trainable_unfreeze_and_shared() -> None:
    library = make("lowrank")
    library.set_trainable(["skill_2"])
    assert [library.is_frozen(n) for n in library.names] == [True, True, False]
    assert not library.is_frozen("base")  # shared layers are not touched by skill freezing
    library.unfreeze(["skill_0"])
    assert [library.is_frozen(n) for n in library.names] == [False, True, False]
    library.freeze_shared()
    assert library.is_frozen("base")
    library.unfreeze_shared()
    assert not library.is_frozen("base")


def test_unknown_names_raise_with_the_known_ones() -> None:
    library = make("mlp")
    for call in (library.freeze, library.unfreeze, library.set_trainable):
        with pytest.raises(UnknownNameError, match="unknown module 'nope'; known modules: skill_0, skill_1, skill_2"):
            call(["skill_0", "nope"])
    assert not library.is_frozen("skill_0")  # nothing was frozen before the unknown name was found
    with pytest.raises(UnknownNameError, match="skill_0"):
        library.is_frozen("nope")
    with pytest.raises(UnknownNameError):
        library.get("nope")
    with pytest.raises(TypeError, match="collection"):
        library.freeze("skill_0")


def test_add_validates_names_dimensions_and_shared_layers() -> None:
    library = make("mlp", count=1)
    mlp = MLPModule(in_dim=IN, out_dim=OUT, hidden=(), activation="tanh")
    for bad in ("a.b", "", "x y"):
        with pytest.raises(ValueError, match="must match"):
            library.add(bad, mlp)
    with pytest.raises(ValueError, match="already taken"):
        library.add("skill_0", mlp)
    with pytest.raises(ValueError, match=f"maps {IN} -> {OUT + 1}"):
        library.add("wide", MLPModule(in_dim=IN, out_dim=OUT + 1, hidden=(), activation="tanh"))
    foreign = LowRankModule(base=nn.Linear(IN, OUT), base_name="base", rank=1, activation="tanh")
    with pytest.raises(ValueError, match="add_shared"):
        library.add("lora", foreign)
    library.add_shared("base", nn.Linear(IN, OUT))
    with pytest.raises(ValueError, match="add_shared"):  # same name, but not the library's layer
        library.add("lora", foreign)
    with pytest.raises(ValueError, match="already taken"):
        library.add("base", mlp)


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_round_trip_into_a_fresh_library(kind: str, tmp_path: Path) -> None:
    source = make(kind, seed=0)
    path = tmp_path / "skill.safetensors"
    source.save_module("skill_1", path)
    target = make(kind, count=1, seed=1)
    if kind in ("lowrank", "adapter"):  # a delta is only meaningful on the base it was trained with
        target.shared.load_state_dict(source.shared.state_dict())
    assert target.load_module(path) == "skill_1"
    loaded, original = target.get("skill_1"), source.get("skill_1")
    assert loaded.spec() == original.spec()
    for (name, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    x = features()
    assert torch.equal(loaded(x), original(x))
    assert not target.is_frozen("skill_1")
    assert target.load_module(path, name="imported", trainable=False) == "imported"
    assert target.is_frozen("imported") and target.names == ["skill_0", "skill_1", "imported"]
    with pytest.raises(ValueError, match="already taken"):
        target.load_module(path)
    # A plain safetensors file: readable by any safetensors reader, spec in the header metadata.
    assert set(safetensors.torch.load_file(path)) == set(original.state_dict())
    with safetensors.safe_open(path, "pt") as handle:
        metadata = handle.metadata()
    assert metadata["name"] == "skill_1" and metadata["format_version"] == "1"
    assert json.loads(metadata["spec"]) == original.spec()


def _rewrite(path: Path, *, spec: dict[str, Any] | None = None, **metadata: str) -> None:
    """Re-save ``path`` with edited header metadata (its tensors, and so their checksum, unchanged)."""
    tensors = safetensors.torch.load_file(path)
    with safetensors.safe_open(path, "pt") as handle:
        meta = dict(handle.metadata())
    if spec is not None:
        meta["spec"] = json.dumps({**json.loads(meta["spec"]), **spec})
    meta.update(metadata)
    safetensors.torch.save_file(tensors, path, metadata=meta)


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "empty": (lambda p: _truncate(p, 0), "truncated"),
    "cut_header": (lambda p: _truncate(p, 20), "truncated"),
    "cut_data": (lambda p: _truncate(p, p.stat().st_size - 4), "corrupt safetensors data"),
    "flipped_byte": (_flip_last_byte, "corrupt tensor data"),
    "garbage": (lambda p: p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!"), "not valid JSON"),
    "foreign_file": (
        lambda p: safetensors.torch.save_file({"w": torch.zeros(2)}, p),
        "no metadata in the header",
    ),
    "other_format": (lambda p: _rewrite(p, format="something.else"), "not a modrl module file"),
    "future_version": (lambda p: _rewrite(p, format_version="99"), "unsupported format version '99'"),
    "unknown_kind": (lambda p: _rewrite(p, spec={"kind": "bottleneck"}), "unknown module 'bottleneck'"),
    "shape_mismatch": (
        lambda p: _rewrite(p, spec={"hidden": [9]}),
        r"tensor 'net.0.bias' has shape \(7,\), the spec builds \(9,\)",
    ),
    "bad_spec_args": (lambda p: _rewrite(p, spec={"colour": "red"}), "spec does not fit MLPModule"),
    "bad_name": (lambda p: _rewrite(p, name="../evil"), "must match"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_load_refuses_bad_files_naming_file_and_reason(case: str, tmp_path: Path) -> None:
    corrupt, reason = CORRUPTIONS[case]
    path = tmp_path / "skill.safetensors"
    make("mlp").save_module("skill_1", path)
    corrupt(path)
    target = make("mlp", count=1)
    with pytest.raises(ValueError, match=reason) as info:
        target.load_module(path)
    assert str(path) in str(info.value)
    assert target.names == ["skill_0"]


def test_load_refuses_non_finite_weights(tmp_path: Path) -> None:
    library = make("mlp")
    with torch.no_grad():
        library.get("skill_1").net[0].weight[0, 0] = float("nan")  # type: ignore[index]
    library.save_module("skill_1", tmp_path / "nan.safetensors")
    with pytest.raises(ValueError, match="non-finite"):
        make("mlp", count=1).load_module(tmp_path / "nan.safetensors")


def test_lowrank_load_needs_a_matching_shared_base(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "lora.safetensors"
    make("lowrank").save_module("skill_0", path)
    no_base = make("mlp", count=1)
    with pytest.raises(ValueError, match="needs shared layer 'base', which the library lacks") as info:
        no_base.load_module(path)
    assert str(path) in str(info.value) and no_base.names == ["skill_0"]
    wrong_shape = ModuleLibrary()
    wrong_shape.add_shared("base", nn.Linear(IN, OUT + 1))
    with pytest.raises(ValueError, match=f"maps {IN} -> {OUT + 1}"):
        wrong_shape.load_module(path)
    other_values = make("lowrank", count=1, seed=3)  # same shape, different base: allowed, with a warning
    with caplog.at_level("WARNING", logger="modrl.modules.library"):
        assert other_values.load_module(path, name="lora") == "lora"
    assert "differs" in caplog.text


@pytest.mark.parametrize("kind", KINDS)
def test_parameter_counts(kind: str) -> None:
    library = make(kind)
    if kind == "mlp":
        per_skill, shared = (IN * 7 + 7) + (7 * OUT + OUT), 0
    else:
        per_skill, shared = 2 * IN + OUT * 2, IN * OUT + OUT
    total = 3 * per_skill + shared
    assert library.parameter_counts() == ParamCounts(trainable=total, frozen=0)
    assert total == sum(p.numel() for p in library.parameters())
    library.freeze(["skill_0", "skill_2"])
    library.freeze_shared()
    counts = library.parameter_counts()
    assert counts == ParamCounts(trainable=per_skill, frozen=2 * per_skill + shared)
    assert counts.total == total


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [(dict(count=0), "count"), (dict(hidden=(8, 0)), "hidden"), (dict(rank=0), "rank"), (dict(kind="x"), "kind")],
)
def test_modules_config_validates(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        ModulesConfig(**kwargs)


def test_modules_config_from_dict() -> None:
    config = from_dict(ModulesConfig, {"kind": "lowrank", "count": 2, "hidden": [16, 16]})
    assert config == ModulesConfig(kind="lowrank", count=2, hidden=(16, 16))
    with pytest.raises(ConfigError, match=r"unknown key 'skills\.size'"):
        from_dict(ModulesConfig, {"size": 3}, "skills")


def test_load_checks_shapes_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "huge.safetensors"
    make("mlp").save_module("skill_1", path)
    _rewrite(path, spec={"hidden": [1 << 40]})  # would need terabytes if built for real
    with pytest.raises(ValueError, match="has shape"):
        make("mlp", count=1).load_module(path)


def test_stacked_mlp_path_matches_per_skill_loop_in_value_and_gradient() -> None:
    """The batched path for same-shape MLP skills gives the loop's outputs and gradients; frozen skills get none."""
    from modrl.modules.mlp import can_stack

    torch.manual_seed(0)
    library = make("mlp")
    x = features()
    modules = [library.get(name) for name in library.names]
    assert can_stack(modules)
    library.freeze(["skill_1"])
    stacked = library(x)
    looped = torch.stack([m(x) for m in modules], dim=1)
    torch.testing.assert_close(stacked, looped, rtol=1e-6, atol=1e-6)
    weights = torch.randn_like(stacked)
    grads_stacked = torch.autograd.grad((stacked * weights).sum(), [p for p in library.parameters() if p.requires_grad])
    grads_looped = torch.autograd.grad((looped * weights).sum(), [p for p in library.parameters() if p.requires_grad])
    for a, b in zip(grads_stacked, grads_looped, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in library.get("skill_1").parameters())
    handle = modules[0].register_forward_hook(lambda *_: None)
    assert not can_stack(modules), "a hooked skill must run through its own forward"
    handle.remove()
