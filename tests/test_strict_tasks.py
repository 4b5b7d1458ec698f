"""BabyAI's strict pick-up and open on modrl's generated tasks (``TaskEnv(strict=True)``, ``env.strict``): a wrong
pick-up or door fails the episode (terminated, reward 0), only for the current subtask, and only in training envs.
(The batched engine against MiniGrid with strict tasks: tests/test_fast_tasks.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from minigrid.core.actions import Actions
from minigrid.core.world_object import Ball, Door

from modrl.config import ConfigError
from modrl.envs import SplitTaskEnv, make_suite_env
from modrl.envs.task_env import TaskEnv
from modrl.envs.wrappers import minigrid_env


def _facing_free_cell(env: TaskEnv) -> None:
    """Reset ``env`` on the first seed whose start faces an empty cell."""
    for seed in range(100):
        env.reset(seed=seed)
        if env.grid.get(*env.front_pos) is None and 0 < env.front_pos[0] < env.width - 1:
            return
    raise AssertionError("no seed with a free cell in front")


@pytest.mark.parametrize("strict", [False, True])
def test_picking_up_a_wrong_object_fails_only_when_strict(strict: bool) -> None:
    env = TaskEnv("pickup-red-ball", strict=strict)
    _facing_free_cell(env)
    env.grid.set(*env.front_pos, Ball("blue"))  # a wrong object in front
    _, reward, terminated, truncated, info = env.step(Actions.pickup)
    assert env.carrying is not None and env.carrying.color == "blue"
    assert (reward, terminated, truncated) == (0, strict, False)
    assert info["subtask_index"] == 0 and info["events"] == []


@pytest.mark.parametrize("strict", [False, True])
def test_toggling_a_wrong_door_fails_only_when_strict(strict: bool) -> None:
    env = TaskEnv("open-red-door", strict=strict)
    _facing_free_cell(env)
    env.grid.set(*env.front_pos, Door("blue"))
    _, reward, terminated, _, _ = env.step(Actions.toggle)
    assert (reward, terminated) == (0, strict)


def test_the_right_pickup_still_succeeds_when_strict() -> None:
    env = TaskEnv("pickup-red-ball", strict=True)
    _facing_free_cell(env)
    ball = next(o for o in env.grid.grid if isinstance(o, Ball) and o.color == "red")
    env.grid.set(*ball.cur_pos, None)
    env.grid.set(*env.front_pos, ball)
    ball.cur_pos = env.front_pos
    _, reward, terminated, _, info = env.step(Actions.pickup)
    assert terminated and float(reward) > 0 and info["events"] == ["pickup(ball,red)"]


def test_only_the_current_subtask_fails() -> None:
    """A pick-up while the current subtask is a go-to continues, though the next (strict) subtask is a pick-up."""
    env = TaskEnv("goto-green-key_then_pickup-red-ball", strict=True)
    _facing_free_cell(env)
    env.grid.set(*env.front_pos, Ball("blue"))
    _, reward, terminated, _, info = env.step(Actions.pickup)
    assert (reward, terminated, info["subtask_index"]) == (0, False, 0)
    env.step(Actions.drop)
    _, reward, terminated, _, _ = env.step(Actions.pickup)  # the blue ball again: the current subtask is the go-to
    assert not terminated


def test_strict_reaches_every_task_of_a_split_and_is_refused_for_stock_envs() -> None:
    split = SplitTaskEnv("colour-type", "train", strict=True)
    for index in split.task_ids[:5]:
        assert minigrid_env(split.task_env(index)).strict is True
    with pytest.raises(ConfigError, match=r"strict: task .* is a stock MiniGrid env"):
        make_suite_env("minigrid-basic", 0, strict=True)


def test_env_strict_trains_strict_and_evaluates_as_is(tiny_config: Any) -> None:
    from modrl.agents.common.builders import env_options, make_vec_env
    from modrl.agents.common.config_checks import check_run_fields
    from modrl.envs import get_suite

    for engine in ("minigrid", "fast"):
        config = tiny_config("env.suite=colour-type", "env.split=train", "env.strict=true", f"env.engine={engine}")
        check_run_fields(config)
        venv = make_vec_env(config)
        venv.reset()
        if engine == "fast":
            assert venv.engine.strict.any()  # type: ignore[attr-defined]
        else:
            slot = venv.envs[0].unwrapped  # type: ignore[attr-defined]
            assert minigrid_env(slot.current_env).strict is True
        venv.close()
    suite = get_suite("colour-type")
    evaluation = make_suite_env(suite, 0, **env_options(config))  # what evaluate_policy builds
    assert minigrid_env(evaluation).strict is False
    with pytest.raises(ConfigError, match=r"env\.strict: task .* of suite 'minigrid-tiny' is a stock MiniGrid env"):
        check_run_fields(tiny_config("env.strict=true"))
