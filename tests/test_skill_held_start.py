"""The ``putnext`` start-state curriculum (``SkillStepEnv(held_start=...)``, ``modrl options skills``'
``putnext_held_start``): the scripted skill fetches the object to move before the option takes over, in the share
of calls asked for; the call, its success test and the default behaviour are otherwise unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modrl.agents.options.skill_cloning_config import load_skill_cloning_config
from modrl.config import ConfigError
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.skill_env import SkillStepEnv
from tests.conftest import tiny_skill_ppo_envs

PUTNEXT_ENV = ("BabyAI-PutNextLocal-v0",)


def _finish_scripted(env: SkillStepEnv) -> bool:
    """Let the scripted skill finish the call; whether the episode ended as a success."""
    while True:
        action = ScriptedSkills(env._env).next_action(env.target)
        assert action is not None
        _, _, terminated, truncated, end = env.step(action)
        if terminated or truncated:
            return bool(end["is_success"])


def test_every_call_starts_with_the_object_in_hand_and_still_succeeds_as_a_putnext() -> None:
    env = SkillStepEnv(PUTNEXT_ENV, "putnext", view_size=11, held_start=1.0)
    plain = SkillStepEnv(PUTNEXT_ENV, "putnext", view_size=11)
    fetched = 0
    for seed in range(6):
        _, info = env.reset(seed=seed)
        _, plain_info = plain.reset(seed=seed)
        assert env._holds_moved_object()  # handed over with the object in hand, whether fetched or held already
        assert info["call"] == plain_info["call"] and info["env_seed"] == plain_info["env_seed"]
        if not plain._holds_moved_object():
            assert info["held_start"] is True
            fetched += 1
        assert not env._bonus_left  # nothing left to shape
        assert _finish_scripted(env)  # success is still the call's effects, put next to its target
    assert fetched >= 1


def test_the_share_of_fetched_calls_follows_held_start() -> None:
    env = SkillStepEnv(PUTNEXT_ENV, "putnext", view_size=11, held_start=0.5)
    env.reset(seed=0)
    starts = []
    for _ in range(60):
        _, info = env.reset()
        starts.append(info.get("held_start"))
    fetched = sum(s is True for s in starts)
    assert 10 <= fetched <= 50 and sum(s is None for s in starts) >= 10  # some fetched, some left to the option


def test_off_by_default_the_episodes_are_unchanged() -> None:
    a = SkillStepEnv(PUTNEXT_ENV, "putnext", view_size=11)
    b = SkillStepEnv(PUTNEXT_ENV, "putnext", view_size=11, held_start=0.0)
    for seed in range(3):
        obs_a, info_a = a.reset(seed=seed)
        obs_b, info_b = b.reset(seed=seed)
        assert info_a == info_b and "held_start" not in info_a
        assert all(np.array_equal(obs_a[k], obs_b[k]) for k in obs_a)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"skill": "pickup", "held_start": 0.5}, "putnext only"),
        ({"skill": "putnext", "held_start": 1.5}, r"\[0, 1\]"),
        ({"skill": "putnext", "held_start": "half"}, r"\[0, 1\]"),
    ],
)
def test_a_bad_held_start_is_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=f"held_start.*{match}"):
        SkillStepEnv(PUTNEXT_ENV, **kwargs)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"putnext_held_start": 2.0}, r"\[0, 1\]"),
        ({"putnext_held_start": 0.5, "finetune_steps": 0}, "finetune_steps"),
        ({"putnext_held_start": 0.5, "calling_view": "own"}, "calling_view"),
    ],
)
def test_the_config_refuses_a_held_start_it_cannot_use(values: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=f"putnext_held_start.*{match}"):
        load_skill_cloning_config({"suite": "sequences", "finetune_steps": 100, **values})


def test_the_key_reaches_the_putnext_ppo_envs_only() -> None:
    putnext = tiny_skill_ppo_envs("putnext", suite="sequences", skills=["putnext"], putnext_held_start=0.5)
    other = tiny_skill_ppo_envs("open", putnext_held_start=0.5)
    assert [env.held_start for env in putnext] == [0.5, 0.5] and [env.held_start for env in other] == [0.0, 0.0]
    for env in putnext + other:
        env.close()
