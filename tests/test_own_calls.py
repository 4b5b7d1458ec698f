"""Own-view calling states (``OwnViewSkillStepEnv``, ``modrl options skills``' ``calling_view: own``): the calls are
drawn from scripted own-view planner episodes, the state handed over is the one the planner called the skill in, the
marker points at the map's object on the grid, and the call succeeds when its effects hold on the map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import modrl.agents.options.skill_ppo as skill_ppo
from modrl.agents.options.skill_cloning import train_skill_library
from modrl.agents.options.skill_cloning_config import load_skill_cloning_config
from modrl.agents.planning.episode import start_planner_episode
from modrl.agents.planning.own_calls import OWN_VIEW_RUN, CallCache, OwnViewSkillStepEnv
from modrl.config import ConfigError
from modrl.envs.own_view import own_view_of
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.skill_env import make_env
from modrl.planner import GroundOperator, SkillResult
from tests.conftest import TINY_SKILLS

ENVS = ["MiniGrid-KeyCorridorS3R1-v0"]


class _StateRecorder:
    """Runs the scripted skills and keeps each step with the own-view state it was called in."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, list[tuple[GroundOperator, frozenset[str]]]()

    def observe(self) -> frozenset[str]:
        return self.inner.observe()

    def execute(self, step: GroundOperator) -> SkillResult:
        self.calls.append((step, self.inner.observe()))
        return self.inner.execute(step)


def _planner_calls(seed: int) -> list[tuple[GroundOperator, frozenset[str]]]:
    run = start_planner_episode(make_env(ENVS[0]), seed=seed, config=OWN_VIEW_RUN)
    recorder = _StateRecorder(run.runner)
    run.execute(recorder)
    run.close()
    return recorder.calls


@pytest.mark.parametrize("skill", ["open", "pickup"])
def test_the_call_and_state_handed_over_are_the_own_view_planners(skill: str) -> None:
    env = OwnViewSkillStepEnv(ENVS, skill, view_size=11, marker=True)
    explored = 0
    for episode in range(4):
        obs, info = env.reset(seed=episode)
        step, state = _planner_calls(info["env_seed"])[info["prefix"]]
        assert step == env.target and info["call"] == step.symbol and step.skill == skill
        own = own_view_of(env._env)
        assert own is not None and own.state() == state  # the planner's calling state, map and all
        explored += any(s.skill == "explore" for s, _ in _planner_calls(info["env_seed"])[: info["prefix"]])
        assert (obs["image"][..., 3] == 1).sum() == 1  # the marker is on one cell: the map's object
        while True:  # the own-view scripted skill completes the call; success is read from the map
            action = ScriptedSkills(env._env, own_view=True).next_action(env.target)
            assert action is not None
            _, reward, terminated, truncated, end = env.step(action)
            if terminated or truncated:
                break
        assert terminated and end["is_success"] and reward > 0
    assert explored >= 1  # the own view's calls come after exploration, as no full-grid plan's do


def test_a_seed_pool_plays_each_seeds_episode_once_for_every_env_that_shares_the_cache() -> None:
    calls: CallCache = {}
    envs = [OwnViewSkillStepEnv(ENVS, "open", view_size=11, seed_pool=2, call_cache=calls) for _ in range(2)]
    for k, env in enumerate(envs):
        for episode in range(4):
            _, info = env.reset(seed=10 * k + episode)
            assert 0 <= info["env_seed"] < 2
    assert set(calls) <= {(repr(ENVS[0]), 0), (repr(ENVS[0]), 1)} and calls
    for (_, seed), steps in calls.items():
        assert steps == tuple(step for step, _ in _planner_calls(seed))


def test_own_calling_states_are_refused_with_random_steps() -> None:
    with pytest.raises(ConfigError, match="random_steps"):
        OwnViewSkillStepEnv(ENVS, "open", random_steps=2)
    base = {"suite": "minigrid-hard", "demonstrations": False, "finetune_steps": 10}
    with pytest.raises(ConfigError, match=r"calling_view.*random_steps"):
        load_skill_cloning_config({**base, "calling_view": "own", "random_steps": 2})
    with pytest.raises(ConfigError, match=r"calling_view.*full or own"):
        load_skill_cloning_config({**base, "calling_view": "egocentric"})


def test_calling_view_own_trains_the_options_ppo_in_own_view_calling_states(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[OwnViewSkillStepEnv] = []

    class Spy(OwnViewSkillStepEnv):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(skill_ppo, "OwnViewSkillStepEnv", Spy)
    config = load_skill_cloning_config(
        {**TINY_SKILLS, "calling_view": "own", "seed_pool": 3, "skills": ["open"], "eval_episodes": 0}
    )
    _, (result,) = train_skill_library(config, tmp_path)
    check, *ppo = built  # one env checks the skill is called at all, then PPO's two
    assert len(ppo) == 2 and ppo[0]._calls is ppo[1]._calls and ppo[0]._calls  # one shared cache
    assert check._calls is not ppo[0]._calls
    assert result.finetune_frames >= 64 and (tmp_path / "options" / "open.safetensors").is_file()
