"""Suites and SB3-ready wrappers: every registered task passes both env checkers, is seeded and reports success."""

from __future__ import annotations

import pickle
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from minigrid.core.actions import Actions
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from modrl.config import ConfigError
from modrl.envs import (
    IMAGE_HIGH,
    SUITES,
    Suite,
    TaskSpec,
    get_suite,
    make_task_env,
    task_for_env_index,
)
from modrl.registry import UnknownNameError
from tests.conftest import env_checker_warnings

# Env ids whose start state does not depend on the seed (fixed layout, start and goal).
FIXED_LAYOUT = {"MiniGrid-Empty-5x5-v0"}
ALL_TASKS = [(name, i) for name in SUITES.names() for i in range(get_suite(name).num_tasks)]
TASK_IDS = [f"{name}:{get_suite(name).tasks[i].name}" for name, i in ALL_TASKS]


def _rollout(env: gym.Env, seed: int, actions: list[int]) -> list[tuple[Any, ...]]:
    obs, _ = env.reset(seed=seed)
    trace: list[tuple[Any, ...]] = [(obs["image"].copy(), obs["direction"], obs["task"], 0.0)]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        trace.append((obs["image"].copy(), obs["direction"], obs["task"], float(reward)))
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append((obs["image"].copy(), obs["direction"], obs["task"], 0.0))
    return trace


def _same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a, b, strict=True))


def test_builtin_suites_are_registered_with_expected_ids() -> None:
    expected = {
        "minigrid-basic": ["MiniGrid-Empty-5x5-v0", "MiniGrid-DoorKey-5x5-v0", "MiniGrid-LavaGapS5-v0"],
        "minigrid-tiny": ["MiniGrid-Empty-5x5-v0", "MiniGrid-Empty-Random-5x5-v0"],
        "minigrid-keys": [
            "MiniGrid-DoorKey-5x5-v0",
            "MiniGrid-Unlock-v0",
            "MiniGrid-UnlockPickup-v0",
            "MiniGrid-KeyCorridorS3R1-v0",
            "MiniGrid-BlockedUnlockPickup-v0",
        ],
    }
    for name, ids in expected.items():
        suite = get_suite(name)
        assert [t.env_id for t in suite.tasks] == ids
        assert suite.num_tasks == len(ids) == len(suite.task_names)
        for env_id in ids:
            assert env_id in gym.registry, env_id
    assert get_suite("minigrid-basic").task_names == ("empty5", "doorkey5", "lavagap5")


def test_unknown_suite_lists_registered_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_suite("minigrid-nope")
    message = str(info.value)
    assert "minigrid-nope" in message
    for name in ("minigrid-basic", "minigrid-keys", "minigrid-tiny"):
        assert name in message
    with pytest.raises(UnknownNameError):
        make_task_env("minigrid-nope", 0)


def test_suite_validation_names_the_field() -> None:
    tasks = (TaskSpec(name="a", env_id="x"), TaskSpec(name="a", env_id="y"))
    with pytest.raises(ConfigError, match="tasks: duplicate task names: a"):
        Suite(name="s", version=1, description="", tasks=tasks)
    with pytest.raises(ConfigError, match="version"):
        Suite(name="s", version=0, description="", tasks=(TaskSpec(name="a", env_id="x"),))
    with pytest.raises(ConfigError, match="tasks"):
        Suite(name="s", version=1, description="", tasks=())
    with pytest.raises(ConfigError, match="name"):
        TaskSpec(name="Bad Name", env_id="x")
    with pytest.raises(ConfigError, match="task_index"):
        make_task_env("minigrid-tiny", 2)


@pytest.mark.parametrize(("suite_name", "index"), ALL_TASKS, ids=TASK_IDS)
def test_every_task_passes_both_env_checkers(suite_name: str, index: int) -> None:
    with env_checker_warnings():  # only the known, explained ones are silenced
        env = make_task_env(suite_name, index)
        gym_check_env(env, skip_render_check=True)
        env = make_task_env(suite_name, index)
        sb3_check_env(env, warn=True)
    obs, info = env.reset(seed=3)
    assert obs["task"] == index and info["task"] == get_suite(suite_name).tasks[index].name
    assert set(obs) == {"image", "direction", "task"}


@pytest.mark.parametrize("suite_name", SUITES.names())
def test_observation_space_is_shared_by_all_tasks_of_a_suite(suite_name: str) -> None:
    suite = get_suite(suite_name)
    spaces_ = [make_task_env(suite, i).observation_space for i in range(suite.num_tasks)]
    assert all(s == spaces_[0] for s in spaces_)
    image = spaces_[0]["image"]
    assert image.dtype == np.uint8 and image.shape == (7, 7, 3)
    assert np.array_equal(image.high[3, 4], IMAGE_HIGH) and int(image.low.max()) == 0
    assert spaces_[0]["task"].n == suite.num_tasks and spaces_[0]["direction"].n == 4


def test_image_high_is_the_category_maximum() -> None:
    assert IMAGE_HIGH.dtype == np.uint8 and IMAGE_HIGH.tolist() == [10, 5, 2]


