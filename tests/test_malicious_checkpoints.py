"""A malicious-checkpoint corpus generated here, each refused before anything is built; and a scan of the package
sources for pickle-family imports and unsafe torch.load calls."""

from __future__ import annotations

import ast
import hashlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import modrl
from modrl.checkpoint import MANIFEST_DIGEST, CheckpointError, latest_checkpoint, load_checkpoint, manifest_digest_line
from modrl.checkpoint_writer import save_checkpoint

FP = "0123456789abcdef"
PICKLE_FAMILY = {"pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal", "_pickle", "copyreg"}
#: Modules allowed to import one of those (an explicit, trusted SB3 export path would go here; there is none).
ALLOWLIST: set[str] = set()


class _Canary:
    """Unpickling this creates the canary file: proof that a loader ran the payload."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


def _manifest(ckpt: Path) -> dict:
    return json.loads((ckpt / "manifest.json").read_text())


def _write_manifest(ckpt: Path, manifest: dict) -> None:
    """Write the manifest and its sidecar digest consistently (an attacker who controls every file)."""
    data = json.dumps(manifest).encode()
    (ckpt / "manifest.json").write_bytes(data)
    (ckpt / MANIFEST_DIGEST).write_text(manifest_digest_line(data))


def _plant(ckpt: Path, name: str, data: bytes, *, listed: bool = True) -> None:
    """Write ``data`` as member ``name`` and make the manifest vouch for it (an attacker who controls every file)."""
    (ckpt / name).write_bytes(data)
    if listed:
        manifest = _manifest(ckpt)
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        _write_manifest(ckpt, manifest)


def _listing(ckpt: Path, name: str, data: bytes) -> None:
    manifest = _manifest(ckpt)
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    _write_manifest(ckpt, manifest)


def _corpus(canary: Path) -> dict[str, tuple[Callable[[Path], None], str]]:
    """name -> (how to poison a valid checkpoint, what the refusal must say)."""
    payloads = {f"protocol {p}": pickle.dumps(_Canary(canary), protocol=p) for p in (0, 2, 5)}
    corpus: dict[str, tuple[Callable[[Path], None], str]] = {}
    for label, payload in payloads.items():
        corpus[f"safetensors member is a pickle ({label})"] = (
            lambda c, d=payload: _plant(c, "model.safetensors", d),
            "model.safetensors",
        )
        corpus[f"state.json is a pickle ({label})"] = (lambda c, d=payload: _plant(c, "state.json", d), "state.json")
        corpus[f"manifest is a pickle ({label})"] = (
            lambda c, d=payload: (c / "manifest.json").write_bytes(d),
            "manifest.json",
        )
        corpus[f"extra .pt member ({label})"] = (
            lambda c, d=payload: _plant(c, "model.pt", d),
            "unexpected file name 'model.pt'",
        )
        corpus[f"torch.save zip as safetensors ({label})"] = (
            lambda c: _plant(c, "model.safetensors", _torch_zip(canary)),
            "model.safetensors",
        )
    for name in (
        "../evil.safetensors",
        "..",
        "/etc/passwd",
        "sub/x.safetensors",
        "a\\b.safetensors",
        ".hidden.safetensors",
        "../../state.json",
    ):
        corpus[f"path traversal {name!r}"] = (lambda c, n=name: _listing(c, n, b"x"), "unsafe file name")
    for claimed in (1 << 31, 1 << 40, (1 << 64) - 1):
        header = claimed.to_bytes(8, "little") + b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
        corpus[f"oversized header {claimed}"] = (
            lambda c, h=header: _plant(c, "model.safetensors", h + b"\0" * 4),
            "header length",
        )
    return corpus


def _torch_zip(canary: Path) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"w": _Canary(canary)}, buffer)
    return buffer.getvalue()


CASES = sorted(_corpus(Path("unused")))


@pytest.mark.parametrize("case", CASES)
def test_poisoned_checkpoint_is_refused_and_runs_no_code(tmp_path: Path, case: str) -> None:
    canary = tmp_path / "canary"
    poison, reason = _corpus(canary)[case]
    root = tmp_path / "ckpts"
    ckpt = save_checkpoint(root, step=1, tensors={"model": {"w": torch.ones(2)}}, meta={}, fingerprint=FP)
    poison(ckpt)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt, expected_fingerprint=FP)
    assert reason in str(info.value) and str(ckpt) in str(info.value)
    assert latest_checkpoint(root, expected_fingerprint=FP) is None  # refused there too, never half-loaded
    assert not canary.exists()


def test_the_payloads_are_live(tmp_path: Path) -> None:
    """The corpus is only a proof if its payloads really run when unpickled the unsafe way."""
    canary = tmp_path / "canary"
    pickle.loads(pickle.dumps(_Canary(canary)))
    assert canary.exists()
    canary.unlink()
    import io

    torch.load(io.BytesIO(_torch_zip(canary)), weights_only=False)
    assert canary.exists()


def test_resume_from_a_poisoned_run_constructs_nothing(tiny_config, tmp_path: Path) -> None:
    """Through training: a run whose only checkpoint is poisoned is refused (not restarted from step 0)."""
    from modrl.agents.common.training import run_training

    config = tiny_config("train.total_timesteps=128", "train.checkpoint_every=64")
    (tmp_path / "run").mkdir()
    run_training(config, tmp_path / "run")
    canary = tmp_path / "canary"
    for ckpt in (tmp_path / "run" / "checkpoints").iterdir():
        _plant(ckpt, "policy.safetensors", pickle.dumps(_Canary(canary)))
    metrics = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    with pytest.raises(CheckpointError, match=r"no checkpoint in .* verifies"):
        run_training(config, tmp_path / "run", resume=True)
    assert not canary.exists() and (tmp_path / "run" / "metrics.jsonl").read_bytes() == metrics


def _sources() -> list[Path]:
    root = Path(modrl.__file__).resolve().parent.parent
    return [p for package in ("modrl", "envs", "agents") for p in sorted((root / package).rglob("*.py"))]


def scan(sources: list[Path]) -> list[str]:
    """``path:line: problem`` for each pickle-family import, unsafe ``torch.load`` and non-safe ``yaml`` load."""
    problems = []
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module = ".".join(path.with_suffix("").parts[-2:])
        safe_yaml_calls = _safe_yaml_loads(tree)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in PICKLE_FAMILY and module not in ALLOWLIST:
                    problems.append(f"{path}:{node.lineno}: imports {name}")
            if isinstance(node, ast.Call) and _is_attr(node.func, ("torch", "th"), "load"):
                safe = any(
                    k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                    for k in node.keywords
                )
                if not safe:
                    problems.append(f"{path}:{node.lineno}: torch.load without weights_only=True")
            for attr in ("load", "unsafe_load", "full_load", "load_all"):
                if _is_attr(node, ("yaml",), attr) and node not in safe_yaml_calls:
                    problems.append(f"{path}:{node.lineno}: yaml.{attr} (use yaml.safe_load)")
    return problems


def _safe_yaml_loads(tree: ast.AST) -> set[ast.AST]:
    """The ``yaml.load`` attribute nodes called with ``Loader=`` a class this module derives from yaml.SafeLoader."""
    safe_loaders = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and any(_is_attr(base, ("yaml",), "SafeLoader") for base in node.bases)
    }
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and _is_attr(node.func, ("yaml",), "load")]
    return {
        call.func
        for call in calls
        if any(
            k.arg == "Loader" and isinstance(k.value, ast.Name) and k.value.id in safe_loaders for k in call.keywords
        )
    }


def _loader_name(call: ast.Call) -> str | None:
    loader = next((k.value for k in call.keywords if k.arg == "Loader"), None)
    return loader.id if isinstance(loader, ast.Name) else None


def _safe_loaders(tree: ast.AST) -> set[str]:
    """Names of the classes a module defines directly on ``yaml.SafeLoader``."""
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and any(_is_attr(base, ("yaml",), "SafeLoader") for base in node.bases)
    }


def _is_attr(node: ast.AST, owners: tuple[str, ...], attr: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == attr
        and isinstance(node.value, ast.Name)
        and node.value.id in owners
    )


def test_package_never_imports_pickle_family_or_calls_torch_load_unsafely() -> None:
    sources = _sources()
    assert len(sources) > 30 and any(p.name == "checkpoint.py" for p in sources)
    assert scan(sources) == []


def test_the_scan_catches_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "modrl" / "bad.py"
    bad.parent.mkdir()
    bad.write_text(
        "import dill\nfrom cloudpickle import loads\nimport pickle as p\nimport torch\ntorch.load('x')\n"
        "torch.load('x', weights_only=False)\ntorch.load('x', weights_only=True)\nimport yaml\n"
        "yaml.load('a')\nyaml.safe_load('a')\nclass S(yaml.SafeLoader): pass\nyaml.load('a', Loader=S)\n"
        "class U(yaml.Loader): pass\nyaml.load('a', Loader=U)\n"
    )
    found = [line.split(": ", 1)[1] for line in scan([bad])]
    assert found == [
        "imports dill",
        "imports cloudpickle",
        "imports pickle",
        "torch.load without weights_only=True",
        "torch.load without weights_only=True",
        "yaml.load (use yaml.safe_load)",
        "yaml.load (use yaml.safe_load)",
    ]
