"""Stable-Baselines3 features extractor for Minigrid's category image, direction and task id."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class MinigridFeaturesExtractor(BaseFeaturesExtractor):
    """Encode ``{"image", "direction", "task"}`` observations (see :class:`modrl.envs.TaskObservation`).

    The 7x7x3 image holds category indices (object, colour, state), not pixels. SB3 passes them through as floats
    (the space's high is the category maximum, not 255, so SB3 neither rescales nor transposes it). ``embed`` looks
    each index up in a learned table (one table with per-channel offsets, channel embeddings summed); ``conv`` uses
    the indices as numbers. A small convolution + linear layer gives ``features_dim`` observation features, and the
    task one-hot is appended unchanged so routers can read it.

    Output layout: ``(B, features_dim + num_tasks)`` float32 = ``[obs_features | task_one_hot]``.

    Args:
        observation_space: the Dict space of :class:`modrl.envs.TaskObservation`.
        kind: ``"embed"`` or ``"conv"``.
        embed_dim: embedding width (``embed`` only).
        channels: output channels of each 2x2 convolution.
        features_dim: size of the observation features (before the task one-hot).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        *,
        kind: Literal["embed", "conv"] = "embed",
        embed_dim: int = 8,
        channels: tuple[int, ...] | list[int] = (16, 32),
        features_dim: int = 64,
    ) -> None:
        image_space, direction_space, task_space = _check_space(observation_space)
        num_tasks = int(task_space.n)
        super().__init__(observation_space, features_dim + num_tasks)
        self.kind = kind
        self.obs_dim = features_dim
        self.num_tasks = num_tasks
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
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, first_in, height, width)).shape[1]
        n_directions = int(direction_space.n)
        self.head = nn.Sequential(nn.Linear(n_flat + n_directions, features_dim), nn.ReLU())

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features ``(B, features_dim + num_tasks)`` from preprocessed observations (image ``(B, H, W, 3)``)."""
        image = observations["image"]
        if self.kind == "embed":
            index = image.long() + self.offsets  # (B, H, W, 3)
            x = self.embedding(index).sum(dim=3).permute(0, 3, 1, 2)  # (B, E, H, W)
        else:
            x = image.permute(0, 3, 1, 2)
        # SB3 one-hot encodes Discrete entries; batches from its rollout buffer carry an extra axis: (B, 1, n).
        direction = observations["direction"].reshape(len(image), -1)
        task = observations["task"].reshape(len(image), -1)
        hidden = self.head(torch.cat([self.cnn(x), direction], dim=1))
        return torch.cat([hidden, task], dim=1)


def _check_space(space: spaces.Space) -> tuple[spaces.Box, spaces.Discrete, spaces.Discrete]:
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
    return image, direction, task  # type: ignore[return-value]  # Discrete-ness checked in the loop above
