"""``modrl continual`` on the batched engine: a stage the engine covers trains on it (``env.engine`` auto or fast) and
gives the very run MiniGrid gives; a stage it does not cover falls back to MiniGrid (auto) or is refused (fast)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from modrl.agents.common.fast_vec_env import FastVecEnv
from modrl.agents.continual.config import load_continual_config
from modrl.agents.continual.parts import stage_env
from modrl.agents.continual.runner import ContinualStatus, run_continual
from modrl.checkpoint import latest_checkpoint
from modrl.config import ConfigError
from modrl.envs import get_suite

TINY = {
    "name": "tiny-continual-engine",
    "env": {"suite": "minigrid-tiny", "n_envs": 4, "max_episode_steps": 30},
    "agent": {
        "extractor": {"channels": [8], "features_dim": 16, "embed_dim": 4},
        "modules": {"count": 3, "hidden": [16]},
        "latent_dim": 16,
        "critic_hidden": [16],
    },
    "algo": {"n_steps": 32, "batch_size": 64, "n_epochs": 2},
    "sequence": {
        "tasks": ["empty5", "emptyrand5"],
        "steps_per_task": 256,
        "eval_episodes": 2,
        "checkpoint_every": 128,
        "reference": "scratch",
    },
    "rule": {"kind": "ewc", "fisher_samples": 16},
}


def test_a_continual_run_is_the_same_on_either_engine(tmp_path: Path) -> None:
    records, tensors = {}, {}
    for engine in ("minigrid", "fast"):
        run_dir = tmp_path / engine
        run_dir.mkdir()
        config = load_continual_config(TINY, [f"env.engine={engine}"])
        assert run_continual(config, run_dir).status is ContinualStatus.COMPLETED
        records[engine] = json.loads((run_dir / "continual.json").read_text())
        checkpoint = latest_checkpoint(run_dir / "stages/01-emptyrand5/checkpoint")
        assert checkpoint is not None
        tensors[engine] = checkpoint.tensors["policy"]
    minigrid, fast = records["minigrid"], records["fast"]
    for key in ("R", "initial", "metrics"):
        assert fast[key] == minigrid[key], key
    assert minigrid["metrics"]["forward_transfer"] is not None  # the from-scratch references ran too
    assert tensors["fast"].keys() == tensors["minigrid"].keys()
    for name, value in tensors["minigrid"].items():
        assert torch.equal(tensors["fast"][name], value), name


def test_stage_env_uses_the_engine_where_it_covers_the_task(caplog: pytest.LogCaptureFixture) -> None:
    tiny, hard, babyai = get_suite("minigrid-tiny"), get_suite("minigrid-hard"), get_suite("babyai")
    for suite, task in ((tiny, 0), (hard, hard.task_index("unlock"))):  # Unlock: its own rule (stock_goals.py)
        covered = stage_env(suite, task, n_envs=2, seed=0, stage=1, options={}, engine="auto")
        assert isinstance(covered, FastVecEnv)
        covered.close()
    level = babyai.task_index("gotoobj")
    with caplog.at_level(logging.INFO, logger="modrl.agents.continual.parts"):
        fallback = stage_env(babyai, level, n_envs=2, seed=0, stage=0, options={}, engine="auto")
    assert isinstance(fallback, DummyVecEnv)
    fallback.close()
    assert "env.engine auto: task gotoobj uses MiniGrid (" in caplog.text
    with pytest.raises(ValueError, match="fast cannot run task gotoobj"):
        stage_env(babyai, level, n_envs=2, seed=0, stage=0, options={}, engine="fast")
    assert isinstance(stage_env(tiny, 0, n_envs=2, seed=0, stage=0, options={}, engine="minigrid"), DummyVecEnv)


def test_config_refuses_the_fast_engine_for_a_task_it_does_not_cover() -> None:
    keys = ["env.suite=babyai", "sequence.tasks=[gotoobj, opendoor]", "env.max_episode_steps=null"]
    with pytest.raises(ConfigError, match=r"env\.engine: fast cannot run task gotoobj \(.*\); use minigrid or auto"):
        load_continual_config(TINY, [*keys, "env.engine=fast"])
    load_continual_config(TINY, [*keys, "env.engine=auto"])  # auto falls back instead
    load_continual_config(TINY, ["env.engine=fast"])  # every tiny task is covered
