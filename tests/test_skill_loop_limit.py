"""Stuck calls cut in training as the planner cuts them (``SkillStepEnv(loop_limit=...)``, ``modrl options skills``'
``loop_limit``): an episode that sees one observation ``loop_limit`` times is truncated as a failure."""

from __future__ import annotations

from typing import Any

import pytest

from modrl.agents.options.skill_cloning_config import load_skill_cloning_config
from modrl.config import ConfigError
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.skill_env import SkillStepEnv
from modrl.options.call_and_return import observation_key
from tests.conftest import tiny_skill_ppo_envs

ENVS = ["MiniGrid-UnlockPickup-v0"]
TURN_LEFT = 0


def _turn_until_over(env: SkillStepEnv) -> tuple[int, float, bool, bool, dict[str, Any]]:
    """Turn left until the episode ends; returns (steps, last reward, terminated, truncated, info)."""
    steps = 0
    while True:
        _, reward, terminated, truncated, info = env.step(TURN_LEFT)
        steps += 1
        if terminated or truncated:
            return steps, float(reward), terminated, truncated, info


@pytest.mark.parametrize("limit", [2, 3, 5])
def test_turning_on_the_spot_is_cut_when_the_calling_view_recurs_limit_times(limit: int) -> None:
    env = SkillStepEnv(ENVS, "pickup", view_size=11, loop_limit=limit)
    env.reset(seed=0)
    steps, reward, terminated, truncated, info = _turn_until_over(env)
    # Four left turns bring the calling view back: it is seen for the limit-th time after 4 * (limit - 1) turns.
    assert steps == 4 * (limit - 1)
    assert truncated and not terminated and reward == 0.0
    assert info["loop"] is True and info["is_success"] is False
    env.close()


def test_without_a_loop_limit_only_the_step_limit_ends_the_turning() -> None:
    env = SkillStepEnv(ENVS, "pickup", view_size=11, max_steps=30)
    env.reset(seed=0)
    steps, _, terminated, truncated, info = _turn_until_over(env)
    assert steps == 30 and truncated and not terminated and "loop" not in info
    env.close()


def test_the_count_starts_afresh_every_episode_and_uses_the_planners_digest() -> None:
    env = SkillStepEnv(ENVS, "pickup", view_size=11, loop_limit=3)
    for seed in range(3):
        first, _ = env.reset(seed=seed)
        assert dict(env._seen) == {observation_key(first): 1}
        steps, *_ = _turn_until_over(env)
        assert steps == 8
    env.close()


def test_the_scripted_skill_finishes_a_call_under_the_tightest_limit() -> None:
    # A shortest path never sees one observation twice, so a call done the scripted way is never cut.
    env = SkillStepEnv(ENVS, "pickup", view_size=11, loop_limit=2)
    for seed in range(3):
        env.reset(seed=seed)
        expert = ScriptedSkills(env.base)
        done = truncated = False
        info: dict[str, Any] = {}
        while not (done or truncated):
            action = expert.next_action(env.target)
            assert action is not None
            _, _, done, truncated, info = env.step(action)
        assert done and info["is_success"] is True and info["loop"] is False
    env.close()


@pytest.mark.parametrize("limit", [1, -1])
def test_a_bad_loop_limit_is_refused(limit: int) -> None:
    with pytest.raises(ConfigError, match="loop_limit"):
        SkillStepEnv(ENVS, "pickup", loop_limit=limit)
    with pytest.raises(ConfigError, match="loop_limit"):
        load_skill_cloning_config(
            {"suite": "minigrid-hard", "demonstrations": False, "finetune_steps": 10, "loop_limit": limit}
        )


def test_the_key_needs_ppo_and_reaches_every_ppo_env() -> None:
    with pytest.raises(ConfigError, match=r"loop_limit.*finetune_steps"):
        load_skill_cloning_config({"suite": "minigrid-hard", "finetune_steps": 0, "loop_limit": 3})
    envs = tiny_skill_ppo_envs("open", seed_pool=2, loop_limit=4)
    assert [env.loop_limit for env in envs] == [4, 4]
    for env in envs:
        env.close()
