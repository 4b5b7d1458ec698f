"""modrl.report on hand-written sweep and run directories with known numbers, and on one real tiny training run."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from modrl.cli.main import main as main_cli
from modrl.report import ReportError, TrialStatus, build_report, collect
from modrl.report.plots import plot_r_matrix
from modrl.stats import bootstrap_ci, iqm
from tests.conftest import TINY

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODULAR, MONO = "agent.kind=modular", "agent.kind=monolithic"
PACKAGES = {"numpy": "2.4.6", "torch": "2.13.0+cpu"}
# Per trial: success of tasks a, b (train) and c (test) in the evaluation the report must pick.
SUCCESS = {
    "mod-0": (1.0, 0.6, 0.5),
    "mod-1": (0.8, 0.4, 0.1),
    "mod-2": (0.6, 0.2, 0.3),
    "mod-3": (0.2, 0.0, 0.9),
    "mono-0": (0.5, 0.5, 0.0),
    "mono-1": (0.7, 0.3, 0.2),
    "mono-2": (0.9, 0.7, 0.4),
    "mono-3": (0.0, 0.0, 0.0),  # failed: must not enter the tables
}
FRAMES = {"mod-0": 192, "mod-1": 256, "mod-2": 448, "mod-3": None, "mono-0": 320, "mono-1": None, "mono-2": None}
STEPS = [64 * i for i in range(1, 9)]


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def eval_file(run_dir: Path, step: int, mode: str, episodes: int, success: tuple[float, ...], modular: bool) -> None:
    splits = ["train", "train", "test"]
    tasks = [
        {
            "task": name,
            "split": split,
            "episodes": episodes,
            "success_rate": s,
            "mean_return": 0.5 * s,
            "mean_length": 10.0,
            "module_usage": [s / 2, 1 - s / 2] if modular else None,
        }
        for name, split, s in zip("abc", splits, success, strict=True)
    ]
    data = {"step": step, "deterministic": mode == "det", "seed_base": 10**9, "tasks": tasks}
    data["module_names"] = ["skill_0", "skill_1"] if modular else None
    write_json(run_dir / "eval" / f"step-{step:012d}-{mode}-{episodes}ep.json", data)


def curve(frames: int | None) -> list[dict[str, Any]]:
    """success_mean: None at the first rollout, then 0.5, reaching 0.95 at ``frames`` (or never)."""
    rows = []
    for step in STEPS:
        value = None if step == STEPS[0] else (0.95 if frames is not None and step >= frames else 0.5)
        rows.append(
            {"step": step, "wall_s": 0.1, "fps": 500.0, "success": {}, "success_mean": value, "return_mean": value}
        )
    return rows


def write_trial(sweep: Path, trial_id: str, *, kind: str, seed: int, failed: bool) -> dict[str, Any]:
    run_dir = sweep / "trials" / trial_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": "syn", "seed": seed, "agent": {"kind": kind}}))
    argv = ["modrl", "train", "base config.yaml", "--set", f"agent.kind={kind}", "--set", f"seed={seed}"]
    meta = {
        "seed": seed,
        "argv": argv,
        "packages": PACKAGES,
        "python": "3.11.7",
        "platform": "Linux",
        "git": {"commit": "abc123", "dirty": trial_id == "mod-1"},
        "status": "failed" if failed else "completed",
    }
    write_json(run_dir / "meta.json", meta)
    modular = kind == "modular"
    if not failed:
        eval_file(run_dir, STEPS[-1], "det", 10, SUCCESS[trial_id], modular)
        eval_file(run_dir, STEPS[-1], "det", 4, (0.01, 0.01, 0.01), modular)  # fewer episodes: not chosen
        eval_file(run_dir, STEPS[-1], "stoch", 10, (0.02, 0.02, 0.02), modular)  # stochastic: not chosen
        eval_file(run_dir, STEPS[3], "det", 10, (0.03, 0.03, 0.03), modular)  # older: not chosen
        lines = [json.dumps(row) for row in curve(FRAMES[trial_id])]
        (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    status = {
        "id": trial_id,
        "status": "failed" if failed else "completed",
        "returncode": 1 if failed else 0,
        "error": "Traceback (most recent call last):\nRuntimeError: boom in mono-3" if failed else None,
        "attempts": 1,
        "started": "t0",
        "finished": "t1",
        "seconds": 1.0,
    }
    write_json(sweep / "status" / f"{trial_id}.json", status)
    return {
        "id": trial_id,
        "group": {"agent.kind": kind},
        "seed": seed,
        "overrides": [],
        "run_dir": f"trials/{trial_id}",
    }


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "sweep"
    root.mkdir()
    entries = [
        write_trial(root, f"{prefix}-{seed}", kind=kind, seed=seed, failed=(prefix, seed) == ("mono", 3))
        for prefix, kind in (("mod", "modular"), ("mono", "monolithic"))
        for seed in range(4)
    ]
    write_json(root / "trials.json", entries)
    (root / "sweep.yaml").write_text(
        "name: syn-sweep\nseeds: [0, 1, 2, 3]\ngrid:\n  agent.kind: [modular, monolithic]\n"
    )
    return root


def section(markdown: str, title: str) -> str:
    """The text of the ``## title`` section, up to the next ``## `` heading."""
    start = markdown.index(f"## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end >= 0 else None]


def row(text: str, *first: str) -> list[str]:
    """Cells of the only table row in ``text`` whose leading cells are ``first``."""
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in text.splitlines() if line.startswith("| ")]
    found = [r for r in rows if r[: len(first)] == list(first)]
    assert len(found) == 1, (first, rows)
    return found[0]


