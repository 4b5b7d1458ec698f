"""Update rules on plain torch modules: contract tests over every registered rule, then each rule's guarantee."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from modrl.composition import ModularNetwork
from modrl.config import ConfigError, from_dict
from modrl.modules import ModulesConfig, build_module_library
from modrl.routers import RouterConfig, build_router
from modrl.updates import (
    UPDATE_RULES,
    ConsolidationData,
    GrowPhase,
    ModelParts,
    ParamGuard,
    RuleState,
    StageProgress,
    UpdateRule,
    UpdateRuleConfig,
    attach_penalty,
    build_update_rule,
    router_mask_of,
)
from modrl.updates.freeze_grow import PHASES

D, H, K, T, A, B = 6, 5, 4, 3, 3, 16
RULES = UPDATE_RULES.names()


class TinyAgent(nn.Module):
    """extractor -> router + skills -> action head; a critic on the features. Task ids ride along."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.extractor = nn.Sequential(nn.Linear(4, D), nn.Tanh())
        library = build_module_library(ModulesConfig(count=K, hidden=(8,)), in_dim=D, out_dim=H)
        router = build_router(RouterConfig(kind="soft"), num_modules=K, num_tasks=T, obs_dim=D)
        self.network = ModularNetwork(library=library, router=router, aggregation="weighted_sum")
        self.action_head = nn.Linear(H, A)
        self.critic = nn.Linear(D, 1)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=1e-2)

    def logits(self, x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        latent, _ = self.network(self.extractor(x), task)
        return self.action_head(latent)

    def parts(self) -> ModelParts:
        return ModelParts(
            actor={"extractor": self.extractor, "network": self.network, "action_head": self.action_head},
            critic={"critic": self.critic},
            library=self.network.library,
            router=self.network.router,
            optimizer=self.optimizer,
        )


def data(task: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 4, generator=gen)
    return x, torch.full((B,), task, dtype=torch.long), torch.randint(0, A, (B,), generator=gen)


def train(agent: TinyAgent, rule: UpdateRule, task: int, *, steps: int = 6, seed: int = 0) -> None:
    for step in range(steps):
        x, tasks, targets = data(task, seed + step)
        loss = nn.functional.cross_entropy(agent.logits(x, tasks), targets)
        loss = loss + agent.critic(agent.extractor(x)).pow(2).mean()
        agent.optimizer.zero_grad()
        loss.backward()
        agent.optimizer.step()
        rule.after_update(StageProgress(step=step + 1, budget=steps, success=0.0))


def consolidation(agent: TinyAgent, task: int) -> ConsolidationData:
    def samples(n: int) -> Iterator[torch.Tensor]:
        x, tasks, _ = data(task, 99)
        for i in range(min(n, B)):
            log_probs = torch.log_softmax(agent.logits(x[i : i + 1], tasks[i : i + 1]), dim=-1)
            yield log_probs[0, i % A]

    return ConsolidationData(samples)


def run_stage(agent: TinyAgent, rule: UpdateRule, stage: int, task: int, seed: int = 0) -> None:
    rule.begin_stage(stage, task)
    agent.optimizer.state.clear()
    train(agent, rule, task, seed=seed)
    rule.end_stage(consolidation(agent, task))


def make(kind: str, seed: int = 0, **fields: object) -> tuple[TinyAgent, UpdateRule]:
    agent = TinyAgent(seed)
    rule = build_update_rule(UpdateRuleConfig(kind=kind, **fields))  # type: ignore[arg-type]
    rule.attach(agent.parts())
    attach_penalty(agent.action_head, rule)
    return agent, rule


def probe(agent: TinyAgent, rule: UpdateRule, task: int) -> torch.Tensor:
    x, tasks, _ = data(task, 1234)
    with torch.no_grad(), rule.acting_as(task):
        return agent.logits(x, tasks)


# ---- contract: every registered rule ------------------------------------------------------------------------------
def test_registry_holds_the_five_rules() -> None:
    assert RULES == ["ewc", "freeze_grow", "l2", "none", "packnet"]


@pytest.mark.parametrize("kind", RULES)
def test_rule_runs_two_stages_with_a_finite_penalty(kind: str) -> None:
    agent, rule = make(kind)
    assert float(rule.penalty()) == 0.0  # outside a stage
    run_stage(agent, rule, 0, 0)
    rule.begin_stage(1, 1)
    assert float(rule.penalty().detach()) == 0.0  # nothing has moved since the anchor
    train(agent, rule, 1)
    penalty = rule.penalty().detach() if kind in ("ewc", "l2") else rule.penalty()
    assert rule.penalty().requires_grad == (kind in ("ewc", "l2"))
    assert penalty.shape == () and bool(torch.isfinite(penalty))
    if kind in ("ewc", "l2"):
        assert float(penalty) > 0
    else:
        assert float(penalty) == 0.0
    counts = rule.parameter_counts()
    total = sum(p.numel() for p in agent.parameters())
    assert counts.trainable + counts.frozen == total and 0 < counts.active <= total
    rule.end_stage(consolidation(agent, 1))
    assert rule.tasks == [0, 1] and rule.stage == 1 and not rule.in_stage


@pytest.mark.parametrize("kind", RULES)
def test_state_dict_round_trip_restores_behaviour_and_books(kind: str) -> None:
    agent, rule = make(kind)
    run_stage(agent, rule, 0, 0)
    rule.begin_stage(1, 2)
    train(agent, rule, 2, steps=3)
    state = rule.state_dict()
    clone, restored = make(kind, seed=5)  # other initial weights: everything must come from the state
    clone.load_state_dict(agent.state_dict())
    # A checkpoint restores both (deep copy: torch's load_state_dict would share the state tensors).
    clone.optimizer.load_state_dict(copy.deepcopy(agent.optimizer.state_dict()))
    restored.load_state_dict(state)
    again = restored.state_dict()
    assert again.meta == state.meta
    assert state.tensors.keys() == again.tensors.keys()
    assert all(torch.equal(state.tensors[k], again.tensors[k]) for k in state.tensors)
    assert restored.parameter_counts() == rule.parameter_counts()
    for task in range(T):
        assert torch.equal(probe(clone, restored, task), probe(agent, rule, task))
    # Both continue identically: same frozen entries, same penalty.
    train(agent, rule, 2, steps=2, seed=7)
    train(clone, restored, 2, steps=2, seed=7)
    for (name, p), q in zip(agent.named_parameters(), clone.parameters(), strict=True):
        torch.testing.assert_close(p, q, msg=name)


@pytest.mark.parametrize("kind", RULES)
def test_stages_must_run_in_order(kind: str) -> None:
    _, rule = make(kind)
    with pytest.raises(ValueError, match="expected stage 0"):
        rule.begin_stage(1, 0)
    rule.begin_stage(0, 0)
    with pytest.raises(RuntimeError, match="has not ended"):
        rule.begin_stage(1, 1)


def test_config_is_strict_and_lists_rules() -> None:
    with pytest.raises(ConfigError, match="kind"):
        UpdateRuleConfig(kind="bogus")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="prune_fraction"):
        UpdateRuleConfig(kind="packnet", prune_fraction=1.0)
    with pytest.raises(ConfigError, match=r"unknown key 'rule\.strenght'"):
        from_dict(UpdateRuleConfig, {"strenght": 1}, "rule")


