"""Skill options learned by PPO alone (``modrl options skills`` with ``demonstrations: false``): nothing is recorded or
cloned, each option starts from a random network and learns in calling-state episodes, and the settings that act on
demonstrations only are refused."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import modrl.agents.options.skill_cloning as skill_cloning
from modrl.agents.options.skill_cloning import train_skill_library
from modrl.agents.options.skill_cloning_config import load_skill_cloning_config
from modrl.config import ConfigError
from tests.conftest import TINY_SKILLS

TINY = TINY_SKILLS


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("finetune_steps=0", "finetune_steps"),
        ("dagger_rounds=1", "dagger_rounds"),
        ("planner_dagger_rounds=1", "planner_dagger_rounds"),
        ("target_noise=0.5", "target_noise"),
        ("demonstrations=1", "demonstrations"),
    ],
)
def test_settings_that_need_demonstrations_are_refused_without_them(override: str, key: str) -> None:
    extra = ["target_marker=true"] if key == "target_noise" else []
    with pytest.raises(ConfigError, match=f"^{key}:"):
        load_skill_cloning_config(TINY, [*extra, override])


def test_without_demonstrations_nothing_is_recorded_or_cloned_and_ppo_trains_each_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("demonstrations: false must not record or clone")

    monkeypatch.setattr(skill_cloning, "record_skill_demos", refuse)
    monkeypatch.setattr(skill_cloning, "behaviour_clone", refuse)
    with caplog.at_level(logging.INFO, logger="modrl.progress"):
        recording, results = train_skill_library(load_skill_cloning_config(TINY), tmp_path)
    progress = [r.getMessage() for r in caplog.records if r.name == "modrl.progress"]
    assert progress and "step 64/64" in progress[-1] and "eta" in progress[-1]  # PPO's progress line, with ETA
    assert recording.episodes == 0 and not recording.demos
    (drop,) = results
    assert drop.skill == "drop" and drop.calls == 0 and drop.pairs == 0
    assert drop.accuracy_before is None and drop.accuracy is None
    assert drop.finetune_frames >= 64
    assert drop.train_success is not None  # evaluated in calling states of the train envs
    assert (tmp_path / "options" / "drop.safetensors").is_file()
    table = (tmp_path / "results.md").read_text()
    assert table.startswith("no demonstrations: every option learned by PPO alone")
    assert "| drop | 0 | 0 | - (not cloned) |" in table
    # PPO's own scalars go where the command's TensorBoard line points
    (events,) = (tmp_path / "tb" / "drop").glob("events.out.tfevents.*")
    tags = EventAccumulator(str(events)).Reload().Tags()["scalars"]
    assert {"train/entropy_loss", "rollout/ep_rew_mean"} <= set(tags)


def test_an_option_learned_by_ppo_alone_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    config = load_skill_cloning_config(TINY, ["eval_episodes=0"])
    train_skill_library(config, tmp_path / "a")
    train_skill_library(config, tmp_path / "b")
    other = load_skill_cloning_config(TINY, ["eval_episodes=0", "seed=1"])
    train_skill_library(other, tmp_path / "c")
    a, b, c = (_weights(tmp_path / run) for run in "abc")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "options" / "drop.safetensors")


def test_a_skill_the_train_plans_never_call_is_refused_before_any_training(tmp_path: Path) -> None:
    config = load_skill_cloning_config({**TINY, "suite": "sequences", "skills": ["pickup", "drop"]})
    with pytest.raises(ConfigError, match=r"^skills: the plans of sequences/train never call drop .*; leave it out"):
        train_skill_library(config, tmp_path)
    assert not (tmp_path / "options").exists()  # refused before the first option was trained
