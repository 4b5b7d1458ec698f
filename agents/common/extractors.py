"""Stable-Baselines3 features extractor for Minigrid's category image, direction and task id."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from modrl.layers import summed_embedding


class MissionEncoder(nn.Module):
    """Encode padded mission token ids ``(B, L)`` (0 = padding) into ``(B, dim)`` features.

    ``bow``: a position-weighted bag of words, ``sum_t word(id_t) * position(t)`` (elementwise; padding's word
    embedding is zero), then a linear layer + ReLU. Position vectors start near 1 (a plain bag of words) and learn
    to tell positions apart, so "put the red ball next to the blue key" and its swap can differ (an additive
    position embedding would cancel out of the sum). ``gru``: a GRU over the word embeddings; the
    hidden state at the last non-padding position, then a linear layer + ReLU. An all-padding mission gives the
    features of an empty sum / the GRU's initial state.

    Args:
        vocab_size: ``V``, number of token ids. max_len: ``L``. dim: output (and embedding) width.
        kind: ``"bow"`` or ``"gru"``.
    """

    def __init__(self, *, vocab_size: int, max_len: int, dim: int, kind: Literal["bow", "gru"] = "bow") -> None:
        super().__init__()
        if kind not in ("bow", "gru"):
            raise ValueError(f"unknown mission encoder {kind!r}; allowed: bow, gru")
        self.kind = kind
        self.max_len = max_len
        self.words = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.positions = nn.Embedding(max_len, dim) if kind == "bow" else None
        if self.positions is not None:
            nn.init.normal_(self.positions.weight, mean=1.0, std=0.1)
        self.gru = nn.GRU(dim, dim, batch_first=True) if kind == "gru" else None
        # LayerNorm (no affine): mission features stay at unit scale, so a router reading them cannot sharpen its
        # softmax just by the encoder growing its outputs (without it a soft router collapsed onto one module
        # within 3k steps on colour-type).
        self.out = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.LayerNorm(dim, elementwise_affine=False))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` long token ids -> ``(B, dim)`` float."""
        mask = (ids != 0).unsqueeze(-1)  # (B, L, 1)
        x = self.words(ids)  # (B, L, dim)
        if self.positions is not None:
            x = (x * self.positions.weight[: ids.shape[1]]).sum(dim=1)
        else:
            assert self.gru is not None
            states, _ = self.gru(x)  # (B, L, dim)
            last = (mask.squeeze(-1).sum(dim=1) - 1).clamp(min=0)  # (B,) index of the last word
            x = states[torch.arange(len(ids)), last] * mask.any(dim=1)
        return self.out(x)


