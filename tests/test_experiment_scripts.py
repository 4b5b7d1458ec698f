"""The measurement scripts under experiments/ run end to end (as subprocesses: nothing imports experiments/)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

pytestmark = pytest.mark.slow


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=ENV, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_eval_planner_with_scripted_skills_solves_the_sequences_train_split(tmp_path: Path) -> None:
    out = tmp_path / "planner.json"
    stdout = _run(
        "experiments/planner/eval_planner.py",
        "--suite",
        "sequences",
        "--split",
        "train",
        "--seeds",
        "1",
        "--out",
        str(out),
    )
    result = json.loads(out.read_text())
    assert result["skills"] == "scripted skills" and len(result["tasks"]) == 20
    assert result["mean_success"] == 1.0, stdout


def test_skill_ceiling_counts_what_the_plans_need_and_the_served_skills_solve() -> None:
    five = "goto-green-ball,pickup-blue-key,goto-purple-door,open-red-door,putnext-yellow-box-blue-key"
    limited = _run("experiments/planner/skill_ceiling.py", "--split", "test", "--episodes", "1", "--serve", five)
    assert "unserved calls the plans wanted: open " in limited  # doors of colours no symbol opens
    full = _run("experiments/planner/skill_ceiling.py", "--split", "test", "--episodes", "1", "--serve", five + ",open")
    assert "mean success 1.000 over 15 episodes" in full and "wanted: none" in full
    mean = float(limited.split("mean success ")[1].split()[0])
    assert mean < 1.0


def test_planner_coverage_table_says_supported_or_why_not(tmp_path: Path) -> None:
    out = tmp_path / "coverage.md"
    ids = ("BabyAI-GoToLocalS5N2-v0", "MiniGrid-FourRooms-v0", "MiniGrid-MemoryS7-v0", "MiniGrid-Empty-5x5-v0")
    stdout = _run("experiments/planner/coverage.py", "--seeds", "2", "--ids", *ids, "--out", str(out))
    table = out.read_text()
    assert "MiniGrid-FourRooms-v0 seed 1: success, solved True" in stdout
    assert (
        "| BabyAI-GoToLocalS5N2-v0 | yes | 1.00 (2/2) |" in table
        and "| MiniGrid-FourRooms-v0 | yes | 1.00 (2/2) |" in table
    )
    assert "| MiniGrid-MemoryS7-v0 | no: MemoryEnv: not expressible: " in table
    summary = "Supported (goals for at least one seed): 3 of 4 ids; success >= 0.95 (over the solvable seeds): 3 of 3"
    assert f"{summary}; seeds no policy can solve, out of the rates: 0 (on 0 ids)." in table
    rerun = tmp_path / "rerun.md"
    _run("experiments/planner/coverage.py", "--seeds", "1", "--ids", "MiniGrid-FourRooms-v0", "--out", str(rerun))
    merged = tmp_path / "merged.md"
    _run("experiments/planner/coverage.py", "--merge", str(out), str(rerun), "--out", str(merged))
    text = merged.read_text()
    assert "| MiniGrid-FourRooms-v0 | yes | 1.00 (1/1) |" in text and "(2/2)" in text  # the re-run's row won
    assert f"{summary}; seeds no policy can solve, out of the rates: 0 (on 0 ids)." in text
    assert text.count("| MiniGrid-") == 3 and text.count("Made by `") == 2
    # --update re-makes one id's rows in place: seed 7 of ObstructedMaze-1Q-v0 is proven unsolvable (MiniGrid's v0
    # generator lost the key), out of the rate, and the header lists both runs.
    out.write_text(out.read_text() + "\n## Notes\n\nkept\n")
    _run(
        "experiments/planner/coverage.py",
        "--seeds",
        "8",
        "--ids",
        "ObstructedMaze-1Q-v0",
        "--update",
        "--out",
        str(out),
    )
    text = out.read_text()
    assert "| MiniGrid-ObstructedMaze-1Q-v0 | yes | 1.00 (7/7 solvable; 1 unsolvable) |" in text
    assert (
        "unsolvable on seed(s) 7: proven unreachable at the start: no relaxed plan reaches carrying(ball,blue)" in text
    )
    assert "| MiniGrid-FourRooms-v0 | yes | 1.00 (2/2) |" in text and text.count("| MiniGrid-") == 4
    assert text.startswith("# The planner") and "Updated by `python experiments/planner/coverage.py --update" in text
    assert text.count("- Made by `") == 2 and text.endswith("## Notes\n\nkept\n")
    summary = "Supported (goals for at least one seed): 4 of 5 ids; success >= 0.95 (over the solvable seeds): 4 of 4"
    assert f"{summary}; seeds no policy can solve, out of the rates: 1 (on 1 ids)." in text


def test_planner_coverage_with_a_learned_library_runs_the_covered_ids_and_names_the_missing_skills(
    tmp_path: Path,
) -> None:
    from modrl.options import Option, OptionConfig, OptionLibrary

    # An untrained whole-grid, target-marker "goto" option (the shape of experiments/options/hard_skills.yaml's).
    library = OptionLibrary()
    tiny = OptionConfig(image_shape=(25, 25, 4), image_high=(10, 5, 2, 2), channels=(4,), features_dim=4, hidden=())
    library.add("goto", Option(tiny))
    library.save(tmp_path / "run" / "options")
    scripted = tmp_path / "scripted.md"
    _run("experiments/planner/coverage.py", "--seeds", "1", "--ids", "Empty-5x5", "DoorKey-5x5", "--out", str(scripted))
    before = scripted.read_text()
    out = tmp_path / "learned.md"
    args = ("experiments/planner/coverage.py", "--seeds", "2", "--time-limit", "20", "--stochastic")
    args += ("--ids", "Empty-5x5", "DoorKey-5x5", "--library", str(tmp_path / "run"), "--scripted", str(scripted))
    stdout = _run(*args, "--out", str(out))
    table = out.read_text()
    assert scripted.read_text() == before  # the scripted table is only read
    assert table.startswith("# The planner with learned options") and "--library " in table
    # DoorKey's plans need pickup and open: no option serves them, so no episode runs, and the row says so.
    assert "MiniGrid-DoorKey-5x5-v0 seed 0: unsupported: no learned skill for open, pickup" in stdout
    assert "| MiniGrid-DoorKey-5x5-v0 | no: no learned skill for open, pickup | | 1.00 (1/1) |" in table
    # Empty's plan is one goto: the option runs it (untrained: solved or not), the scripted column beside.
    row = next(line for line in table.splitlines() if line.startswith("| MiniGrid-Empty-5x5-v0 |"))
    cells = row.split(" | ")
    assert cells[1] == "yes" and cells[2].endswith("/2)") and cells[3] == "1.00 (1/1)"
    assert "Covered (the library's options serve a plan, at least one seed): 1 of 2 ids" in table
    # Same seeds, same sampled actions, same rows (but the CPU times).
    again = tmp_path / "again.md"
    _run(*args, "--out", str(again))

    def rows(text: str) -> list[list[str]]:
        cells = [line.split(" | ") for line in text.splitlines() if line.startswith("| MiniGrid-")]
        return [c[:4] + c[7:] for c in cells]

    assert rows(again.read_text()) == rows(table)
    bad = subprocess.run(
        [sys.executable, "experiments/planner/coverage.py", "--library", str(tmp_path / "nope"), "--out", str(out)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and f"--library {tmp_path / 'nope'}" in bad.stderr


def test_mission_ablation_runs_on_a_mission_token_run(tiny_config, tmp_path: Path) -> None:
    from modrl.agents.common.training import run_training
    from modrl.config import to_dict
    from modrl.runs import write_run_metadata

    config = tiny_config(
        "env.suite=colour-type",
        "env.split=train",
        "env.mission_tokens=true",
        "agent.router.condition=obs",
        "agent.router_input=mission",
        "train.eval_episodes=0",
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run_metadata(run_dir, config=to_dict(config), seed=config.seed, argv=["pytest"])
    run_training(config, run_dir)
    out = tmp_path / "ablation.json"
    _run(
        "experiments/generalisation/mission_ablation.py",
        str(run_dir),
        "--episodes",
        "1",
        "--tasks-per-split",
        "1",
        "--out",
        str(out),
    )
    rows = json.loads(out.read_text())[str(run_dir)]
    assert set(rows) == {"train", "test"}
    for row in rows.values():
        assert set(row) == {"true", "other-object", "blank"} and all(0.0 <= v <= 1.0 for v in row.values())
    # The true-mission cell is the run's own greedy evaluation of its split's first task (one task, one episode, the
    # first evaluation seed); tests/test_mission_ablation.py pins the three conditions with a mission-reading policy.
    from modrl.agents.common.builders import env_options
    from modrl.agents.common.evaluation import load_run_policy, run_episode
    from modrl.envs import get_suite, make_suite_env
    from modrl.seeds import EVAL_SEED_BASE

    _, policy, _ = load_run_policy(run_dir)
    suite = get_suite(config.env.suite)
    for split, row in rows.items():
        env = make_suite_env(suite, suite.task_index(suite.split(split)[0]), **env_options(config))
        assert row["true"] == float(run_episode(env, policy, None, EVAL_SEED_BASE, True)[2]), split
        env.close()


def test_engine_bench_measures_every_quickstart_task_and_a_ratio() -> None:
    out = _run("experiments/bench/bench_engine.py", "--envs", "4", "--steps", "400", "--repeats", "1")
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["empty5"], ["doorkey5"], ["lavagap5"])]
    assert [row[0] for row in rows] == ["empty5", "doorkey5", "lavagap5"]
    assert all(row[3].endswith("x") and float(row[3][:-1]) > 0 for row in rows)


def test_bench_overhead_prints_the_paired_ratios() -> None:
    stdout = _run("experiments/bench/bench_overhead.py", "--frames", "768", "--repeats", "1")
    for line in ("env/sb3 frames/s ratio", "train/sb3 frames/s ratio", "train/sb3 cpu-seconds ratio"):
        assert line in stdout, stdout
    assert stdout.count("(768 frames)") == 3, stdout  # every variant trained exactly the budget (one rollout)


def test_update_bench_prints_both_embeddings_and_their_ratio() -> None:
    out = _run("experiments/bench/bench_update.py", "--agents", "modular", "--batch-sizes", "256", "--repeats", "1")
    (row,) = [line.split() for line in out.splitlines() if line.startswith("modular")]
    assert row[1] == "256" and float(row[2]) > 0 and float(row[3]) > 0
    # The ratio is printed from the unrounded times: it agrees with the rounded columns' ratio up to their rounding.
    assert row[4].endswith("x") and float(row[4][:-1]) == pytest.approx(float(row[2]) / float(row[3]), rel=0.05)


def test_data_parallel_bench_trains_on_two_processes_that_end_with_the_same_weights() -> None:
    out = _run("experiments/bench/bench_data_parallel.py", "--frames", "4096", "--workers", "1", "2", "--repeats", "1")
    # The bench raises unless both processes' weights are equal after training (the gradients were averaged).
    assert "workers 1: 4,096 frames" in out and "workers 2: 4,096 frames" in out, out
    (row,) = [line.split() for line in out.splitlines() if line.split()[:1] == ["2"]]
    assert row[2].endswith("x") and float(row[2][:-1]) > 0


def test_train_workers_bench_runs_modrl_trains_training_on_one_and_two_processes() -> None:
    args = ["--frames", "4096", "--envs", "8", "--batch-size", "64", "--repeats", "1"]
    out = _run("experiments/bench/bench_train_workers.py", *args)
    assert "train.workers=1:" in out and "train.workers=2:" in out, out
    (row,) = [line.split() for line in out.splitlines() if line.split()[:1] == ["2"]]
    assert row[2].endswith("x") and float(row[2][:-1]) > 0


def test_worker_start_bench_times_both_spawn_orders() -> None:
    out = _run("experiments/bench/bench_worker_start.py", "--repeats", "1")
    assert "round 1: spawned first:" in out and "round 1: after set-up:" in out, out
    (ratio,) = [line for line in out.splitlines() if line.startswith("ratio spawned first / after set-up:")]
    assert float(ratio.split()[-1]) > 0


def test_speed_panel_trains_each_recipe_and_writes_its_rows(tmp_path: Path) -> None:
    out = tmp_path / "panel.jsonl"
    args = ["--tasks", "basic", "--agents", "modular", "--recipes", "fast", "default", "--budget-scale", "0.004"]
    stdout = _run("experiments/bench/speed_panel.py", *args, "--ceiling-steps", "500", "--out", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["recipe"] for r in rows] == ["fast", "default"]
    fast, default = rows
    # 1,200 frames of budget: whole rollouts, 2,048 frames (64 x 32) for fast, 768 (6 x 128) x 2 for the default.
    assert (fast["frames"], default["frames"]) == (2048, 1536) and not fast["reached"] and not default["reached"]
    assert fast["sgd_steps"] == 1 * 3 * 4 and default["sgd_steps"] == 2 * 10 * 12  # rollouts x epochs x minibatches
    assert all(r["env_ceiling"] > 0 and r["peak_rss_mib"] > 50 and r["cpu_s"] > 0 for r in rows)
    assert "| basic | modular | fast | 0/1 | 2,048 (budget-capped) |" in stdout
    assert "| basic | modular | fast | 1 |" in stdout.split("recipe ÷ default wall")[1]


def test_tensorboard_check_reads_a_trained_run_through_a_tensorboard_server(tmp_path: Path) -> None:
    """The checker starts a real TensorBoard on a run `modrl train` made and passes every check; told to expect a task
    the run never logged, it fails that check and exits 1."""
    import yaml

    from tests.conftest import TINY

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    run_dir = tmp_path / "run"
    _run("-m", "modrl.cli.main", "train", str(config), "--run-dir", str(run_dir))
    out = _run("experiments/telemetry/tensorboard_check.py", str(run_dir), "--out", str(tmp_path / "images"))
    assert "FAIL" not in out and "checks passed" in out, out
    assert "PASS  custom scalars" in out and "PASS  hparams" in out, out
    assert list((tmp_path / "images").glob("modrl_routing_task_module_heatmap-step*.png"))
    report = sorted((run_dir / "eval").glob("*.json"))[-1]  # what the checker expects: a task the run never had
    data = json.loads(report.read_text())
    report.write_text(json.dumps({**data, "tasks": [*data["tasks"], {**data["tasks"][0], "task": "nosuch"}]}))
    failed = subprocess.run(
        [sys.executable, "experiments/telemetry/tensorboard_check.py", str(run_dir), "--out", str(tmp_path / "again")],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        cwd=ROOT,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    check = [sys.executable, "experiments/telemetry/tensorboard_check.py", str(run_dir), "--out", str(tmp_path / "x")]
    no_browser = subprocess.run(
        [*check, "--screenshots", "--browser", str(tmp_path / "no-such-browser")],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
        cwd=ROOT,
    )
    assert no_browser.returncode == 2 and "--browser" in no_browser.stderr and "not an executable" in no_browser.stderr
    assert "FAIL  custom scalars nosuch: 0 of" in failed.stdout
    assert "PASS  custom scalars" in failed.stdout  # the run's own tasks still pass


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")), reason="needs Chromium"
)
def test_tensorboard_check_screenshots_every_dashboard_in_chromium(tmp_path: Path) -> None:
    """Only where a Chromium is installed (CI has none): each dashboard's screenshot is written and not blank."""
    import yaml

    from tests.conftest import TINY

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    run_dir = tmp_path / "run"
    _run("-m", "modrl.cli.main", "train", str(config), "--run-dir", str(run_dir))
    shots = tmp_path / "shots"
    out = _run("experiments/telemetry/tensorboard_check.py", str(run_dir), "--out", str(shots), "--screenshots")
    assert "FAIL" not in out and out.count("PASS  screenshot ") == 5, out
    assert len(list(shots.glob("screenshot-*.png"))) == 5


