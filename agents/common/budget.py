"""The resource estimate of a run config's agent (:class:`modrl.budget.ResourceEstimate`), from the config alone.

Mirrors what :mod:`modrl.agents.common.extractors` and :mod:`modrl.agents.common.policies` build (extractor over the
suite's image, skill modules or the monolithic MLP, router, critic), counting the dominant terms: every weight matrix
and bias, the activations each layer keeps per sample, and the rollout buffer (SB3 stores every observation as
float32). The image is ``side x side x 3`` with ``side`` the suite's view (:func:`suite_view_size`: MiniGrid's
``agent_view_size``, 7 unless a task or its registered id says otherwise), so a large view costs what it costs: the
convolutions' output grows with its square, and so does the layer after them. :func:`estimate_option` does the same
for an option network (:class:`modrl.options.OptionConfig`, e.g. on a whole-grid view of ``view_size``). It is an
estimate (the monolithic width, when matched, is taken as the modular actor's size), good to the order of magnitude
that decides whether a run can fit at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modrl.budget import ResourceEstimate

if TYPE_CHECKING:
    from modrl.agents.common.config import RunConfig
    from modrl.envs.suites import Suite, TaskSpec
    from modrl.options import OptionConfig

VIEW = 7  # MiniGrid's default partial view (agent_view_size), cells per side
IMAGE_CHANNELS = 3  # object, colour, state
FLOAT_BYTES = 4  # SB3's rollout buffers hold observations as float32
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


def task_view_size(task: TaskSpec) -> int:
    """The side of the image ``task``'s env observes: ``agent_view_size`` from the task's kwargs, else from its
    registered id's, else MiniGrid's 7 (a value that is not an integer is left to the env's constructor to refuse)."""
    import gymnasium as gym

    try:
        registered: dict[str, Any] = dict(gym.spec(task.env_id).kwargs)
    except gym.error.Error:  # an unknown id is named when the env is made
        registered = {}
    value = {**registered, **task.kwargs}.get("agent_view_size", VIEW)
    return value if isinstance(value, int) and not isinstance(value, bool) else VIEW


def suite_view_size(suite: Suite) -> int:
    """The largest image side over ``suite``'s tasks (:func:`task_view_size`; a vector env's tasks share one)."""
    return max(task_view_size(task) for task in suite.tasks)


def estimate_agent(config: RunConfig, *, num_tasks: int, view_size: int = VIEW) -> ResourceEstimate:
    """Parameters and per-sample activations of the policy ``config.agent`` describes on a ``view_size`` square
    image, the batch it trains on, and its rollout buffer (``algo.n_steps x env.n_envs`` observations)."""
    agent, ext = config.agent, config.agent.extractor
    params, acts = 0, 0
    channels = ext.embed_dim if ext.kind == "embed" else IMAGE_CHANNELS
    if ext.kind == "embed":
        params += CATEGORIES * ext.embed_dim
    side = view_size
    acts += IMAGE_CHANNELS * side * side + channels * side * side
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
    rollout = config.algo.n_steps * config.env.n_envs
    batch = config.algo.batch_size if agent.algo == "ppo" else rollout
    observation = IMAGE_CHANNELS * view_size * view_size + 2 + MISSION_LEN * bool(mission)  # + direction, task
    storage = rollout * observation * FLOAT_BYTES
    return ResourceEstimate(parameters=params, activations=acts, batch=batch, storage=storage)


def estimate_option(
    config: OptionConfig, *, critic_hidden: Sequence[int] = (), batch: int, rollout: int = 0
) -> ResourceEstimate:
    """An option network's parameters and per-sample activations (:class:`modrl.options.Option`: category embedding,
    2x2 convolutions with FiLM on the arguments, head, policy MLP, and, with ``critic_hidden``, PPO's critic on its
    features), trained on ``batch`` samples, with a rollout buffer of ``rollout`` observations."""
    height, width, depth = config.image_shape
    cond = config.arg_dim * config.num_args
    params = sum(int(h) + 1 for h in config.image_high) * config.embed_dim + sum(
        len(slot) * config.arg_dim for slot in config.arg_slots
    )
    acts = height * width * (depth + config.embed_dim)
    channels = config.embed_dim
    for out in config.channels:
        height, width = max(height - 1, 1), max(width - 1, 1)
        params += channels * out * 4 + out + (_linear(cond, 2 * out) if cond else 0)
        acts += out * height * width
        channels = out
    params += _linear(channels * height * width + config.num_directions, config.features_dim)
    features = config.features_dim + cond
    policy_params, policy_acts = _mlp(features, [*config.hidden, config.num_actions])
    critic_params, critic_acts = _mlp(features, [*critic_hidden, 1]) if critic_hidden else (0, 0)
    params += policy_params + critic_params + _linear(features, 1)  # + a learned termination
    acts += features + policy_acts + critic_acts
    observation = config.image_shape[0] * config.image_shape[1] * config.image_shape[2] + 1 + config.num_args
    return ResourceEstimate(
        parameters=params, activations=acts, batch=batch, storage=rollout * observation * FLOAT_BYTES
    )


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
