"""The hand-written hierarchical PPO loops' shared pieces: GAE is SB3's own and bit-identical to the loop it replaced;
what an option-critic rollout holds that SB3's ``RolloutBuffer`` has no field for (the number hier_ppo.py and the
README quote)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from torch import Tensor

from modrl.agents.options.hier_ppo import clipped_surrogate, gae


def _hand_written_gae(
    rewards: Tensor, values: Tensor, dones: Tensor, last_value: Tensor, gamma: float, lam: float
) -> Tensor:
    """The GAE loop hier_ppo.py held before it used SB3's (verbatim)."""
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


@pytest.mark.parametrize(("gamma", "lam"), [(0.99, 0.95), (0.9, 1.0), (0.997, 0.0), (0.95, 0.9)])
def test_gae_is_bit_identical_to_the_hand_written_loop(gamma: float, lam: float) -> None:
    for seed in range(50):
        gen = torch.Generator().manual_seed(seed)
        steps, n_envs = int(torch.randint(1, 200, (1,), generator=gen)), int(torch.randint(1, 9, (1,), generator=gen))
        rewards = torch.randn(steps, n_envs, generator=gen) * 3
        values = torch.randn(steps, n_envs, generator=gen)
        dones = (torch.rand(steps, n_envs, generator=gen) < 0.1).float()
        last = torch.randn(n_envs, generator=gen)
        ours = gae(rewards, values, dones, last, gamma, lam)
        assert ours.dtype == torch.float32 and ours.shape == (steps, n_envs)
        assert torch.equal(ours, _hand_written_gae(rewards, values, dones, last, gamma, lam)), seed


def test_gae_cuts_at_episode_ends_by_hand() -> None:
    rewards, values = torch.tensor([[1.0], [0.0], [2.0]]), torch.tensor([[0.5], [0.25], [1.0]])
    dones, last = torch.tensor([[0.0], [1.0], [0.0]]), torch.tensor([4.0])
    adv = gae(rewards, values, dones, last, 0.5, 1.0)
    # t=2: 2 + 0.5 * 4 - 1 = 3; t=1 ends its episode: 0 - 0.25; t=0: (1 + 0.5 * 0.25 - 0.5) + 0.5 * (-0.25)
    assert adv[:, 0].tolist() == [0.5, -0.25, 3.0]


def test_gae_with_lambda_zero_is_the_one_step_td_error_by_hand() -> None:
    rewards, values = torch.tensor([[1.0, 0.0], [0.5, 2.0]]), torch.tensor([[0.25, 1.0], [0.5, 0.0]])
    dones, last = torch.tensor([[0.0, 0.0], [0.0, 1.0]]), torch.tensor([2.0, 8.0])
    adv = gae(rewards, values, dones, last, 0.5, 0.0)
    # env 0: t=0: 1 + 0.5 * 0.5 - 0.25 = 1; t=1: 0.5 + 0.5 * 2 - 0.5 = 1
    # env 1: t=0: 0 + 0.5 * 0 - 1 = -1; t=1 ends the episode, the last value is not bootstrapped: 2 - 0 = 2
    assert adv.tolist() == [[1.0, -1.0], [1.0, 2.0]]


