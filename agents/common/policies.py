"""SB3 actor-critic policies: the modular policy and the parameter-matched monolithic baseline.

Both plug into SB3's ``ActorCriticPolicy`` through its one network hook, ``_build_mlp_extractor`` (written against
SB3 2.9), and share :class:`~modrl.agents.common.extractors.MinigridFeaturesExtractor`. The modular actor is
``router -> modules -> aggregation`` (:class:`modrl.composition.ModularNetwork`); the critic is a plain MLP
over the same features in both policies, so the two differ only in the actor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import MlpExtractor
from torch import nn

from modrl.agents.common.extractors import MinigridFeaturesExtractor
from modrl.composition import ModularNetwork
from modrl.config import from_dict, to_dict
from modrl.modules import ModulesConfig, build_module_library
from modrl.registry import Registry
from modrl.routers import RouterConfig, build_router


def _mlp(in_dim: int, sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(in_dim, size), nn.Tanh()]
        in_dim = size
    return nn.Sequential(*layers)


def split_features(
    features: torch.Tensor, *, obs_dim: int, num_tasks: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split extractor output ``(B, D + M + T)`` into observation features ``(B, D)``, mission features ``(B, M)``
    (``M`` may be 0) and task ids ``(B,)`` long (see :class:`MinigridFeaturesExtractor`'s output layout)."""
    task_start = features.shape[1] - num_tasks
    return features[:, :obs_dim], features[:, obs_dim:task_start], features[:, task_start:].argmax(dim=1)


class ModularExtractor(nn.Module):
    """Fills SB3's ``mlp_extractor`` slot: modular actor latent, MLP critic latent.

    The modules read the observation features; the router reads them too, or with ``router_input="mission"``
    the mission features alone, or with ``router_input="words"`` the mission's bag of words (so a linear router's
    allocation is the mean of its words' allocations: a held-out combination of known words gets one). After each
    actor forward, ``last_weights`` ``(B, K)`` and ``last_task_ids`` ``(B,)`` hold the routing it used (detached),
    for telemetry.
    """

    def __init__(
        self,
        *,
        network: ModularNetwork,
        features_dim: int,
        obs_dim: int,
        num_tasks: int,
        critic_hidden: Sequence[int],
        router_input: str = "features",
        words_dim: int = 0,
    ):
        super().__init__()
        if router_input not in ROUTER_INPUTS:
            raise ValueError(f"unknown router_input {router_input!r}; allowed: {', '.join(ROUTER_INPUTS)}")
        self.network = network
        self.obs_dim = obs_dim
        self.num_tasks = num_tasks
        self.router_input = router_input
        self.words_dim = words_dim
        self.critic = _mlp(features_dim, critic_hidden)
        self.latent_dim_pi = network.out_dim
        self.latent_dim_vf = critic_hidden[-1] if critic_hidden else features_dim
        self.last_weights: torch.Tensor | None = None
        self.last_task_ids: torch.Tensor | None = None
        self.last_aux_loss: torch.Tensor = torch.zeros(())

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        obs_features, middle, task_ids = split_features(features, obs_dim=self.obs_dim, num_tasks=self.num_tasks)
        mission, words = middle[:, : middle.shape[1] - self.words_dim], middle[:, middle.shape[1] - self.words_dim :]
        router_features = {"mission": mission, "words": words}.get(self.router_input)
        latent, routing = self.network(obs_features, task_ids, router_features)
        self.last_weights = routing.weights.detach()
        self.last_task_ids = task_ids
        self.last_aux_loss = routing.aux_loss.detach()
        return latent

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.critic(features)


#: What a router conditioned on observations reads (``agent.router_input``).
ROUTER_INPUTS: tuple[str, ...] = ("features", "mission", "words")


def _extractor_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.setdefault("features_extractor_class", MinigridFeaturesExtractor)
    # Category indices, not pixels: never let SB3 divide them by 255.
    kwargs.setdefault("normalize_images", False)
    return kwargs