class FiLM(nn.Module):
    """``(B, dim)`` conditioning features -> ``(gamma, beta)``, each ``(B, channels, 1, 1)``: a linear map that starts
    at zero, so ``x * (1 + gamma) + beta`` starts as the identity.

    Not an ``nn.Linear`` on purpose: SB3's orthogonal initialisation re-initialises every ``nn.Linear`` and
    ``nn.Conv2d`` of the features extractor after it is built, which would start FiLM far from the identity.
    """

    def __init__(self, dim: int, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2 * channels, dim))
        self.bias = nn.Parameter(torch.zeros(2 * channels))

    def forward(self, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = nn.functional.linear(condition, self.weight, self.bias)[:, :, None, None]
        gamma, beta = out.chunk(2, dim=1)
        return gamma, beta


class MinigridFeaturesExtractor(BaseFeaturesExtractor):
    """Encode ``{"image", "direction", "task"[, "mission"]}`` observations (see :class:`modrl.envs.TaskObservation`
    and :class:`modrl.envs.MissionTokens`).

    The 7x7x3 image holds category indices (object, colour, state), not pixels. SB3 passes them through as floats
    (the space's high is the category maximum, not 255, so SB3 neither rescales nor transposes it). ``embed`` looks
    each index up in a learned table (one table with per-channel offsets, channel embeddings summed); ``conv`` uses
    the indices as numbers. With a ``mission`` entry (token ids; SB3 one-hot encodes it, the extractor takes the
    argmax back) a :class:`MissionEncoder` gives ``mission_dim`` features. A small convolution + linear layer over
    the image, the direction and the mission features gives ``features_dim`` observation features; the mission
    features and the task one-hot are appended unchanged so routers can read them.

    Output layout: ``(B, features_dim + mission_dim + words_dim + num_tasks)`` float32 =
    ``[obs_features | mission_features | bag_of_words | task_one_hot]`` (``mission_dim`` is 0 without a mission
    entry, ``words_dim`` is 0 unless ``bag_of_words``).

    Args:
        observation_space: the Dict space of :class:`modrl.envs.TaskObservation` (+ ``MissionTokens``).
        kind: ``"embed"`` or ``"conv"``.
        embed_dim: embedding width (``embed`` only).
        channels: output channels of each 2x2 convolution.
        features_dim: size of the observation features.
        mission_encoder: ``"bow"`` or ``"gru"`` (see :class:`MissionEncoder`); used only with a mission entry.
        mission_dim: size of the mission features; used only with a mission entry.
        bag_of_words: Also output the mission's bag of words, ``(B, V)`` word frequencies (padding excluded), for a
            router whose allocation is a sum over the mission's words (``agent.router_input: words``). Needs a
            mission entry.
        film: FiLM (Perez et al. 2018; BabyAI 1.1's conditioning): after each convolution + ReLU, every channel is
            scaled and shifted by ``(1 + gamma(m), beta(m))``, linear in the mission features ``m`` and initialised to
            zero, so training starts from the unconditioned network. Needs a mission entry.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        *,
        kind: Literal["embed", "conv"] = "embed",
        embed_dim: int = 8,
        channels: tuple[int, ...] | list[int] = (16, 32),
        features_dim: int = 64,
        mission_encoder: Literal["bow", "gru"] = "bow",
        mission_dim: int = 32,
        film: bool = False,
        bag_of_words: bool = False,
    ) -> None:
        image_space, direction_space, task_space, mission_space = _check_space(observation_space)
        num_tasks = int(task_space.n)
        self.mission_dim = mission_dim if mission_space is not None else 0
        if bag_of_words and mission_space is None:
            raise ValueError("bag_of_words needs mission tokens in the observation (env.mission_tokens: true)")
        self.words_dim = int(mission_space.nvec[0]) if bag_of_words and mission_space is not None else 0
        super().__init__(observation_space, features_dim + self.mission_dim + self.words_dim + num_tasks)
        self.kind = kind
        self.obs_dim = features_dim
        self.num_tasks = num_tasks
        self.mission: MissionEncoder | None = None
        self.vocab_size = 0
        if mission_space is not None:
            self.vocab_size = int(mission_space.nvec[0])
            self.mission = MissionEncoder(
                vocab_size=self.vocab_size, max_len=len(mission_space.nvec), dim=mission_dim, kind=mission_encoder
            )
        not_padding = torch.ones(max(self.vocab_size, 1))
        not_padding[0] = 0.0
        self._not_padding: torch.Tensor
        self.register_buffer("_not_padding", not_padding, persistent=False)
        height, width, n_channels = image_space.shape
        if kind == "embed":
            sizes = image_space.high.reshape(-1, n_channels).max(axis=0).astype(np.int64) + 1
            offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            self.embedding = nn.Embedding(int(sizes.sum()), embed_dim)
            self.offsets: torch.Tensor
            self.register_buffer("offsets", torch.as_tensor(offsets, dtype=torch.long), persistent=False)
            in_channels = embed_dim
        elif kind == "conv":
            in_channels = n_channels
        else:
            raise ValueError(f"unknown extractor kind {kind!r}; allowed: embed, conv")
        first_in = in_channels
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [nn.Conv2d(in_channels, out_channels, kernel_size=2), nn.ReLU()]
            in_channels = out_channels
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        self.films: nn.ModuleList | None = None
        if film:
            if self.mission is None:
                raise ValueError("film needs mission tokens in the observation (env.mission_tokens: true)")
            self.films = nn.ModuleList(FiLM(mission_dim, c) for c in channels)
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, first_in, height, width)).shape[1]
        n_directions = int(direction_space.n)
        self.head = nn.Sequential(nn.Linear(n_flat + n_directions + self.mission_dim, features_dim), nn.ReLU())

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features ``(B, features_dim + mission_dim + words_dim + num_tasks)`` from preprocessed observations."""
        image = observations["image"]
        batch = len(image)
        if self.kind == "embed":
            index = image.long() + self.offsets  # (B, H, W, 3)
            x = summed_embedding(index, self.embedding.weight).permute(0, 3, 1, 2)  # (B, E, H, W)
        else:
            x = image.permute(0, 3, 1, 2)
        # SB3 one-hot encodes Discrete entries; batches from its rollout buffer carry an extra axis: (B, 1, n).
        direction = observations["direction"].reshape(batch, -1)
        task = observations["task"].reshape(batch, -1)
        mission: list[torch.Tensor] = []
        words: list[torch.Tensor] = []
        if self.mission is not None:
            # MultiDiscrete arrives one-hot encoded per position: (B, L * V) -> ids (B, L).
            one_hot = observations["mission"].reshape(batch, -1, self.vocab_size)
            mission = [self.mission(one_hot.argmax(dim=2))]
            if self.words_dim:
                counts = one_hot.sum(dim=1) * self._not_padding  # (B, V), padding id 0 dropped
                words = [counts / counts.sum(dim=1, keepdim=True).clamp(min=1.0)]
        image_features = self.cnn(x) if self.films is None else self._film_cnn(x, mission[0])
        hidden = self.head(torch.cat([image_features, direction, *mission], dim=1))
        return torch.cat([hidden, *mission, *words, task], dim=1)

    def _film_cnn(self, x: torch.Tensor, mission: torch.Tensor) -> torch.Tensor:
        """The convolutions of :attr:`cnn` (same modules, same weights), each ReLU output FiLM-modulated."""
        assert self.films is not None
        layers = list(self.cnn)
        for index, film in enumerate(self.films):
            conv, relu = layers[2 * index], layers[2 * index + 1]
            gamma, beta = film(mission)
            x = relu(conv(x)) * (1 + gamma) + beta
        return layers[-1](x)  # Flatten


def _check_space(
    space: spaces.Space,
) -> tuple[spaces.Box, spaces.Discrete, spaces.Discrete, spaces.MultiDiscrete | None]:
    if not isinstance(space, spaces.Dict) or not {"image", "direction", "task"} <= set(space.spaces):
        raise ValueError(
            "MinigridFeaturesExtractor needs a Dict observation space with keys image, direction and task "
            f"(wrap the env with modrl.envs.TaskObservation); got {space}"
        )
    image, direction, task = space["image"], space["direction"], space["task"]
    if not isinstance(image, spaces.Box) or len(image.shape) != 3:
        raise ValueError(f"observation 'image' must be a (H, W, C) Box, got {image}")
    for key, sub in (("direction", direction), ("task", task)):
        if not isinstance(sub, spaces.Discrete):
            raise ValueError(f"observation {key!r} must be Discrete, got {sub}")
    if np.any(image.high > 255) or image.high.max() == 255:
        raise ValueError(
            "observation 'image' must hold category indices with the category maximum as its high (not 255 pixels)"
        )
    mission = space.spaces.get("mission")
    if mission is not None and (
        not isinstance(mission, spaces.MultiDiscrete) or mission.nvec.ndim != 1 or len(set(mission.nvec)) != 1
    ):
        raise ValueError(f"observation 'mission' must be MultiDiscrete([V] * L) token ids, got {mission}")
    return image, direction, task, mission  # type: ignore[return-value]  # Discrete-ness checked in the loop above
