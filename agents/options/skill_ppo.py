"""PPO for the skill options of ``modrl options skills`` (:mod:`.skill_cloning`): the model over one skill's option
in calling-state episodes of the train envs (:class:`~modrl.envs.skill_env.SkillStepEnv`, or with ``calling_view:
own`` :class:`~modrl.agents.planning.own_calls.OwnViewSkillStepEnv`), and the check, before any PPO, that the train
split's plans call every skill at all."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from modrl.agents.options.policy import OptionActorCriticPolicy
from modrl.agents.options.skill_cloning_config import SkillCloningConfig, skill_option_config
from modrl.agents.planning.own_calls import CallCache, OwnViewSkillStepEnv
from modrl.config import ConfigError, to_dict
from modrl.envs.skill_env import EnvSpec, NoSkillCalls, PlanCache, SkillStepEnv


def skill_model(config: SkillCloningConfig, skill: str, env_ids: Sequence[EnvSpec], *, seed: int) -> PPO:
    """PPO over the skill's option (:class:`OptionActorCriticPolicy`) on calling-state episodes of ``env_ids``."""
    algo = config.algo
    plans: PlanCache = {}  # one plan per pooled seed for all the vector env's envs
    calls: CallCache = {}  # the same for own-view episodes' steps
    venv = DummyVecEnv([partial(skill_env, env_ids, skill, config, plans, calls) for _ in range(config.n_envs)])
    venv.seed(seed)
    return PPO(
        OptionActorCriticPolicy,
        venv,
        seed=seed,
        device="cpu",
        verbose=0,
        **algo.ppo_kwargs(),
        policy_kwargs=dict(option=to_dict(skill_option_config(config)), critic_hidden=list(config.net.critic_hidden)),
    )


def skill_env(
    env_ids: Sequence[EnvSpec], skill: str, config: SkillCloningConfig, plans: PlanCache, calls: CallCache
) -> gym.Env:
    """A PPO env of the skill: calling states of full-grid plans, or of own-view planner episodes
    (``calling_view: own``, :class:`~modrl.agents.planning.own_calls.OwnViewSkillStepEnv`)."""
    kwargs: dict[str, Any] = dict(
        view_size=config.view_size,
        max_steps=config.max_skill_steps,
        marker=config.target_marker,
        random_steps=config.random_steps,
        seed_pool=config.seed_pool,
        subgoal_reward=config.subgoal_reward if skill == "putnext" else 0.0,
        loop_limit=config.loop_limit,
        held_start=config.putnext_held_start if skill == "putnext" else 0.0,
    )
    if config.calling_view == "own":
        return Monitor(OwnViewSkillStepEnv(env_ids, skill, call_cache=calls, **kwargs))
    return Monitor(SkillStepEnv(env_ids, skill, plan_cache=plans, **kwargs))


def check_skills_called(config: SkillCloningConfig, train_ids: Sequence[EnvSpec]) -> None:
    """Before any PPO: every skill of ``config.skills`` is called by the train split's plans (one calling-state reset
    each), else a :class:`~modrl.config.ConfigError` naming the skill."""
    for skill in config.skills:
        env = skill_env(train_ids, skill, config, {}, {})
        try:
            env.reset(seed=config.seed)
        except NoSkillCalls:
            raise ConfigError(
                f"skills: the plans of {config.suite}/{config.split} never call {skill} (its {len(train_ids)} tasks, "
                "a few episodes each); leave it out of skills"
            ) from None
        finally:
            env.close()
