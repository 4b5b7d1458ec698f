"""Aggregations, the auxiliary-loss attachment and the modular forward pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modrl.composition import AGGREGATIONS, ModularNetwork, attach_aux_loss, hard_select, weighted_sum
from modrl.modules import ModulesConfig, build_module_library
from modrl.registry import UnknownNameError
from modrl.routers import ROUTERS, RouterConfig, build_router

K, T, D, H, B = 4, 3, 5, 6, 8
#: The aggregations of module outputs (param_mix mixes parameters and has its own tests below).
OUTPUT_AGGREGATIONS = [name for name in AGGREGATIONS.names() if name != "param_mix"]


def network(
    kind: str, aggregation: str = "weighted_sum", skip: bool = True, condition: str = "obs", **router: object
) -> ModularNetwork:
    torch.manual_seed(0)
    library = build_module_library(ModulesConfig(count=K, hidden=(7,)), in_dim=D, out_dim=H)
    condition = "task" if kind == "fixed" else condition
    config = RouterConfig(kind=kind, condition=condition, **router)  # type: ignore[arg-type]
    routing = build_router(config, num_modules=K, num_tasks=T, obs_dim=D)
    return ModularNetwork(library=library, router=routing, aggregation=aggregation, skip_inactive=skip)


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, generator=gen), torch.randint(0, T, (B,), generator=gen)


def grads(module: nn.Module) -> dict[str, torch.Tensor]:
    """Gradients by parameter name, ``None`` read as zeros (a skipped module gets no gradient at all)."""
    return {n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in module.named_parameters()}


def test_registry_names() -> None:
    assert AGGREGATIONS.names() == ["hard_select", "param_mix", "weighted_sum"]
    assert AGGREGATIONS.get("weighted_sum") is weighted_sum and AGGREGATIONS.get("hard_select") is hard_select


def test_weighted_sum_math() -> None:
    weights = torch.tensor([[0.5, 0.25, 0.25], [0.0, 1.0, 0.0]])
    outputs = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    expected = torch.tensor([[0.5 * 0 + 0.25 * 2 + 0.25 * 4, 0.5 * 1 + 0.25 * 3 + 0.25 * 5], [8.0, 9.0]])
    torch.testing.assert_close(weighted_sum(weights, outputs), expected)
    assert torch.equal(weighted_sum(weights, outputs)[1], outputs[1, 1])
    with pytest.raises(ValueError, match="weights"):
        weighted_sum(weights[:, :2], outputs)


def test_hard_select_returns_argmax_module_output_exactly() -> None:
    weights = torch.softmax(torch.randn(B, K), dim=1)
    outputs = torch.randn(B, K, H)
    selected = hard_select(weights, outputs)
    assert torch.equal(selected, outputs[torch.arange(B), weights.argmax(dim=1)])
    logits = torch.randn(B, K, requires_grad=True)
    # With a gradient path the value is still exactly the selected output.
    assert torch.equal(hard_select(torch.softmax(logits, dim=1), outputs), outputs[torch.arange(B), logits.argmax(1)])


def test_hard_select_gives_the_router_a_straight_through_gradient() -> None:
    logits = torch.randn(B, K, requires_grad=True)
    weights = torch.softmax(logits, dim=1)
    weights.retain_grad()
    outputs, target = torch.randn(B, K, H), torch.randn(B, H)
    (hard_select(weights, outputs) * target).sum().backward()
    assert weights.grad is not None and logits.grad is not None
    torch.testing.assert_close(weights.grad, torch.einsum("bkh,bh->bk", outputs, target))
    assert bool(logits.grad.abs().sum() > 0)


def test_attach_aux_loss_equals_adding_the_aux_loss() -> None:
    torch.manual_seed(0)
    main_net, aux_net, shared = nn.Linear(D, H), nn.Linear(D, 1), nn.Linear(D, D)
    x_in = torch.randn(B, D)
    params = [*main_net.parameters(), *aux_net.parameters(), *shared.parameters()]

    def losses(attach: bool) -> list[torch.Tensor]:
        for p in params:
            p.grad = None
        hidden = shared(x_in)
        x, aux = main_net(hidden), aux_net(hidden).pow(2).mean()
        y = attach_aux_loss(x, aux) if attach else x
        assert torch.equal(y, x)
        # x feeds two heads (like SB3's actor and critic latents): aux still counts once.
        loss = y.pow(2).mean() + y.sum(dim=1).abs().mean()
        (loss if attach else loss + aux).backward()
        return [p.grad.clone() for p in params]  # type: ignore[union-attr]

    attached = losses(True)
    for got, direct in zip(attached, losses(False), strict=True):
        torch.testing.assert_close(got, direct)
    # aux_net reaches the attached loss only through aux: its gradient proves the attachment works.
    assert bool(attached[2].abs().sum() > 0) and bool(attached[3].abs().sum() > 0)


def test_attach_aux_loss_passthrough_cases() -> None:
    x = torch.randn(B, H, requires_grad=True)
    assert attach_aux_loss(x, torch.zeros(())) is x
    aux = torch.ones((), requires_grad=True)
    with torch.no_grad():
        assert attach_aux_loss(x, aux) is x
    with pytest.raises(ValueError, match="scalar"):
        attach_aux_loss(x, torch.ones(2, requires_grad=True))
    attach_aux_loss(x, aux * 3).sum().backward()
    assert aux.grad is not None and float(aux.grad) == 3.0
    torch.testing.assert_close(x.grad, torch.ones(B, H))


def _count_calls(net: ModularNetwork) -> list[int]:
    calls = [0] * K
    for k, name in enumerate(net.library.names):
        net.library.skills[name].register_forward_hook(lambda *_, k=k: calls.__setitem__(k, calls[k] + 1))
    return calls


@pytest.mark.parametrize("kind", ROUTERS.names())
@pytest.mark.parametrize("aggregation", OUTPUT_AGGREGATIONS)
@pytest.mark.parametrize("training", [True, False])
def test_skipping_inactive_modules_equals_computing_all(kind: str, aggregation: str, training: bool) -> None:
    skip = network(kind, aggregation, skip=True, condition="task", k=2).train(training)
    full = network(kind, aggregation, skip=False, condition="task", k=2).train(training)
    calls = _count_calls(skip)
    obs, tasks = inputs()
    tasks = torch.zeros_like(tasks)  # one task: fixed, top-k and eval-mode gumbel leave modules idle
    torch.manual_seed(3)
    out_skip, routing = skip(obs, tasks)
    torch.manual_seed(3)
    out_full, _ = full(obs, tasks)
    torch.testing.assert_close(out_skip, out_full, rtol=0, atol=1e-6)
    active = (routing.weights != 0).any(dim=0).tolist()
    assert calls == [1 if used else 0 for used in active]
    if kind not in ("soft", "uniform") and not (kind == "gumbel" and training):  # gumbel samples per row in training
        assert not all(active), "the batch must leave some module idle for this test to mean anything"
    # Exact in gradient too where the zero weights carry no gradient (not for straight-through estimators).
    if kind in ("fixed", "topk", "soft", "uniform") and aggregation == "weighted_sum":
        out_skip.pow(2).sum().backward()
        out_full.pow(2).sum().backward()
        for (name, a), b in zip(grads(skip).items(), grads(full).values(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_network_attaches_the_router_aux_loss() -> None:
    net = network("topk", k=2, balance_coef=0.5)
    obs, tasks = inputs()
    latent, _ = net(obs, tasks)
    latent.pow(2).mean().backward()
    attached = grads(net)
    net.zero_grad()
    routing = net.router(obs, tasks)
    direct = weighted_sum(routing.weights, net.library(obs)).pow(2).mean() + routing.aux_loss
    direct.backward()
    for (name, a), b in zip(attached.items(), grads(net).values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    net.zero_grad()
    plain = weighted_sum(routing.weights.detach(), net.library(obs)).pow(2).mean()
    plain.backward()  # without the aux loss (and router path) the router gets nothing: the attachment mattered
    assert bool(attached["router.logits_net.net.0.weight"].abs().sum() > 0)


def test_network_shapes_and_checks() -> None:
    net = network("soft")
    out, routing = net(*inputs())
    assert out.shape == (B, H) and net.out_dim == H and routing.weights.shape == (B, K)
    assert net.router.last is not None
    with pytest.raises(UnknownNameError, match="hard_select, param_mix, weighted_sum"):
        ModularNetwork(library=net.library, router=net.router, aggregation="average")
    small = build_router(RouterConfig(kind="soft"), num_modules=K - 1, num_tasks=T, obs_dim=D)
    with pytest.raises(ValueError, match=f"library has {K} modules but the router routes over {K - 1}"):
        ModularNetwork(library=net.library, router=small, aggregation="weighted_sum")
    other_dim = build_router(RouterConfig(kind="soft"), num_modules=K, num_tasks=T, obs_dim=D + 1)
    with pytest.raises(ValueError, match="in_dim"):
        ModularNetwork(library=net.library, router=other_dim, aggregation="weighted_sum")
    net.library.add("extra", build_module_library(ModulesConfig(count=1), in_dim=D, out_dim=H).get("skill_0"))
    with pytest.raises(ValueError, match="modules but the router"):  # grown after construction: caught per call
        net(*inputs())


def _low_rank_network(kind: str, aggregation: str = "param_mix") -> ModularNetwork:
    torch.manual_seed(0)
    library = build_module_library(ModulesConfig(kind=kind, count=K, rank=2), in_dim=D, out_dim=H)  # type: ignore[arg-type]
    with torch.no_grad():  # nonzero deltas, so modules differ from the shared base and from each other
        for name in library.names:
            library.get(name).up.normal_()  # type: ignore[operator]
    router = build_router(RouterConfig(kind="soft"), num_modules=K, num_tasks=T, obs_dim=D)
    return ModularNetwork(library=library, router=router, aggregation=aggregation)


@pytest.mark.parametrize("kind", ["lowrank", "adapter"])
def test_param_mix_is_the_chosen_module_for_one_hot_weights_and_mixes_parameters_otherwise(kind: str) -> None:
    net = _low_rank_network(kind)
    x = torch.randn(B, D)
    one_hot = torch.nn.functional.one_hot(torch.arange(B) % K, K).float()
    outputs = net.library(x)  # (B, K, H): every module on its own
    assert torch.allclose(net.parameter_mix(x, one_hot), outputs[torch.arange(B), torch.arange(B) % K], atol=1e-6)
    uniform = torch.full((B, K), 1.0 / K)
    modules = [net.library.get(n) for n in net.library.names]
    down = torch.stack([m.down for m in modules]).mean(0)  # type: ignore[misc]
    up = torch.stack([m.up for m in modules]).mean(0)  # type: ignore[misc]
    first = modules[0]
    hidden = x @ down.T
    hidden = torch.relu(hidden) if kind == "adapter" else hidden
    expected = first.act(first.base(x) + hidden @ up.T * (first.alpha / first.rank))  # type: ignore[operator]
    assert torch.allclose(net.parameter_mix(x, uniform), expected, atol=1e-6)
    assert not torch.allclose(net.parameter_mix(x, uniform), weighted_sum(uniform, outputs), atol=1e-4)


def test_param_mix_trains_only_what_the_routing_uses_and_is_refused_for_other_modules() -> None:
    net = _low_rank_network("lowrank")
    weights = torch.zeros(B, K)
    weights[:, 1] = 0.25
    weights[:, 2] = 0.75
    net.parameter_mix(torch.randn(B, D), weights).sum().backward()
    grads = {name: net.library.get(name).up.grad for name in net.library.names}  # type: ignore[union-attr]
    assert grads["skill_0"] is not None and not grads["skill_0"].any()  # weight 0: no gradient
    assert grads["skill_1"].abs().sum() > 0 and grads["skill_2"].abs().sum() > 0  # type: ignore[union-attr]
    with pytest.raises(TypeError, match="mixes module parameters"):
        AGGREGATIONS.get("param_mix")(weights, torch.zeros(B, K, H))
    mlp = build_module_library(ModulesConfig(kind="mlp", count=K), in_dim=D, out_dim=H)
    with pytest.raises(ValueError, match="mixes low-rank modules"):
        ModularNetwork(library=mlp, router=net.router, aggregation="param_mix")


def test_param_mix_needs_low_rank_modules_in_the_config(tiny_config) -> None:
    from modrl.config import ConfigError

    with pytest.raises(ConfigError, match=r"agent\.aggregation: 'param_mix' .* lowrank or adapter"):
        tiny_config("agent.aggregation=param_mix")
    assert tiny_config("agent.aggregation=param_mix", "agent.modules.kind=adapter").agent.aggregation == "param_mix"
