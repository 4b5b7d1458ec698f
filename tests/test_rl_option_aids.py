"""Training aids for options learned by RL alone (issue 23, item 1): subgoal rewards from the suites' predicates
(``env.subgoal_reward``) and a start-state curriculum that starts ``putnext`` episodes with the object in hand
(``env.start_carrying``), annealed by the success from ordinary starts."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from stable_baselines3.common.monitor import Monitor

from modrl.agents.options.config import load_options_config
from modrl.agents.options.train import CurriculumCallback, option_jobs, training_env
from modrl.config import ConfigError
from modrl.envs.grammar import parse_task
from modrl.envs.subgoal_reward import SubgoalReward
from modrl.envs.subtask_env import SubtaskEnv
from modrl.envs.subtask_symbols import subgoal_conjunctions
from modrl.options import CurriculumConfig, SuccessCurriculum

PUTNEXT = "putnext-yellow-box-blue-key"
CARRYING = "carrying(box,yellow)"
BESIDE = "adjacent(key,blue)"
OPTIONS = {
    "mode": "per_symbol",
    "options": [PUTNEXT, "goto-green-ball"],
    "env": {"suite": "sequences", "test_split": None, "n_envs": 2},
}


def _putnext_env(**kwargs: Any) -> SubtaskEnv:
    return SubtaskEnv([PUTNEXT], suite="sequences", parameterised=False, **kwargs)


def test_subgoals_are_read_from_the_predicates_of_the_subtask() -> None:
    assert subgoal_conjunctions(parse_task(PUTNEXT).subtasks[0]) == (
        frozenset({CARRYING}),
        frozenset({CARRYING, BESIDE}),
    )
    assert subgoal_conjunctions(parse_task("open-red-door").subtasks[0]) == (frozenset({"adjacent(door,red)"}),)


def test_subgoal_reward_pays_each_subgoal_once_per_episode_on_the_step_it_first_holds() -> None:
    bonus = 0.25
    env = SubgoalReward(_putnext_env(), bonus=bonus)
    rng = np.random.default_rng(0)
    pickups_seen = repicked = 0
    for seed in range(40):
        env.reset(seed=seed)
        left = list(subgoal_conjunctions(env.unwrapped.current_subtask))  # type: ignore[attr-defined]
        done, carried_before, pickups = False, False, 0
        while not done:
            _, reward, terminated, truncated, info = env.step(int(rng.integers(7)))
            now = info["predicates"]
            first = [goal for goal in left if goal <= now]
            left = [goal for goal in left if goal not in first]
            task_reward = float(reward) - bonus * len(first)
            # What is left after the bonus is the unshaped reward: 0, or the success reward when the episode ends.
            assert task_reward == 0.0 or (terminated and info["is_success"] and 0 < task_reward <= 1)
            pickups += CARRYING in now and not carried_before
            carried_before = CARRYING in now
            done = terminated or truncated
        pickups_seen += pickups > 0
        repicked += pickups > 1
    # Random actions pick the box up in some episodes (12.7% of 300 measured), some pick it up again after a drop,
    # and the second pickup earned nothing (checked step by step above).
    assert pickups_seen >= 2 and repicked >= 1


def test_subgoals_holding_at_reset_earn_nothing_and_bad_bonuses_are_refused() -> None:
    env = SubgoalReward(_putnext_env(start_carrying=1.0), bonus=0.5)
    env.reset(seed=3)
    assert env._left == [frozenset({CARRYING, BESIDE})]  # already carrying: only the second subgoal is left
    with pytest.raises(ConfigError, match="bonus"):
        SubgoalReward(_putnext_env(), bonus=1.5)
    with pytest.raises(ConfigError, match="SubtaskEnv"):
        SubgoalReward(Monitor(_putnext_env()).unwrapped.current_env, bonus=0.1)


def test_start_carrying_puts_the_object_to_move_in_hand_and_off_the_grid() -> None:
    env = _putnext_env(start_carrying=1.0)
    for seed in range(5):
        _, info = env.reset(seed=seed)
        base = env.current_env.unwrapped
        assert info["assisted_start"] and CARRYING in info["predicates"]
        assert (base.carrying.type, base.carrying.color) == ("box", "yellow")
        assert not any(o is not None and (o.type, o.color) == ("box", "yellow") for o in base.grid.grid)
    # Dropping it beside the key completes the subtask: the verifier follows the object put in hand.
    rng, successes = np.random.default_rng(1), 0
    for seed in range(40):
        env.reset(seed=seed)
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(int(rng.integers(7)))
            done = terminated or truncated
        successes += info["is_success"]
    assert successes >= 1  # measured: 16% of random episodes from this start, 1% from the task's own start


def test_start_carrying_zero_leaves_the_episodes_as_before_and_is_checked() -> None:
    plain, zero = _putnext_env(), _putnext_env(start_carrying=0.0)
    for seed in range(3):  # the same episodes, reset after reset (no extra draw from the env's generator)
        (a, _), (b, info) = plain.reset(seed=seed), zero.reset(seed=seed)
        assert np.array_equal(a["image"], b["image"]) and not info["assisted_start"]
    for _ in range(3):
        (a, _), (b, _) = plain.reset(), zero.reset()
        assert np.array_equal(a["image"], b["image"])
    half = _putnext_env(start_carrying=0.5)
    kinds = {half.reset(seed=seed)[1]["assisted_start"] for seed in range(20)}
    assert kinds == {True, False}
    with pytest.raises(ConfigError, match="start_carrying: only putnext"):
        SubtaskEnv(["goto-green-ball"], suite="sequences", parameterised=False, start_carrying=0.5)
    with pytest.raises(ConfigError, match="start_carrying: must be in"):
        half.set_start_carrying(1.5)
    for key in ("subgoal_reward", "start_carrying"):
        with pytest.raises(ConfigError, match=rf"env\.{key}: must be in \[0, 1\]"):
            load_options_config(OPTIONS, [f"env.{key}=-0.1"])


def test_training_envs_get_the_aids_and_only_putnext_starts_in_hand() -> None:
    config = load_options_config(OPTIONS, ["env.subgoal_reward=0.1", "env.start_carrying=0.5"])
    putnext, goto = option_jobs(config)
    made: list[SubtaskEnv] = []
    env = training_env(config, putnext, made)
    assert isinstance(env, Monitor) and isinstance(env.env, SubgoalReward) and env.env.bonus == 0.1
    assert made[0].start_carrying == 0.5
    training_env(config, goto, made)
    assert made[1].start_carrying == 0.0
    plain = training_env(load_options_config(OPTIONS), putnext, made)
    assert isinstance(plain.env, SubtaskEnv) and made[2].start_carrying == 0.0


def test_curriculum_counts_only_ordinary_starts_and_anneals_the_start_probability() -> None:
    curriculum = SuccessCurriculum([PUTNEXT], CurriculumConfig(threshold=0.8, window=10, min_episodes=1))
    envs = [_putnext_env(start_carrying=0.6), _putnext_env(start_carrying=0.6)]
    callback = CurriculumCallback(curriculum, None, frames_before=0, start_envs=envs, start_carrying=0.6)
    callback.model = SimpleNamespace(get_env=lambda: SimpleNamespace(num_envs=2))  # type: ignore[assignment]

    def finish(*episodes: tuple[bool, bool]) -> None:
        callback.locals = {
            "dones": np.ones(len(episodes), bool),
            "infos": [{"is_success": ok, "assisted_start": assisted} for ok, assisted in episodes],
        }
        callback._on_step()
        callback._on_rollout_end()

    finish((True, True), (True, True))  # assisted successes are not the task's success
    assert curriculum.success_rate() is None and envs[0].start_carrying == 0.6
    finish((True, False), (False, False))  # ordinary starts: success 0.5 -> 0.6 x (1 - 0.5 / 0.8)
    assert curriculum.success_rate() == 0.5
    assert all(env.start_carrying == pytest.approx(0.6 * (1 - 0.5 / 0.8)) for env in envs)
    finish((True, False), (True, False))  # 0.75
    finish((True, False), (True, False), (True, False), (True, False))  # 7/8 >= threshold: no more aid
    assert all(env.start_carrying == 0.0 for env in envs)
