"""experiments/options/option_critic_curve.py (run as a subprocess: nothing imports experiments/): the table's means
over seeds at the chosen frames, interpolation between logged points, non-finite values dropped, smoothing, the PNG,
and errors that name the run directory and the tag."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "options" / "option_critic_curve.py"
DURATION, BETA, SUCCESS = "modrl/options/mean_duration", "modrl/option_critic/termination_prob", "modrl/success/mean"
ROWS = {DURATION: "mean option duration (steps)", BETA: "termination prob", SUCCESS: "training success"}
STEPS = [1000 * k for k in range(1, 9)]  # table frames of the synthetic runs: 1 k ... 8 k
HALF = [500 + 1000 * k for k in range(9)]  # 500 ... 8500: every table frame lies halfway between two logged points


def _write_run(run: Path, scalars: Mapping[str, Sequence[tuple[int, float]]]) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run / "tb"))
    for tag, points in scalars.items():
        for step, value in points:
            writer.add_scalar(tag, value, step)
    writer.close()
    return run


def _curve(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT
    )


def _table(text: str) -> dict[str, list[float]]:
    """Markdown table -> {row name: values}; the ``frames`` row keeps the column labels' numbers (in k)."""
    rows: dict[str, list[float]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] and not cells[0].startswith("---"):
            rows[cells[0]] = [float(c.removesuffix(" k")) for c in cells[1:]]
    return rows


@pytest.fixture
def synthetic(tmp_path: Path) -> dict[str, list[Path]]:
    """Label ``on``: two runs logged at 1 k ... 8 k. Label ``off``: two runs logged at 0.5 k ... 8.5 k, one of them
    with a zig-zag duration (10, 20, 10, ...: 15 halfway) and a NaN termination probability at 4.5 k."""
    on = [
        _write_run(
            tmp_path / f"on{seed}",
            {
                DURATION: [(s, 2.0 * i + 2 + 2 * seed) for i, s in enumerate(STEPS)],
                BETA: [(s, 0.5 if seed == 0 else 0.1) for s in STEPS],
                SUCCESS: [(s, 0.1 * i if seed == 0 else 1.0) for i, s in enumerate(STEPS)],
            },
        )
        for seed in range(2)
    ]
    off = [
        _write_run(
            tmp_path / "off0",
            {
                DURATION: [(s, 10.0 if i % 2 else 20.0) for i, s in enumerate(HALF)],
                BETA: [(s, math.nan if s == 4500 else 0.2) for s in HALF],
                SUCCESS: [(s, 0.5) for s in HALF],
            },
        ),
        _write_run(
            tmp_path / "off1",
            {
                DURATION: [(s, s / 1000) for s in HALF],
                BETA: [(s, 0.6) for s in HALF],
                SUCCESS: [(s, 0.25) for s in HALF],
            },
        ),
    ]
    return {"on": on, "off": off}


def _runs_arg(label: str, runs: Sequence[Path]) -> list[str]:
    return ["--runs", f"{label}={','.join(str(r) for r in runs)}"]


