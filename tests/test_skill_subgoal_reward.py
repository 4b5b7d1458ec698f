"""The ``putnext`` skill's subgoal bonus (``SkillStepEnv(subgoal_reward=...)``, ``modrl options skills``'
``subgoal_reward``): paid once, the first time the object to move is in hand, never to a call that starts holding it,
and never counted as success."""

from __future__ import annotations

from typing import Any

import pytest

from modrl.agents.options.skill_cloning_config import load_skill_cloning_config
from modrl.config import ConfigError
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.skill_env import SkillStepEnv

PUTNEXT_ENV = ("BabyAI-PutNextLocal-v0",)


def _expert_episode(env: SkillStepEnv, seed: int) -> tuple[list[float], dict[str, Any], bool]:
    """Reset, then let the scripted skill act until the episode ends; rewards, the reset info, whether it was held."""
    _, info = env.reset(seed=seed)
    held_at_start = env._holds_moved_object()
    rewards: list[float] = []
    while True:
        action = ScriptedSkills(env._env).next_action(env.target)
        assert action is not None
        _, reward, terminated, truncated, end = env.step(action)
        rewards.append(float(reward))
        if terminated or truncated:
            assert end["is_success"] is bool(terminated)
            return rewards, info, held_at_start


def test_the_bonus_is_paid_once_when_the_moved_object_is_first_in_hand() -> None:
    shaped = SkillStepEnv(PUTNEXT_ENV, "putnext", view_size=11, subgoal_reward=0.25)
    plain = SkillStepEnv(PUTNEXT_ENV, "putnext", view_size=11)
    fetched = 0
    for seed in range(6):
        rewards, info, held = _expert_episode(shaped, seed)
        plain_rewards, plain_info, _ = _expert_episode(plain, seed)
        assert info["call"] == plain_info["call"] and len(rewards) == len(plain_rewards)
        bonus = [a - b for a, b in zip(rewards, plain_rewards, strict=True)]
        assert plain_rewards[-1] > 0 and all(r == 0 for r in plain_rewards[:-1])  # success pays at the end only
        if held:
            assert bonus == [0.0] * len(bonus)
        else:
            fetched += 1
            assert sorted(bonus)[-1] == pytest.approx(0.25) and sum(bonus) == pytest.approx(0.25)
            assert bonus[-1] == 0.0  # the hands are free again when the box is put down
    assert fetched >= 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"skill": "pickup", "subgoal_reward": 0.2}, "putnext only"),
        ({"skill": "putnext", "subgoal_reward": 1.5}, r"\[0, 1\]"),
        ({"skill": "putnext", "subgoal_reward": -0.1}, r"\[0, 1\]"),
    ],
)
def test_a_bad_subgoal_reward_is_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=f"subgoal_reward.*{match}"):
        SkillStepEnv(PUTNEXT_ENV, **kwargs)


@pytest.mark.parametrize(
    ("values", "match"),
    [({"subgoal_reward": 2.0}, r"\[0, 1\]"), ({"subgoal_reward": 0.2, "finetune_steps": 0}, "finetune_steps")],
)
def test_the_config_refuses_a_subgoal_reward_it_cannot_use(values: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=f"subgoal_reward.*{match}"):
        load_skill_cloning_config({"suite": "sequences", "finetune_steps": 100, **values})
