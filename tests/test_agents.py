"""SB3 integration: modular and monolithic policies with PPO/A2C, save/load, aux losses, checkpoints, seeding."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from modrl.agents.common.builders import build_model, make_vec_env, model_fingerprint, modular_actor_parameters
from modrl.agents.common.config import load_experiment_config
from modrl.agents.common.policies import ModularActorCriticPolicy
from modrl.agents.common.training import restore_model_checkpoint, save_model_checkpoint
from modrl.checkpoint import CheckpointError, latest_checkpoint
from modrl.config import to_dict
from modrl.routers import ROUTERS


def _fixed_obs(model_or_policy, n: int = 8) -> dict[str, np.ndarray]:
    space = model_or_policy.observation_space
    space.seed(123)
    samples = [space.sample() for _ in range(n)]
    return {key: np.stack([s[key] for s in samples]) for key in space.spaces}


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


@pytest.mark.parametrize("router", ROUTERS.names())
def test_modular_ppo_learns_a_few_steps_with_every_router(tiny_config, router: str) -> None:
    config = tiny_config(f"agent.router.kind={router}")
    venv = make_vec_env(config)
    model = build_model(config, venv)
    assert isinstance(model.policy, ModularActorCriticPolicy)
    before = _params(model)
    model.learn(64)
    after = model.policy.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("mlp_extractor.network.library" in k for k in changed), "modules did not train"
    if router not in ("fixed", "uniform"):  # the routers without parameters
        assert any("router" in k for k in changed), "router parameters did not train"
    assert model.policy.modular.last_weights is not None


@pytest.mark.parametrize(
    ("kind", "aggregation"), [("mlp", "weighted_sum"), ("lowrank", "weighted_sum"), ("adapter", "param_mix")]
)
def test_every_module_kind_trains_under_ppo(tiny_config, kind: str, aggregation: str) -> None:
    overrides = (f"agent.modules.kind={kind}", "agent.modules.rank=2", f"agent.aggregation={aggregation}")
    model = build_model(tiny_config(*overrides), make_vec_env(tiny_config()))
    before = _params(model)
    model.learn(64)
    changed = [k for k, v in model.policy.state_dict().items() if not torch.equal(v, before[k])]
    assert any(".library.skills.skill_" in k for k in changed), f"{kind} modules did not train"


def test_a2c_runs_with_modular_policy(tiny_config) -> None:
    config = tiny_config("agent.algo=a2c", "algo.n_steps=5")
    venv = make_vec_env(config)
    model = build_model(config, venv)
    before = _params(model)
    model.learn(40)
    assert any(not torch.equal(before[k], v) for k, v in model.policy.state_dict().items())


@pytest.mark.parametrize("kind", ["modular", "monolithic"])
def test_sb3_save_load_gives_identical_deterministic_actions(tiny_config, tmp_path: Path, kind: str) -> None:
    config = tiny_config(f"agent.kind={kind}")
    venv = make_vec_env(config)
    model = build_model(config, venv)
    model.learn(64)
    obs = _fixed_obs(model)
    actions, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model.zip")  # SB3's own (trusted-only, pickled) format must still work
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    assert type(loaded.policy) is type(model.policy)
    loaded_actions, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actions, loaded_actions)


def test_monolithic_baseline_is_parameter_matched(tiny_config) -> None:
    config = tiny_config("agent.kind=monolithic")
    venv = make_vec_env(config)
    model = build_model(config, venv)
    actor = sum(p.numel() for p in model.policy.mlp_extractor.policy_net.parameters())
    target = modular_actor_parameters(config, num_tasks=2)
    assert abs(actor - target) / target < 0.05, (actor, target)
    assert not isinstance(model.policy, ModularActorCriticPolicy)


def test_router_aux_loss_reaches_the_gradient_through_sb3_loss(tiny_config, monkeypatch) -> None:
    """TopK's load-balancing loss is attached to the actor latent, so SB3's own loss carries its gradient:
    grad(SB3 loss) == grad(SB3 loss without the aux term) + grad(aux)."""
    import modrl.composition

    config = tiny_config(
        "agent.router.kind=topk", "agent.router.k=1", "agent.router.balance_coef=5.0", "agent.router.condition=obs"
    )
    policy = build_model(config, make_vec_env(config)).policy
    obs, _ = policy.obs_to_tensor(_fixed_obs(policy, n=16))
    actions = torch.zeros(16, dtype=torch.long)
    router = policy.modular.network.router
    params = list(router.parameters())

    def grads(loss: torch.Tensor) -> list[torch.Tensor]:
        return [
            torch.zeros_like(p) if g is None else g
            for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True), strict=True)
        ]

    def sb3_loss() -> torch.Tensor:
        values, log_prob, entropy = policy.evaluate_actions(obs, actions)
        return -log_prob.mean() + 0.5 * values.pow(2).mean() - 0.01 * entropy.mean()

    total = grads(sb3_loss())
    features = policy.extract_features(obs, policy.pi_features_extractor)
    num_tasks = policy.modular.num_tasks
    aux = grads(router(features[:, :-num_tasks], features[:, -num_tasks:].argmax(1)).aux_loss)
    assert any(g.abs().sum() > 0 for g in aux), "the load-balancing loss has no gradient"
    monkeypatch.setattr(modrl.composition, "attach_aux_loss", lambda x, aux_loss: x)
    main = grads(sb3_loss())
    for g_total, g_main, g_aux in zip(total, main, aux, strict=True):
        torch.testing.assert_close(g_total, g_main + g_aux)


def test_checkpoint_round_trip_restores_everything(tiny_config, tmp_path: Path) -> None:
    config = tiny_config()
    venv = make_vec_env(config)
    model = build_model(config, venv)
    model.learn(128)
    fp = model_fingerprint(config, venv.observation_space, venv.action_space)
    save_model_checkpoint(model, tmp_path, fingerprint=fp, keep=2)
    checkpoint = latest_checkpoint(tmp_path, expected_fingerprint=fp)
    assert checkpoint is not None and checkpoint.step == model.num_timesteps == 128

    fresh = build_model(tiny_config("seed=5"), make_vec_env(config))
    restore_model_checkpoint(fresh, checkpoint)
    for key, value in model.policy.state_dict().items():
        assert torch.equal(value, fresh.policy.state_dict()[key]), key
    saved_opt, fresh_opt = model.policy.optimizer.state_dict(), fresh.policy.optimizer.state_dict()
    as_json = lambda groups: json.loads(json.dumps(groups))  # noqa: E731  (betas: tuple vs list)
    assert as_json(saved_opt["param_groups"]) == as_json(fresh_opt["param_groups"])
    for index, state in saved_opt["state"].items():
        for name, value in state.items():
            assert torch.equal(value, fresh_opt["state"][index][name]), (index, name)
    assert fresh.num_timesteps == 128 and fresh._n_updates == model._n_updates
    obs = _fixed_obs(model)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], fresh.predict(obs, deterministic=True)[0])
    fresh.learn(64, reset_num_timesteps=False)  # training continues from the restored state
    assert fresh.num_timesteps == 192


def test_checkpoint_of_another_architecture_is_refused(tiny_config, tmp_path: Path) -> None:
    config = tiny_config()
    venv = make_vec_env(config)
    model = build_model(config, venv)
    save_model_checkpoint(model, tmp_path, fingerprint="not-checked", keep=2)
    other = build_model(tiny_config("agent.modules.count=5"), make_vec_env(config))
    before = _params(other)
    with pytest.raises(CheckpointError, match="architecture differs"):
        restore_model_checkpoint(other, latest_checkpoint(tmp_path))
    for key, value in other.policy.state_dict().items():
        assert torch.equal(before[key], value), "a refused checkpoint changed parameters"
    other_config = tiny_config("agent.modules.count=5")
    assert model_fingerprint(config, venv.observation_space, venv.action_space) != model_fingerprint(
        other_config, venv.observation_space, venv.action_space
    )


def test_same_seed_same_parameters_different_seed_differs(tiny_config) -> None:
    def train(seed: int) -> dict[str, torch.Tensor]:
        config = tiny_config(f"seed={seed}", "agent.router.kind=gumbel")
        model = build_model(config, make_vec_env(config))
        model.learn(128)
        return _params(model)

    first, second, other = train(3), train(3), train(4)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_gumbel_routing_is_the_same_in_rollouts_and_updates(tiny_config) -> None:
    """PPO's ratio needs the update to see the routing that acted: the router never samples inside the policy."""
    config = tiny_config("agent.router.kind=gumbel", "agent.router.condition=obs")
    policy = build_model(config, make_vec_env(config)).policy
    obs, _ = policy.obs_to_tensor(_fixed_obs(policy, n=32))
    policy.set_training_mode(False)
    with torch.no_grad():
        policy.evaluate_actions(obs, torch.zeros(32, dtype=torch.long))
    rollout_weights = policy.modular.last_weights.clone()
    policy.set_training_mode(True)
    assert policy.modular.network.library.training and not policy.modular.network.router.training
    _, log_prob, _ = policy.evaluate_actions(obs, torch.zeros(32, dtype=torch.long))
    torch.testing.assert_close(policy.modular.last_weights, rollout_weights)
    assert set(rollout_weights.sum(1).round().tolist()) == {1.0} and rollout_weights.max(1).values.min() > 0.99
    grads = torch.autograd.grad(log_prob.mean(), list(policy.modular.network.router.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "hard routing must still pass a gradient"


def test_router_starts_near_uniform_despite_sb3_ortho_init(tiny_config) -> None:
    config = tiny_config("agent.router.condition=obs", "agent.router.hidden=8")
    policy = build_model(config, make_vec_env(config)).policy
    obs, _ = policy.obs_to_tensor(_fixed_obs(policy, n=16))
    with torch.no_grad():
        policy.evaluate_actions(obs, torch.zeros(16, dtype=torch.long))
    weights = policy.modular.last_weights
    assert (weights - 1 / weights.shape[1]).abs().max() < 0.1, weights


def test_eval_refuses_a_checkpoint_from_another_task_set(tiny_config, tmp_path: Path) -> None:
    import yaml

    from modrl.agents.common.evaluation import load_run_policy
    from modrl.agents.common.training import run_training
    from modrl.runs import write_run_metadata

    config = tiny_config("train.total_timesteps=64")
    write_run_metadata(tmp_path, config=to_dict(config), seed=0, argv=["pytest"])
    run_training(config, tmp_path)
    data = yaml.safe_load((tmp_path / "config.yaml").read_text())
    data["env"]["suite"] = "minigrid-basic"  # same spaces shape family, different tasks
    data["env"]["n_envs"] = 3
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_run_policy(tmp_path)


def test_policies_and_checkpoints_from_before_the_modules_rename_still_load(tiny_config) -> None:
    """``agent.skills`` became ``agent.modules``: a policy saved with the old keyword builds the same network, and
    the model fingerprint checkpoints are checked against is the one recorded before the rename."""
    config = tiny_config()
    venv = make_vec_env(config)
    model = build_model(config, venv)
    kwargs = {k: v for k, v in model.policy._get_constructor_parameters().items() if k != "modules"}
    old = ModularActorCriticPolicy(**kwargs, skills=to_dict(config.agent.modules))
    assert old.modules_config == config.agent.modules
    assert {k: v.shape for k, v in old.state_dict().items()} == {
        k: v.shape for k, v in model.policy.state_dict().items()
    }
    assert any(k.startswith("mlp_extractor.network.library.skills.skill_0.") for k in old.state_dict())
    quickstart = load_experiment_config(Path(__file__).parents[1] / "experiments" / "configs" / "quickstart.yaml")
    venv = make_vec_env(quickstart)
    golden = "989fcef57ffb257f"
    plain = replace(quickstart, agent=replace(quickstart.agent, router=replace(quickstart.agent.router, mi_coef=0.0)))
    assert model_fingerprint(plain, venv.observation_space, venv.action_space) == golden
    # A loss weight does not change what the weights mean: the quick start's specialisation bonus is not hashed.
    assert model_fingerprint(quickstart, venv.observation_space, venv.action_space) == golden
