"""Run every test file alone, each in its own pytest process, and report the files that fail.

The suite's contract is that each test file passes alone (it imports what it uses and shares fixtures only through
``tests/conftest.py``); a file that passes only after another one ran (an import, a registration, a global setting
left behind) fails here. CI runs the whole suite with the files in a random order (``tests/conftest.py``); this is the
check of each file on its own.

Usage::

    python scripts/check_files_alone.py [FILE ...] [--jobs N] [--marker EXPR] [--timeout S]

Without files it runs every ``tests/test_*.py``. Each file runs as ``python -m pytest -q -p no:cacheprovider FILE
-m EXPR`` (default ``not slow``; ``--marker ''`` runs every test) from the repository root, ``--jobs`` at a time.
Prints one row per file (passed / FAILED / TIMEOUT / no tests, with the seconds it took), then the end of the output
of each file that did not pass, and exits 1 if any did not.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: pytest's exit code when every test of the file was deselected (e.g. a file of slow tests under ``not slow``).
NO_TESTS = 5
#: Lines of a failing file's output shown in the report.
TAIL_LINES = 40


@dataclass(frozen=True)
class Result:
    path: str
    status: str  # "passed", "no tests", "FAILED", "TIMEOUT"
    seconds: float
    output: str

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "no tests")


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run_file(path: str, marker: str, timeout: float) -> Result:
    """Run ``path`` alone in a fresh pytest process."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path]
    if marker:
        command += ["-m", marker]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode(errors="replace")
        return Result(path, "TIMEOUT", time.monotonic() - start, output + f"\n(killed after {timeout:g} s)")
    status = {0: "passed", NO_TESTS: "no tests"}.get(done.returncode, "FAILED")
    if status == "FAILED":
        status = f"FAILED (exit {done.returncode})"
    return Result(path, status, time.monotonic() - start, done.stdout + done.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="test files (default: every tests/test_*.py)")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="files run at once (default 1)")
    parser.add_argument("--marker", "-m", default="not slow", help="pytest -m expression (default 'not slow')")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per file before it counts as hung")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    files = args.files or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py"))
    missing = [f for f in files if not (ROOT / f).is_file() and not Path(f).is_file()]
    if missing:
        parser.error(f"no such test file: {', '.join(missing)}")
    width = max(len(f) for f in files)
    start = time.monotonic()
    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for result in pool.map(lambda f: run_file(f, args.marker, args.timeout), files):
            say(f"{result.path:<{width}}  {result.status:<16} {result.seconds:7.1f} s")
            results.append(result)
    bad = [r for r in results if not r.ok]
    for result in bad:
        tail = "\n".join(result.output.rstrip().splitlines()[-TAIL_LINES:])
        say(f"\n---- {result.path}: {result.status} ----\n{tail}")
    passed = len(results) - len(bad)
    say(
        f"\n{len(results)} files alone in {time.monotonic() - start:.0f} s: {passed} passed, {len(bad)} failed"
        + (f" ({', '.join(r.path for r in bad)})" if bad else "")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
