"""Mission-token conditioning: the mission encoder, the extractor's output layout, mission-routed policies, and the
stock suites' missions under the fixed vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.preprocessing import preprocess_obs

from modrl.agents.common.builders import build_model, make_vec_env, model_fingerprint, modular_actor_parameters
from modrl.agents.common.extractors import MinigridFeaturesExtractor, MissionEncoder
from modrl.agents.common.policies import ModularActorCriticPolicy, ObservationActorPolicy
from modrl.config import ConfigError, from_dict, to_dict
from modrl.envs import SUITES, MissionVocabulary, get_suite, make_suite_env
from tests.conftest import env_checker_warnings

VOCAB = MissionVocabulary.from_grammar()
MISSION = ("env.suite=colour-type", "env.split=train", "env.mission_tokens=true")
ROUTED_BY_MISSION = (*MISSION, "agent.router.condition=obs", "agent.router_input=mission")


def _ids(*missions: str, max_len: int = 12) -> torch.Tensor:
    return torch.as_tensor(np.stack([VOCAB.encode(m, max_len) for m in missions]))


@pytest.mark.parametrize("kind", ["bow", "gru"])
def test_mission_encoder_is_order_aware_and_ignores_padding(kind: str) -> None:
    torch.manual_seed(0)
    encoder = MissionEncoder(vocab_size=VOCAB.size, max_len=12, dim=8, kind=kind)
    one, swapped = "put the red ball next to the blue key", "put the blue ball next to the red key"
    a, b = encoder(_ids(one, swapped))
    assert a.shape == (8,) and not torch.allclose(a, b), "word order must change the encoding"
    shorter = MissionEncoder(vocab_size=VOCAB.size, max_len=12, dim=8, kind=kind)
    shorter.load_state_dict(encoder.state_dict())
    padded = encoder(_ids(one, max_len=12))
    # Same words, less padding: the extra pad positions must not change the features.
    torch.testing.assert_close(padded, shorter(_ids(one, max_len=12)[:, :9]))
    assert torch.isfinite(encoder(torch.zeros(2, 12, dtype=torch.long))).all()


def test_unknown_mission_encoder_is_refused() -> None:
    with pytest.raises(ValueError, match="bow, gru"):
        MissionEncoder(vocab_size=5, max_len=3, dim=4, kind="lstm")  # type: ignore[arg-type]


def test_extractor_layout_with_mission_tokens() -> None:
    env = make_suite_env("colour-type", 0, mission_tokens=True)
    space = env.observation_space
    extractor = MinigridFeaturesExtractor(space, features_dim=16, mission_dim=8, channels=[8], embed_dim=4)
    num_tasks = get_suite("colour-type").num_tasks
    assert extractor.features_dim == 16 + 8 + num_tasks and extractor.mission_dim == 8
    obs, _ = env.reset(seed=3)
    batch = {k: torch.as_tensor(np.asarray(v)[None]) for k, v in obs.items()}
    features = extractor(preprocess_obs(batch, space, normalize_images=False))  # type: ignore[arg-type]
    assert extractor.mission is not None
    expected_mission = extractor.mission(torch.as_tensor(obs["mission"])[None])
    torch.testing.assert_close(features[:, 16:24], expected_mission)
    assert int(features[0, 24:].argmax()) == 0 and features[0, 24:].sum() == 1  # the task one-hot, unchanged


def test_extractor_without_mission_keeps_its_layout() -> None:
    env = make_suite_env("minigrid-tiny", 1)
    extractor = MinigridFeaturesExtractor(env.observation_space, features_dim=16, channels=[8], embed_dim=4)
    assert extractor.mission_dim == 0 and extractor.mission is None and extractor.features_dim == 16 + 2


def test_router_reads_only_the_mission(tiny_config) -> None:
    config = tiny_config(*ROUTED_BY_MISSION)
    policy = build_model(config, make_vec_env(config)).policy
    assert isinstance(policy, ModularActorCriticPolicy)
    router = policy.modular.network.router
    with torch.no_grad():  # move the router away from its near-uniform start so missions are told apart
        for p in router.parameters():
            p.normal_(0, 1.0)
    space = policy.observation_space
    space.seed(0)
    samples = [space.sample() for _ in range(4)]
    mission = samples[0]["mission"]
    for s in samples:  # same mission, different images, directions and task ids
        s["mission"] = mission.copy()
    obs = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    tensor_obs, _ = policy.obs_to_tensor(obs)
    with torch.no_grad():
        policy.get_distribution(tensor_obs)
    weights = policy.modular.last_weights
    assert weights is not None
    assert len({tuple(s["task"].flat) for s in samples} | {int(s["task"]) for s in samples}) > 1
    for row in weights[1:]:
        torch.testing.assert_close(row, weights[0], rtol=0, atol=1e-6)
    other = dict(obs, mission=np.stack([VOCAB.encode("pick up the red box", len(mission))] * 4))
    with torch.no_grad():
        policy.get_distribution(policy.obs_to_tensor(other)[0])
    assert not torch.allclose(policy.modular.last_weights[0], weights[0])


def test_router_input_mission_needs_mission_tokens(tiny_config) -> None:
    with pytest.raises(ConfigError, match=r"env\.mission_tokens"):
        tiny_config("agent.router.condition=obs", "agent.router_input=mission")


def test_monolithic_is_parameter_matched_with_mission_features(tiny_config) -> None:
    config = tiny_config(*ROUTED_BY_MISSION, "agent.kind=monolithic")
    model = build_model(config, make_vec_env(config))
    actor = sum(p.numel() for p in model.policy.mlp_extractor.policy_net.parameters())
    target = modular_actor_parameters(config, get_suite("colour-type").num_tasks, mission_dim=32)
    assert abs(actor - target) / target < 0.05, (actor, target)


def test_observation_only_monolithic_actor_ignores_mission_features_and_task_id(tiny_config, tmp_path: Path) -> None:
    config = tiny_config(*ROUTED_BY_MISSION, "agent.kind=monolithic", "agent.monolithic_input=observation")
    model = build_model(config, make_vec_env(config))
    policy = model.policy
    assert isinstance(policy, ObservationActorPolicy)
    extractor = policy.features_extractor
    assert isinstance(extractor, MinigridFeaturesExtractor)
    first = policy.mlp_extractor.policy_net[0]
    assert isinstance(first, torch.nn.Linear) and first.in_features == extractor.obs_dim < extractor.features_dim
    actor = sum(p.numel() for p in policy.mlp_extractor.policy_net.parameters())
    target = modular_actor_parameters(config, get_suite("colour-type").num_tasks, mission_dim=32)
    assert abs(actor - target) / target < 0.05, (actor, target)
    features = torch.randn(5, extractor.features_dim)
    changed = features.clone()
    changed[:, extractor.obs_dim :] = torch.randn(5, extractor.features_dim - extractor.obs_dim)  # mission + task
    with torch.no_grad():
        torch.testing.assert_close(policy.mlp_extractor.forward_actor(changed), policy.mlp_extractor(features)[0])
        assert not torch.allclose(policy.mlp_extractor.forward_critic(changed), policy.mlp_extractor(features)[1])
        changed[:, 0] += 1.0  # an observation feature
        assert not torch.allclose(policy.mlp_extractor.forward_actor(changed), policy.mlp_extractor(features)[0])
    model.learn(64)
    space = model.observation_space
    space.seed(2)
    samples = [space.sample() for _ in range(6)]
    obs = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    assert isinstance(loaded.policy, ObservationActorPolicy)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


def test_monolithic_input_is_hashed_only_when_set_and_old_configs_load(tiny_config) -> None:
    config = tiny_config(*MISSION, "agent.kind=monolithic")
    space = make_vec_env(config).observation_space
    action = make_vec_env(config).action_space
    default = model_fingerprint(config, space, action)
    observation = tiny_config(*MISSION, "agent.kind=monolithic", "agent.monolithic_input=observation")
    assert model_fingerprint(observation, space, action) != default
    agent = to_dict(config.agent)
    del agent["monolithic_input"]  # a config written before the key existed
    assert from_dict(type(config.agent), agent, "agent") == config.agent


def test_mission_policy_trains_and_round_trips_through_sb3_save(tiny_config, tmp_path: Path) -> None:
    config = tiny_config(*ROUTED_BY_MISSION)
    model = build_model(config, make_vec_env(config))
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(64)
    after = model.policy.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("features_extractor.mission.") for k in changed), "mission encoder did not train"
    assert any(".router." in k for k in changed), "mission router did not train"
    space = model.observation_space
    space.seed(1)
    samples = [space.sample() for _ in range(6)]
    obs = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    actions, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    assert loaded.policy.router_input == "mission"
    np.testing.assert_array_equal(actions, loaded.predict(obs, deterministic=True)[0])


STOCK = [name for name in SUITES.names() if get_suite(name).mission_max_len is not None]


@pytest.mark.parametrize("suite_name", STOCK)
def test_stock_suite_missions_encode_without_unknown_words(suite_name: str) -> None:
    suite = get_suite(suite_name)
    for index in range(suite.num_tasks):
        env = make_suite_env(suite, index, mission_tokens=True)
        for seed in range(15):
            obs, _ = env.reset(seed=seed)
            text = env.unwrapped.mission
            assert 1 not in obs["mission"], f"{suite.tasks[index].env_id} seed {seed}: <unk> in {text!r}"
            assert VOCAB.decode(obs["mission"]) == text.lower().replace(" ,", ","), text
        env.close()


def test_babyai_suite_envs_pass_both_checkers() -> None:
    suite = get_suite("babyai")
    for index in range(suite.num_tasks):
        env = make_suite_env(suite, index, mission_tokens=True)
        with env_checker_warnings():  # only the known, explained ones are silenced
            gym_check_env(env, skip_render_check=True)
            sb3_check_env(env, warn=True)
        env.close()