class ModularActorCriticPolicy(ActorCriticPolicy):
    """Actor-critic whose actor routes over a library of modules.

    Args:
        observation_space, action_space, lr_schedule: as for SB3's ``ActorCriticPolicy``.
        modules: :class:`modrl.modules.ModulesConfig` fields (plain mapping, so SB3 can save it). ``skills``, its
            name in policies saved before the rename, is read the same way.
        router: :class:`modrl.routers.RouterConfig` fields.
        aggregation: name in :data:`modrl.composition.AGGREGATIONS`.
        latent_dim: output size of every module (the policy latent).
        critic_hidden: hidden sizes of the critic MLP.
        router_input: ``"features"`` (observation features) or ``"mission"`` (the encoded mission alone; the env
            must provide mission tokens).
        **kwargs: passed to ``ActorCriticPolicy`` (features extractor defaults to the Minigrid one).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        *,
        modules: Mapping[str, Any] | None = None,
        router: Mapping[str, Any] | None = None,
        aggregation: str = "weighted_sum",
        latent_dim: int = 64,
        critic_hidden: Sequence[int] = (64,),
        router_input: str = "features",
        **kwargs: Any,
    ) -> None:
        # Set before super().__init__, which calls _build_mlp_extractor.
        if "skills" in kwargs:  # a policy saved before "skills" became "modules"
            modules = {**kwargs.pop("skills"), **(modules or {})}
        self.modules_config = from_dict(ModulesConfig, dict(modules or {}), "agent.modules")
        self.router_config = from_dict(RouterConfig, dict(router or {}), "agent.router")
        self.aggregation = aggregation
        self.latent_dim = latent_dim
        self.critic_hidden = tuple(critic_hidden)
        self.router_input = router_input
        super().__init__(observation_space, action_space, lr_schedule, **_extractor_defaults(kwargs))
        # SB3's ortho_init re-initialised every Linear of the router; start routing near uniform again.
        self.modular.network.router.reset_parameters()
        self.modular.network.router.eval()

    def set_training_mode(self, mode: bool) -> None:
        """SB3's train/eval switch, except the router always stays in eval mode.

        SB3 collects rollouts in eval mode and updates in training mode; a router that samples in training mode
        (Gumbel) would then be evaluated under a different routing than the one that acted, and PPO's ratio
        would compare two policies. Keeping the router in eval mode routes identically in both phases.
        """
        super().set_training_mode(mode)
        self.modular.network.router.eval()

    def _build_mlp_extractor(self) -> None:
        extractor = self.features_extractor
        if not isinstance(extractor, MinigridFeaturesExtractor):
            raise TypeError("ModularActorCriticPolicy needs MinigridFeaturesExtractor (it splits off the task id)")
        if self.router_input in ("mission", "words") and extractor.mission_dim == 0:
            raise ValueError(
                f"router_input {self.router_input!r} needs mission tokens in the observation (env.mission_tokens: true)"
            )
        if self.router_input == "words" and extractor.words_dim == 0:
            raise ValueError("router_input 'words' needs the extractor's bag_of_words output")
        network = build_modular_network(
            self.modules_config,
            self.router_config,
            self.aggregation,
            obs_dim=extractor.obs_dim,
            num_tasks=extractor.num_tasks,
            latent_dim=self.latent_dim,
            router_dim={"mission": extractor.mission_dim, "words": extractor.words_dim}.get(self.router_input),
        )
        # SB3 annotates this slot as MlpExtractor but only calls forward/forward_actor/forward_critic and reads
        # latent_dim_pi/latent_dim_vf, which ModularExtractor provides.
        self.mlp_extractor = ModularExtractor(  # type: ignore[assignment]
            network=network,
            features_dim=self.features_dim,
            obs_dim=extractor.obs_dim,
            num_tasks=extractor.num_tasks,
            critic_hidden=self.critic_hidden,
            router_input=self.router_input,
            words_dim=extractor.words_dim,
        )

    @property
    def modular(self) -> ModularExtractor:
        """The modular actor + critic (SB3's ``mlp_extractor``)."""
        assert isinstance(self.mlp_extractor, ModularExtractor)
        return self.mlp_extractor

    def _get_constructor_parameters(self) -> dict[str, Any]:
        # Without these, PPO.load could not rebuild the policy (SB3 rebuilds it from these keyword arguments).
        data = super()._get_constructor_parameters()
        data.update(
            modules=to_dict(self.modules_config),
            router=to_dict(self.router_config),
            aggregation=self.aggregation,
            latent_dim=self.latent_dim,
            critic_hidden=list(self.critic_hidden),
            router_input=self.router_input,
        )
        return data


def build_modular_network(
    modules: ModulesConfig,
    router: RouterConfig,
    aggregation: str,
    *,
    obs_dim: int,
    num_tasks: int,
    latent_dim: int,
    router_dim: int | None = None,
) -> ModularNetwork:
    """Router + module library + aggregation for observation features of size ``obs_dim``.

    ``router_dim`` set: the router reads separate features of that size (the mission), not the modules' input.
    """
    library = build_module_library(modules, in_dim=obs_dim, out_dim=latent_dim)
    routing = build_router(router, num_modules=len(library), num_tasks=num_tasks, obs_dim=router_dim or obs_dim)
    return ModularNetwork(
        library=library, router=routing, aggregation=aggregation, separate_router_input=router_dim is not None
    )


def matched_hidden_width(target_params: int, *, in_dim: int, latent_dim: int) -> int:
    """Width ``W`` of an ``in_dim -> W -> latent_dim`` MLP whose parameter count is closest to ``target_params``.

    Params of that MLP: ``(in_dim + 1) * W + (W + 1) * latent_dim``.
    """
    width = round((target_params - latent_dim) / (in_dim + 1 + latent_dim))
    return max(1, width)


def monolithic_policy_kwargs(
    *, hidden: int, latent_dim: int, critic_hidden: Sequence[int], extractor_kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """``policy_kwargs`` for the monolithic baseline: SB3's own ``ActorCriticPolicy`` + ``MlpExtractor``.

    Actor ``features -> hidden -> latent_dim`` (tanh), critic ``features -> critic_hidden``, same extractor as the
    modular policy: the stock SB3 policy is the baseline, nothing of modrl's in its actor.
    """
    return dict(
        features_extractor_class=MinigridFeaturesExtractor,
        features_extractor_kwargs=dict(extractor_kwargs),
        normalize_images=False,
        net_arch=dict(pi=[hidden, latent_dim], vf=list(critic_hidden)),
        activation_fn=nn.Tanh,
    )


class ObservationMlpExtractor(MlpExtractor):
    """SB3's ``MlpExtractor`` whose policy MLP reads the observation features alone (the modules' input).

    The extractor's output is ``[obs_features | mission_features | bag_of_words | task_one_hot]``; the observation
    features already carry the mission (through FiLM and the extractor's head), but not the raw mission features nor
    the task one-hot. The value MLP reads all of it, as in SB3's own extractor.
    """

    def __init__(self, feature_dim: int, net_arch: Any, activation_fn: type[nn.Module], device: Any, *, obs_dim: int):
        super().__init__(feature_dim, net_arch, activation_fn, device)
        self.obs_dim = obs_dim
        # Replaces the full-width policy net SB3's constructor built (ortho_init re-initialises every Linear after).
        layers: list[nn.Module] = []
        in_dim = obs_dim
        for size in net_arch["pi"]:
            layers += [nn.Linear(in_dim, size), activation_fn()]
            in_dim = size
        self.policy_net = nn.Sequential(*layers).to(device)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self.policy_net(features[:, : self.obs_dim])


class ObservationActorPolicy(ActorCriticPolicy):
    """SB3's ``ActorCriticPolicy`` with :class:`ObservationMlpExtractor`: the monolithic baseline whose actor reads
    what the modular agent's modules read (``agent.monolithic_input: observation``)."""

    def _build_mlp_extractor(self) -> None:
        extractor = self.features_extractor
        if not isinstance(extractor, MinigridFeaturesExtractor):
            raise TypeError("ObservationActorPolicy needs MinigridFeaturesExtractor (it splits off the observation)")
        self.mlp_extractor = ObservationMlpExtractor(
            self.features_dim, self.net_arch, self.activation_fn, self.device, obs_dim=extractor.obs_dim
        )


#: Agent kinds -> SB3 policy class (the monolithic baseline is SB3's stock ActorCriticPolicy).
AGENTS: Registry[type[ActorCriticPolicy]] = Registry("agent")
AGENTS.add("modular", ModularActorCriticPolicy)
AGENTS.add("monolithic", ActorCriticPolicy)
