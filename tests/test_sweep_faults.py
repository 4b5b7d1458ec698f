"""Fault injection for `modrl sweep` (issue 7): a trial that dies is recorded failed with its error while the others
complete, and `modrl sweep --resume` finishes it from its checkpoint without re-running the completed ones.

The fault is a ``MODRL_FAULT`` spec in the sweep's environment, which every trial (a `modrl train` subprocess)
inherits; it fires on the third rollout of a trial, so only the trial long enough to reach it fails. The other rows
of the sweep fault table are in tests/test_sweep.py: SIGKILL of the sweep process
(``test_resume_after_a_killed_sweep_finishes_the_rest_without_rerunning``) and SIGTERM to the sweep
(``test_sigterm_to_the_sweep_stops_trials_cleanly``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from modrl.cli.main import main
from modrl.faults import FAULT_ENV
from tests.conftest import TINY

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and process groups")

ROLLOUT = TINY["algo"]["n_steps"] * TINY["env"]["n_envs"]  # 64 steps per rollout


def status(sweep_dir: Path, trial_id: str) -> dict[str, Any]:
    return json.loads((sweep_dir / "status" / f"{trial_id}.json").read_text())


def files_and_mtimes(run_dir: Path) -> list[tuple[Path, int]]:
    return sorted((p, p.stat().st_mtime_ns) for p in run_dir.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("action", "error"), [("raise", "InjectedFault: injected fault at rollout-end hit 3"), ("kill", "SIGKILL")]
)
def test_a_crashing_trial_fails_alone_and_resumes_from_its_checkpoint(tmp_path: Path, action: str, error: str) -> None:
    base = {**TINY, "train": {"total_timesteps": 4 * ROLLOUT, "checkpoint_every": ROLLOUT, "eval_episodes": 1}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {
        "name": "faults",
        "base": "base.yaml",
        "seeds": [0],
        "grid": {"train.total_timesteps": [ROLLOUT, 4 * ROLLOUT]},
        "workers": 2,
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    sweep_dir = tmp_path / "sweep"
    env = {**os.environ, "OMP_NUM_THREADS": "1", FAULT_ENV: f"rollout-end:3:{action}"}
    command = [sys.executable, "-m", "modrl.cli.main", "sweep", "sweep.yaml", "--sweep-dir", str(sweep_dir)]
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    short, long = (t["id"] for t in json.loads((sweep_dir / "trials.json").read_text()))
    assert f"failed: {long}" in out.stdout and "1 completed, 1 failed" in out.stdout

    done = status(sweep_dir, short)
    assert (done["status"], done["attempts"], done["returncode"]) == ("completed", 1, 0)
    crashed = status(sweep_dir, long)
    assert crashed["status"] == "failed" and crashed["returncode"] != 0 and error in crashed["error"]
    crashed_run = sweep_dir / "trials" / long
    checkpoints = sorted(p.name for p in (crashed_run / "checkpoints").glob("step-*") if (p / "manifest.json").exists())
    assert checkpoints and checkpoints[-1] <= f"step-{3 * ROLLOUT:012d}", checkpoints  # nothing after the fault
    kept = files_and_mtimes(sweep_dir / "trials" / short)

    assert main(["sweep", "--resume", str(sweep_dir)]) == 0  # MODRL_FAULT is not set in this process
    assert status(sweep_dir, short) == done and files_and_mtimes(sweep_dir / "trials" / short) == kept  # not re-run
    record = status(sweep_dir, long)
    assert (record["status"], record["attempts"], record["returncode"]) == ("completed", 2, 0)
    log = (sweep_dir / "logs" / f"{long}.log").read_text()
    resumed = re.search(r"resumed from \S+ \(step (\d+)\)", log.split("attempt 2 (resume)")[1])
    assert resumed is not None and ROLLOUT <= int(resumed.group(1)) <= 3 * ROLLOUT, log
    meta = json.loads((crashed_run / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["step"] == 4 * ROLLOUT
    steps = [json.loads(line)["step"] for line in (crashed_run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [ROLLOUT * k for k in range(1, 5)]  # one line per rollout: none lost, none twice
