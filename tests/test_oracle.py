"""The oracle (BabyAI's bot over the subtask sequence) solves every generated task, and its demonstrations are data."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from modrl.envs import get_suite, make_task_env
from modrl.envs.grammar import parse_task
from modrl.envs.oracle import SequenceBot, demonstrate
from modrl.envs.task_env import TaskEnv

SUITE_NAMES = ("colour-type", "verb-object", "sequences")
ALL = [(s, i) for s in SUITE_NAMES for i in range(get_suite(s).num_tasks)]


def _holds(symbol: str, predicates: frozenset[str]) -> bool:
    """The predicate a completed subtask must leave true."""
    verb, args = symbol[:-1].split("(")
    expected = {"goto": "facing", "pickup": "carrying", "open": "open", "putnext": "next_to"}[verb]
    return f"{expected}({args})" in predicates


@pytest.mark.parametrize("suite_name", SUITE_NAMES)
def test_oracle_solves_every_task_on_sampled_seeds(suite_name: str) -> None:
    suite = get_suite(suite_name)
    for index in range(suite.num_tasks):
        env = make_task_env(suite, index)
        for seed in (index, 1000 + index):
            demo = demonstrate(env, seed=seed)
            assert demo.success, (suite.task_names[index], seed)
            assert demo.task == suite.task_names[index]


@pytest.mark.slow
def test_oracle_solves_every_task_on_many_seeds() -> None:
    failures = []
    for suite_name, index in ALL:
        env = make_task_env(suite_name, index)
        failures += [(suite_name, index, seed) for seed in range(20) if not demonstrate(env, seed=seed).success]
    assert failures == []


def test_demonstration_is_data_and_replays() -> None:
    suite = get_suite("sequences")
    index = suite.task_names.index("open-red-door_then_pickup-blue-key_then_goto-green-ball")
    env = make_task_env(suite, index)
    demo = demonstrate(env, seed=3)
    steps = demo.length
    assert steps > 3 and demo.success and demo.seed == 3
    assert demo.actions.dtype == np.int64 and demo.actions.shape == (steps,)
    assert demo.rewards.dtype == np.float32 and demo.rewards.shape == (steps,)
    assert demo.rewards[-1] > 0 and not demo.rewards[:-1].any()
    assert demo.observations["image"].shape == (steps + 1, 7, 7, 3)
    assert demo.observations["image"].dtype == np.uint8
    assert demo.observations["direction"].shape == demo.observations["task"].shape == (steps + 1,)
    assert set(demo.observations) == {"image", "direction", "task"} and (demo.observations["task"] == index).all()
    assert [e for step in demo.events for e in step] == list(parse_task(demo.task).sketch)
    # Replaying the actions from the same seed reproduces the episode exactly.
    obs, _ = env.reset(seed=3)
    assert np.array_equal(obs["image"], demo.observations["image"][0])
    for t, action in enumerate(demo.actions):
        obs, reward, terminated, _, _ = env.step(int(action))
        assert np.array_equal(obs["image"], demo.observations["image"][t + 1]) and reward == demo.rewards[t]
    assert terminated
    again = demonstrate(make_task_env(suite, index), seed=3)
    assert np.array_equal(again.actions, demo.actions)


@pytest.mark.parametrize(
    "name",
    [
        "goto-red-ball",
        "pickup-green-key",
        "open-blue-door",
        "putnext-red-key-grey-box",
        "pickup-blue-key_then_putnext-yellow-box-blue-key_then_goto-purple-door_then_open-red-door",
    ],
)
def test_events_match_the_verifiers_and_the_predicates(name: str) -> None:
    bot_env = TaskEnv(name)
    for seed in range(5):
        _, info = bot_env.reset(seed=seed)
        bot = SequenceBot(bot_env)
        completed: list[str] = []
        terminated = truncated = False
        while not (terminated or truncated):
            _, reward, terminated, truncated, info = bot_env.step(int(bot.replan()))
            for symbol in info["events"]:
                assert _holds(symbol, info["predicates"]), (seed, symbol, sorted(info["predicates"]))
            completed += info["events"]
            assert info["subtask_index"] == len(completed)
        assert terminated and float(reward) > 0 and completed == list(info["sketch"])


def test_bot_refuses_other_envs() -> None:
    with pytest.raises(TypeError, match="TaskEnv"):
        SequenceBot(gym.make("MiniGrid-Empty-5x5-v0"))
