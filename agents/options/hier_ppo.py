"""The PPO pieces the hand-written hierarchical loops share: GAE, the clipped surrogate, minibatch indices, and a
window of finished episodes per task (Schulman et al., 2017, "Proximal policy optimization algorithms"; GAE:
Schulman et al., 2016)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor


def gae(rewards: Tensor, values: Tensor, dones: Tensor, last_value: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimates.

    Args:
        rewards, values, dones: ``(T, N)`` float; ``dones[t]`` is 1 when the episode ended with step ``t``
            (terminated or truncated alike).
        last_value: ``(N,)`` value of the state after the last step.

    Returns:
        ``(T, N)`` advantages.
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    for t in reversed(range(steps)):
        next_value = last_value if t == steps - 1 else values[t + 1]
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * alive - values[t]
        running = delta + gamma * lam * alive * running
        advantages[t] = running
    return advantages


def clipped_surrogate(logp: Tensor, old_logp: Tensor, advantages: Tensor, clip: float,
                      mask: Tensor | None = None) -> Tensor:
    """PPO's clipped policy loss (to minimise) over ``(B,)`` log-probabilities, advantages normalised over the
    batch (over ``mask``'s rows only, when given; 0 when ``mask`` selects nothing)."""
    if mask is not None:
        if not bool(mask.any()):
            return logp.sum() * 0.0
        logp, old_logp, advantages = logp[mask], old_logp[mask], advantages[mask]
    if advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ratio = torch.exp(logp - old_logp)
    return -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()


def minibatches(size: int, batch_size: int, epochs: int, gen: torch.Generator) -> Iterator[Tensor]:
    """``epochs`` shuffled passes over ``range(size)`` in chunks of ``batch_size`` indices."""
    for _ in range(epochs):
        order = torch.randperm(size, generator=gen)
        for start in range(0, size, batch_size):
            yield order[start:start + batch_size]


class EpisodeWindow:
    """Success and return of the last ``window`` finished episodes, per task."""

    def __init__(self, task_names: Sequence[str], window: int = 100) -> None:
        self.task_names = tuple(task_names)
        self._success = [deque[float](maxlen=window) for _ in self.task_names]

    def add(self, task: int, success: bool) -> None:
        """Count one finished episode of task ``task``."""
        self._success[task].append(float(success))

    def per_task(self) -> dict[str, float]:
        """Success rate per task with at least one finished episode."""
        return {name: float(np.mean(s)) for name, s in zip(self.task_names, self._success, strict=True) if s}

    def success(self) -> float:
        """Success rate over the finished episodes of all tasks (``nan`` before the first)."""
        values = [v for s in self._success for v in s]
        return float(np.mean(values)) if values else float("nan")
