"""Options that read a map of the cells seen so far (``env.map_view``, :class:`modrl.envs.own_view.MapView`): the image
shows what was seen and only that, remembers it out of view, and is what the options read in training and under the
planner."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from modrl.agents.options.config import load_options_config
from modrl.agents.options.ppo_controller import controller_calls
from modrl.agents.planning.evaluation import PlannerEvalConfig, evaluate_planner
from modrl.agents.planning.library import load_library
from modrl.agents.planning.skills import full_view_of, learned_skills, library_map_view, wrap_for_library
from modrl.config import ConfigError
from modrl.envs.own_view import MapView
from modrl.envs.subtask_env import SubtaskEnv
from modrl.envs.wrappers import FullView, full_view_image, minigrid_env
from modrl.options import Option, OptionConfig, OptionLibrary

TASK = "ModRL-sequences-goto-green-ball_then_open-red-door-v0"  # two rooms: never all in view at the start
SIDE = 25
MAP_OPTION = OptionConfig(image_shape=(SIDE, SIDE, 3), channels=(4,), features_dim=4, hidden=(), embed_dim=2)


def _agrees(mapped: np.ndarray, full: np.ndarray) -> bool:
    """Every cell of the map image is unseen (0) or what the whole grid shows there."""
    seen = mapped[..., 0] != 0
    return bool(np.array_equal(mapped[seen], full[seen]))


def test_the_map_image_shows_what_was_seen_only_and_keeps_it() -> None:
    env = MapView(gym.make(TASK), size=SIDE)
    rng = np.random.default_rng(0)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        base = minigrid_env(env)
        full = full_view_image(base, SIDE)
        assert obs["image"].shape == (SIDE, SIDE, 3) and _agrees(obs["image"], full)
        assert (obs["image"][..., 0] != 0).sum() < (full[..., 0] != 0).sum()  # the other room is not seen yet
        assert env.map is not None
        known = env.map.known.copy()
        for _ in range(150):
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(6)))  # no `done`: it ends nothing here
            assert _agrees(obs["image"], full_view_image(base, SIDE)), "the map shows a cell unlike the grid"
            assert (env.map.known >= known).all(), "a seen cell was forgotten"
            known = env.map.known.copy()
            if terminated or truncated:
                break


def test_cells_out_of_view_stay_on_the_map_image() -> None:
    env = MapView(gym.make(TASK), size=SIDE)
    first, _ = env.reset(seed=1)
    seen_first = int((first["image"][..., 0] != 0).sum())
    for _ in range(2):  # turn round: what was ahead is now behind, out of MiniGrid's view
        obs, *_ = env.step(0)
    assert int((obs["image"][..., 0] != 0).sum()) >= seen_first
    assert np.array_equal(
        np.rot90(obs["image"], 2, axes=(0, 1))[first["image"][..., 0] != 0], first["image"][first["image"][..., 0] != 0]
    )


def test_a_subtask_env_with_map_view_shows_the_map_not_the_grid() -> None:
    def first_image(**kwargs: object) -> np.ndarray:
        env = SubtaskEnv(["goto-green-ball"], suite="sequences", parameterised=False, view_size=SIDE, **kwargs)
        obs, _ = env.reset(seed=4)
        assert env.observation_space["image"].shape == (SIDE, SIDE, 3)
        return np.asarray(obs["image"])

    mapped, full = first_image(map_view=True), first_image()
    assert _agrees(mapped, full) and (mapped[..., 0] != 0).sum() < (full[..., 0] != 0).sum()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"map_view": True}, "map_view: needs view_size"),
        ({"map_view": True, "view_size": SIDE, "prefix_skills": 1}, "map_view: cannot be combined"),
        ({"map_view": "yes", "view_size": SIDE}, "map_view: must be true or false"),
    ],
)
def test_a_subtask_env_refuses_a_map_view_it_cannot_keep(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SubtaskEnv(["goto-green-ball"], suite="sequences", parameterised=False, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "env", [{"map_view": True}, {"map_view": True, "view_size": SIDE, "prefix_skills": 2}, {"map_view": 1}]
)
def test_options_config_refuses_a_bad_map_view(env: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="map_view"):
        load_options_config(
            {"mode": "per_symbol", "options": ["goto-green-ball"], "env": {"suite": "sequences", **env}}
        )


def test_the_spec_names_the_map_view_only_when_set_and_a_library_keeps_it(tmp_path: Path) -> None:
    assert "map_view" not in Option(OptionConfig()).spec()  # specs saved before the map view: unchanged
    mapped = Option(OptionConfig(**{**vars(MAP_OPTION), "map_view": True}))
    assert mapped.spec()["map_view"] is True
    library = OptionLibrary()
    library.add("goto-green-ball", mapped)
    library.save(tmp_path / "options")
    loaded = load_library(str(tmp_path / "options"))
    assert library_map_view(loaded) and loaded.get("goto-green-ball").config.map_view


def _map_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": "tiny", "env": {"suite": "sequences"}}))
    library = OptionLibrary()
    for name in ("goto-green-ball", "open-red-door"):
        library.add(name, Option(OptionConfig(**{**vars(MAP_OPTION), "map_view": True})))
    library.save(run_dir / "options")
    return run_dir


def test_under_the_planner_map_view_options_read_the_map(tmp_path: Path) -> None:
    library = load_library(str(_map_run(tmp_path) / "options"))
    env = wrap_for_library(gym.make(TASK), library)
    viewer = full_view_of(env)
    assert isinstance(viewer, MapView) and not isinstance(
        full_view_of(wrap_for_library(gym.make(TASK), OptionLibrary())), FullView
    )
    env.reset(seed=2)
    executor = learned_skills(env, library, fallback=None)
    for action in (0, 2, 2, 1):  # options and scripted skills step the same wrapped env: the map follows every step
        obs, *_ = env.step(action)
        assert np.array_equal(executor._observation()["image"], obs["image"])
    assert not np.array_equal(obs["image"], full_view_image(minigrid_env(env), SIDE))  # not the whole grid
    report = evaluate_planner(
        PlannerEvalConfig(
            suite="sequences",
            split="train",
            episodes=1,
            option_steps=2,
            library=str(tmp_path / "run" / "options"),
            max_replans=1,
            tasks=("goto-green-ball_then_open-red-door",),
        )
    )
    assert report.tasks[0].episodes == 1 and report.tasks[0].runs[0].option_calls >= 1


def test_options_route_refuses_a_map_view_library(tmp_path: Path) -> None:
    library = load_library(str(_map_run(tmp_path) / "options"))
    with pytest.raises(ConfigError, match="map view"):
        controller_calls(library, "sequences")
