"""On-disk formats of the skill and option libraries stay byte-for-byte what they were.

The libraries are built with parameters set from an integer formula (exact in float32, no RNG), so the files do not
depend on torch's initialisation; the sha256 values below (of the parsed header and the tensor bytes, see
:func:`_sha`) were recorded from the code before the libraries shared :class:`modrl.library.NamedModuleLibrary`,
and one skill file written by that code is embedded whole. A changed hash means files written by older modrl may no
longer load, or newer files no longer load in older modrl: bump the format version instead of editing the hashes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from modrl.modules import ModuleLibrary, ModulesConfig, build_module_library
from modrl.options import Option, OptionConfig, OptionLibrary

IN, OUT = 5, 3
SLOTS = (("red", "green"), ("ball", "key"))
SMALL_OPTION = dict(channels=(4,), features_dim=8, hidden=(8,), embed_dim=2, arg_dim=2)

#: sha256 of the files written by the code before the refactor (see the module docstring).
GOLDEN = {
    "options/goto-red-ball.safetensors": "2a95764193618052059fa57627c512c4df2cd734d8651947f0c08395e0de261a",
    "options/library.json": "92bf645e555cbfbb9872d55055addf9d9dca4cfaa4ff2269b1d597baa147ec10",
    "options/pickup.safetensors": "dd88ab88a8d7a2beb911fddd6ed5ead40dfb947c0e5c7adb6bb220d4377356b4",
    "skill_lowrank": "652338931db9be7df181b64beedd235aca66619f3acd19808e9bbec57f91f2f4",
    "skill_mlp": "479d0e175bc3591a931f3d527a3c4a3adbda3f174cc5f0ad75d3f252125a5379",
}

#: ``skill_mlp`` exactly as the code before the refactor wrote it (base64 of the whole file).
OLD_SKILL_FILE = (
    "MAIAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmb3JtYXQiOiJtb2RybC5za2lsbCIsIm5hbWUiOiJza2lsbF8xIiwidGVuc29yc19zaGEyNTYiOiJm"
    "N2U5MjE3YWQ0ZWYzODBiYmM3MjFjYmZhMjA1YjI2YWY5ZGUxYmEzMjAxZGE0Zjg0MjEyODVlOTFiODUxNmY2Iiwic2hhcmVkX2RpZ2VzdHMiOiJ7"
    "fSIsImZvcm1hdF92ZXJzaW9uIjoiMSIsInNwZWMiOiJ7XCJhY3RpdmF0aW9uXCI6IFwidGFuaFwiLCBcImhpZGRlblwiOiBbNF0sIFwiaW5fZGlt"
    "XCI6IDUsIFwia2luZFwiOiBcIm1scFwiLCBcIm91dF9kaW1cIjogM30ifSwibmV0LjAuYmlhcyI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbNF0s"
    "ImRhdGFfb2Zmc2V0cyI6WzAsMTZdfSwibmV0LjAud2VpZ2h0Ijp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOls0LDVdLCJkYXRhX29mZnNldHMiOlsx"
    "Niw5Nl19LCJuZXQuMi5iaWFzIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpbOTYsMTA4XX0sIm5ldC4yLndlaWdo"
    "dCI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMyw0XSwiZGF0YV9vZmZzZXRzIjpbMTA4LDE1Nl19fSAgICAgIAAAIL4AANg+AAAUvwAAAAAAABQ/"
    "AADYvgAAID4AADw/AACIvgAAoD4AADC/AADgvQAA8D4AAAi/AABAPQAAID8AAMC+AABQPgAASD8AAGC+AAC4PgAAJL8AAIC9AAAEPwAA+L4AAMA9"
    "AAAsPwAAqL4AAIA+AABAvwAAML4AANA+AAAYvwAAgLwAABA/AADgvgAAED4AADg/AACQvg=="
)


def _fill(module: nn.Module) -> None:
    """Deterministic parameter values, exact in float32: small multiples of 1/64 from an integer formula."""
    offset = 0
    with torch.no_grad():
        for _, param in sorted(module.named_parameters()):
            index = torch.arange(offset, offset + param.numel(), dtype=torch.int64)
            param.copy_((((index * 37 + 11) % 101) - 50).to(param.dtype).reshape(param.shape) / 64)
            offset += param.numel()


def _skills(kind: str) -> ModuleLibrary:
    library = build_module_library(ModulesConfig(kind=kind, count=2, hidden=(4,), rank=2), in_dim=IN, out_dim=OUT)  # type: ignore[arg-type]
    _fill(library)
    return library


def _options() -> OptionLibrary:
    library = OptionLibrary()
    library.add("pickup", Option(OptionConfig(arg_slots=SLOTS, termination="learned", **SMALL_OPTION)))  # type: ignore[arg-type]
    library.add("goto-red-ball", Option(OptionConfig(**SMALL_OPTION)))  # type: ignore[arg-type]
    _fill(library)
    library.freeze(["pickup"])
    return library


def _sha(path: Path) -> str:
    """sha256 of a file's content: a safetensors file's header as parsed JSON (safetensors writes the metadata in
    hash-map order, which changes from process to process) followed by its tensor bytes; other files as they are."""
    data = path.read_bytes()
    if path.suffix == ".safetensors":
        size = int.from_bytes(data[:8], "little")
        header = json.dumps(json.loads(data[8 : 8 + size]), sort_keys=True).encode()
        data = header + b"\0" + data[8 + size :]
    return hashlib.sha256(data).hexdigest()


def _write_all(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for kind in ("mlp", "lowrank"):
        files[f"skill_{kind}"] = root / f"skill_{kind}.safetensors"
        _skills(kind).save_module("skill_1", files[f"skill_{kind}"])
    _options().save(root / "options")
    for name in ("library.json", "pickup.safetensors", "goto-red-ball.safetensors"):
        files[f"options/{name}"] = root / "options" / name
    return files


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_saved_files_are_byte_identical_to_the_recorded_format(key: str, tmp_path: Path) -> None:
    files = _write_all(tmp_path)
    assert _sha(files[key]) == GOLDEN[key]


def test_files_reload_and_resave_to_the_same_bytes(tmp_path: Path) -> None:
    files = _write_all(tmp_path / "a")
    (tmp_path / "b").mkdir()
    for kind in ("mlp", "lowrank"):
        target = ModuleLibrary()
        if kind == "lowrank":
            target.add_shared("base", _skills("lowrank").shared["base"])
        assert target.load_module(files[f"skill_{kind}"]) == "skill_1"
        target.save_module("skill_1", tmp_path / "b" / f"skill_{kind}.safetensors")
        assert _sha(tmp_path / "b" / f"skill_{kind}.safetensors") == _sha(files[f"skill_{kind}"])
    loaded = OptionLibrary.load(tmp_path / "a" / "options")
    assert loaded.names == ["pickup", "goto-red-ball"] and loaded.is_frozen("pickup")
    loaded.save(tmp_path / "b" / "options")
    for name in ("library.json", "pickup.safetensors", "goto-red-ball.safetensors"):
        assert _sha(tmp_path / "b" / "options" / name) == _sha(files[f"options/{name}"]), name


def test_a_file_written_by_the_old_code_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.safetensors"
    path.write_bytes(base64.b64decode(OLD_SKILL_FILE))
    target = ModuleLibrary()
    assert target.load_module(path, trainable=False) == "skill_1" and target.is_frozen("skill_1")
    expected = _skills("mlp").get("skill_1")
    for (key, a), (_, b) in zip(expected.state_dict().items(), target.get("skill_1").state_dict().items(), strict=True):
        assert torch.equal(a, b), key
    target.save_module("skill_1", tmp_path / "new.safetensors")
    assert _sha(tmp_path / "new.safetensors") == _sha(path) == GOLDEN["skill_mlp"]
