"""Sampled evaluation episodes repeat themselves: ``run_episode`` seeds torch's generator per episode (from the
episode's seed) and puts the caller's generator state back, so ``modrl eval --stochastic`` and the mission ablation's
``--stochastic`` give the same numbers on every run."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from modrl.agents.common.evaluation import run_episode
from modrl.envs import make_suite_env


class SamplingPolicy:
    """``predict`` as SB3's: a uniformly sampled action from torch's global generator unless deterministic."""

    def __init__(self) -> None:
        self.actions: list[int] = []

    def predict(self, obs: Any, deterministic: bool = False) -> tuple[np.ndarray, None]:
        action = 2 if deterministic else int(torch.randint(0, 3, ()).item())  # left, right, forward
        self.actions.append(action)
        return np.array(action), None


def _actions(seed: int, deterministic: bool = False) -> list[int]:
    env = make_suite_env("minigrid-tiny", 0)
    policy = SamplingPolicy()
    run_episode(env, policy, None, seed, deterministic)  # type: ignore[arg-type]
    env.close()
    return policy.actions


def test_a_sampled_episode_repeats_itself_and_leaves_the_callers_generator_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = _actions(7)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(999)  # another caller state: the episode does not depend on it
    assert _actions(7) == first and len(set(first)) > 1
    assert _actions(8) != first  # the episode's seed picks the samples


def test_a_greedy_episode_never_touches_the_generator() -> None:
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    assert set(_actions(7, deterministic=True)) == {2}
    assert torch.equal(torch.random.get_rng_state(), before)
