"""The PPO pieces the hand-written hierarchical loops (:mod:`~modrl.agents.options.sketch`,
:mod:`~modrl.agents.options.critic`) share: GAE, the clipped surrogate, minibatch indices, and a window of finished
episodes per task (Schulman et al., 2017, "Proximal policy optimization algorithms"; GAE: Schulman et al., 2016).

GAE is SB3's own (:meth:`stable_baselines3.common.buffers.RolloutBuffer.compute_returns_and_advantage`), so modrl's
PPOs share one advantage estimator; ``tests/test_hier_ppo.py`` checks it gives bit-identical advantages to the loop
this module held before. The rest of the loop stays here because SB3's ``PPO.learn`` cannot run it through its
extension points: ``PPO.train`` builds its loss from one ``evaluate_actions`` log-probability, one advantage and one
value per step, and its ``RolloutBuffer`` stores one action, value and log-probability per step. Option-critic trains
two policies with two ratios and two advantages (intra-option actions against ``Q_Ω(s, ω)``, the option choice against
``G - V_Ω(s)`` on the steps where it chose), a termination gradient that is no likelihood ratio, and bootstraps from
the running option kept per env across steps: 8 of the 18 per-step tensors of its rollout have no ``RolloutBuffer``
field (measured by ``tests/test_hier_ppo.py::test_option_critic_rollout_fields_sb3_lacks``). Running it on SB3 would
mean overriding both ``collect_rollouts`` and ``train``, i.e. all of PPO. The sketch loop would fit SB3 better (its
(STOP, action) pair is one joint log-probability), but moving it would change its learning results: its actions and
minibatches come from one seeded ``torch.Generator``, SB3's from the global torch and numpy generators.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from torch import Tensor

# The buffer's observation and action storage is unused here: the smallest spaces it accepts.
_NO_OBSERVATION = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
_NO_ACTION = spaces.Discrete(2)


def gae(rewards: Tensor, values: Tensor, dones: Tensor, last_value: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimates, by SB3's :meth:`RolloutBuffer.compute_returns_and_advantage`.

    Args:
        rewards, values, dones: ``(T, N)`` float32; ``dones[t]`` is 1 when the episode ended with step ``t``
            (terminated or truncated alike).
        last_value: ``(N,)`` value of the state after the last step.
        gamma: Discount. lam: GAE's lambda.

    Returns:
        ``(T, N)`` float32 advantages.
    """
    steps, n_envs = rewards.shape
    buffer = RolloutBuffer(steps, _NO_OBSERVATION, _NO_ACTION, device="cpu", gae_lambda=lam, gamma=gamma, n_envs=n_envs)
    buffer.rewards[:] = rewards.detach().cpu().numpy()
    buffer.values[:] = values.detach().cpu().numpy()
    buffer.episode_starts[1:] = dones[:-1].detach().cpu().numpy()  # SB3 marks an episode's first step, dones its last
    buffer.compute_returns_and_advantage(last_values=last_value.detach(), dones=dones[-1].detach().cpu().numpy())
    return torch.from_numpy(buffer.advantages)


def clipped_surrogate(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, clip: float, mask: Tensor | None = None
) -> Tensor:
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
            yield order[start : start + batch_size]


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