def test_clipped_surrogate_clips_each_side_by_hand() -> None:
    # Advantages (1, -1) normalise to (1, -1) / sqrt(2) (mean 0, unbiased std sqrt(2)); call a = 1 / sqrt(2).
    advantages = torch.tensor([1.0, -1.0])
    old = torch.zeros(2)
    # Inside the clip range (ratios 1.1, 0.9): -(1.1 a + (-0.9 a)) / 2 = -0.1 a.
    inside = clipped_surrogate(torch.log(torch.tensor([1.1, 0.9])), old, advantages, 0.2)
    assert float(inside) == pytest.approx(-0.1 / np.sqrt(2), abs=1e-6)
    # Outside (ratios 1.5, 0.5), clip 0.2: A > 0 takes min(1.5 a, 1.2 a) = 1.2 a, A < 0 takes
    # min(-0.5 a, -0.8 a) = -0.8 a: the loss is -(1.2 a - 0.8 a) / 2 = -0.2 a.
    logp = torch.log(torch.tensor([1.5, 0.5])).requires_grad_(True)
    outside = clipped_surrogate(logp, old, advantages, 0.2)
    assert float(outside.detach()) == pytest.approx(-0.2 / np.sqrt(2), abs=1e-6)
    outside.backward()
    assert logp.grad is not None and logp.grad.tolist() == [0.0, 0.0]  # both clipped: no gradient
    # Pessimistic side: ratio 0.5 with A > 0 is not clipped (min(0.5 a, 0.8 a) = 0.5 a), gradient -ratio * a / 2.
    logp = torch.log(torch.tensor([0.5, 1.0])).requires_grad_(True)
    loss = clipped_surrogate(logp, old, advantages, 0.2)
    assert float(loss.detach()) == pytest.approx(-(0.5 - 1.0) / np.sqrt(2) / 2, abs=1e-6)
    loss.backward()
    assert logp.grad is not None and logp.grad[0].item() == pytest.approx(-0.5 / np.sqrt(2) / 2, abs=1e-6)


def test_clipped_surrogate_single_sample_is_unnormalised_and_mask_selects_rows() -> None:
    assert float(clipped_surrogate(torch.zeros(1), torch.zeros(1), torch.tensor([2.0]), 0.2)) == -2.0
    logp, old = torch.log(torch.tensor([1.1, 3.0, 0.9, 0.1])), torch.zeros(4)
    advantages = torch.tensor([1.0, 5.0, -1.0, 7.0])
    mask = torch.tensor([True, False, True, False])
    masked = clipped_surrogate(logp, old, advantages, 0.2, mask)
    assert float(masked) == pytest.approx(-0.1 / np.sqrt(2), abs=1e-6)  # the 'inside' case above, rows 0 and 2
    nothing = clipped_surrogate(logp.requires_grad_(True), old, advantages, 0.2, torch.zeros(4, dtype=torch.bool))
    assert float(nothing.detach()) == 0.0 and nothing.requires_grad


def test_option_critic_rollout_fields_sb3_lacks() -> None:
    from test_option_critic import CueSlots, _config

    from modrl.agents.options.critic import _Loop, build_option_critic, collect
    from modrl.options import OptionStats

    config = _config()
    slots = CueSlots()
    model = build_option_critic(config, len(slots.task_names))
    batch = collect(
        model,
        _Loop(slots, OptionStats(model.library.names, slots.task_names)),
        config,
        torch.Generator().manual_seed(0),
    )
    steps, n_envs = config.algo.n_steps, slots.n_envs
    buffer = RolloutBuffer(steps, spaces.Box(-1.0, 1.0, (1,)), spaces.Discrete(2), device="cpu", n_envs=n_envs)
    fields = {
        name
        for name, value in vars(buffer).items()
        if isinstance(value, np.ndarray) and value.shape[:2] == (steps, n_envs)
    }
    assert fields == {
        "observations",
        "actions",
        "rewards",
        "episode_starts",
        "values",
        "log_probs",
        "advantages",
        "returns",
    }
    counterpart = {
        "image": "observations",
        "direction": "observations",
        "task": "observations",
        "action": "actions",
        "reward": "rewards",
        "done": "episode_starts",
        "value": "values",
        "logp": "log_probs",
        "advantage": "advantages",
        "returns": "returns",
    }
    assert set(counterpart.values()) == fields
    lacking = set(batch) - set(counterpart)
    assert lacking == {"prev", "option", "choose", "has_prev", "beta_prev", "logp_option", "v_state", "term_adv"}
    assert (len(lacking), len(batch)) == (8, 18)  # quoted in agents/options/hier_ppo.py and the README
