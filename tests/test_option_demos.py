"""Demonstration warm start of options (agents/options/demos.py): where demonstrations come from, behaviour cloning,
the ``demos`` config section, and that training without it takes the old path."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch

from modrl.agents.options import train as options_module
from modrl.agents.options.config import DemoConfig, OptionsTrainConfig, load_options_config
from modrl.agents.options.demos import (
    behaviour_clone,
    collect_demos,
    demo_accuracy,
    discounted_returns,
    logits_layer,
)
from modrl.agents.options.policy import OptionActorCriticPolicy
from modrl.agents.planning.demo_set import DemoSet
from modrl.config import ConfigError, to_dict
from modrl.envs.grammar import parse_task
from modrl.envs.subtask_env import SubtaskEnv
from modrl.options import SuccessCurriculum
from modrl.seeds import DEMO_SEED_BASE, EVAL_SEED_BASE, EVAL_TASK_SEEDS

SMALL_ROOM = {"room_size": 5, "num_distractors": 0}
TINY = {
    "mode": "per_symbol",
    "options": ["goto-green-ball"],
    "env": {"suite": "sequences", "test_split": None, "n_envs": 2, "max_episode_steps": 20, **SMALL_ROOM},
    "net": {"channels": [8], "features_dim": 16, "hidden": [16], "critic_hidden": [16]},
    "algo": {"n_steps": 32, "batch_size": 64, "n_epochs": 2},
    "curriculum": {"threshold": 0.9, "window": 30, "min_episodes": 30, "max_steps": 64},
    "eval_episodes": 0,
}


def _env(tasks: list[str]) -> SubtaskEnv:
    return SubtaskEnv(tasks, suite="sequences", parameterised=False, task_kwargs=SMALL_ROOM)


def _policy(seed: int = 0) -> Any:
    """A fresh SB3 policy around a small goto-green-ball option, as train_option builds it."""
    from stable_baselines3 import PPO

    config = load_options_config(TINY)
    plan = options_module.option_jobs(config)[0]
    model = PPO(
        OptionActorCriticPolicy,
        _env(["goto-green-ball"]),
        seed=seed,
        device="cpu",
        n_steps=32,
        batch_size=32,
        policy_kwargs=dict(option=to_dict(options_module.option_config(config, plan)), critic_hidden=[16]),
    )
    return model.policy


def test_demos_come_only_from_the_given_train_tasks_and_all_replay_to_success() -> None:
    train = ["goto-green-ball", "pickup-blue-key"]
    demos = collect_demos(_env(train), episodes=6, gamma=0.9)
    assert sorted(set(demos.tasks)) == sorted(train) and len(demos.tasks) == 6
    assert all(seed >= DEMO_SEED_BASE for seed in demos.seeds) and DEMO_SEED_BASE > EVAL_SEED_BASE + 10**6
    assert not any(seed in EVAL_TASK_SEEDS for seed in demos.task_seeds)
    assert sum(demos.lengths) == demos.size == demos.observations["image"].shape[0] == demos.returns.shape[0]
    replay, start = _env(train), 0
    for task, seed, length in zip(demos.tasks, demos.seeds, demos.lengths, strict=True):
        obs, _ = replay.reset(seed=seed, options={"task": task})
        for t in range(length):
            assert np.array_equal(obs["image"], demos.observations["image"][start + t])
            assert obs["direction"] == demos.observations["direction"][start + t]
            obs, reward, terminated, truncated, info = replay.step(int(demos.actions[start + t]))
            assert terminated == (t == length - 1) and not truncated
        assert info["is_success"] and info["task"] == task
        assert demos.returns[start + length - 1] == pytest.approx(float(reward))
        assert demos.returns[start] == pytest.approx(float(reward) * 0.9 ** (length - 1))
        start += length


def test_discounted_returns() -> None:
    assert discounted_returns(np.array([0.0, 0.0, 1.0]), 0.5).tolist() == [0.25, 0.5, 1.0]


def test_behaviour_cloning_raises_demo_accuracy_far_above_the_marginal(caplog: pytest.LogCaptureFixture) -> None:
    demos = collect_demos(_env(["goto-green-ball"]), episodes=30, gamma=0.99)
    policy = _policy()
    before = demo_accuracy(policy, demos)
    majority = float(np.bincount(demos.actions).max() / demos.size)
    config = DemoConfig(episodes=30, epochs=40, batch_size=32, learning_rate=3e-3)
    with caplog.at_level("WARNING", logger="modrl.agents.options.demos"):
        history = behaviour_clone(policy, demos, config, seed=0)
    assert not [r for r in caplog.records if "stalled" in r.getMessage()]
    after = demo_accuracy(policy, demos)
    assert len(history) == 40 and history[-1]["accuracy"] == pytest.approx(after)
    assert history[-1]["bc_loss"] < history[0]["bc_loss"] and "value_loss" in history[-1]
    # measured: 0.13 before, majority class 0.58, 0.98 after
    assert before < 0.5 and after >= 0.85 and after >= majority + 0.2, (before, majority, after)


def test_action_prior_is_the_smoothed_demo_frequency() -> None:
    demos = DemoSet(
        observations={"image": np.zeros((4, 7, 7, 3), np.uint8), "direction": np.zeros(4, np.int64)},
        actions=np.array([2, 2, 2, 0]),
        returns=np.zeros(4, np.float32),
        tasks=("t",),
        seeds=(0,),
        task_seeds=(0,),
        lengths=(4,),
        attempts=1,
        frames=4,
    )
    policy = _policy()
    behaviour_clone(policy, demos, DemoConfig(episodes=1, epochs=1, learning_rate=1e-9, fit_value=False))
    prior = torch.softmax(logits_layer(policy).bias.detach(), 0)
    assert prior.tolist() == pytest.approx([2 / 11, 1 / 11, 4 / 11] + [1 / 11] * 4, abs=1e-4)


def _constant_demos(actions: list[int]) -> DemoSet:
    """Demonstrations whose observations are all the same: no policy can beat the most frequent action."""
    n = len(actions)
    return DemoSet(
        observations={"image": np.zeros((n, 7, 7, 3), np.uint8), "direction": np.zeros(n, np.int64)},
        actions=np.array(actions),
        returns=np.zeros(n, np.float32),
        tasks=("t",),
        seeds=(0,),
        task_seeds=(0,),
        lengths=(n,),
        attempts=1,
        frames=n,
    )


@pytest.mark.parametrize("max_grad_norm", [0.25, None])
def test_cloning_clips_the_gradient_norm_when_asked(
    monkeypatch: pytest.MonkeyPatch, max_grad_norm: float | None
) -> None:
    clipped: list[float] = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(parameters: Any, max_norm: float, *args: Any, **kwargs: Any) -> torch.Tensor:
        params = list(parameters)
        total = real(params, max_norm, *args, **kwargs)
        clipped.append(
            float(
                torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None])
                )
            )
        )
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    demos = _constant_demos([2, 0, 1, 2] * 8)
    behaviour_clone(_policy(), demos, DemoConfig(episodes=1, epochs=2, batch_size=8, max_grad_norm=max_grad_norm))
    if max_grad_norm is None:
        assert clipped == []
    else:  # every minibatch (4 per epoch), each gradient at most the bound afterwards
        assert len(clipped) == 8 and max(clipped) <= max_grad_norm + 1e-5


def test_cloning_that_cannot_beat_the_most_frequent_action_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="modrl.agents.options.demos"):
        history = behaviour_clone(
            _policy(),
            _constant_demos([2, 2, 2, 0] * 4),
            DemoConfig(episodes=1, epochs=2, batch_size=8, fit_value=False),
            tag="t/x",
        )
    assert history[-1]["accuracy"] == pytest.approx(0.75)
    assert any("stalled at the action prior" in r.getMessage() and "t/x" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("demos.max_grad_norm=0", "demos.max_grad_norm"),
        ("demos.episodes=-1", "demos.episodes"),
        ("demos.epochs=0", "demos.epochs"),
        ("demos.batch_size=1000000", "demos.batch_size"),
        ("demos.learning_rate=0", "demos.learning_rate"),
        ("demos.value_coef=-1", "demos.value_coef"),
        ("demos.fit_value=2", "demos.fit_value"),
        ("demos.source=bots", "demos.source"),
        ("demos.epoch=3", "unknown key 'demos.epoch'"),
    ],
)
def test_demos_section_validates_and_names_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_options_config(TINY, [override])


def test_demos_are_off_by_default_and_on_with_episodes() -> None:
    assert not OptionsTrainConfig().demos.enabled and not load_options_config(TINY).demos.enabled
    config = load_options_config(TINY, ["demos={episodes: 200, epochs: 20, batch_size: 256, learning_rate: 0.001}"])
    assert config.demos.enabled and config.demos == DemoConfig(episodes=200, epochs=20, batch_size=256)


def _train(config: OptionsTrainConfig) -> tuple[list[torch.Tensor], Any]:
    plan = options_module.option_jobs(config)[0]
    curriculum = SuccessCurriculum([plan.name], config.curriculum)
    option, demos = options_module.train_option(config, plan, curriculum, seed=7)
    return [p.detach().clone() for p in option.parameters()], demos


def test_demos_off_skips_the_warm_start_and_on_clones_from_the_train_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    from modrl.agents.options import demos as demos_module

    calls: list[tuple[str, ...]] = []
    real, real_collect = options_module.warm_start, demos_module.collect_demos
    collected: list[DemoSet] = []
    by_hand: list[float] = []

    def collect(*args: Any, **kwargs: Any) -> DemoSet:
        collected.append(real_collect(*args, **kwargs))
        return collected[-1]

    def spy(policy: Any, env: SubtaskEnv, *args: Any, **kwargs: Any) -> Any:
        calls.append(env.tasks)
        stats = real(policy, env, *args, **kwargs)
        # The cloning accuracy by hand, before PPO moves the policy: the share of the recorded (observation, action)
        # pairs whose action is the argmax of the policy's logits.
        (demos,) = collected
        obs, _ = policy.obs_to_tensor(demos.observations)
        with torch.no_grad():
            greedy = policy.get_distribution(obs).distribution.logits.argmax(dim=-1).numpy()
        by_hand.append(int((greedy == demos.actions).sum()) / demos.size)
        return stats

    monkeypatch.setattr(options_module, "warm_start", spy)
    monkeypatch.setattr(demos_module, "collect_demos", collect)
    off_a, none = _train(load_options_config(TINY))
    off_b, _ = _train(load_options_config(TINY))
    assert none is None and calls == []
    assert all(torch.equal(a, b) for a, b in zip(off_a, off_b, strict=True))
    on, stats = _train(load_options_config(TINY, ["demos.episodes=4", "demos.epochs=2"]))
    assert calls == [("goto-green-ball",)]
    (demos,) = collected
    assert stats.episodes == len(demos.lengths) == 4 and stats.pairs == demos.size == sum(demos.lengths)
    assert demos.size == len(demos.actions) and stats.accuracy == pytest.approx(by_hand[0], abs=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(off_a, on, strict=True))


def test_first_subtask_train_tasks_add_longer_train_tasks_that_start_with_the_symbol() -> None:
    from modrl.envs import get_split, parse_task

    single = options_module.option_jobs(load_options_config(TINY))[0]
    assert single.train == ("goto-green-ball",)
    wide = options_module.option_jobs(load_options_config(TINY, ["env.train_tasks=first_subtask"]))[0]
    train = get_split("sequences").train
    assert wide.train[0] == "goto-green-ball" and len(wide.train) == 4
    assert all(t in train and parse_task(t).subtasks[0].name == "goto-green-ball" for t in wide.train)
    with pytest.raises(ConfigError, match=r"env\.train_tasks"):
        load_options_config(TINY, ["env.train_tasks=all"])


def test_segments_show_the_option_the_states_after_other_subtasks() -> None:
    config = load_options_config(TINY)
    plan = options_module.option_jobs(config)[0]
    tasks = options_module.segment_tasks(config, plan)
    assert "pickup-blue-key_then_goto-green-ball" in tasks and "goto-purple-door" not in tasks
    assert all(any(s.name == "goto-green-ball" for s in parse_task(t).subtasks) for t in tasks)
    wanted = options_module.job_subtasks(plan)
    # A segment that starts the task is exactly the SubtaskEnv episode (same observations, same oracle actions).
    first = collect_demos(_env(["goto-green-ball"]), episodes=3, gamma=0.9, segment=wanted)
    whole = collect_demos(_env(["goto-green-ball"]), episodes=3, gamma=0.9)
    assert np.array_equal(first.observations["image"], whole.observations["image"])
    assert np.array_equal(first.actions, whole.actions) and np.allclose(first.returns, whole.returns)
    # After "pick up the blue key" the option starts with the key in hand: the view shows it at the agent's cell.
    later = collect_demos(_env(["pickup-blue-key_then_goto-green-ball"]), episodes=3, gamma=0.9, segment=wanted)
    starts = np.cumsum((0, *later.lengths[:-1]))
    key, blue = 5, 2  # minigrid OBJECT_TO_IDX["key"], COLOR_TO_IDX["blue"]
    assert all(tuple(later.observations["image"][s][3, 6, :2]) == (key, blue) for s in starts)
    assert not any(tuple(whole.observations["image"][s][3, 6, :2]) == (key, blue) for s in range(whole.size))
    assert later.frames > later.size and whole.frames >= whole.size  # the steps before a segment count as frames


def test_shipped_demos_config_loads() -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "options" / "sequences_demos.yaml"
    config = load_options_config(path)
    assert config.demos.enabled and config.demos.source == "segments"
    plans = options_module.option_jobs(config)
    assert [p.name for p in plans][-1] == "putnext-yellow-box-blue-key" and all(len(p.train) == 4 for p in plans)


def test_segments_of_a_parameterised_option_carry_its_argument() -> None:
    from modrl.envs.subtask_symbols import argument_slots

    slots = argument_slots("goto")
    demos = collect_demos(
        _env(["pickup-blue-key_then_goto-green-ball", "goto-purple-door_then_goto-green-ball"]),
        episodes=2,
        gamma=0.9,
        segment=lambda sub: sub.verb == "goto",
        slots=slots,
    )
    words = [tuple(slot[i] for slot, i in zip(slots, row, strict=True)) for row in demos.observations["args"]]
    first = demos.lengths[0]
    assert set(words[:first]) == {("green", "ball")} and set(words[first:]) == {("purple", "door")}
