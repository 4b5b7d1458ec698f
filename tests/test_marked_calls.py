"""A learned router over whole-grid skill options (agents/options/marked_calls.py): one call per subtask with its marker
targets, the marker moved to the chosen call's objects, the router reading MiniGrid's 7x7 view, and ``options route``
end to end over such a library."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from modrl.agents.options.config import load_route_config
from modrl.agents.options.marked_calls import EgocentricImage, MarkedCalls, marked_controller_env, whole_grid_calls
from modrl.agents.options.ppo_controller import controller_calls, evaluate_controller, train_controller
from modrl.agents.options.skill_cloning_config import load_skill_cloning_config, skill_option_config
from modrl.envs import make_suite_env
from modrl.envs.suites import get_suite
from modrl.envs.wrappers import FullView
from modrl.options import CallAndReturn, Option, OptionCall, OptionLibrary
from modrl.options import call_and_return as car

NET = {"channels": [4], "features_dim": 8, "hidden": [8], "arg_dim": 2, "embed_dim": 2}
PUTNEXT = "putnext-yellow-box-blue-key"


def _skill_library(*, marker: bool = True, words: bool = True, view: int = 9) -> OptionLibrary:
    torch.manual_seed(0)
    config = load_skill_cloning_config({"view_size": view, "target_marker": marker, "words": words, "net": NET})
    library = OptionLibrary()
    for skill in ("goto", "pickup", "open", "putnext"):
        library.add(skill, Option(skill_option_config(config)))
    return library


def test_every_subtask_gets_a_call_with_its_words_and_marker_targets() -> None:
    calls, targets = whole_grid_calls(_skill_library(), "sequences")
    by_name = dict(zip([c.name for c in calls], targets, strict=True))
    assert by_name["goto-green-ball"] == (("ball", "green"),)
    assert by_name["putnext-yellow-box"] == (("box", "yellow"), ("key", "blue"))  # the object moved, then where
    assert OptionCall(option="putnext", args=("yellow", "box")) in calls
    suite_subtasks = {s for t in get_suite("sequences").task_names for s in t.split("_then_")}
    assert len(calls) == len(suite_subtasks)
    with pytest.raises(ValueError, match="reads no \\(colour, type\\) words"):
        whole_grid_calls(_skill_library(words=False), "sequences")
    assert controller_calls(_skill_library(), "sequences") == (calls, targets)


def test_the_chosen_calls_objects_are_marked_for_its_option(monkeypatch: pytest.MonkeyPatch) -> None:
    library = _skill_library()
    calls, targets = whole_grid_calls(library, "sequences")
    seen: list[np.ndarray] = []
    real = car.run_option

    def spy(env: gym.Env, option: Any, args: Any, observation: Any, info: Any, **kwargs: Any) -> Any:
        seen.append(observation["image"])
        return real(env, option, args, observation, info, **kwargs)

    monkeypatch.setattr(car, "run_option", spy)
    suite = get_suite("sequences")
    inner = make_suite_env(suite, suite.task_index(PUTNEXT), mission_tokens=True)
    env = marked_controller_env(inner, library, calls, targets, view_size=9, marker=True, max_option_steps=2)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (7, 7, 3) and env.observation_space["image"].shape == (7, 7, 3)  # type: ignore[index]
    index = [c.name for c in calls].index("putnext-yellow-box")
    obs, *_ = env.step(index)
    assert obs["image"].shape == (7, 7, 3)
    first = seen[0]
    assert first.shape == (9, 9, 4)
    marked = first[..., 3]
    # the yellow box (1) and the blue key (2), wherever they are in view; nothing else
    assert set(np.unique(marked)) <= {0, 1, 2} and (marked == 1).sum() <= 1 and (marked == 2).sum() <= 1
    view = next(w for w in _chain(env) if isinstance(w, FullView))
    assert view.targets == (("box", "yellow"), ("key", "blue"))
    goto = [c.name for c in calls].index("goto-green-ball")
    env.step(goto)
    assert view.targets == (("ball", "green"),) and not (seen[-1][..., 3] == 2).any()
    env.close()


def _chain(env: gym.Env) -> list[gym.Env]:
    out = [env]
    while isinstance(env, gym.Wrapper):
        env = env.env
        out.append(env)
    return out


def test_marked_calls_need_a_full_view_and_one_target_tuple_per_call() -> None:
    library = _skill_library()
    calls, targets = whole_grid_calls(library, "sequences")
    suite = get_suite("sequences")
    env = make_suite_env(suite, 0, mission_tokens=True)
    with pytest.raises(TypeError, match="FullView"):
        MarkedCalls(env, library, calls, targets)
    with pytest.raises(ValueError, match="one target tuple per call"):
        MarkedCalls(FullView(env, size=9, marker=True), library, calls, targets[:-1])
    assert isinstance(marked_controller_env(env, library, calls, targets, view_size=9, marker=True), EgocentricImage)
    assert isinstance(marked_controller_env(env, library, calls, targets, view_size=9, marker=True).env, CallAndReturn)


def test_options_route_trains_and_evaluates_a_router_over_whole_grid_skill_options(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _skill_library().save(tmp_path / "lib")
    config = load_route_config(
        {
            "library": str(tmp_path / "lib"),
            "env": {"suite": "sequences", "n_envs": 2},
            "max_option_steps": 3,
            "max_decisions": 3,
            "total_timesteps": 120,
            "algo": {"n_steps": 8, "batch_size": 16, "n_epochs": 1},
        }
    )
    with caplog.at_level("INFO", logger="modrl.progress"):
        model, library, calls, callback = train_controller(config)
    assert "putnext-yellow-box" in [c.name for c in calls] and callback.frames >= 120
    progress = [r.getMessage() for r in caplog.records if r.name == "modrl.progress"]
    assert progress and progress[-1].startswith(f"[router] frames {callback.frames}/120 (100%)")
    results = evaluate_controller(model, config, library, calls, episodes=1, deterministic=False)
    assert set(results) == set(get_suite("sequences").task_names)
    # One episode per task: its outcome (0 or 1, not a fraction) and a whole number of decisions within the limit.
    assert all(row.success in (0.0, 1.0) and row.decisions in (1, 2, 3) for row in results.values())
