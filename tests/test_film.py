"""FiLM conditioning of the image encoder on the mission (``agent.extractor.film``, BabyAI 1.1's conditioning)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modrl.agents.common.builders import build_model, make_vec_env, model_fingerprint
from modrl.agents.common.extractors import FiLM, MinigridFeaturesExtractor
from modrl.config import ConfigError

MISSION = ("env.suite=colour-type", "env.split=train", "env.mission_tokens=true")


def _obs(venv, n: int = 6) -> dict[str, torch.Tensor]:
    from stable_baselines3.common.preprocessing import preprocess_obs

    space = venv.observation_space
    space.seed(0)
    samples = [space.sample() for _ in range(n)]
    raw = {key: torch.as_tensor(np.stack([s[key] for s in samples])) for key in space.spaces}
    return preprocess_obs(raw, space, normalize_images=False)  # type: ignore[return-value]


def test_film_needs_the_mission(tiny_config) -> None:
    with pytest.raises(ConfigError, match=r"agent\.extractor\.film: .*set env\.mission_tokens=true"):
        tiny_config("agent.extractor.film=true")


def test_film_starts_as_the_identity_and_learns(tiny_config) -> None:
    config = tiny_config(*MISSION, "agent.extractor.film=true")
    venv = make_vec_env(config)
    model = build_model(config, venv)
    film = model.policy.features_extractor
    assert isinstance(film, MinigridFeaturesExtractor) and film.films is not None
    assert all(isinstance(layer, FiLM) and not layer.weight.any() for layer in film.films)  # SB3's init left them
    # The same weights without FiLM compute the same features: conditioning starts as the identity.
    plain = MinigridFeaturesExtractor(venv.observation_space, **{**film_kwargs(config), "film": False})
    missing, unexpected = plain.load_state_dict(film.state_dict(), strict=False)
    assert not missing and all(key.startswith("films.") for key in unexpected)
    obs = _obs(venv)
    with torch.no_grad():
        assert torch.equal(film(obs), plain(obs))
    model.learn(128)
    assert any(layer.weight.abs().sum() > 0 for layer in film.films), "no gradient reached FiLM"
    with torch.no_grad():  # now the mission changes what the image encoder computes
        other = {**obs, "mission": obs["mission"].roll(1, dims=0)}
        width = film.obs_dim
        assert not torch.allclose(film(obs)[:, :width], film(other)[:, :width])


def test_film_changes_the_fingerprint_only_when_on(tiny_config) -> None:
    off, on = tiny_config(*MISSION), tiny_config(*MISSION, "agent.extractor.film=true")
    venv = make_vec_env(off)
    spaces = (venv.observation_space, venv.action_space)
    assert model_fingerprint(off, *spaces) != model_fingerprint(on, *spaces)


def film_kwargs(config) -> dict:
    from modrl.config import to_dict

    return to_dict(config.agent.extractor)