@pytest.mark.parametrize(("suite_name", "index"), ALL_TASKS, ids=TASK_IDS)
def test_seeded_determinism_and_image_bounds(suite_name: str, index: int) -> None:
    actions = np.random.default_rng(index).integers(0, 7, size=150).tolist()
    env = make_task_env(suite_name, index, max_episode_steps=40)
    first = _rollout(env, 11, actions)
    second = _rollout(make_task_env(suite_name, index, max_episode_steps=40), 11, actions)
    assert _same(first, second)
    others = [_rollout(env, seed, actions) for seed in (12, 13, 14)]
    if get_suite(suite_name).tasks[index].env_id in FIXED_LAYOUT:
        assert all(_same(first, other) for other in others)
    else:
        assert not all(_same(first, other) for other in others), "the seed is ignored"
    images = np.stack([step[0] for trace in [first, *others] for step in trace])
    assert np.all(images <= IMAGE_HIGH) and env.observation_space.contains(
        {"image": images[-1], "direction": first[-1][1], "task": index}
    )


def _run(env: gym.Env, actions: list[int], seed: int = 0) -> tuple[float, bool, bool, dict[str, Any]]:
    env.reset(seed=seed)
    for n, action in enumerate(actions):
        _, reward, terminated, truncated, info = env.step(action)
        assert info["task"]
        if terminated or truncated:
            assert n == len(actions) - 1, "episode ended early"
            return float(reward), terminated, truncated, info
        assert "is_success" not in info
    raise AssertionError("episode did not end")


def test_scripted_empty5_solution_is_a_success() -> None:
    env = make_task_env("minigrid-basic", 0)
    solution = [Actions.forward, Actions.forward, Actions.right, Actions.forward, Actions.forward]
    reward, terminated, truncated, info = _run(env, [int(a) for a in solution])
    assert terminated and not truncated
    assert reward == pytest.approx(1 - 0.9 * 5 / 100)
    assert info["is_success"] is True and info["task"] == "empty5"


def test_timeout_is_not_a_success() -> None:
    env = make_task_env("minigrid-basic", 0, max_episode_steps=3)
    reward, terminated, truncated, info = _run(env, [int(Actions.left)] * 3)
    assert truncated and not terminated and reward == 0.0
    assert info["is_success"] is False


def test_walking_into_lava_is_not_a_success() -> None:
    env = make_task_env("minigrid-basic", 2)  # LavaGapS5: lava column at x=2 with one gap; agent at (1,1) facing right
    for seed in range(20):
        env.reset(seed=seed)
        if env.unwrapped.grid.get(2, 1) is not None and env.unwrapped.grid.get(2, 1).type == "lava":
            break
    else:
        pytest.fail("no seed put lava in front of the agent")
    reward, terminated, _, info = _run(env, [int(Actions.forward)], seed=seed)
    assert terminated and reward == 0.0 and info["is_success"] is False


def test_max_episode_steps_and_render_mode_reach_minigrid() -> None:
    env = make_task_env(get_suite("minigrid-tiny"), 1, max_episode_steps=7, render_mode="rgb_array")
    env.reset(seed=0)
    assert env.unwrapped.max_steps == 7
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.dtype == np.uint8


def test_env_is_rebuilt_from_its_spec() -> None:
    env = make_task_env("minigrid-keys", 2, max_episode_steps=9)
    clone = gym.make(env.spec)
    assert clone.observation_space == env.observation_space
    assert clone.unwrapped.max_steps == 9
    obs, info = clone.reset(seed=1)
    assert obs["task"] == 2 and info["task"] == "unlockpickup"


def test_env_pickles_and_keeps_behaving() -> None:
    env = make_task_env("minigrid-basic", 1)
    env.reset(seed=5)
    clone = pickle.loads(pickle.dumps(env))
    a = clone.step(int(Actions.forward))
    b = env.step(int(Actions.forward))
    assert np.array_equal(a[0]["image"], b[0]["image"]) and a[1:4] == b[1:4]


def test_task_for_env_index_is_round_robin() -> None:
    assert [task_for_env_index(i, 3) for i in range(8)] == [0, 1, 2, 0, 1, 2, 0, 1]
    assert task_for_env_index(5, 1) == 0
    with pytest.raises(ConfigError, match="num_tasks"):
        task_for_env_index(0, 0)
    with pytest.raises(ConfigError, match="env_index"):
        task_for_env_index(-1, 2)


def test_sb3_sees_category_indices_not_pixels() -> None:
    import torch
    from stable_baselines3.common.preprocessing import is_image_space, preprocess_obs

    env = make_task_env("minigrid-basic", 1)
    space = env.observation_space
    assert not is_image_space(space["image"], check_channels=False)
    obs, _ = env.reset(seed=0)
    batch = {key: torch.as_tensor(np.asarray(value))[None] for key, value in obs.items()}
    processed = preprocess_obs(batch, space)
    assert processed["image"].shape == (1, 7, 7, 3)  # not transposed to channels-first
    assert torch.equal(processed["image"][0], torch.as_tensor(obs["image"], dtype=torch.float32))  # not / 255
    assert float(processed["image"].max()) >= 2.0