def expected_cells(values: list[float], digits: int = 3) -> list[str]:
    low, high = bootstrap_ci(values, seed=0)
    f = f"{{:.{digits}f}}"
    return [str(len(values)), f.format(np.mean(values)), f.format(iqm(values)), f"[{f.format(low)}, {f.format(high)}]"]


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 5_000, path


def test_collect_sweep(sweep: Path) -> None:
    collection = collect(sweep)
    assert collection.kind == "sweep" and collection.name == "syn-sweep"
    assert collection.groups == (MODULAR, MONO)
    failed = [t for t in collection.trials if t.status is TrialStatus.FAILED]
    assert [t.id for t in failed] == ["mono-3"] and "boom" in (failed[0].error or "")
    chosen = collection.trials[0].eval
    assert chosen is not None and chosen.path.name == "step-000000000512-det-10ep.json"
    assert [t.success_rate for t in chosen.tasks] == list(SUCCESS["mod-0"])


def test_empty_group_and_unstarted_trial(sweep: Path) -> None:
    entries = json.loads((sweep / "trials.json").read_text())
    for entry in entries:
        entry["group"] = {}
    write_json(sweep / "trials.json", entries)
    (sweep / "status" / "mod-3.json").unlink()
    collection = collect(sweep)
    assert collection.groups == ("syn-sweep",)
    assert collection.trials[3].status is TrialStatus.MISSING and not collection.trials[3].usable
    md = build_report(sweep).read_text()
    assert row(section(md, "Trials"), "mod-3")[3] == "missing"
    assert row(section(md, "Success per task"), "a", "train", "syn-sweep")[3] == "6"  # 8 trials - failed - missing


def test_sweep_report_numbers_match_hand_computed_statistics(sweep: Path) -> None:
    md = build_report(sweep).read_text()
    success = section(md, "Success rate (mean over tasks)")
    assert "| group | train n | train mean | train IQM | train 95% CI | test n | test mean |" in success
    for group, prefix, seeds in ((MODULAR, "mod", range(4)), (MONO, "mono", range(3))):
        train = [(SUCCESS[f"{prefix}-{s}"][0] + SUCCESS[f"{prefix}-{s}"][1]) / 2 for s in seeds]
        test = [SUCCESS[f"{prefix}-{s}"][2] for s in seeds]
        assert row(success, group) == [group, *expected_cells(train), *expected_cells(test)]
        returns = section(md, "Return (mean over tasks)")
        assert row(returns, group)[1:5] == expected_cells([0.5 * v for v in train])
        per_task = section(md, "Success per task")
        assert row(per_task, "c", "test", group)[3:] == expected_cells(test)
    # IQM differs from the mean for 4 seeds: 0.8, 0.6, 0.4, 0.1 -> mean 0.475, IQM mean(0.4, 0.6) = 0.5.
    assert row(success, MODULAR)[2:4] == ["0.475", "0.500"]


