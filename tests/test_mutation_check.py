"""The suite's own check: scripts/mutation_check.py plants known bugs and the targeted tests must fail on each.

The fast test keeps the mutants in step with the sources (each text to replace occurs exactly once, each listed test
file exists); the slow one runs the whole check as CI does (``bash scripts/test.sh`` runs the slow tests too).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "mutation_check.py"


def _mutants() -> tuple[Any, ...]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("mutation_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up while the class is made
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name].MUTANTS


def test_every_mutant_still_matches_the_sources_once() -> None:
    mutants = _mutants()
    assert len({m.name for m in mutants}) == len(mutants) >= 5
    for mutant in mutants:
        text = (ROOT / mutant.path).read_text(encoding="utf-8")
        for old, new in mutant.edits:
            assert text.count(old) == 1 and old != new, (mutant.name, old)
        for target in mutant.tests:
            assert (ROOT / target.split("::")[0]).is_file(), (mutant.name, target)


@pytest.mark.slow
def test_every_planted_bug_fails_its_tests(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"  # where the script makes its temporary copy of the tree
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SURVIVED" not in done.stdout and done.stdout.count(" killed ") == len(_mutants())
    # The copy is removed (other tools may leave their caches in TMPDIR, e.g. torch's torchinductor_<user>).
    assert not list(scratch.glob("modrl-mutants-*"))
