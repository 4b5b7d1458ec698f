"""The task-module mutual-information bonus (``router.mi_coef``): its value on known routings and what it trains."""

from __future__ import annotations

import math

import pytest
import torch

from modrl.routers import ROUTERS, RouterConfig, build_router
from modrl.routers.specialise import task_module_mi
from modrl.routing_health import routing_health

K, T, D = 4, 3, 5
TASKS = torch.arange(12) % T
LEARNED = [name for name in ROUTERS.names() if name not in ("fixed", "uniform")]


def test_mi_of_known_routings() -> None:
    own_module = torch.eye(K)[TASKS]  # task t always on module t
    assert task_module_mi(own_module, TASKS, T).item() == pytest.approx(math.log(T))
    assert task_module_mi(torch.full((12, K), 1 / K), TASKS, T).item() == pytest.approx(0.0, abs=1e-7)
    one_module = torch.eye(K)[torch.zeros(12, dtype=torch.long)]  # collapsed
    assert task_module_mi(one_module, TASKS, T).item() == pytest.approx(0.0, abs=1e-7)
    assert task_module_mi(own_module, torch.zeros(12, dtype=torch.long), T).item() == pytest.approx(0.0, abs=1e-7)
    assert task_module_mi(own_module[:0], TASKS[:0], T).item() == 0.0
    # Two tasks sharing module 0, one on module 1: I = H(2/3, 1/3), as the health metric computes it.
    shared = torch.eye(K)[torch.tensor([0, 0, 1]).repeat(4)]
    expected = -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3)
    assert task_module_mi(shared, TASKS, T).item() == pytest.approx(expected)
    usage = torch.eye(K)[torch.tensor([0, 0, 1])].numpy()
    health = routing_health(usage, [4, 4, 4])
    assert health.mutual_information == pytest.approx(expected)


def test_mi_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="probs must be"):
        task_module_mi(torch.ones(12, K) / K, TASKS[:-1], T)


@pytest.mark.parametrize("kind", LEARNED)
def test_bonus_enters_aux_loss_only_when_gradients_are_computed(kind: str) -> None:
    torch.manual_seed(0)
    router = build_router(RouterConfig(kind=kind, mi_coef=0.5), num_modules=K, num_tasks=T, obs_dim=D)
    torch.manual_seed(0)
    plain = build_router(RouterConfig(kind=kind), num_modules=K, num_tasks=T, obs_dim=D)
    obs = torch.randn(12, D)
    with_bonus, without = router(obs, TASKS), plain(obs, TASKS)
    probs = with_bonus.weights if kind == "soft" else torch.softmax(with_bonus.logits, dim=-1)  # type: ignore[arg-type]
    expected = without.aux_loss - 0.5 * task_module_mi(probs, TASKS, T)
    torch.testing.assert_close(with_bonus.aux_loss, expected)
    assert with_bonus.aux_loss.item() != without.aux_loss.item()
    with torch.no_grad():  # a rollout: no bonus computed
        assert router(obs, TASKS).aux_loss.item() == plain(obs, TASKS).aux_loss.item()


def test_ascending_the_bonus_specialises_a_uniform_router() -> None:
    torch.manual_seed(0)
    router = build_router(RouterConfig(kind="soft", mi_coef=1.0), num_modules=K, num_tasks=T, obs_dim=D)
    optimiser = torch.optim.Adam(router.parameters(), lr=0.05)
    obs = torch.zeros(12, D)
    start = routing_health(_usage(router, obs), [4] * T)
    assert not start.specialised and start.normalised_mi < 0.01
    for _ in range(200):
        optimiser.zero_grad()
        router(obs, TASKS).aux_loss.backward()
        optimiser.step()
    end = routing_health(_usage(router, obs), [4] * T)
    assert end.specialised and not end.collapsed
    assert end.normalised_mi > 0.9
    assert len({int(row.argmax()) for row in _usage(router, obs)}) == T  # every task on its own module


def _usage(router: torch.nn.Module, obs: torch.Tensor):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        weights = router(obs, TASKS).weights
    return torch.stack([weights[t == TASKS].mean(dim=0) for t in range(T)]).numpy()


def test_an_obs_router_with_the_bonus_range_checks_task_ids() -> None:
    """The bonus reads task ids even when routing does not: a bad id is the router's clear error, not torch's."""
    config = RouterConfig(kind="soft", condition="obs", mi_coef=0.1)
    router = build_router(config, num_modules=K, num_tasks=T, obs_dim=D)
    with pytest.raises(ValueError, match=r"task ids must lie in \[0, 3\)"):
        router(torch.randn(12, D), torch.full((12,), T))
