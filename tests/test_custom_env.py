"""Your own environments: ``--import MODULE`` on every command, ``env.ids`` suites, ``MODULE:ID`` for ``modrl plan``,
and runs that remember which modules they need (shipped example: experiments/custom_env)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modrl.config import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "custom_env"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SMALL = [
    "--set",
    "train.total_timesteps=64",
    "--set",
    "train.checkpoint_every=64",
    "--set",
    "train.eval_episodes=1",
    "--set",
    "algo.n_steps=16",
    "--set",
    "algo.batch_size=32",
    "--set",
    "agent.extractor.channels=[8]",
]


def modrl(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "modrl.cli.main", *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=ENV)


def test_train_eval_and_plan_on_an_env_registered_by_the_users_module(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = modrl("train", "corridor.yaml", "--import", "my_envs", *SMALL, "--run-dir", run_dir, cwd=EXAMPLE)
    assert out.returncode == 0, out.stderr
    assert "mycorridor" in out.stdout  # the task is named after its id
    assert json.loads((run_dir / "meta.json").read_text())["imports"] == ["my_envs"]
    # The run's envs need the module: evaluation asks for the flag rather than importing what a file names.
    refused = modrl("eval", run_dir, "--episodes", "1", cwd=EXAMPLE)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "was started with --import my_envs" in refused.stderr and "Traceback" not in refused.stderr
    again = modrl("eval", run_dir, "--episodes", "1", "--import", "my_envs", cwd=EXAMPLE)
    assert again.returncode == 0, again.stderr
    planned = modrl("plan", "my_envs:MyCorridor-v0", "--execute", cwd=EXAMPLE)
    assert planned.returncode == 0 and "outcome: success" in planned.stdout, planned.stdout + planned.stderr


def test_an_import_that_fails_is_one_line_and_nothing_is_created(tmp_path: Path) -> None:
    (tmp_path / "broken_envs.py").write_text("raise RuntimeError('boom')\n")
    for module in ("broken_envs", "no_such_module_here"):
        out = modrl(
            "train", EXAMPLE / "corridor.yaml", "--import", module, "--runs-root", tmp_path / "runs", cwd=tmp_path
        )
        assert out.returncode == 2 and out.stderr.startswith(f"modrl: error: --import {module}: ")
        assert out.stderr.count("\n") == 1 and not (tmp_path / "runs").exists()


def test_env_ids_suites_are_checked_and_named_after_their_ids() -> None:
    from modrl.agents.common.config import load_experiment_config
    from modrl.config import to_dict
    from modrl.envs import get_suite

    config = load_experiment_config({"env": {"ids": ["MiniGrid-Empty-5x5-v0", "MiniGrid-DoorKey-5x5-v0"], "n_envs": 2}})
    suite = get_suite(config.env.suite)
    assert config.env.suite.startswith("ids-") and suite.task_names == ("minigrid-empty-5x5", "minigrid-doorkey-5x5")
    assert [t.env_id for t in suite.tasks] == ["MiniGrid-Empty-5x5-v0", "MiniGrid-DoorKey-5x5-v0"]
    assert load_experiment_config(to_dict(config)) == config  # a run's config.yaml loads back to the same suite
    with pytest.raises(ConfigError, match=r"env\.ids: 'NoSuchEnv-v0' is not a registered gymnasium id"):
        load_experiment_config({"env": {"ids": ["NoSuchEnv-v0"]}})
    with pytest.raises(ConfigError, match=r"--import MODULE, not MODULE:ID"):
        load_experiment_config({"env": {"ids": ["my_envs:MyCorridor-v0"]}})
    with pytest.raises(ConfigError, match=r"env\.suite: give env\.suite or env\.ids, not both"):
        load_experiment_config({"env": {"suite": "minigrid-tiny", "ids": ["MiniGrid-Empty-5x5-v0"]}})


def test_planner_eval_with_scripted_skills_on_a_config_of_env_ids(tmp_path: Path) -> None:
    out = modrl(
        "eval",
        "--planner",
        "--scripted",
        "--suite",
        "corridor.yaml",
        "--import",
        "my_envs",
        "--episodes",
        "2",
        "--out",
        tmp_path / "planner.json",
        cwd=EXAMPLE,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "planner.json").read_text())
    assert report["suite"].startswith("ids-") and "mycorridor" in out.stdout and "minigrid-empty-5x5" in out.stdout
    assert "mean success 1.000 over 2 task(s) x 2 episode(s)" in out.stdout
    # Without the module the id is unknown; the suite's hash name alone does not say which ids it holds.
    missing = modrl("eval", "--planner", "--scripted", "--suite", "corridor.yaml", "--episodes", "1", cwd=EXAMPLE)
    assert missing.returncode == 2 and "'MyCorridor-v0' is not a registered gymnasium id" in missing.stderr
    named = modrl("eval", "--planner", "--scripted", "--suite", report["suite"], "--episodes", "1", cwd=EXAMPLE)
    assert named.returncode == 2 and "give the config file (--suite CONFIG.yaml" in named.stderr
    assert all(r.stderr.count("\n") == 1 for r in (missing, named))