def _tiny_split_run(tiny_config, tmp_path: Path, *overrides: str) -> Path:
    """A 64-frame run on colour-type's train split with mission tokens, for the generalisation scripts."""
    from modrl.agents.common.training import run_training
    from modrl.config import to_dict
    from modrl.runs import write_run_metadata

    split = ("env.suite=colour-type", "env.split=train", "env.mission_tokens=true", "train.eval_episodes=0")
    config = tiny_config(*split, "train.total_timesteps=64", *overrides)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run_metadata(run_dir, config=to_dict(config), seed=config.seed, argv=["pytest"])
    run_training(config, run_dir)
    return run_dir


def test_task_id_ablation_zeroes_the_actor_and_critic_columns_of_a_monolithic_run(tiny_config, tmp_path: Path) -> None:
    run_dir = _tiny_split_run(tiny_config, tmp_path, "agent.kind=monolithic")
    out = tmp_path / "ablation.json"
    _run("experiments/generalisation/task_id_ablation.py", str(run_dir), "--episodes", "1", "--out", str(out))
    row = json.loads(out.read_text())[str(run_dir)]
    assert row["as_trained"]["layers_zeroed"] == 0 and row["task_id_zeroed"]["layers_zeroed"] == 2  # actor, critic
    for values in row.values():
        assert 0.0 <= values["greedy"] <= 1.0 and 0.0 <= values["sampled"] <= 1.0


