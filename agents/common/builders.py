"""Build the vectorised env, the SB3 algorithm and its policy from an :class:`ExperimentConfig`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import gymnasium as gym
from gymnasium import spaces
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv

from modrl.agents.common.config import ExperimentConfig
from modrl.agents.common.policies import (
    AGENTS,
    ModularActorCriticPolicy,
    ObservationActorPolicy,
    build_modular_network,
    matched_hidden_width,
    monolithic_policy_kwargs,
)
from modrl.checkpoint import fingerprint
from modrl.config import to_dict
from modrl.envs import Suite, get_suite, make_split_env, make_suite_env, task_for_env_index
from modrl.envs.wrappers import SubtaskEventReward
from modrl.registry import Registry

ALGOS: Registry[type[OnPolicyAlgorithm]] = Registry("algorithm")
ALGOS.add("ppo", PPO)
ALGOS.add("a2c", A2C)


def env_options(config: ExperimentConfig) -> dict[str, Any]:
    """Keyword arguments of :func:`modrl.envs.make_suite_env` / ``make_split_env`` that ``config.env`` sets."""
    return config.env.suite_env_kwargs()


def _shaped(env: gym.Env, event_reward: float) -> gym.Env:
    return SubtaskEventReward(env, bonus=event_reward) if event_reward > 0 else env


def _monitored_task_env(suite: Suite, task: int, options: dict[str, Any], event_reward: float = 0.0) -> gym.Env:
    return Monitor(_shaped(make_suite_env(suite, task, **options), event_reward))


def _monitored_split_env(suite: Suite, split: str, options: dict[str, Any], event_reward: float = 0.0) -> gym.Env:
    return Monitor(_shaped(make_split_env(suite, split, **options), event_reward))


def make_vec_env(config: ExperimentConfig, *, slots: range | None = None) -> VecEnv:
    """The vector env of ``config.env.vec_env`` (in-process ``dummy``, fastest for Minigrid here,
    or ``subproc`` workers), env ``i`` seeded ``config.seed + i``; every slot is wrapped for exact resume and error
    reporting (:func:`modrl.agents.common.env_state.vectorise`).

    ``env.engine`` (:func:`~modrl.agents.common.fast_vec_env.select_engine`) may put every slot on the batched engine
    instead (:class:`~modrl.agents.common.fast_vec_env.FastVecEnv`: same observations, infos, seeding, exact resume).

    Without ``env.split`` slot ``i`` runs task ``i mod T`` of the suite; with a split every slot samples one task of
    that split per episode (:class:`modrl.envs.SplitTaskEnv`), so a split may hold more tasks than there are envs.
    ``slots`` (default: ``range(env.n_envs)``) builds only those slots of a larger vector env, with their tasks and
    seeds (a data-parallel training worker's share, :mod:`modrl.agents.common.workers`).
    """
    from modrl.agents.common.fast_vec_env import make_fast_vec_env, select_engine

    slots = range(config.env.n_envs) if slots is None else slots
    if select_engine(config) == "fast":
        return make_fast_vec_env(config, slots=slots)
    suite = get_suite(config.env.suite)
    # Training envs only: evaluation scores the unshaped reward on the tasks as they are (not strict).
    options = config.env.suite_env_kwargs(training=True)
    shaping = config.env.event_reward
    makers: list[Callable[[], gym.Env]]
    if config.env.split is None:
        tasks = [task_for_env_index(i, suite.num_tasks) for i in slots]
        makers = [partial(_monitored_task_env, suite, task, options, shaping) for task in tasks]
    else:
        split = config.env.split
        makers = [partial(_monitored_split_env, suite, split, options, shaping) for _ in slots]
    from modrl.agents.common.env_state import vectorise

    return vectorise(makers, kind=config.env.vec_env, seed=config.seed + slots.start, first_index=slots.start)


def policy_setup(config: ExperimentConfig, observation_space: spaces.Dict) -> tuple[type[ActorCriticPolicy], dict]:
    """The SB3 policy class and ``policy_kwargs`` for ``config.agent``."""
    agent = config.agent
    extractor_kwargs = to_dict(agent.extractor)
    if agent.kind == "modular":
        words = {"bag_of_words": True} if agent.router_input == "words" else {}  # what the words router reads
        return ModularActorCriticPolicy, dict(
            features_extractor_kwargs={**extractor_kwargs, **words},
            modules=to_dict(agent.modules),
            router=to_dict(agent.router),
            aggregation=agent.aggregation,
            latent_dim=agent.latent_dim,
            critic_hidden=list(agent.critic_hidden),
            router_input=agent.router_input,
        )
    task_space = observation_space["task"]
    assert isinstance(task_space, spaces.Discrete), task_space
    num_tasks = int(task_space.n)
    mission = observation_space.spaces.get("mission")
    mission_dim = agent.extractor.mission_dim if mission is not None else 0
    vocab_size = int(mission.nvec[0]) if isinstance(mission, spaces.MultiDiscrete) else 0
    observation_only = agent.monolithic_input == "observation"
    hidden = agent.monolithic_hidden or matched_hidden_width(
        modular_actor_parameters(config, num_tasks, mission_dim=mission_dim, vocab_size=vocab_size),
        in_dim=agent.extractor.features_dim + (0 if observation_only else mission_dim + num_tasks),
        latent_dim=agent.latent_dim,
    )
    policy_class = ObservationActorPolicy if observation_only else AGENTS.get("monolithic")
    return policy_class, monolithic_policy_kwargs(
        hidden=hidden,
        latent_dim=agent.latent_dim,
        critic_hidden=agent.critic_hidden,
        extractor_kwargs=extractor_kwargs,
    )


def modular_actor_parameters(
    config: ExperimentConfig, num_tasks: int, *, mission_dim: int = 0, vocab_size: int = 0
) -> int:
    """Parameter count of the modular actor (router + modules) that ``config`` would build (``vocab_size``: the
    mission vocabulary, which a ``words`` router reads)."""
    network = build_modular_network(
        config.agent.modules,
        config.agent.router,
        config.agent.aggregation,
        obs_dim=config.agent.extractor.features_dim,
        num_tasks=num_tasks,
        latent_dim=config.agent.latent_dim,
        router_dim={"mission": mission_dim, "words": vocab_size}.get(config.agent.router_input),
    )
    return sum(p.numel() for p in network.parameters())


def build_model(config: ExperimentConfig, env: VecEnv, *, device: str = "cpu") -> OnPolicyAlgorithm:
    """The SB3 algorithm (PPO or A2C) with modrl's policy on ``device`` (a torch device name), seeded with
    ``config.seed``."""
    algo = config.algo
    policy_class, policy_kwargs = policy_setup(config, env.observation_space)  # type: ignore[arg-type]
    kwargs: dict[str, Any] = dict(
        learning_rate=algo.learning_rate,
        n_steps=algo.n_steps,
        gamma=algo.gamma,
        gae_lambda=algo.gae_lambda,
        ent_coef=algo.ent_coef,
        vf_coef=algo.vf_coef,
        max_grad_norm=algo.max_grad_norm,
    )
    if config.agent.algo == "ppo":
        kwargs.update(batch_size=algo.batch_size, n_epochs=algo.n_epochs, clip_range=algo.clip_range)
        # SB3's own default for Adam is eps=1e-5; passing optimizer_kwargs replaces it, so it is restated here.
        policy_kwargs["optimizer_kwargs"] = dict(eps=1e-5, fused=algo.fused_adam)
    algo_class = ALGOS.get(config.agent.algo)
    return algo_class(
        policy_class, env, policy_kwargs=policy_kwargs, seed=config.seed, device=device, verbose=0, **kwargs
    )


#: ``(agent section, key, default)`` of agent fields added after checkpoints existed: left out of the fingerprint at
#: their default, so a checkpoint written before the field existed still matches the same network.
ADDED_FIELDS: tuple[tuple[str | None, str, object], ...] = (
    ("extractor", "film", False),
    (None, "monolithic_input", "features"),
)
#: ``(agent section, key)`` of fields that only weigh a training loss (the weights mean the same network whatever
#: their value): never part of the fingerprint.
LOSS_ONLY_FIELDS: tuple[tuple[str, str], ...] = (("router", "mi_coef"),)


def model_fingerprint(config: ExperimentConfig, observation_space: spaces.Space, action_space: spaces.Space) -> str:
    """Identity of what a checkpoint's weights mean: agent architecture, algorithm, task set and spaces.

    Minigrid's partial-view spaces are identical across tasks, so the suite's tasks are part of it.
    """
    suite = get_suite(config.env.suite)
    agent = to_dict(config.agent)
    # Hashed under the section's first name, so checkpoints written before ``skills`` became ``modules`` still match.
    agent["skills"] = agent.pop("modules")
    # Fields added since checkpoints were first written are hashed only when set, for the same reason.
    for section, key, default in ADDED_FIELDS:
        fields = agent if section is None else agent[section]
        if fields.get(key) == default:
            del fields[key]
    for section, key in LOSS_ONLY_FIELDS:
        agent[section].pop(key, None)
    return fingerprint(
        {
            "agent": agent,
            "suite": {"name": suite.name, "version": suite.version, "tasks": [t.env_id for t in suite.tasks]},
            "observation_space": repr(observation_space),
            "action_space": repr(action_space),
        }
    )


def build_policy(
    config: ExperimentConfig, *, device: str = "cpu"
) -> tuple[ActorCriticPolicy, spaces.Space, spaces.Space]:
    """The policy alone (for evaluation) on ``device``, with spaces taken from one task env of the suite."""
    env = make_suite_env(get_suite(config.env.suite), 0, **env_options(config))
    observation_space, action_space = env.observation_space, env.action_space
    env.close()
    policy_class, policy_kwargs = policy_setup(config, observation_space)  # type: ignore[arg-type]
    policy = policy_class(observation_space, action_space, lambda _: config.algo.learning_rate, **policy_kwargs)
    policy = policy.to(device)
    policy.set_training_mode(False)
    return policy, observation_space, action_space


def describe_model(model: BaseAlgorithm) -> dict[str, int]:
    """Parameter counts: total, trainable, frozen."""
    params = list(model.policy.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    total = sum(p.numel() for p in params)
    return {"total": total, "trainable": trainable, "frozen": total - trainable}