def test_frames_to_threshold_from_metrics(sweep: Path) -> None:
    md = build_report(sweep, threshold=0.9).read_text()
    frames = section(md, "Frames to 0.9 training success")
    assert row(frames, MODULAR) == [MODULAR, "3/4", *expected_cells([192.0, 256.0, 448.0], digits=0)[1:]]
    assert row(frames, MONO) == [MONO, "1/3", "320", "320", "[320, 320]"]
    never = section(build_report(sweep, threshold=0.99).read_text(), "Frames to 0.99 training success")
    assert row(never, MODULAR) == [MODULAR, "0/4", "—", "—", "—"]


def test_routing_health_of_each_group_with_routing_weights(sweep: Path) -> None:
    """Train tasks a, b route ``[s/2, 1 - s/2]`` (their success s): MI from the entropies, by hand; mod-1 and mod-2
    put both tasks on module 1 (not specialised), mod-3 gives module 1 0.95 of all weight (collapsed)."""

    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    mis, tops = [], []
    for seed in range(4):
        a, b = SUCCESS[f"mod-{seed}"][:2]
        rows = np.array([[a / 2, 1 - a / 2], [b / 2, 1 - b / 2]])
        mis.append((entropy(rows.mean(axis=0)) - (entropy(rows[0]) + entropy(rows[1])) / 2) / np.log(2))
        tops.append(rows.max(axis=1).min())
    health = section(build_report(sweep).read_text(), "Module usage")
    assert "| group | n | MI mean | MI IQM | MI 95% CI | specialised | collapsed | lowest top weight |" in health
    assert row(health, MODULAR) == [MODULAR, *expected_cells(mis, 2), "0/4", "1/4", f"{np.mean(tops):.2f}"]
    assert f"| {MONO} |" not in health  # no routing weights recorded


def test_sweep_report_lists_trials_figures_and_provenance(sweep: Path) -> None:
    report = build_report(sweep)
    assert report == sweep / "report" / "report.md"
    md = report.read_text()
    trials = section(md, "Trials")
    assert row(trials, "mono-3") == ["mono-3", MONO, "3", "failed", "—", "no"]
    assert row(trials, "mod-0")[3:] == ["completed", "step 512, deterministic, 10 ep/task", "yes"]
    assert "### Error: mono-3 (failed)" in trials and "RuntimeError: boom in mono-3" in trials
    for name in ("learning_curves.png", "success_per_task.png", "module_usage_agent.kind_modular.png"):
        assert_png(report.parent / name)
        assert f"]({name})" in md
    assert not list(report.parent.glob("module_usage_agent.kind_monolithic*"))  # no module usage recorded
    provenance = section(md, "Provenance")
    command = shlex.join(["modrl", "train", "base config.yaml", "--set", "agent.kind=modular", "--set", "seed=1"])
    assert f"- `mod-1` (git abc123 (dirty)): `{command}`" in provenance
    assert "'base config.yaml'" in provenance and "grid:" in provenance
    assert provenance.count("Versions (") == 1 and "| torch | 2.13.0+cpu |" in provenance


def test_differing_versions_are_listed_per_trial(sweep: Path) -> None:
    meta_path = sweep / "trials" / "mono-0" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["packages"] = {**PACKAGES, "torch": "2.14.0"}
    meta_path.write_text(json.dumps(meta))
    provenance = section(build_report(sweep, out_dir=sweep / "elsewhere").read_text(), "Provenance")
    assert provenance.count("Versions (") == 2
    assert "Versions (trials `mono-0`):" in provenance and "| torch | 2.14.0 |" in provenance