# ---- guarantees ---------------------------------------------------------------------------------------------------
def test_guard_holds_partial_tensors_exactly_despite_adam_momentum() -> None:
    def momentum_then_zero_grad(guarded: bool) -> tuple[torch.Tensor, torch.Tensor]:
        param = nn.Parameter(torch.arange(6.0).reshape(2, 3))
        opt = torch.optim.Adam([param], lr=0.1)
        for _ in range(3):  # build momentum on every entry
            opt.zero_grad()
            param.pow(2).sum().backward()
            opt.step()
        before = param.detach().clone()
        if guarded:
            guard = ParamGuard({"p": param})
            guard.watch(opt)
            guard.set_frozen({"p": torch.tensor([[True, True, True], [False, False, False]])})
        opt.zero_grad()
        param[1].sum().backward()  # gradient on row 1 only: row 0 moves through Adam's momentum alone
        opt.step()
        return before, param.detach().clone()

    before, after = momentum_then_zero_grad(guarded=False)
    assert not torch.equal(before[0], after[0])  # the trap is real
    before, after = momentum_then_zero_grad(guarded=True)
    assert torch.equal(before[0], after[0]) and not torch.equal(before[1], after[1])


def test_freeze_grow_keeps_old_tasks_bit_identical_and_grows() -> None:
    agent, rule = make("freeze_grow")
    run_stage(agent, rule, 0, 0)
    expected = probe(agent, rule, 0)
    snapshot = copy.deepcopy(agent.state_dict())
    run_stage(agent, rule, 1, 1, seed=50)
    run_stage(agent, rule, 2, 2, seed=80)
    assert torch.equal(probe(agent, rule, 0), expected)
    now = agent.state_dict()
    moved = {k for k in now if not torch.equal(now[k], snapshot[k])}
    router_key = "network.router.logits_net.net.weight"
    assert router_key in moved and torch.equal(now[router_key][0], snapshot[router_key][0])
    assert not any(k.startswith(("extractor", "action_head", "network.library.skills.skill_0")) for k in moved)
    assert any(k.startswith("network.library.skills.skill_1") for k in moved)
    assert any(k.startswith("network.library.skills.skill_2") for k in moved)
    assert "critic.weight" in moved  # the critic keeps learning: it does not act
    weights = agent.network.router(agent.extractor(data(0, 1)[0]), torch.zeros(B, dtype=torch.long)).weights
    assert bool((weights[:, 1:] == 0).all())  # task 0 still routes over its own module only
    counts = rule.parameter_counts()
    unused = sum(p.numel() for p in agent.network.library.get("skill_3").parameters())
    assert counts.active == sum(p.numel() for p in agent.parameters()) - unused


