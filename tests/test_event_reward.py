"""``env.event_reward``: training-time shaping from the suites' subtask events, bounded, never seen by evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from modrl.config import ConfigError
from modrl.envs import TaskEnv, demonstrate, parse_task
from modrl.envs.wrappers import SubtaskEventReward, SuccessInfo

TASK = "open-red-door_then_pickup-blue-key"


def test_each_completed_subtask_pays_the_bonus_once_on_its_step() -> None:
    plain = demonstrate(SuccessInfo(TaskEnv(parse_task(TASK)), task_name=TASK), seed=3)
    shaped = demonstrate(SubtaskEventReward(SuccessInfo(TaskEnv(parse_task(TASK)), task_name=TASK), bonus=0.25), seed=3)
    assert plain.success and shaped.success and np.array_equal(plain.actions, shaped.actions)
    done = [t for t, events in enumerate(plain.events) if events]
    assert len(done) == 2 and [e for t in done for e in plain.events[t]] == ["open(door,red)", "pickup(key,blue)"]
    expected = plain.rewards.astype(np.float64).copy()
    expected[done] += 0.25  # the door's step, and the key's (which also ends the episode with the task reward)
    assert np.allclose(shaped.rewards, expected)
    assert float(np.sum(shaped.rewards) - np.sum(plain.rewards)) == pytest.approx(0.5)  # 2 subtasks x bonus


def test_event_reward_is_checked_and_shapes_training_envs_only(tiny_config) -> None:
    from modrl.agents.common.builders import make_vec_env

    with pytest.raises(ConfigError, match=r"env\.event_reward: must be in \[0, 1\]"):
        tiny_config("env.event_reward=2")
    with pytest.raises(ConfigError, match="bonus"):
        SubtaskEventReward(TaskEnv(parse_task(TASK)), bonus=-0.1)
    minigrid = ("env.suite=sequences", "env.split=train", "env.engine=minigrid")
    venv = make_vec_env(tiny_config(*minigrid, "env.event_reward=0.1"))
    assert all(isinstance(env.env, SubtaskEventReward) for env in _inner(venv))  # Monitor(shaping(env))
    plain = make_vec_env(tiny_config(*minigrid))
    assert not any(isinstance(env.env, SubtaskEventReward) for env in _inner(plain))
    # the batched engine adds the same bonus itself (tests/test_fast_tasks.py compares the rewards)
    fast = ("env.suite=sequences", "env.split=train", "env.engine=fast")
    assert make_vec_env(tiny_config(*fast, "env.event_reward=0.1")).event_reward == 0.1
    assert make_vec_env(tiny_config(*fast)).event_reward == 0.0


def _inner(venv):
    """The Monitor of every slot (below modrl's exact-resume wrapper)."""
    from stable_baselines3.common.monitor import Monitor

    found = []
    for env in venv.envs:
        while not isinstance(env, Monitor):
            env = env.env
        found.append(env)
    return found
