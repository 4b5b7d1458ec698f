"""The policy over options and the option-value head of option-critic: ``π_Ω(ω | s, task)`` and ``Q_Ω(s, ω)``.

Option-critic (Bacon, Harb & Precup, 2017, "The option-critic architecture") learns, next to the options' own
policies and terminations, a policy that picks an option whenever the running one terminates, and the value
``Q_Ω(s, ω)`` of running option ``ω`` from ``s``. :class:`OptionController` computes both from one
:class:`~modrl.options.encoders.GridEncoder`; with several tasks, the task id is embedded and modulates the encoder
FiLM-style (as option arguments do), so the choice of option can depend on the task.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from modrl.config import check

from .encoders import GridEncoder


class OptionController(nn.Module):
    """``(image, direction, task) -> (option logits (B, K), option values (B, K))``.

    Args:
        num_options: ``K``.
        num_tasks: Size of the task-id space (1: the task is ignored, no embedding).
        image_shape, image_high, num_directions, embed_dim, channels, features_dim: As for
            :class:`~modrl.options.encoders.GridEncoder`.
        hidden: Hidden sizes (tanh) shared by the two heads.
        task_dim: Width of the task embedding (used when ``num_tasks > 1``).
    """

    def __init__(
        self,
        *,
        num_options: int,
        num_tasks: int = 1,
        image_shape: Sequence[int] = (7, 7, 3),
        image_high: Sequence[int] = (10, 5, 2),
        num_directions: int = 4,
        embed_dim: int = 8,
        channels: Sequence[int] = (16, 32),
        features_dim: int = 64,
        hidden: Sequence[int] = (64,),
        task_dim: int = 8,
    ) -> None:
        super().__init__()
        check(num_options >= 1, "num_options", f"must be >= 1, got {num_options}")
        check(num_tasks >= 1, "num_tasks", f"must be >= 1, got {num_tasks}")
        check(task_dim >= 1, "task_dim", f"must be >= 1, got {task_dim}")
        self.num_options = num_options
        self.num_tasks = num_tasks
        self.task_embedding = nn.Embedding(num_tasks, task_dim) if num_tasks > 1 else None
        self.encoder = GridEncoder(
            image_shape=image_shape,
            image_high=image_high,
            num_directions=num_directions,
            embed_dim=embed_dim,
            channels=channels,
            features_dim=features_dim,
            cond_dim=task_dim if num_tasks > 1 else 0,
        )
        layers: list[nn.Module] = []
        width = features_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.Tanh()]
            width = size
        self.body = nn.Sequential(*layers)
        self.policy = nn.Linear(width, num_options)
        nn.init.orthogonal_(self.policy.weight, gain=0.01)  # near-uniform choice at the start
        nn.init.zeros_(self.policy.bias)
        self.values = nn.Linear(width, num_options)

    def forward(self, image: Tensor, direction: Tensor, task: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Option logits and option values.

        Args:
            image: ``(B, H, W, C)`` category indices. direction: ``(B,)`` headings.
            task: ``(B,)`` long task ids (required when ``num_tasks > 1``, ignored otherwise).

        Returns:
            ``(B, K)`` float logits of ``π_Ω`` and ``(B, K)`` float ``Q_Ω(s, ·)``.
        """
        cond = None
        if self.task_embedding is not None:
            if task is None:
                raise ValueError(f"task ids are required with num_tasks={self.num_tasks}")
            cond = self.task_embedding(task.long().reshape(-1))
        hidden = self.body(self.encoder(image, direction, cond))
        return self.policy(hidden), self.values(hidden)

    @staticmethod
    def state_value(logits: Tensor, values: Tensor) -> Tensor:
        """``V_Ω(s) = Σ_ω π_Ω(ω|s) Q_Ω(s, ω)``: ``(B,)`` from ``(B, K)`` logits and values."""
        return (torch.softmax(logits, dim=-1) * values).sum(dim=-1)
