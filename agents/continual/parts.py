"""Where SB3 meets :mod:`modrl.updates`: the policy as :class:`~modrl.updates.ModelParts`, stage envs, the Fisher
samples EWC reads, and the callback that reports training progress to the rule.

Penalties (EWC, L2) reach SB3's PPO/A2C loss through :func:`modrl.updates.attach_penalty` on the policy's
``action_net``: a forward hook makes the penalty's gradient part of every backward pass through the action logits,
the same mechanism that carries the router's auxiliary loss (:func:`modrl.composition.attach_aux_loss`). SB3 2.9's
``PPO.train`` builds its loss inside one long method with no hook; overriding it would mean copying it, so the
gradient is attached to the graph instead and no algorithm subclass is needed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import MlpExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from modrl.agents.common.callbacks import EpisodeStatsCallback
from modrl.agents.common.fast_vec_env import FastVecEnv
from modrl.agents.common.policies import ModularActorCriticPolicy
from modrl.envs import Suite, make_suite_env
from modrl.envs.fast.coverage import task_env_reason
from modrl.updates import ModelParts, StageProgress, UpdateRule

log = logging.getLogger(__name__)

#: Training env ``i`` of stage ``s`` is seeded ``seed + STAGE_SEED_STRIDE * s + i`` (far below evaluation seeds).
STAGE_SEED_STRIDE = 10_000


def model_parts(policy: ActorCriticPolicy) -> ModelParts:
    """The SB3 policy's modules as an update rule sees them; every parameter is in exactly one part.

    Raises:
        ValueError: The policy has parameters outside the known parts (a rule would silently leave them alone).
    """
    actor: dict[str, torch.nn.Module] = {"extractor": policy.features_extractor}
    critic: dict[str, torch.nn.Module] = {}
    library = router = None
    if isinstance(policy, ModularActorCriticPolicy):
        network = policy.modular.network
        actor["network"] = network
        critic["critic"] = policy.modular.critic
        library, router = network.library, network.router
    else:
        assert isinstance(policy.mlp_extractor, MlpExtractor)
        actor["policy_net"] = policy.mlp_extractor.policy_net
        critic["critic"] = policy.mlp_extractor.value_net
    actor["action_head"] = policy.action_net
    critic["value_head"] = policy.value_net
    if not policy.share_features_extractor:
        critic["vf_extractor"] = policy.vf_features_extractor
    parts = ModelParts(actor=actor, critic=critic, library=library, router=router, optimizer=policy.optimizer)
    covered = {id(p) for p in parts.named_parameters().values()}
    missing = [name for name, p in policy.named_parameters() if id(p) not in covered]
    if missing:
        raise ValueError(f"policy parameters outside the actor/critic parts: {missing[:5]}")
    return parts


def _monitored(suite: Suite, task: int, options: Mapping[str, Any]) -> gym.Env:
    return Monitor(make_suite_env(suite, task, **options))


def stage_engine_reason(suite: Suite, task: int, options: Mapping[str, Any]) -> str | None:
    """Why the batched engine cannot run ``task`` with these env options, or ``None`` if it can."""
    env = make_suite_env(suite, task, **options)
    try:
        return task_env_reason(env)
    finally:
        env.close()


def stage_env(
    suite: Suite,
    task: int,
    *,
    n_envs: int,
    seed: int,
    stage: int,
    options: Mapping[str, Any],
    engine: str = "minigrid",
) -> VecEnv:
    """``n_envs`` copies of one task, env ``i`` seeded ``seed + STAGE_SEED_STRIDE * stage + i``.

    Args:
        options: Keyword arguments of :func:`modrl.envs.make_suite_env` (``max_episode_steps``, ``mission_tokens``),
            as :func:`modrl.agents.common.builders.env_options` gives them.
        engine: ``env.engine``: ``minigrid`` (MiniGrid envs in a ``DummyVecEnv``), ``fast`` (the batched engine,
            step-for-step identical; the config check refused tasks it does not cover) or ``auto`` (the engine when
            it covers the task, else MiniGrid with a log line saying why).
    """
    stage_seed = seed + STAGE_SEED_STRIDE * stage
    if engine != "minigrid":
        reason = stage_engine_reason(suite, task, options)
        if reason is None:
            fast = FastVecEnv([make_suite_env(suite, task, **options) for _ in range(n_envs)])
            fast.seed(stage_seed)
            return fast
        if engine == "fast":
            raise ValueError(f"env.engine: fast cannot run task {suite.tasks[task].name} ({reason})")
        log.info("env.engine auto: task %s uses MiniGrid (%s)", suite.tasks[task].name, reason)
    venv = DummyVecEnv([lambda: _monitored(suite, task, options) for _ in range(n_envs)])
    venv.seed(stage_seed)
    return venv


def sample_log_likelihoods(
    policy: ActorCriticPolicy, suite: Suite, task: int, *, n: int, seed: int, options: Mapping[str, Any]
) -> Iterator[torch.Tensor]:
    """``n`` scalar ``log pi(a|s)`` (with graph) along episodes of ``task``, ``a`` sampled from the policy.

    Seeded (env seed ``seed``, a private torch generator for the actions), so it yields the same samples every time
    for the same weights: a resumed run consolidates exactly as an uninterrupted one.
    """
    env = make_suite_env(suite, task, **options)
    generator = torch.Generator().manual_seed(seed)
    policy.set_training_mode(False)
    obs, _ = env.reset(seed=seed)
    try:
        for _ in range(n):
            obs_tensor, _ = policy.obs_to_tensor(obs)
            distribution = policy.get_distribution(obs_tensor)
            if not isinstance(distribution, CategoricalDistribution):
                raise TypeError(f"EWC's Fisher samples need discrete actions, got {type(distribution).__name__}")
            probs = distribution.distribution.probs.detach()
            action = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            yield distribution.log_prob(action).sum()
            obs, _, terminated, truncated, _ = env.step(int(action.item()))
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()


class RuleProgressCallback(BaseCallback):
    """After every policy update (at the next rollout start), tell the rule how far the stage is.

    The stage's last update is reported by the runner after ``learn`` returns.
    """

    def __init__(self, rule: UpdateRule, episodes: EpisodeStatsCallback, *, task: str, start: int, budget: int) -> None:
        super().__init__()
        self.rule = rule
        self.episodes = episodes
        self.task = task
        self.start = start
        self.budget = budget
        self._first = True

    def progress(self) -> StageProgress:
        """The stage's progress now."""
        success = self.episodes.success_rates().get(self.task)
        return StageProgress(step=self.num_timesteps - self.start, budget=self.budget, success=success)

    def _on_rollout_start(self) -> None:
        if self._first:  # no update since learn() started
            self._first = False
            return
        self.rule.after_update(self.progress())

    def _on_step(self) -> bool:
        return True


def success_curve(records: list[dict], task: str) -> tuple[list[float], list[float]]:
    """``(steps, success)`` of ``task`` from ``metrics.jsonl`` records (0 before any of its episodes ended)."""
    steps = [float(r["step"]) for r in records]
    values = [float(r.get("success", {}).get(task, 0.0)) for r in records]
    return steps, values