def test_single_run_dir_without_splits(sweep: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (sweep / "trials" / "mod-2").rename(run)
    for path in (run / "eval").glob("*.json"):  # drop the split field: every task counts as a training task
        data = json.loads(path.read_text())
        for task in data["tasks"]:
            del task["split"]
        path.write_text(json.dumps(data))
    md = build_report(run).read_text()
    success = section(md, "Success rate (mean over tasks)")
    assert "| group | n | mean | IQM | 95% CI |" in success and "test" not in success
    assert row(success, "syn") == ["syn", "1", "0.367", "0.367", "[0.367, 0.367]"]  # (0.6 + 0.2 + 0.3) / 3
    assert row(section(md, "Trials"), "run")[2:4] == ["2", "completed"]
    assert_png(run / "report" / "learning_curves.png")


def test_continual_results_are_drawn(sweep: Path, tmp_path: Path) -> None:
    write_json(sweep / "trials" / "mod-0" / "continual.json", {"tasks": ["a", "b"], "R": [[0.9, 0.1], [0.5, 0.8]]})
    md = build_report(sweep).read_text()
    assert "](r_matrix_agent.kind_modular.png)" in md
    assert_png(sweep / "report" / "r_matrix_agent.kind_modular.png")
    path = plot_r_matrix([[1.0, 0.0, 0.2], [0.7, 0.9, 0.1], [0.6, 0.8, 1.0]], ["a", "b", "c"], tmp_path / "r.png")
    assert_png(path)
    with pytest.raises(ValueError, match="3 x 3"):
        plot_r_matrix([[1.0, 0.0]], ["a", "b", "c"], tmp_path / "bad.png")


def test_unreadable_inputs_are_named(tmp_path: Path, sweep: Path) -> None:
    with pytest.raises(ReportError, match="neither"):
        build_report(tmp_path / "nothing-here")
    metrics = sweep / "trials" / "mod-0" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 5')  # a write cut short: skipped
    assert len(collect(sweep).trials[0].curve.steps) == len(STEPS)  # type: ignore[union-attr]
    metrics.write_text('{"step": 5\n' + metrics.read_text())
    with pytest.raises(ReportError, match=r"metrics\.jsonl:1"):
        collect(sweep)


def test_report_from_a_real_tiny_run(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "modrl.cli.main", "train", str(config), "--run-dir", str(run)]
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    md = build_report(run).read_text()
    (result,) = (run / "eval").glob("step-*-det-*ep.json")
    tasks = json.loads(result.read_text())["tasks"]
    mean = np.mean([t["success_rate"] for t in tasks])
    assert row(section(md, "Success rate (mean over tasks)"), "tiny") == [
        "tiny",
        "1",
        *[f"{mean:.3f}"] * 2,
        f"[{mean:.3f}, {mean:.3f}]",
    ]
    assert row(section(md, "Trials"), "run")[3:] == ["completed", "step 256, deterministic, 2 ep/task", "yes"]
    for name in ("learning_curves.png", "success_per_task.png", "module_usage_tiny.png"):
        assert_png(run / "report" / name)
    assert shlex.join(json.loads((run / "meta.json").read_text())["argv"]) in md
    assert "## Episodes" not in md  # build_report alone: the strips come from modrl report (it can load policies)
    command = [
        sys.executable,
        "-m",
        "modrl.cli.main",
        "report",
        str(run),
        "--episodes",
        "1",
        "--out",
        str(tmp_path / "r"),
    ]
    out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    md = (tmp_path / "r" / "report.md").read_text()
    from modrl.agents.common.evaluation import load_run_policy
    from modrl.agents.common.show import render_strips
    from modrl.envs import get_suite

    first = get_suite(load_run_policy(run)[0].env.suite).task_names[0]
    episodes = section(md, "Episodes")
    assert f"![{first}](episodes/{first}.png)" in episodes and episodes.count("![") == 1
    strip = np.asarray(Image.open(tmp_path / "r" / "episodes" / f"{first}.png"))
    ((_, _, again),) = render_strips(run, tmp_path / "again", tasks=1)
    assert f"**{first}**: {'success' if again.success else 'failure'}, return {again.total_return:.2f} in " in episodes
    frames = min(again.length, 5) + 1  # up to 5 frames of the episode, then the outcome
    assert strip.shape[1] % frames == 0 and strip.shape[1] // frames > 256  # grid frame + routing panel, each


# ---- continual runs ---------------------------------------------------------------------------------------------
# Per (rule, seed): (R[0][0], R[1][0], R[1][1]) of a two-task run; R[0][1] is 0.1 everywhere.
CONTINUAL = {
    ("none", 0): (0.9, 0.1, 0.8),
    ("none", 1): (0.7, 0.3, 1.0),
    ("none", 2): (1.0, 0.0, 0.9),
    ("freeze_grow", 0): (0.9, 0.9, 0.6),
    ("freeze_grow", 1): (0.8, 0.8, 0.7),
}
ADDED = {"none": 0, "freeze_grow": 1_234}


def write_continual_run(
    run_dir: Path,
    rule: str,
    seed: int,
    *,
    rows: int = 2,
    status: str = "completed",
    reference: bool = False,
    strength: float = 1.0,
) -> Path:
    a, b, c = CONTINUAL[(rule, seed)]
    rule_config = {"kind": rule, "strength": strength, "modules_per_task": 1}
    config = {
        "name": "tiny-continual",
        "seed": seed,
        "rule": rule_config,
        "sequence": {"tasks": ["empty5", "emptyrand5"]},
    }
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    argv = ["modrl", "continual", "tiny.yaml", "--set", f"rule.kind={rule}", "--set", f"seed={seed}"]
    write_json(
        run_dir / "meta.json",
        {
            "seed": seed,
            "argv": argv,
            "packages": PACKAGES,
            "python": "3.11.7",
            "platform": "Linux",
            "git": None,
            "status": status,
        },
    )
    stages = [
        {
            "task": "empty5",
            "start_step": 0,
            "end_step": 128,
            "auc": 0.5,
            "rule_phase": None,
            "params": {"trainable": 900, "frozen": 0, "active": 900, "added": 900},
        },
        {
            "task": "emptyrand5",
            "start_step": 128,
            "end_step": 256,
            "auc": 0.75,
            "rule_phase": "grown",
            "params": {"trainable": 300, "frozen": 900, "active": 900 + ADDED[rule], "added": ADDED[rule]},
        },
    ]
    record = {
        "tasks": ["empty5", "emptyrand5"],
        "R": [[a, 0.1], [b, c]][:rows],
        "R_initial": [0.0, 0.05],
        "rule": rule_config,
        "stages": stages[:rows],
        "reference_auc": {"empty5": 0.5, "emptyrand5": 0.5} if reference else {},
        "complete": rows == 2,
    }
    write_json(run_dir / "continual.json", record)
    return run_dir


def mean_ci(values: list[float], digits: int = 3) -> str:
    low, high = bootstrap_ci(values, seed=0)
    f = f"{{:.{digits}f}}"
    return f"{f.format(np.mean(values))} [{f.format(low)}, {f.format(high)}]"


def test_report_of_one_continual_run(tmp_path: Path) -> None:
    run = write_continual_run(tmp_path / "run", "freeze_grow", 0, reference=True)
    collection = collect(run)
    assert collection.kind == "continual" and collection.groups == ("freeze_grow",)
    report = build_report(run)
    md = report.read_text()
    r_matrix = section(md, "R matrix")
    assert "| (untrained) | 0.00 | 0.05 |" in r_matrix and "| emptyrand5 | 0.90 | 0.60 |" in r_matrix
    assert "](r_matrix.png)" in r_matrix
    assert_png(report.parent / "r_matrix.png")
    metrics = section(md, "Continual metrics")
    assert row(metrics, "average forgetting") == ["average forgetting", "0.000"]  # (0.9 - 0.9 + 0) / 2
    assert row(metrics, "backward transfer (BWT)")[1] == "0.000"
    # FT_i = (AUC_i - 0.5) / (1 - 0.5): stage 0 -> 0, stage 1 -> 0.5; mean 0.25.
    assert row(metrics, "forward transfer (FT)")[1] == "0.250"
    assert row(metrics, "final mean success")[1] == "0.750"
    assert row(metrics, "parameters added after the first task")[1] == "1,234"
    assert row(metrics, "1", "emptyrand5", "0.600") == [
        "1",
        "emptyrand5",
        "0.600",
        "0.600",
        "0.000",
        "0.750",
        "0.500",
        "0.500",
    ]
    assert row(metrics, "1", "emptyrand5", "128-256") == [
        "1",
        "emptyrand5",
        "128-256",
        "300",
        "900",
        "2,134",
        "1,234",
        "grown",
    ]
    comparison = section(md, "Comparison of rules")
    assert row(comparison, "freeze_grow") == [
        "freeze_grow",
        "1/1",
        "0",
        "0.000 [0.000, 0.000]",
        "0.000 [0.000, 0.000]",
        "0.250 [0.250, 0.250]",
        "0.750 [0.750, 0.750]",
        "1234 [1234, 1234]",
    ]
    assert "modrl continual tiny.yaml --set rule.kind=freeze_grow --set seed=0" in section(md, "Provenance")


def test_report_of_a_continual_run_in_progress(tmp_path: Path) -> None:
    run = write_continual_run(tmp_path / "run", "none", 1, rows=1, status="interrupted")
    md = build_report(run).read_text()
    assert "in progress: 1 of 2 stages evaluated" in md and "| empty5 | 0.70 | 0.10 |" in md
    assert "Not computed until every task has its row of R." in md
    assert not (run / "report" / "r_matrix.png").exists()
    assert row(section(md, "Comparison of rules"), "none")[1:4] == ["0/1", "—", "—"]


def test_directory_of_continual_runs_gives_one_comparison_table(tmp_path: Path) -> None:
    root = tmp_path / "runs" / "continual"
    for rule, seed in CONTINUAL:
        write_continual_run(root / f"tiny-{rule}-{seed}", rule, seed)
    write_continual_run(root / "tiny-none-9-in-progress", "none", 1, rows=1, status="running")
    (root / "not-a-run").mkdir()
    collection = collect(root)
    assert collection.kind == "continual" and collection.groups == ("freeze_grow", "none")
    assert [t.id for t in collection.trials][:2] == ["tiny-freeze_grow-0", "tiny-freeze_grow-1"]

    assert main_cli(["report", str(root)]) == 0
    md = (root / "report" / "report.md").read_text()
    comparison = section(md, "Comparison of rules")
    assert "| rule | complete | seeds | average forgetting (mean [95% CI]) | BWT (mean [95% CI]) |" in comparison
    for rule, seeds in (("none", [0, 1, 2]), ("freeze_grow", [0, 1])):
        values = [CONTINUAL[(rule, s)] for s in seeds]
        forgetting = [(a - b) / 2 for a, b, _ in values]
        bwt = [b - a for a, b, _ in values]
        final = [(b + c) / 2 for _, b, c in values]
        complete = f"{len(seeds)}/{len(seeds) + (rule == 'none')}"
        expected = [
            rule,
            complete,
            ", ".join(map(str, seeds)),
            mean_ci(forgetting),
            mean_ci(bwt),
            "—",
            mean_ci(final),
            mean_ci([float(ADDED[rule])] * len(seeds), digits=0),
        ]
        assert row(comparison, rule) == expected
    # Hand-computed means: none forgets (0.4 + 0.2 + 0.5) / 3 = 0.367 on average; freeze_grow forgets nothing.
    assert row(comparison, "none")[3].startswith("0.367 [") and row(comparison, "freeze_grow")[3].startswith("0.000 [")
    runs = section(md, "Runs")
    assert row(runs, "tiny-none-9-in-progress")[2:5] == ["1", "running", "1/2"]
    for name in ("r_matrix_none.png", "r_matrix_freeze_grow.png"):
        assert_png(root / "report" / name)
        assert f"]({name})" in md


def test_continual_labels_separate_rule_settings_and_sequences(tmp_path: Path) -> None:
    write_continual_run(tmp_path / "a" / "ewc-weak", "none", 0, strength=1.0)
    write_continual_run(tmp_path / "a" / "ewc-strong", "none", 1, strength=10.0)
    assert collect(tmp_path / "a").groups == ("none (strength=10.0)", "none (strength=1.0)")
    other = write_continual_run(tmp_path / "a" / "other", "freeze_grow", 0)
    config = yaml.safe_load((other / "config.yaml").read_text())
    (other / "config.yaml").write_text(yaml.safe_dump({**config, "name": "keys"}))
    groups = collect(tmp_path / "a").groups
    assert set(groups) == {
        "tiny-continual: none (strength=10.0)",
        "tiny-continual: none (strength=1.0)",
        "keys: freeze_grow",
    }


def test_malformed_continual_results_are_named(tmp_path: Path) -> None:
    run = write_continual_run(tmp_path / "run", "none", 0)
    write_json(run / "continual.json", {"tasks": ["a"], "R": [[0.1], [0.2]]})
    with pytest.raises(ReportError, match=r"continual\.json: R must have one column per task"):
        collect(run)
    assert main_cli(["report", str(tmp_path / "empty")]) == 2


def test_slug_of_a_whole_config_section_fits_a_file_name_and_stays_distinct() -> None:
    from modrl.report.tables import MAX_SLUG, slug

    section = (
        "agent={aggregation: weighted_sum, algo: ppo, extractor: {channels: [16, 32], embed_dim: 8, features_dim: 64, "
        "kind: embed, mission_dim: 32}, kind: modular, latent_dim: 64, router_input: %s}"
    )
    taken: set[str] = set()
    names = [slug(section % value, taken) for value in ("words", "mission", "words")]
    assert all(len(name) <= MAX_SLUG + 2 for name in names), names  # + "_2"
    assert names[0][:-11] == names[1][:-11] and names[0] != names[1]  # same start, different digests
    assert len(set(names)) == 3 and names[2] == f"{names[0]}_2", names  # same label twice: the suffix as before
    assert slug("modular", set()) == "modular"  # short labels unchanged


def test_section_valued_grid_groups_are_labelled_by_what_differs(sweep: Path) -> None:
    """A grid over whole ``agent`` sections (how generalisation_routers.yaml pairs keys) gives short labels."""
    base = {"kind": "modular", "modules": {"count": 4}, "router": {"kind": "soft", "condition": "obs"}}
    groups = {
        "modular": {"agent": {**base, "router_input": "words"}},
        "monolithic": {"agent": {**base, "router": {"kind": "soft", "condition": "task"}}},
    }
    entries = json.loads((sweep / "trials.json").read_text())
    for entry in entries:
        entry["group"] = groups[entry["group"]["agent.kind"]]
    write_json(sweep / "trials.json", entries)
    labels = collect(sweep).groups
    assert labels == ("agent.router.condition=obs, agent.router_input=words", "agent.router.condition=task")
    entries[0]["group"] = ["not", "a", "mapping"]
    write_json(sweep / "trials.json", entries)
    with pytest.raises(ReportError, match=r"trials\.json: malformed entries"):
        collect(sweep)


def _eval_curve(run_dir: Path, test_success: list[float]) -> None:
    splits = [{"train": {"success": 0.5, "return": 0.4}, "test": {"success": s}} for s in test_success]
    lines = [json.dumps({"step": 100 * (k + 1), "splits": split}) for k, split in enumerate(splits)]
    (run_dir / "eval_curve.jsonl").write_text("\n".join(lines) + "\n")


def test_evaluation_during_training_is_drawn_per_split_with_its_peak(sweep: Path, tmp_path: Path) -> None:
    assert "Evaluation during training" not in build_report(sweep, out_dir=tmp_path / "none").read_text()
    for seed, curve in enumerate(([0.2, 0.8, 0.6], [0.4, 0.6, 0.4], [0.3, 0.7, 0.5], [0.1, 0.9, 0.5])):
        _eval_curve(sweep / "trials" / f"mod-{seed}", curve)
    md = build_report(sweep, out_dir=tmp_path / "with").read_text()
    text = section(md, "Evaluation during training")
    assert row(text, MODULAR, "test") == [MODULAR, "test", "4", "0.750", "200", "0.500", "300"]
    assert row(text, MODULAR, "train") == [MODULAR, "train", "4", "0.500", "100", "0.500", "300"]
    assert MONO not in text  # no curve written for the baseline's trials
    assert_png(tmp_path / "with" / "eval_curve_test.png")
    path = sweep / "trials" / "mod-0" / "eval_curve.jsonl"
    path.write_text(path.read_text() + '{"step": 4')  # a write cut short by a kill: skipped
    assert "| 0.750 |" in build_report(sweep, out_dir=tmp_path / "torn").read_text()
    path.write_text('{"step": 5, "splits": 3}\n' + path.read_text())
    with pytest.raises(ReportError, match=r"eval_curve\.jsonl:1: malformed"):
        build_report(sweep, out_dir=tmp_path / "bad")
