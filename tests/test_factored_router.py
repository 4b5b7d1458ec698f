"""``agent.router_input: words``: a router reading the mission's bag of words, so a task's allocation is built from its
parts and a held-out combination of known words gets one (issue 19's factored routing; mechanism, not learning)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.preprocessing import preprocess_obs

from modrl.agents.common.builders import build_model, make_vec_env
from modrl.config import ConfigError
from modrl.envs import get_suite, make_suite_env

WORDS = (
    "env.suite=colour-type",
    "env.split=train",
    "env.mission_tokens=true",
    "agent.router_input=words",
    "agent.router.condition=obs",
    "agent.router.hidden=0",
)


def _observation(model, task: str) -> dict[str, torch.Tensor]:
    suite = get_suite("colour-type")
    env = make_suite_env(suite, suite.task_index(task), mission_tokens=True)
    obs, _ = env.reset(seed=0)
    batch = {key: torch.as_tensor(np.asarray(value))[None] for key, value in obs.items()}
    return preprocess_obs(batch, model.observation_space, normalize_images=False)  # type: ignore[return-value]


def test_a_held_out_task_is_routed_by_the_mean_of_its_words(tiny_config) -> None:
    config = tiny_config(*WORDS)
    model = build_model(config, make_vec_env(config))
    model.learn(128)  # a router that is not at its initialisation
    extractor, modular = model.policy.features_extractor, model.policy.modular
    suite = get_suite("colour-type")
    held_out = suite.splits["test"][0]  # e.g. goto-grey-ball: grey and ball were seen, not together
    with torch.no_grad():
        features = extractor(_observation(model, held_out))
        modular.forward_actor(features)
        weights = modular.last_weights
        middle = features[:, extractor.obs_dim : features.shape[1] - extractor.num_tasks]
        bow = middle[:, extractor.mission_dim :]
        assert bow.shape[1] == extractor.vocab_size and torch.isclose(bow.sum(), torch.tensor(1.0))
        words = torch.nonzero(bow[0]).flatten()
        one_word = torch.zeros(len(words), extractor.vocab_size)
        one_word[torch.arange(len(words)), words] = 1.0
        task = torch.zeros(len(words), dtype=torch.long)
        per_word = modular.network.router(one_word, task).logits  # each word's own allocation logits
        mean_logits = (per_word * bow[0, words].unsqueeze(1) * len(words)).mean(dim=0)  # frequency-weighted mean
    assert weights is not None
    assert torch.allclose(weights[0], torch.softmax(mean_logits, dim=0), atol=1e-5)


def test_the_words_router_needs_the_mission(tiny_config) -> None:
    with pytest.raises(ConfigError, match=r"agent\.router_input: 'words' needs the mission tokens"):
        tiny_config("agent.router_input=words")