def test_routing_ablation_swaps_a_modular_run_to_the_uniform_mixture(tiny_config, tmp_path: Path) -> None:
    run_dir = _tiny_split_run(tiny_config, tmp_path, "agent.router.condition=obs", "agent.router_input=mission")
    out = tmp_path / "routing.json"
    _run("experiments/generalisation/routing_ablation.py", str(run_dir), "--episodes", "1", "--out", str(out))
    row = json.loads(out.read_text())[str(run_dir)]
    assert set(row["own"]) == set(row["uniform"]) == {"train", "test", "top_weight"}
    # TINY's 3 modules, each 1/3 for every task (module usage is stored to 4 decimals); a trained soft router's
    # largest weight is above that (not pinned: after 64 frames it is still close to uniform).
    assert row["uniform"]["top_weight"] == pytest.approx(1 / 3, abs=1e-4)
    assert row["own"]["top_weight"] > 1 / 3


def test_sampled_r_evaluates_every_stage_of_a_continual_run_with_sampled_actions(tmp_path: Path) -> None:
    import yaml

    from tests.test_continual import TINY as TINY_CONTINUAL

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_CONTINUAL))
    runs = [tmp_path / "packnet", tmp_path / "none"]
    for run, rule in zip(runs, ("packnet", "none"), strict=True):
        _run("-m", "modrl.cli.main", "continual", str(config), "--run-dir", str(run), "--set", f"rule.kind={rule}")
    table = tmp_path / "table.md"
    out = _run("experiments/continual/sampled_r.py", *map(str, runs), "--episodes", "3", "--out", str(table))
    for run in runs:
        result = json.loads((run / "R_sampled.json").read_text())
        recorded = json.loads((run / "continual.json").read_text())
        assert np.shape(result["R"]) == (2, 2) and result["R_greedy"] == recorded["R"] and result["episodes"] == 3
        assert all(v in (0.0, 1 / 3, 2 / 3, 1.0) for row in result["R"] for v in row)  # 3 episodes per cell
    assert "| none | 1 |" in out and "| packnet | 1 |" in out and table.read_text() in out
    again = _run("experiments/continual/sampled_r.py", *map(str, runs), "--episodes", "3", "--force")
    assert again.split("\n\n", 1)[1] == out.split("\n\n", 1)[1]  # seeded sampling: the same table again
