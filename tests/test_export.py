"""``modrl export``: a run as a Stable-Baselines3 zip that plain SB3 code loads and evaluates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from modrl.agents.common.evaluation import load_run_policy
from modrl.agents.common.training import TrainStatus, run_training
from modrl.cli.main import main
from modrl.config import to_dict
from modrl.envs import make_suite_env
from modrl.runs import write_run_metadata

PLAIN_SB3 = """
import sys
import numpy as np
from stable_baselines3 import {algo}
from stable_baselines3.common.evaluation import evaluate_policy
from modrl.envs import make_suite_env

model = {algo}.load(sys.argv[1], device="cpu")
env = make_suite_env("minigrid-tiny", {task})
env.reset(seed=0)  # evaluate_policy's resets then go on from this seed
mean, std = evaluate_policy(model, env, n_eval_episodes=2, deterministic=True)
obs = {{k: np.load(sys.argv[2])[k] for k in np.load(sys.argv[2]).files}}
actions, _ = model.predict(obs, deterministic=True)
print(model.num_timesteps, mean, " ".join(map(str, actions)))
"""


@pytest.mark.parametrize("overrides", [(), ("agent.kind=monolithic", "agent.algo=a2c")])
def test_an_exported_run_loads_in_plain_sb3_and_acts_as_the_run_does(
    tiny_config, tmp_path: Path, overrides: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config(*overrides)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run_metadata(run_dir, config=to_dict(config), seed=config.seed, argv=["pytest"])
    assert run_training(config, run_dir).status is TrainStatus.COMPLETED
    out = tmp_path / "model.zip"
    assert main(["export", str(run_dir), str(out)]) == 0 and out.is_file()
    assert "checkpoint step 256" in capsys.readouterr().out

    _, policy, _ = load_run_policy(run_dir)
    space = policy.observation_space
    space.seed(0)
    samples = [space.sample() for _ in range(8)]
    obs = {key: np.stack([s[key] for s in samples]) for key in space.spaces}
    np.savez(tmp_path / "obs.npz", **obs)
    expected, _ = policy.predict(obs, deterministic=True)
    task = 1  # emptyrand5: the agent starts somewhere else in every episode
    script = PLAIN_SB3.format(algo="A2C" if "agent.algo=a2c" in overrides else "PPO", task=task)
    done = subprocess.run(
        [sys.executable, "-c", script, str(out), str(tmp_path / "obs.npz")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    steps, mean, *actions = done.stdout.split()
    # SB3's mean return is the run's own policy's, on the same episodes: reset(seed=0), then two unseeded resets (the
    # env's RNG goes on), greedy actions, MiniGrid's reward summed as float32 (SB3's vector env stores it so).
    env = make_suite_env("minigrid-tiny", task)
    env.reset(seed=0)
    returns = []
    for _ in range(2):
        (obs, _), total, done = env.reset(), 0.0, False
        while not done:
            action, _ = policy.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total, done = total + float(np.float32(reward)), terminated or truncated
        returns.append(total)
    assert int(steps) == 256 and float(mean) == pytest.approx(float(np.mean(returns)), abs=1e-6), (mean, returns)
    assert [int(a) for a in actions] == expected.tolist()  # the same policy, loaded by SB3 alone


def test_export_refuses_bad_targets_without_touching_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "taken.zip"
    existing.write_bytes(b"mine")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump({"name": "x"}))
    cases = [
        (["export", str(tmp_path / "nothing"), str(tmp_path / "a.zip")], "is not a run directory"),
        (["export", str(tmp_path / "run"), str(tmp_path / "a.pt")], "ends in .zip"),
        (["export", str(tmp_path / "run"), str(existing)], "exists: give a new file name"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("modrl: error: ") and message in err and err.count("\n") == 1
    assert existing.read_bytes() == b"mine" and not (tmp_path / "a.zip").exists()
