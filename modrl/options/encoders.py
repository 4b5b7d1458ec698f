"""Observation encoder of an option: MiniGrid's category image + heading, optionally conditioned on an argument.

An option must act on its own (a router or a planner hands it the raw observation), so it carries its encoder. The
image holds category indices (object, colour, state), not pixels: each index is looked up in a learned table (one
table, per-channel offsets, channel embeddings summed), then 2x2 convolutions. With a conditioning vector (the
embedded option argument, e.g. ``("red", "key")``) every convolution's feature maps are modulated FiLM-style,
``h * (1 + gamma(c)) + beta(c)`` (Perez et al., 2018, "FiLM: visual reasoning with a general conditioning layer"), so
the argument decides *which* object the features pick out; colour and type enter through separate embeddings, which is
what lets an option generalise to (colour, type) pairs it was never trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from modrl.layers import summed_embedding


class GridEncoder(nn.Module):
    """``image (B, H, W, C)`` categories + ``direction (B,)`` [+ ``cond (B, cond_dim)``] -> ``(B, features_dim)``.

    Args:
        image_shape: ``(H, W, C)``.
        image_high: Largest category index of each of the ``C`` channels.
        num_directions: Size of the heading space (one-hot appended before the last layer).
        embed_dim: Width of the category embeddings.
        channels: Output channels of each 2x2 convolution (at least one).
        features_dim: Output width.
        cond_dim: Width of the conditioning vector; 0 for none (no FiLM layers).
    """

    def __init__(
        self,
        *,
        image_shape: Sequence[int],
        image_high: Sequence[int],
        num_directions: int,
        embed_dim: int,
        channels: Sequence[int],
        features_dim: int,
        cond_dim: int = 0,
    ) -> None:
        super().__init__()
        height, width, n_channels = (int(v) for v in image_shape)
        if len(image_high) != n_channels:
            raise ValueError(f"image_high needs one maximum per channel ({n_channels}), got {list(image_high)}")
        if not channels:
            raise ValueError("channels needs at least one convolution")
        sizes = torch.as_tensor([int(h) + 1 for h in image_high], dtype=torch.long)
        self.offsets: Tensor
        self.register_buffer("offsets", torch.cumsum(sizes, 0) - sizes, persistent=False)
        self.num_directions = num_directions
        self.embedding = nn.Embedding(int(sizes.sum()), embed_dim)
        self.convs = nn.ModuleList()
        self.films = nn.ModuleList()
        in_channels = embed_dim
        for out_channels in channels:
            self.convs.append(nn.Conv2d(in_channels, out_channels, kernel_size=2))
            if cond_dim > 0:
                self.films.append(nn.Linear(cond_dim, 2 * out_channels))
            in_channels = out_channels
        n_flat = in_channels * (height - len(channels)) * (width - len(channels))
        self.head = nn.Sequential(nn.Linear(n_flat + num_directions, features_dim), nn.ReLU())

    def forward(self, image: Tensor, direction: Tensor, cond: Tensor | None = None) -> Tensor:
        """Encode a batch.

        Args:
            image: ``(B, H, W, C)`` category indices (any numeric dtype).
            direction: ``(B,)`` headings in ``[0, num_directions)``.
            cond: ``(B, cond_dim)`` float, required iff the encoder was built with ``cond_dim > 0``.

        Returns:
            ``(B, features_dim)`` float.
        """
        if (cond is None) != (len(self.films) == 0):
            raise ValueError("cond must be given exactly when the encoder was built with cond_dim > 0")
        x = summed_embedding(image.long() + self.offsets, self.embedding.weight).permute(0, 3, 1, 2)  # (B, E, H, W)
        for index, conv in enumerate(self.convs):
            x = conv(x)
            if cond is not None:
                gamma, beta = self.films[index](cond).chunk(2, dim=1)  # (B, C') each
                x = x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
            x = torch.relu(x)
        heading = nn.functional.one_hot(direction.long().reshape(-1), self.num_directions).to(x.dtype)
        return self.head(torch.cat([x.flatten(1), heading], dim=1))
