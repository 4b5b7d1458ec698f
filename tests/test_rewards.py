"""The exact reward of every env family on scripted episodes: the stock MiniGrid wrapper (``make_task_env``), the
grammar's :class:`~modrl.envs.task_env.TaskEnv` and the single-subtask :class:`~modrl.envs.subtask_env.SubtaskEnv`.

All three pay MiniGrid's time-discounted ``1 - 0.9 * step_count / max_steps`` on the step that completes the goal and
exactly 0 on every other step (a completed subtask of a longer sequence, a time-out). The expected values are
computed here from the step count and the step limit, so an env that pays a constant (``1.0`` on success) or forgets
the time penalty fails.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from minigrid.core.actions import Actions

from modrl.envs import make_task_env
from modrl.envs.oracle import SequenceBot, demonstrate
from modrl.envs.subtask_env import SubtaskEnv
from modrl.envs.task_env import TaskEnv

EMPTY5_SOLUTION = [int(a) for a in (Actions.forward, Actions.forward, Actions.right, Actions.forward, Actions.forward)]
SEQUENCE = "open-red-door_then_pickup-blue-key_then_goto-green-ball"


def discounted(steps: int, max_steps: int) -> float:
    """MiniGrid's success reward after ``steps`` steps of at most ``max_steps``, computed by hand."""
    return 1.0 - 0.9 * steps / max_steps


def _rewards(env: gym.Env, actions: list[int], seed: int) -> tuple[list[float], bool, bool, dict[str, Any]]:
    env.reset(seed=seed)
    rewards: list[float] = []
    for action in actions:
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(float(reward))
        if terminated or truncated:
            return rewards, terminated, truncated, info
    raise AssertionError(f"the episode did not end within {len(actions)} actions")


# -- stock MiniGrid through make_task_env --------------------------------------------------------------------------
@pytest.mark.parametrize("max_steps", [100, 20, 8, 5])
def test_stock_wrapper_pays_the_time_discounted_reward(max_steps: int) -> None:
    env = make_task_env("minigrid-basic", 0, max_episode_steps=max_steps)  # Empty-5x5: fixed layout
    rewards, terminated, truncated, info = _rewards(env, EMPTY5_SOLUTION, seed=0)
    assert len(rewards) == 5 and rewards[:-1] == [0.0] * 4
    assert rewards[-1] == pytest.approx(discounted(5, max_steps), abs=1e-12)  # 0.955, 0.775, 0.4375, 0.1
    assert terminated and info["is_success"] is True
    assert truncated == (max_steps == 5)  # reaching the goal on the last allowed step is still a success


def test_stock_wrapper_pays_nothing_on_a_time_out() -> None:
    env = make_task_env("minigrid-basic", 0, max_episode_steps=4)
    rewards, terminated, truncated, info = _rewards(env, EMPTY5_SOLUTION, seed=0)
    assert rewards == [0.0] * 4 and truncated and not terminated and info["is_success"] is False


# -- TaskEnv: the grammar's BabyAI levels --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "seed"),
    [("goto-red-ball", 0), ("pickup-green-key", 1), ("open-blue-door", 2), ("putnext-red-key-grey-box", 3)],
)
def test_task_env_pays_the_discounted_reward_on_the_last_subtask_only(name: str, seed: int) -> None:
    env = TaskEnv(name)
    demo = demonstrate(env, seed=seed)
    assert demo.success and demo.length >= 2
    assert not demo.rewards[:-1].any()
    assert demo.rewards[-1] == np.float32(discounted(demo.length, env.max_steps))
    assert demo.rewards[-1] < 1.0  # a time penalty is paid


def test_task_env_pays_nothing_for_the_first_subtasks_of_a_sequence() -> None:
    env = TaskEnv(SEQUENCE, max_steps=400)
    demo = demonstrate(env, seed=3)
    completed = [t for t, events in enumerate(demo.events) if events]
    assert demo.success and len(completed) == 3 and completed[-1] == demo.length - 1
    assert not demo.rewards[:-1].any()  # opening the door and picking up the key pay 0
    assert demo.rewards[-1] == np.float32(discounted(demo.length, 400))


def test_task_env_reward_follows_the_step_limit_and_times_out_with_nothing() -> None:
    actions = demonstrate(TaskEnv("pickup-green-key"), seed=1).actions.tolist()
    steps = len(actions)
    for limit in (steps, steps + 1, 3 * steps):  # success on the last allowed step pays 0.1
        rewards, terminated, _, _ = _rewards(TaskEnv("pickup-green-key", max_steps=limit), actions, seed=1)
        assert terminated and rewards[:-1] == [0.0] * (steps - 1)
        assert rewards[-1] == pytest.approx(discounted(steps, limit), abs=1e-12)
    rewards, terminated, truncated, _ = _rewards(TaskEnv("pickup-green-key", max_steps=steps - 1), actions, seed=1)
    assert truncated and not terminated and rewards == [0.0] * (steps - 1)


def test_wrapped_task_env_reports_the_same_reward() -> None:
    from modrl.envs import get_suite

    suite = get_suite("sequences")
    env = make_task_env(suite, suite.task_names.index(SEQUENCE), max_episode_steps=300)
    demo = demonstrate(env, seed=5)
    assert demo.success and not demo.rewards[:-1].any()
    assert demo.rewards[-1] == np.float32(discounted(demo.length, 300))


# -- SubtaskEnv: single-subtask episodes ----------------------------------------------------------------------------
def _bot_episode(env: SubtaskEnv, seed: int, task: str) -> tuple[list[float], bool, bool, dict[str, Any]]:
    env.reset(seed=seed, options={"task": task})
    bot = SequenceBot(env.current_env)
    rewards: list[float] = []
    while True:
        _, reward, terminated, truncated, info = env.step(int(bot.replan()))
        rewards.append(float(reward))
        if terminated or truncated:
            return rewards, terminated, truncated, info


@pytest.mark.parametrize("limit", [60, 25])
def test_subtask_env_pays_the_discounted_reward_on_its_subtask(limit: int) -> None:
    tasks = ["pickup-grey-box", "pickup-green-key"]
    env = SubtaskEnv(tasks, suite="colour-type", max_episode_steps=limit)
    for seed, task in enumerate(tasks):
        rewards, terminated, _, info = _bot_episode(env, seed, task)
        assert terminated and info["is_success"] is True and rewards[:-1] == [0.0] * (len(rewards) - 1)
        assert rewards[-1] == pytest.approx(discounted(len(rewards), limit), abs=1e-12)


def test_subtask_env_ends_a_sequence_at_its_first_subtask_with_the_discounted_reward() -> None:
    env = SubtaskEnv([SEQUENCE], suite="sequences", max_episode_steps=200)
    rewards, terminated, _, info = _bot_episode(env, 3, SEQUENCE)
    assert terminated and info["subtask"] == "open(door,red)" and info["events"] == ["open(door,red)"]
    assert rewards[:-1] == [0.0] * (len(rewards) - 1)
    assert rewards[-1] == pytest.approx(discounted(len(rewards), 200), abs=1e-12)  # the task env itself paid 0


def test_subtask_env_pays_nothing_on_a_time_out() -> None:
    env = SubtaskEnv(["pickup-grey-box"], suite="colour-type", max_episode_steps=3)
    rewards, terminated, truncated, info = _rewards(env, [int(Actions.left)] * 3, seed=0)
    assert rewards == [0.0] * 3 and truncated and not terminated and info["is_success"] is False