def test_table_holds_the_means_over_seeds_and_the_png_is_written(
    synthetic: dict[str, list[Path]], tmp_path: Path
) -> None:
    png, out = tmp_path / "fig" / "curve.png", tmp_path / "curve.md"
    result = _curve(
        *_runs_arg("on", synthetic["on"]), *_runs_arg("off", synthetic["off"]), "--png", str(png), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    table = _table(out.read_text())
    assert out.read_text() in result.stdout
    assert table["frames"] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert table[f"{ROWS[DURATION]}, on"] == [3.0 + 2 * i for i in range(8)]  # (2i+2 + 2i+4) / 2
    assert table[f"{ROWS[DURATION]}, off"] == [(15.0 + k) / 2 for k in range(1, 9)]  # (15 + f / 1000) / 2
    assert table[f"{ROWS[BETA]}, on"] == [0.3] * 8
    assert table[f"{ROWS[BETA]}, off"] == [0.4] * 8  # the NaN at 4.5 k is dropped, not spread
    assert table[f"{ROWS[SUCCESS]}, on"] == pytest.approx([(0.1 * i + 1.0) / 2 for i in range(8)], abs=0.006)
    assert table[f"{ROWS[SUCCESS]}, off"] == [0.38] * 8  # 0.375 printed with 2 decimals
    assert len(table) == 7
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_smoothing_and_points(synthetic: dict[str, list[Path]], tmp_path: Path) -> None:
    result = _curve(
        *_runs_arg("on", synthetic["on"]), "--png", str(tmp_path / "c.png"), "--smooth", "2", "--points", "3"
    )
    assert result.returncode == 0, result.stderr
    table = _table(result.stdout)
    assert table["frames"] == [1, 4.5, 8]  # linspace(1000, 8000, 3)
    # trailing mean of 2 points: run 0 -> 2, 3, 5, 7, ...; run 1 -> 4, 5, 7, 9, ...; at 4.5 k halfway 8 and 10
    assert table[f"{ROWS[DURATION]}, on"] == [3.0, 9.0, 16.0]


def test_errors_name_the_directory_and_the_tag(synthetic: dict[str, list[Path]], tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = _curve(*_runs_arg("on", [synthetic["on"][0], missing]), "--png", str(tmp_path / "c.png"))
    assert result.returncode == 2 and f"{missing}: no such run directory" in result.stderr, result.stderr
    partial = _write_run(tmp_path / "partial", {DURATION: [(1000, 2.0)], BETA: [(1000, 0.1)]})
    result = _curve(*_runs_arg("x", [partial]), "--png", str(tmp_path / "c.png"))
    assert result.returncode == 2 and f"{partial}: tag '{SUCCESS}' not logged" in result.stderr, result.stderr
    (tmp_path / "empty").mkdir()
    result = _curve(*_runs_arg("x", [tmp_path / "empty"]), "--png", str(tmp_path / "c.png"))
    assert result.returncode == 2 and "no TensorBoard event files" in result.stderr, result.stderr
    assert not (tmp_path / "c.png").exists()


def test_reads_a_real_option_critic_run(tmp_path: Path) -> None:
    from modrl.cli.main import main

    config = tmp_path / "oc.yaml"
    config.write_text(
        json.dumps(
            {
                "num_options": 2,
                "net": {"channels": [8], "features_dim": 16, "hidden": [16], "critic_hidden": [16], "embed_dim": 4},
                "total_timesteps": 192,
                "eval_episodes": 0,
                "env": {"suite": "minigrid-tiny", "n_envs": 2, "max_episode_steps": 12},
                "algo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
            }
        )
    )
    assert main(["options", "critic", str(config), "--run-dir", str(tmp_path / "run")]) == 0
    result = _curve(*_runs_arg("reg 0.01", [tmp_path / "run"]), "--png", str(tmp_path / "c.png"), "--points", "2")
    assert result.returncode == 0, result.stderr
    table = _table(result.stdout)
    assert table["frames"] == [0.064, 0.192]  # three rollouts of 2 envs x 32 steps
    durations = table[f"{ROWS[DURATION]}, reg 0.01"]
    assert min(durations) >= 1.0 and max(durations) <= 12.0  # an option call lasts 1 to max_episode_steps steps
    assert all(0.0 <= v <= 1.0 for v in table[f"{ROWS[BETA]}, reg 0.01"] + table[f"{ROWS[SUCCESS]}, reg 0.01"])
    # Every cell recomputed from the run's raw TensorBoard rows: the logged value at that frame (linear between
    # logged frames, the last value of a repeated frame), printed with the table's decimals.
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={SCALARS: 0}).Reload()
    frames = [round(1000 * f) for f in table["frames"]]
    for tag, decimals in ((DURATION, 1), (BETA, 3), (SUCCESS, 2)):
        points = {int(e.step): float(e.value) for e in events.Scalars(tag)}
        steps = sorted(s for s in points if math.isfinite(points[s]))
        for frame, cell in zip(frames, table[f"{ROWS[tag]}, reg 0.01"], strict=True):
            lo = max(s for s in steps if s <= frame)
            hi = min(s for s in steps if s >= frame)
            value = points[lo] if hi == lo else points[lo] + (points[hi] - points[lo]) * (frame - lo) / (hi - lo)
            assert cell == float(f"{value:.{decimals}f}"), (tag, frame, cell, value, points)
