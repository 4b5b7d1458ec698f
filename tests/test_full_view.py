"""The whole-grid egocentric view (envs/wrappers.FullView) and options that read it: what it shows, the option
training env with it, and the planner giving a library's options the view they were trained with."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from modrl.agents.planning.evaluation import PlannerEvalConfig, evaluate_planner
from modrl.agents.planning.skills import library_view_size
from modrl.config import ConfigError
from modrl.envs.subtask_env import SubtaskEnv
from modrl.envs.wrappers import FullView, full_view_image
from modrl.options import Option, OptionConfig, OptionLibrary

KEY, BLUE = 5, 2  # minigrid OBJECT_TO_IDX["key"], COLOR_TO_IDX["blue"]


@pytest.mark.parametrize("env_id", ["MiniGrid-KeyCorridorS3R2-v0", "MiniGrid-DoorKey-6x6-v0"])
def test_full_view_contains_minigrids_view_wherever_that_is_not_occluded(env_id: str) -> None:
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    checked = 0
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        for _ in range(40):
            obs, *_ = env.step(int(rng.integers(3)))  # left, right, forward
            full = full_view_image(env.unwrapped, 25)
            block = full[12 - 3 : 12 + 4, 12 - 6 : 12 + 1]  # where MiniGrid's 7x7 view sits
            visible = obs["image"][..., 0] != 0
            assert np.array_equal(block[visible], obs["image"][visible])
            checked += int(visible.sum())
    assert checked > 1000
    env.close()


def test_full_view_shows_hidden_cells_and_the_carried_object_at_the_centre() -> None:
    env = gym.make("MiniGrid-DoorKey-6x6-v0")
    obs, _ = env.reset(seed=1)
    base = env.unwrapped
    full = full_view_image(base, 13)
    grid = base.grid.encode()
    # Every grid cell appears once (the grid fits), whatever MiniGrid's view hides.
    assert sorted(map(tuple, full.reshape(-1, 3))).count((2, 5, 0)) == sorted(map(tuple, grid.reshape(-1, 3))).count(
        (2, 5, 0)
    )  # walls
    assert (full[..., 0] == KEY).sum() == 1 and (obs["image"][..., 0] == KEY).sum() <= 1
    base.carrying = base.grid.get(
        *next((x, y) for x in range(grid.shape[0]) for y in range(grid.shape[1]) if grid[x, y, 0] == KEY)
    )
    assert tuple(full_view_image(base, 13)[6, 6, :2]) == (KEY, 4)  # DoorKey's key is yellow (COLOR_TO_IDX 4)
    # Beyond the grid: 0 (unseen).
    assert (full_view_image(base, 25) == 0).all(axis=2).sum() > 0
    env.close()


def test_full_view_wrapper_spaces_and_errors() -> None:
    env = FullView(gym.make("MiniGrid-Empty-5x5-v0"), size=9)
    assert env.observation_space["image"].shape == (9, 9, 3)
    with pytest.warns(UserWarning, match="different from the unwrapped"):  # gymnasium's note on checking a wrapper
        check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        assert env.observation_space.contains(env.step(env.action_space.sample())[0])
    assert obs["image"].shape == (9, 9, 3) and obs["image"].dtype == np.uint8 and "direction" in obs
    env.close()
    with pytest.raises(ConfigError, match="size"):
        FullView(gym.make("MiniGrid-Empty-5x5-v0"), size=8)


def test_subtask_env_with_the_full_view_shows_the_carried_key_to_a_later_option() -> None:
    env = SubtaskEnv(["goto-green-ball"], suite="sequences", parameterised=False, view_size=15)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (15, 15, 3) and env.observation_space["image"].shape == (15, 15, 3)
    assert env.observation_space.contains(obs)
    green_ball = (6, 1)  # minigrid OBJECT_TO_IDX["ball"], COLOR_TO_IDX["green"]
    assert ((obs["image"][..., 0] == green_ball[0]) & (obs["image"][..., 1] == green_ball[1])).sum() == 1
    env.close()
    with pytest.raises(ConfigError, match="view_size"):
        SubtaskEnv(["goto-green-ball"], suite="sequences", parameterised=False, view_size=10)


def _library(tmp_path: Path, sides: dict[str, int]) -> Path:
    library = OptionLibrary()
    for name, side in sides.items():
        library.add(
            name,
            Option(OptionConfig(image_shape=(side, side, 3), channels=(4,), features_dim=4, hidden=(), embed_dim=2)),
        )
    library.save(tmp_path / "lib")
    return tmp_path / "lib"


def test_the_planner_gives_full_view_options_their_view(tmp_path: Path) -> None:
    path = _library(tmp_path, {"goto-green-ball": 15, "pickup-blue-key": 15})
    library = OptionLibrary.load(path)
    assert library_view_size(library) == 15
    config = PlannerEvalConfig(
        suite="sequences",
        split="test",
        episodes=1,
        library=str(path),
        option_steps=3,
        tasks=("goto-green-ball_then_pickup-blue-key",),
    )
    report = evaluate_planner(config)  # a 7x7 image would not fit these options' encoders
    assert report.tasks[0].option_calls > 0


def test_one_library_has_one_view(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image_shape"):
        _library(tmp_path, {"goto-green-ball": 15, "pickup-blue-key": 7})
    assert library_view_size(OptionLibrary.load(_library(tmp_path / "b", {"goto-green-ball": 7}))) is None
    assert library_view_size(OptionLibrary()) is None


def test_current_observation_is_minigrids_or_the_full_view() -> None:
    from modrl.envs.wrappers import current_observation

    env = gym.make("MiniGrid-DoorKey-6x6-v0")
    obs, _ = env.reset(seed=2)
    assert np.array_equal(current_observation(env.unwrapped, None)["image"], obs["image"])
    full = current_observation(env.unwrapped, 13)
    assert np.array_equal(full["image"], full_view_image(env.unwrapped, 13)) and full["direction"] == obs["direction"]
    env.close()
