"""scripts/check_files_alone.py: each test file in its own pytest process, failures, hangs and files without fast
tests told apart, exit 1 when a file does not pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_files_alone.py"

FILES = {
    "test_ok.py": "def test_ok():\n    assert 1 + 1 == 2\n",
    # Passes only if another file ran first and left a global behind: alone it fails.
    "test_needs_other.py": "import builtins\n\n\ndef test_uses_global():\n    assert builtins.LEFT_BEHIND\n",
    "test_only_slow.py": "import pytest\n\n\n@pytest.mark.slow\ndef test_slow():\n    pass\n",
    "test_hangs.py": "import time\n\n\ndef test_hangs():\n    time.sleep(60)\n",
}


def test_each_file_runs_alone_and_the_failures_are_reported(tmp_path: Path) -> None:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    paths = [str(tmp_path / name) for name in FILES]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *paths, "--jobs", "2", "--timeout", "8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    rows = {
        line.split()[0]: line.split()[1]
        for line in done.stdout.splitlines()
        if line.startswith(str(tmp_path)) and line.rstrip().endswith(" s")
    }
    assert rows == {
        paths[0]: "passed",
        paths[1]: "FAILED",
        paths[2]: "no",  # "no tests": every test deselected by -m 'not slow'
        paths[3]: "TIMEOUT",
    }, done.stdout
    assert f"---- {paths[1]}: FAILED (exit 1) ----" in done.stdout and "LEFT_BEHIND" in done.stdout
    assert done.stdout.rstrip().endswith(f"s: 2 passed, 2 failed ({paths[1]}, {paths[3]})"), done.stdout


def test_all_passing_files_exit_0(tmp_path: Path) -> None:
    (tmp_path / "test_ok.py").write_text(FILES["test_ok.py"])
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "test_ok.py")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "1 passed, 0 failed" in done.stdout, done.stdout + done.stderr
