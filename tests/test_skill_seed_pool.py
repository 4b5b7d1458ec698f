"""A seed pool for calling-state episodes (``SkillStepEnv(seed_pool=...)``, ``modrl options skills``' ``seed_pool``):
seeds from a fixed set, each planned once for every env sharing the cache, the same episodes as planning afresh."""

from __future__ import annotations

from typing import Any

import pytest

import modrl.envs.skill_env as skill_env
from modrl.agents.options.skill_cloning_config import load_skill_cloning_config
from modrl.config import ConfigError
from modrl.envs.skill_env import PlanCache, SkillStepEnv
from tests.conftest import tiny_skill_ppo_envs

ENVS = ["MiniGrid-UnlockPickup-v0", "MiniGrid-KeyCorridorS3R1-v0"]


def _counting_plan(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = skill_env.plan

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(skill_env, "plan", counted)
    return calls


def test_pooled_seeds_are_planned_once_for_every_env_that_shares_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting_plan(monkeypatch)
    plans: PlanCache = {}
    envs = [SkillStepEnv(ENVS, "pickup", view_size=11, seed_pool=3, plan_cache=plans) for _ in range(2)]
    seen = set()
    for k, env in enumerate(envs):
        for episode in range(15):
            _, info = env.reset(seed=100 * k + episode)
            assert 0 <= info["env_seed"] < 3
            seen.add((info["env_id"], info["env_seed"]))
    assert len(plans) <= 2 * 3  # two envs x three seeds at most
    assert len(calls) == len(plans)  # each (env, seed) planned once, by whichever env met it first
    assert len(seen) >= 2
    # Without a pool every draw plans afresh and nothing is kept.
    calls.clear()
    fresh = SkillStepEnv(ENVS, "pickup", view_size=11)
    for episode in range(3):
        fresh.reset(seed=episode)
    assert len(calls) >= 3 and fresh._plans == {}


def test_every_cached_plan_is_the_plan_a_fresh_search_finds() -> None:
    from modrl.envs.scripted_skills import ScriptedSkills

    plans: PlanCache = {}
    pooled = SkillStepEnv(ENVS, "pickup", view_size=11, seed_pool=4, plan_cache=plans)
    for episode in range(6):
        pooled.reset(seed=episode)
    fresh = SkillStepEnv(ENVS, "pickup", view_size=11)
    assert plans and any(found is not None for found in plans.values())
    for (spec, seed), cached in plans.items():
        which = [repr(s) for s in ENVS].index(spec)
        base = skill_env.make_env(ENVS[which])
        base.reset(seed=seed)
        replanned = fresh._plan(which, seed, ScriptedSkills(base))
        assert (replanned is None) == (cached is None)
        assert replanned is None or cached is None or replanned.steps == cached.steps
    assert fresh._plans == {}


def test_a_bad_seed_pool_is_refused() -> None:
    with pytest.raises(ConfigError, match="seed_pool"):
        SkillStepEnv(ENVS, "pickup", seed_pool=-1)
    with pytest.raises(ConfigError, match="seed_pool"):
        load_skill_cloning_config(
            {"suite": "minigrid-hard", "demonstrations": False, "finetune_steps": 10, "seed_pool": -1}
        )


def test_pooled_random_steps_follow_from_the_seed_so_each_cached_plan_is_the_plan_of_its_state() -> None:
    from modrl.envs.scripted_skills import ScriptedSkills

    plans: PlanCache = {}
    envs = [SkillStepEnv(ENVS, "pickup", view_size=11, seed_pool=4, random_steps=3, plan_cache=plans) for _ in range(2)]
    for k, env in enumerate(envs):
        for episode in range(8):
            env.reset(seed=10 * k + episode)
    assert plans
    moved = 0
    for (spec, seed), cached in plans.items():
        which = [repr(s) for s in ENVS].index(spec)
        base = skill_env.make_env(ENVS[which])
        base.reset(seed=seed)
        plain = skill_env.plan(
            skill_env.planning_domain(),
            ScriptedSkills(base).observe(),
            skill_env.goals_for_env(base, ScriptedSkills(base).observe()),
        )
        skills = ScriptedSkills(base)
        rng = skill_env.pool_rng(ENVS[which], seed)
        assert skill_env.random_skill_steps(skills, rng, int(rng.integers(4)))
        again = skill_env.plan(
            skill_env.planning_domain(), skills.observe(), skill_env.goals_for_env(base, skills.observe())
        )
        assert cached is not None and getattr(again, "steps", None) == cached.steps
        moved += getattr(plain, "steps", None) != cached.steps
    assert moved >= 1  # the random steps changed where some pooled episodes start
    # The draws depend on the env and the seed only.
    assert skill_env.pool_rng(ENVS[0], 3).integers(1000) == skill_env.pool_rng(ENVS[0], 3).integers(1000)
    assert [skill_env.pool_rng(ENVS[0], s).integers(10**9) for s in (3, 4)] != [
        skill_env.pool_rng("x", s).integers(10**9) for s in (3, 4)
    ]


def test_the_ppo_envs_of_a_skill_share_one_plan_cache_and_draw_pooled_seeds() -> None:
    envs = tiny_skill_ppo_envs("open", seed_pool=2, n_envs=3)
    for env in envs:
        env.reset()
    assert all(isinstance(env, SkillStepEnv) and env.seed_pool == 2 for env in envs)
    assert all(env._plans is envs[0]._plans for env in envs) and envs[0]._plans
    assert {seed for _, seed in envs[0]._plans} <= {0, 1}
    for env in envs:
        env.close()
