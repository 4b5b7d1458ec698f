"""Contract tests over every registered router, plus each router's own semantics."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from modrl.config import ConfigError, from_dict
from modrl.routers import ROUTERS, GumbelRouter, Router, RouterConfig, TopKRouter, build_router

K, T, D, B = 4, 3, 5, 12
UNLEARNED = ("fixed", "uniform")
LEARNED = [name for name in ROUTERS.names() if name not in UNLEARNED]
CASES = [("fixed", "task", 0), ("uniform", "task", 0), ("uniform", "obs", 0)] + [
    (kind, condition, hidden) for kind in LEARNED for condition in ("task", "obs", "task+obs") for hidden in (0, 6)
]


def make(kind: str, condition: str = "task", hidden: int = 0, seed: int = 0, **kwargs: Any) -> Router:
    torch.manual_seed(seed)
    config = RouterConfig(kind=kind, condition=condition, hidden=hidden, **kwargs)  # type: ignore[arg-type]
    return build_router(config, num_modules=K, num_tasks=T, obs_dim=D)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, generator=gen), torch.arange(B) % T


def test_registry_holds_the_five_routers() -> None:
    assert ROUTERS.names() == ["fixed", "gumbel", "soft", "topk", "uniform"]


@pytest.mark.parametrize(("kind", "condition", "hidden"), CASES)
@pytest.mark.parametrize("training", [True, False])
def test_weights_are_distributions_and_recorded(kind: str, condition: str, hidden: int, training: bool) -> None:
    router = make(kind, condition, hidden).train(training)
    out = router(*batch())
    assert out.weights.shape == (B, K)
    assert bool((out.weights >= 0).all())
    torch.testing.assert_close(out.weights.sum(dim=1), torch.ones(B))
    assert router.last is not None and not router.last.requires_grad
    assert torch.equal(router.last, out.weights.detach())
    assert out.aux_loss.shape == ()
    assert (out.logits is None) == (kind in UNLEARNED)
    if out.logits is not None:
        assert out.logits.shape == (B, K)


@pytest.mark.parametrize(("kind", "condition", "hidden"), CASES)
def test_eval_mode_is_deterministic(kind: str, condition: str, hidden: int) -> None:
    router = make(kind, condition, hidden).eval()
    obs, tasks = batch()
    torch.manual_seed(1)
    first = router(obs, tasks).weights
    torch.manual_seed(2)
    assert torch.equal(first, router(obs, tasks).weights)


@pytest.mark.parametrize(("kind", "condition", "hidden"), [case for case in CASES if case[0] not in UNLEARNED])
def test_gradient_reaches_every_router_parameter(kind: str, condition: str, hidden: int) -> None:
    router = make(kind, condition, hidden).train()
    target = torch.randn(B, K, generator=torch.Generator().manual_seed(5))
    out = router(*batch())
    ((out.weights * target).sum() + out.aux_loss).backward()
    params = dict(router.named_parameters())
    assert params
    for name, param in params.items():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name


@pytest.mark.parametrize(("kind", "condition", "hidden"), CASES)
def test_fresh_and_reset_routers_start_near_uniform(kind: str, condition: str, hidden: int) -> None:
    router = make(kind, condition, hidden)
    with torch.no_grad():  # what SB3's ortho_init does to the Linear layers of an mlp_extractor
        for module in router.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.orthogonal_(module.weight, gain=2**0.5)
    router.reset_parameters()
    out = router.eval()(*batch())
    if out.logits is not None:
        assert float(out.logits.detach().abs().max()) < 0.1


@pytest.mark.parametrize("kind", UNLEARNED)
def test_unlearned_routers_have_no_parameters(kind: str) -> None:
    assert list(make(kind).parameters()) == []
    assert make(kind).state_dict() == {}


def test_uniform_router_weighs_every_module_equally_whatever_it_reads() -> None:
    router = make("uniform", "obs")
    obs, tasks = batch(0)
    out = router(obs * 100.0, (tasks + 1) % T)
    assert torch.equal(out.weights, torch.full((B, K), 1.0 / K))
    assert out.weights.dtype == obs.dtype and float(out.aux_loss) == 0.0
    half = router(obs.half(), tasks).weights
    assert half.dtype == torch.float16


@pytest.mark.parametrize("kind", ROUTERS.names())
def test_state_dict_round_trip_gives_identical_outputs(kind: str) -> None:
    source = make(kind, hidden=6, seed=0)
    source.set_progress(0.3)
    copy = make(kind, hidden=6, seed=1)
    obs, tasks = batch()
    if kind not in UNLEARNED:  # different seeds give different routers, so the round trip is what makes them equal
        before, theirs = copy.eval()(obs, tasks).logits, source.eval()(obs, tasks).logits
        assert before is not None and theirs is not None and not torch.equal(theirs, before)
    copy.load_state_dict(source.state_dict())
    a, b = source.eval()(obs, tasks), copy.eval()(obs, tasks)
    assert torch.equal(a.weights, b.weights)
    if a.logits is not None:
        assert b.logits is not None and torch.equal(a.logits, b.logits)


@pytest.mark.parametrize("kind", ROUTERS.names())
def test_task_conditioned_router_ignores_observations(kind: str) -> None:
    router = make(kind, "task", hidden=6).eval()
    obs, tasks = batch(0)
    other, _ = batch(1)
    a, b = router(obs, tasks), router(other, tasks)
    assert torch.equal(a.weights, b.weights)
    if a.logits is not None:
        assert b.logits is not None and torch.equal(a.logits, b.logits)


@pytest.mark.parametrize("kind", LEARNED)
def test_obs_conditioned_router_ignores_task_but_reads_obs(kind: str) -> None:
    router = make(kind, "obs").eval()
    obs, tasks = batch(0)
    other, _ = batch(1)
    base = router(obs, tasks).logits
    assert base is not None
    assert torch.equal(base, router(obs, (tasks + 1) % T).logits)  # type: ignore[arg-type]
    assert not torch.equal(base, router(other, tasks).logits)  # type: ignore[arg-type]


def test_fixed_table_semantics() -> None:
    router = build_router(RouterConfig(kind="fixed", table=(2, 0, 2)), num_modules=K, num_tasks=T, obs_dim=D)
    out = router(torch.randn(3, D), torch.tensor([0, 1, 2]))
    assert torch.equal(out.weights, torch.tensor([[0.0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 1, 0]]))
    default = build_router(RouterConfig(kind="fixed"), num_modules=2, num_tasks=5, obs_dim=D)
    chosen = default(torch.randn(5, D), torch.arange(5)).weights.argmax(dim=1)
    assert chosen.tolist() == [0, 1, 0, 1, 0]
    assert "table" not in default.state_dict()  # configuration, not state


def test_soft_router_is_softmax_over_tempered_logits() -> None:
    router = make("soft", "obs", temperature=0.5)
    out = router(*batch())
    assert out.logits is not None
    torch.testing.assert_close(out.weights, torch.softmax(out.logits / 0.5, dim=1))


def test_gumbel_is_one_hot_seeded_and_stochastic_in_training() -> None:
    router = make("gumbel", "obs").train()
    obs, tasks = torch.randn(64, D), torch.zeros(64, dtype=torch.long)
    torch.manual_seed(7)
    first = router(obs, tasks).weights
    torch.manual_seed(7)
    again = router(obs, tasks).weights
    assert torch.equal(first, again)
    assert bool(((first == 0).sum(dim=1) == K - 1).all())
    torch.testing.assert_close(first.max(dim=1).values, torch.ones(64))
    assert len(set(first.argmax(dim=1).tolist())) > 1  # near-uniform logits: the noise picks different modules
    evaluated = router.eval()(obs, tasks)
    assert evaluated.logits is not None
    assert torch.equal(evaluated.weights.argmax(dim=1), evaluated.logits.argmax(dim=1))
    assert bool(((evaluated.weights == 0).sum(dim=1) == K - 1).all())


def test_gumbel_anneals_tau_and_keeps_it_in_state_dict() -> None:
    router = make("gumbel", tau_start=2.0, tau_end=0.5, anneal_fraction=0.5)
    assert isinstance(router, GumbelRouter)
    expected = {0.0: 2.0, 0.25: 1.0, 0.5: 0.5, 1.0: 0.5}  # geometric midpoint at half the anneal
    for fraction, tau in expected.items():
        router.set_progress(fraction)
        assert math.isclose(float(router.tau), tau, rel_tol=1e-6), fraction
    router.set_progress(0.1)
    fresh = make("gumbel", tau_start=2.0, tau_end=0.5, anneal_fraction=0.5)
    assert float(fresh.tau) == 2.0
    fresh.load_state_dict(router.state_dict())
    assert float(fresh.tau) == pytest.approx(2.0 * 0.25**0.2)
    with pytest.raises(ValueError, match="progress"):
        router.set_progress(1.5)


def test_topk_keeps_k_renormalised_and_balances() -> None:
    router = make("topk", "obs", hidden=6, k=2, balance_coef=0.1)
    assert isinstance(router, TopKRouter)
    out = router(*batch())
    assert out.logits is not None
    assert ((out.weights > 0).sum(dim=1) == 2).all()
    probs = torch.softmax(out.logits, dim=1)
    kept = torch.zeros_like(probs).scatter(1, probs.topk(2, dim=1).indices, probs.topk(2, dim=1).values)
    torch.testing.assert_close(out.weights, kept / kept.sum(dim=1, keepdim=True))
    fractions = (out.weights > 0).float().sum(dim=0) / (B * 2)
    torch.testing.assert_close(out.aux_loss, 0.1 * K * (fractions * probs.mean(dim=0)).sum())
    assert float(out.aux_loss.detach()) > 0 and out.aux_loss.requires_grad
    out.aux_loss.backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in router.parameters())


def test_topk_with_k_equal_to_modules_is_softmax() -> None:
    out = make("topk", "obs", k=K)(*batch())
    assert out.logits is not None
    torch.testing.assert_close(out.weights, torch.softmax(out.logits, dim=1))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(kind="fixed", condition="obs"), "condition"),
        (dict(kind="fixed", table=(0, 1)), "table"),
        (dict(kind="fixed", table=(0, 1, K)), "table"),
        (dict(kind="topk", k=K + 1), "k"),
    ],
)
def test_build_router_refuses_bad_combinations(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        build_router(RouterConfig(**kwargs), num_modules=K, num_tasks=T, obs_dim=D)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(kind="nope"), "kind"),
        (dict(condition="mission"), "condition"),
        (dict(hidden=-1), "hidden"),
        (dict(temperature=0.0), "temperature"),
        (dict(tau_start=0.0), "tau_start"),
        (dict(tau_end=-1.0), "tau_end"),
        (dict(anneal_fraction=0.0), "anneal_fraction"),
        (dict(k=0), "k"),
        (dict(balance_coef=-0.1), "balance_coef"),
        (dict(mi_coef=-0.1), "mi_coef"),
        (dict(table=(0, -1)), "table"),
    ],
)
def test_router_config_validates_fields(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        RouterConfig(**kwargs)
    with pytest.raises(ConfigError, match=f"^agent.router.{field}:"):
        from_dict(RouterConfig, {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}, "agent.router")


def test_forward_validates_inputs() -> None:
    router = make("soft", "task+obs")
    obs, tasks = batch()
    with pytest.raises(ValueError, match="obs_features must have shape"):
        router(obs[:, :-1], tasks)
    with pytest.raises(ValueError, match="task_ids must have shape"):
        router(obs, tasks[:-1])
    with pytest.raises(ValueError, match="integer"):
        router(obs, tasks.float())
    with pytest.raises(ValueError, match="floating point"):
        router(obs.long(), tasks)
    with pytest.raises(ValueError, match=r"task ids must lie in \[0, 3\)"):
        router(obs, torch.full((B,), T))
    make("soft", "obs")(obs, torch.full((B,), 99))  # an obs-only router does not read task ids
