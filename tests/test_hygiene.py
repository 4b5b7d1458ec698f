"""Resource hygiene: repeated tiny trainings in one process keep memory bounded and leave no child process."""

from __future__ import annotations

import os
from pathlib import Path

from modrl.agents.common.training import TrainStatus, run_training

MARGIN_MB = 60.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _children() -> list[int]:
    """Child processes of this process (zombies included: an unreaped child is a leak too)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == me:
                found.append(int(entry.name))
    return found


def test_five_trainings_keep_memory_bounded_and_leak_no_process(tiny_config, tmp_path: Path) -> None:
    config = tiny_config("train.total_timesteps=256")
    before = _children()
    rss = []
    for i in range(5):
        run_dir = tmp_path / f"run{i}"
        run_dir.mkdir()
        assert run_training(config, run_dir).status is TrainStatus.COMPLETED
        rss.append(_rss_mb())
        assert _children() == before, f"run {i} left child processes"
    growth = rss[4] - rss[1]
    assert growth < MARGIN_MB, f"RSS grew {growth:.1f} MB from run 2 to run 5: {[round(r) for r in rss]}"