def test_freeze_grow_holds_frozen_entries_against_gradients_and_momentum() -> None:
    """The rule's own protection, not the setup, keeps old tasks: here the optimiser keeps its Adam state across
    stages (momentum on the old router rows) and the new stage's batches also hold old tasks' samples (gradient on
    the old rows). Without the guard's gradient masking or its restore after each step, the old rows move."""
    agent, rule = make("freeze_grow", modules_per_task=2)  # task 0 routes over modules 0-1: its row has gradients
    guard = rule.guard
    assert guard is not None

    def stage(index: int, task_ids: torch.Tensor, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        rule.begin_stage(index, index)
        frozen = {
            name: (mask, param.detach().clone())
            for name, param in guard.params.items()
            if (mask := guard.frozen_mask(name)) is not None
        }
        for step in range(6):
            x, _, targets = data(index, seed + step)
            loss = nn.functional.cross_entropy(agent.logits(x, task_ids), targets)
            agent.optimizer.zero_grad()
            loss.backward()
            for name, (mask, _) in frozen.items():
                grad = guard.params[name].grad
                assert grad is None or not bool(grad[mask].any()), f"{name}: gradient on frozen entries"
            agent.optimizer.step()  # no optimizer.state.clear() between stages: stage 0's momentum is still there
            rule.after_update(StageProgress(step=step + 1, budget=6, success=0.0))
        rule.end_stage(consolidation(agent, index))
        return frozen

    stage(0, torch.zeros(B, dtype=torch.long), seed=0)
    expected = probe(agent, rule, 0)
    router = agent.network.router.logits_net.net.weight
    trained_row = router[0].detach().clone()
    frozen = stage(1, torch.arange(B) % 2, seed=50)  # task 1's stage, task 0's samples in every batch
    router_mask = frozen["network.router.logits_net.net.weight"][0]
    assert bool(router_mask[0].all()) and not bool(router_mask[1].any())  # row 0 frozen, row 1 trained
    for name, (mask, before) in frozen.items():
        assert torch.equal(guard.params[name].detach()[mask], before[mask]), f"{name}: a frozen entry moved"
    assert torch.equal(router[0], trained_row) and torch.equal(probe(agent, rule, 0), expected)
    assert not torch.equal(router[1], frozen["network.router.logits_net.net.weight"][1][1])  # the new row learnt
    assert "network.library.skills.skill_0.net.0.weight" in frozen  # old modules are among the checked entries


def test_freeze_grow_assimilation_keeps_old_modules_when_they_suffice() -> None:
    agent, rule = make("freeze_grow", assimilation=True, assimilation_threshold=0.5)
    run_stage(agent, rule, 0, 0)
    rule.begin_stage(1, 1)
    rule.after_update(StageProgress(step=50, budget=100, success=0.9))
    rule.end_stage(None)
    assert rule.state_dict().meta["phase"] == "assimilated" and rule.state_dict().meta["used"] == 1
    rule.begin_stage(2, 2)
    rule.after_update(StageProgress(step=50, budget=100, success=0.1))
    assert rule.state_dict().meta["phase"] == "grown_after_trying" and rule.state_dict().meta["used"] == 2


def test_freeze_grow_phase_enum_keeps_the_checkpoint_strings_and_loads_old_rule_states() -> None:
    # The phase's values are the checkpoint format: the plain strings the rule state held before the enum.
    assert [phase.value for phase in PHASES] == ["grown", "assimilating", "assimilated", "grown_after_trying"]
    agent, rule = make("freeze_grow", assimilation=True, assimilation_threshold=0.5)
    run_stage(agent, rule, 0, 0)
    rule.begin_stage(1, 1)
    rule.after_update(StageProgress(step=10, budget=100, success=0.9))  # before the decision
    state = rule.state_dict()
    assert rule.phase is GrowPhase.ASSIMILATING and type(state.meta["phase"]) is str
    # A rule state's JSON exactly as the string-phase rule wrote it (a continual checkpoint's "rule" entry).
    old = '{"kind": "FreezeGrow", "stage": 1, "tasks": [0, 1], "in_stage": true, "used": 1, "phase": "assimilating"}'
    assert json.dumps(state.meta) == old
    clone, restored = make("freeze_grow", seed=5, assimilation=True, assimilation_threshold=0.5)
    clone.load_state_dict(agent.state_dict())
    restored.load_state_dict(RuleState(tensors=state.tensors, meta=json.loads(old)))
    assert restored.phase is GrowPhase.ASSIMILATING and restored.state_dict().meta == state.meta
    for task in range(T):
        assert torch.equal(probe(clone, restored, task), probe(agent, rule, task))
    restored.after_update(StageProgress(step=50, budget=100, success=0.9))  # the state machine goes on from there
    assert restored.phase is GrowPhase.ASSIMILATED and restored.state_dict().meta["phase"] == "assimilated"
    with pytest.raises(ValueError, match="unknown phase 'growing'"):
        make("freeze_grow", seed=5)[1].load_state_dict(
            RuleState(tensors=state.tensors, meta=json.loads(old) | {"phase": "growing"})
        )


def test_freeze_grow_refuses_shared_routers_and_exhausted_capacity() -> None:
    agent = TinyAgent()
    agent.network.router = build_router(
        RouterConfig(kind="soft", condition="task+obs"), num_modules=K, num_tasks=T, obs_dim=D
    )
    with pytest.raises(ValueError, match="one router row per task"):
        build_update_rule(UpdateRuleConfig(kind="freeze_grow")).attach(agent.parts())
    agent, rule = make("freeze_grow", modules_per_task=3)
    run_stage(agent, rule, 0, 0)
    with pytest.raises(ValueError, match=r"raise agent\.modules\.count to at least 6"):
        rule.begin_stage(1, 1)


def test_packnet_acts_for_old_tasks_with_exactly_their_weights() -> None:
    agent, rule = make("packnet", prune_fraction=0.5, retrain_fraction=0.5)
    run_stage(agent, rule, 0, 0)
    expected = probe(agent, rule, 0)
    owner = rule.state_dict().tensors["owner/action_head.weight"]
    assert int((owner == 0).sum()) == owner.numel() - round(0.5 * owner.numel())  # the rest was released
    run_stage(agent, rule, 1, 1, seed=50)
    assert torch.equal(probe(agent, rule, 0), expected)
    assert not torch.equal(probe(agent, rule, 1), expected)
    owner = rule.state_dict().tensors["owner/action_head.weight"]
    assert int((owner == 1).sum()) > 0 and int((owner == -1).sum()) > 0


def test_naive_fine_tuning_changes_old_tasks() -> None:
    agent, rule = make("none")
    run_stage(agent, rule, 0, 0)
    expected = probe(agent, rule, 0)
    run_stage(agent, rule, 1, 1, seed=50)
    assert not torch.equal(probe(agent, rule, 0), expected)


@pytest.mark.parametrize("kind", ["l2", "ewc"])
def test_penalty_gradient_reaches_the_parameters_through_the_loss(kind: str) -> None:
    agent, rule = make(kind, strength=10.0)
    run_stage(agent, rule, 0, 0)
    rule.begin_stage(1, 1)
    with torch.no_grad():
        agent.action_head.weight.add_(0.5)
    x, tasks, _ = data(1, 3)
    agent.optimizer.zero_grad()
    agent.logits(x, tasks).sum().backward()
    with_penalty = agent.action_head.weight.grad.clone()
    rule.end_stage(consolidation(agent, 1))  # outside a stage the penalty is off
    agent.optimizer.zero_grad()
    agent.logits(x, tasks).sum().backward()
    assert not torch.allclose(with_penalty, agent.action_head.weight.grad)
    if kind == "ewc":
        fisher = rule.state_dict().tensors
        assert all(bool((v >= 0).all()) for k, v in fisher.items() if k.startswith("fisher/"))
        assert any(float(v.sum()) > 0 for k, v in fisher.items() if k.startswith("fisher/"))


def test_router_module_mask_zeroes_forbidden_modules_and_validates() -> None:
    router = build_router(RouterConfig(kind="soft"), num_modules=K, num_tasks=T, obs_dim=D)
    x, tasks = torch.randn(B, D), torch.arange(B) % T
    mask = torch.ones(T, K, dtype=torch.bool)
    mask[0, 2:] = False
    router.set_module_mask(mask)
    first = router(x, tasks).weights
    assert bool((first[tasks == 0][:, 2:] == 0).all())
    torch.testing.assert_close(first.sum(dim=1), torch.ones(B))
    mask[1, 3] = False  # changing another task's row leaves task 0 bit-identical
    router.set_module_mask(mask)
    assert torch.equal(router(x, tasks).weights[tasks == 0], first[tasks == 0])
    with pytest.raises(ValueError, match="at least one allowed module"):
        router.set_module_mask(torch.zeros(T, K, dtype=torch.bool))
    with pytest.raises(ValueError, match="must be"):
        router.set_module_mask(torch.ones(T, K + 1, dtype=torch.bool))
    fixed = build_router(RouterConfig(kind="fixed"), num_modules=K, num_tasks=T, obs_dim=D)
    with pytest.raises(NotImplementedError):
        fixed.set_module_mask(torch.ones(T, K, dtype=torch.bool))
    router.set_module_mask(None)
    assert bool((router(x, tasks).weights > 0).all())


def test_freeze_grow_state_carries_the_router_mask_and_refuses_a_tampered_one() -> None:
    agent, rule = make("freeze_grow")
    run_stage(agent, rule, 0, 0)
    run_stage(agent, rule, 1, 1, seed=50)
    state = rule.state_dict()
    mask = router_mask_of(state.tensors)
    # Task 0 owns module 0, task 1 modules 0-1; task 2 (not trained yet) may see every module granted so far.
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    assert mask is not None and torch.equal(mask, expected)
    assert router_mask_of(make("none")[1].state_dict().tensors) is None
    # Weights alone (as a loader without the rule sees them) act differently for the old task ...
    bare = TinyAgent(seed=5)
    bare.load_state_dict(agent.state_dict())
    x, tasks, _ = data(0, 1234)
    with torch.no_grad():
        assert not torch.equal(bare.logits(x, tasks), probe(agent, rule, 0))
        bare.network.router.set_module_mask(mask)  # ... and exactly as before with the stored mask applied
        assert torch.equal(bare.logits(x, tasks), probe(agent, rule, 0))
    clone, restored = make("freeze_grow", seed=5)
    clone.load_state_dict(agent.state_dict())
    restored.load_state_dict(state)  # the rule rebuilds the same mask from its rows
    for task in range(T):
        assert torch.equal(probe(clone, restored, task), probe(agent, rule, task))
    tampered = state.tensors | {"module_mask": expected.clone().fill_(True)}
    with pytest.raises(ValueError, match="module mask disagrees"):
        make("freeze_grow", seed=5)[1].load_state_dict(RuleState(tensors=tampered, meta=state.meta))
