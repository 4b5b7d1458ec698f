"""The named-module library base (modrl.library): bookkeeping, single-member files and refusals, shared by the skill
and option libraries."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import safetensors
import safetensors.torch
import torch
from torch import nn

from modrl.library import NamedModuleLibrary, ParamCounts, tensor_digest
from modrl.modules import ModuleLibrary, ModulesConfig, build_module_library
from modrl.modules import ParamCounts as ModulesParamCounts
from modrl.options import LIBRARY_DIR, Option, OptionConfig, OptionLibrary
from modrl.registry import UnknownNameError
from modrl.updates import ParamCounts as UpdatesParamCounts
from modrl.updates import RuleParamCounts


class Affine(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.linear = nn.Linear(size, size)


class AffineLibrary(NamedModuleLibrary[Affine]):
    """The smallest subclass: two hooks and the class attributes."""

    members_attr = "layers"
    member_type = Affine
    noun = "layer"
    name_pattern = re.compile(r"[a-z]+")
    file_format = "test.affine"

    def _spec_metadata(self, name: str, member: Affine) -> dict[str, str]:
        return {"spec": json.dumps({"size": member.size})}

    def _from_spec(self, spec: dict[str, Any], metadata: Mapping[str, str]) -> Affine:
        if not isinstance(spec.get("size"), int):
            raise ValueError("spec needs an integer 'size'")
        return Affine(spec["size"])


class DryRunAffineLibrary(AffineLibrary):
    built: int = 0

    def _dry_run(self, spec: dict[str, Any], metadata: Mapping[str, str]) -> nn.Module:
        with torch.device("meta"):
            return self._from_spec(spec, metadata)

    def _from_spec(self, spec: dict[str, Any], metadata: Mapping[str, str]) -> Affine:
        type(self).built += 1
        return super()._from_spec(spec, metadata)


def small_option(**kwargs: Any) -> Option:
    return Option(OptionConfig(channels=(4,), features_dim=8, hidden=(8,), embed_dim=2, arg_dim=2, **kwargs))


def test_bookkeeping_names_iteration_freezing_and_counts() -> None:
    library = AffineLibrary()
    for name, size in (("a", 2), ("b", 3), ("c", 1)):
        library.add(name, Affine(size))
    assert library.names == list(library) == ["a", "b", "c"] and len(library) == 3
    assert "b" in library and "z" not in library and 3 not in library
    assert library["b"] is library.get("b") and library.get("b").size == 3
    assert [k.split(".")[0] for k in library.state_dict()] == ["layers"] * 6  # members_attr is the key prefix
    library.set_trainable(["b"])
    assert library.trainable_names == ["b"] and library.frozen_names == ["a", "c"]
    library.unfreeze(["c"])
    assert library.trainable_names == ["b", "c"]
    counts = library.parameter_counts()
    assert counts == ParamCounts(trainable=(9 + 3) + (1 + 1), frozen=4 + 2) and counts.total == 20
    with pytest.raises(UnknownNameError, match="unknown layer 'z'; known layers: a, b, c"):
        library.freeze(["a", "z"])
    assert not library.is_frozen("b"), "nothing changes before an unknown name is found"
    with pytest.raises(TypeError, match="collection of layer names"):
        library.freeze("a")
    with pytest.raises(ValueError, match="must match"):
        library.add("A1", Affine(1))
    with pytest.raises(ValueError, match="already taken"):
        library.add("a", Affine(1))
    with pytest.raises(TypeError, match="must be a Affine"):
        library.add("d", nn.Linear(1, 1))  # type: ignore[arg-type]


def test_freeze_clears_gradients() -> None:
    library = AffineLibrary()
    library.add("a", Affine(2))
    library.get("a").linear(torch.ones(1, 2)).sum().backward()
    assert library.get("a").linear.weight.grad is not None
    library.freeze(["a"])
    assert all(p.grad is None and not p.requires_grad for p in library.get("a").parameters())


def test_save_and_load_one_member(tmp_path: Path) -> None:
    source = AffineLibrary()
    source.add("a", Affine(3))
    source.save_member("a", tmp_path / "a.safetensors")
    with safetensors.safe_open(tmp_path / "a.safetensors", "pt") as handle:
        metadata = handle.metadata()
    assert metadata == {
        "format": "test.affine",
        "format_version": "1",
        "name": "a",
        "spec": '{"size": 3}',
        "tensors_sha256": tensor_digest(source.get("a").state_dict()),
    }
    target = AffineLibrary()
    assert target.load_member(tmp_path / "a.safetensors", name="b", trainable=False) == "b"
    assert target.frozen_names == ["b"]
    assert torch.equal(target.get("b").linear.weight, source.get("a").linear.weight)
    member, name, _ = AffineLibrary().read_member(tmp_path / "a.safetensors")
    assert name == "a" and member.size == 3


def test_the_same_member_is_saved_to_the_same_bytes(tmp_path: Path) -> None:
    # safetensors writes the header's metadata map in an arbitrary order (a different one nearly every call); the
    # saved files must not differ for the same tensors and metadata, so users can compare runs by checksum
    source = AffineLibrary()
    source.add("a", Affine(3))
    files = [tmp_path / f"a{i}.safetensors" for i in range(12)]
    for path in files:
        source.save_member("a", path)
    assert len({path.read_bytes() for path in files}) == 1
    data = files[0].read_bytes()
    size = int.from_bytes(data[:8], "little")
    assert (8 + size) % 8 == 0  # the header stays padded to 8 bytes, as safetensors pads it
    target = AffineLibrary()
    target.load_member(files[0])
    assert torch.equal(target.get("a").linear.bias, source.get("a").linear.bias)


def test_an_option_library_is_saved_to_the_same_bytes(tmp_path: Path) -> None:
    library = OptionLibrary()
    library.add("go", small_option())
    library.save(tmp_path / "one")
    library.save(tmp_path / "two")
    for name in ("go.safetensors", "library.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_dry_run_refuses_shape_mismatch_before_building_for_real(tmp_path: Path) -> None:
    library = DryRunAffineLibrary()
    library.add("a", Affine(2))
    tensors = {k: v.contiguous() for k, v in library.get("a").state_dict().items()}
    metadata = {
        "format": "test.affine",
        "format_version": "1",
        "name": "a",
        "tensors_sha256": tensor_digest(tensors),
        "spec": json.dumps({"size": 1 << 20}),
    }  # would allocate 4 TiB if built for real
    (tmp_path / "huge.safetensors").write_bytes(safetensors.torch.save(tensors, metadata=metadata))
    DryRunAffineLibrary.built = 0
    with pytest.raises(ValueError, match=r"huge.safetensors: cannot load layer: tensor 'linear.bias' has shape"):
        library.load_member(tmp_path / "huge.safetensors", name="b")
    assert DryRunAffineLibrary.built == 1 and library.names == ["a"]  # only the meta-device build ran


def _skill_file(path: Path) -> Path:
    build_module_library(ModulesConfig(count=1, hidden=(4,)), in_dim=3, out_dim=2).save_module("skill_0", path)
    return path


def _option_file(path: Path) -> Path:
    library = OptionLibrary()
    library.add("go", small_option())
    library.save_option("go", path)
    return path


def test_each_library_refuses_the_others_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot load option: not a modrl option file \(format 'modrl.skill'"):
        OptionLibrary().load_option(_skill_file(tmp_path / "skill.safetensors"))
    with pytest.raises(ValueError, match=r"cannot load module: not a modrl module file \(format 'modrl.option'"):
        ModuleLibrary().load_module(_option_file(tmp_path / "option.safetensors"))
    with pytest.raises(ValueError, match=r"cannot load layer: not a modrl layer file"):
        AffineLibrary().load_member(tmp_path / "option.safetensors")


def _rewrite(path: Path, **metadata: str) -> None:
    tensors = safetensors.torch.load_file(path)
    with safetensors.safe_open(path, "pt") as handle:
        safetensors.torch.save_file(tensors, path, metadata={**handle.metadata(), **metadata})


OPTION_CORRUPTIONS = {
    "empty": (lambda p: p.write_bytes(b""), "truncated"),
    "cut_data": (lambda p: p.write_bytes(p.read_bytes()[:-4]), "corrupt safetensors data"),
    "flipped_byte": (
        lambda p: p.write_bytes(p.read_bytes()[:-1] + bytes([p.read_bytes()[-1] ^ 0x40])),
        "corrupt tensor data",
    ),
    "foreign_file": (lambda p: safetensors.torch.save_file({"w": torch.zeros(2)}, p), "no metadata in the header"),
    "future_version": (lambda p: _rewrite(p, format_version="2"), "unsupported format version '2'"),
    "spec_not_json": (lambda p: _rewrite(p, spec="{"), "corrupt metadata"),
    "spec_not_object": (lambda p: _rewrite(p, spec="[1]"), "the spec must be a JSON object"),
    "invalid_spec": (lambda p: _rewrite(p, spec='{"hidden": [0]}'), "invalid spec"),
    "bad_name": (lambda p: _rewrite(p, name="../evil"), "must match"),
}


@pytest.mark.parametrize("case", sorted(OPTION_CORRUPTIONS))
def test_option_library_refuses_bad_files_naming_file_and_reason(case: str, tmp_path: Path) -> None:
    corrupt, reason = OPTION_CORRUPTIONS[case]
    path = _option_file(tmp_path / "go.safetensors")
    corrupt(path)
    library = OptionLibrary()
    with pytest.raises(ValueError, match=reason) as info:
        library.load_option(path)
    assert str(path) in str(info.value) and len(library) == 0


def test_option_library_takes_the_shared_bookkeeping() -> None:
    library = OptionLibrary()
    library.add("go", small_option())
    library.add("pick-up", small_option(termination="learned"))
    assert list(library) == ["go", "pick-up"] and library["go"] is library.get("go")
    library.freeze(["go"])
    assert library.frozen_names == ["go"] and library.trainable_names == ["pick-up"]
    with pytest.raises(TypeError, match="collection of option names"):
        library.freeze("go")
    with pytest.raises(UnknownNameError, match="unknown option 'x'; known options: go, pick-up"):
        library.get("x")


def test_skill_library_namespace_covers_shared_layers() -> None:
    library = ModuleLibrary()
    library.add_shared("base", nn.Linear(2, 2))
    with pytest.raises(ValueError, match="already taken"):
        library.add_shared("base", nn.Linear(2, 2))
    with pytest.raises(UnknownNameError, match="shared layers: base"):
        library.get("nope")


def test_one_param_counts_in_the_core() -> None:
    assert ModulesParamCounts is UpdatesParamCounts is ParamCounts
    counts = RuleParamCounts(trainable=3, frozen=2, active=4)
    assert isinstance(counts, ParamCounts) and counts.total == 5
    assert LIBRARY_DIR == "options"
