"""The resource estimate of a run config's agent (:class:`modrl.budget.ResourceEstimate`), from the config alone.

Mirrors what :mod:`modrl.agents.common.extractors` and :mod:`modrl.agents.common.policies` build (extractor over
MiniGrid's 7x7 view, skill modules or the monolithic MLP, router, critic), counting the dominant terms: every
weight matrix and bias, and the activations each layer keeps per sample. It is an estimate (the monolithic width,
when matched, is taken as the modular actor's size; a full-view suite's larger image is not counted), good to the
order of magnitude that decides whether a run can fit at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from modrl.budget import ResourceEstimate

if TYPE_CHECKING:
    from modrl.agents.common.config import RunConfig

VIEW = 7  # MiniGrid's default partial view, cells per side
N_ACTIONS = 7
N_DIRECTIONS = 4
CATEGORIES = 20  # object + colour + state indices of the embedding table
VOCABULARY = 64  # mission vocabulary, rounded up
MISSION_LEN = 32  # mission tokens, rounded up


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _mlp(n_in: int, sizes: Sequence[int]) -> tuple[int, int]:
    """Parameters and activations of ``n_in -> sizes[0] -> ... -> sizes[-1]``."""
    params = 0
    for size in sizes:
        params, n_in = params + _linear(n_in, size), size
    return params, sum(sizes)


def estimate_agent(config: RunConfig, *, num_tasks: int) -> ResourceEstimate:
    """Parameters and per-sample activations of the policy ``config.agent`` describes, and the batch it trains on."""
    agent, ext = config.agent, config.agent.extractor
    params, acts = 0, 0
    channels = ext.embed_dim if ext.kind == "embed" else 3
    if ext.kind == "embed":
        params += CATEGORIES * ext.embed_dim
    side = VIEW
    acts += channels * side * side
    for out in ext.channels:
        side = max(side - 1, 1)
        params += channels * out * 4 + out
        acts += out * side * side
        channels = out
    mission = ext.mission_dim if config.env.mission_tokens else 0
    if mission:
        gru = 3 * (2 * mission * mission + 2 * mission) if ext.mission_encoder == "gru" else 0
        params += (VOCABULARY + MISSION_LEN) * mission + _linear(mission, mission) + gru
        acts += MISSION_LEN * mission + mission
        if ext.film:  # a (mission -> 2 x channels) map per convolution
            params += sum(_linear(mission, 2 * out) for out in ext.channels)
    params += _linear(channels * side * side + N_DIRECTIONS + mission, ext.features_dim)
    features = ext.features_dim + mission + num_tasks
    acts += features
    actor_params, actor_acts = _actor(config, features, num_tasks)
    critic_params, critic_acts = _mlp(features, agent.critic_hidden)
    value_in = agent.critic_hidden[-1] if agent.critic_hidden else features
    params += actor_params + critic_params + _linear(agent.latent_dim, N_ACTIONS) + _linear(value_in, 1)
    acts += actor_acts + critic_acts + N_ACTIONS + 1
    batch = config.algo.batch_size if agent.algo == "ppo" else config.algo.n_steps * config.env.n_envs
    return ResourceEstimate(parameters=params, activations=acts, batch=batch)


def _actor(config: RunConfig, features: int, num_tasks: int) -> tuple[int, int]:
    agent, modules = config.agent, config.agent.modules
    if modules.kind in ("lowrank", "adapter"):
        deltas = modules.count * modules.rank * (features + agent.latent_dim)
        module_params = _linear(features, agent.latent_dim) + deltas
        module_acts = modules.count * (modules.rank + agent.latent_dim)
    else:
        one_params, one_acts = _mlp(features, [*modules.hidden, agent.latent_dim])
        module_params, module_acts = modules.count * one_params, modules.count * one_acts
    router_in = num_tasks if agent.router.condition == "task" else features + num_tasks
    router_sizes = [agent.router.hidden, modules.count] if agent.router.hidden else [modules.count]
    router_params, router_acts = _mlp(router_in, router_sizes)
    modular = (module_params + router_params, module_acts + router_acts)
    if agent.kind == "modular" or agent.monolithic_hidden is None:
        return modular
    return _mlp(features, [agent.monolithic_hidden, agent.latent_dim])
