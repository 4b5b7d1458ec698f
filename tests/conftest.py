"""Shared test setup: one torch thread per process (2-vCPU machines oversubscribe badly otherwise)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: learning or install tests that take tens of seconds")


TINY = {
    "name": "tiny",
    "env": {"suite": "minigrid-tiny", "n_envs": 2},
    "agent": {
        "extractor": {"channels": [8], "features_dim": 16, "embed_dim": 4},
        "modules": {"count": 3, "hidden": [16]},
        "latent_dim": 16,
        "critic_hidden": [16],
    },
    "algo": {"n_steps": 32, "batch_size": 32, "n_epochs": 2},
    "train": {"total_timesteps": 256, "checkpoint_every": 128, "eval_episodes": 2},
}


@pytest.fixture
def tiny_config():
    """Factory for a tiny ExperimentConfig: ``tiny_config("agent.router.kind=topk", ...)``."""
    from modrl.agents.common.config import load_experiment_config

    def make(*overrides: str):
        return load_experiment_config(TINY, overrides)

    return make


#: The env checkers' warnings that are expected here, each for a known reason; any other warning from a checker is an
#: error (see :func:`env_checker_warnings`).
KNOWN_ENV_CHECKER_WARNINGS: tuple[str, ...] = (
    # gymnasium's check_env is given the *wrapped* env on purpose (the wrappers are what SB3 sees).
    r".*The environment .* is different from the unwrapped version",
    # SB3: the image Box holds category indices bounded by IMAGE_HIGH, not pixels in [0, 255] (envs/wrappers.py,
    # TaskObservation), so SB3 neither rescales nor transposes it.
    r"It seems that your observation space .* is an image but the upper and lower bounds are not in \[0, 255\]",
    # SB3: MiniGrid's 7x7 view is below the default CnnPolicy's 36x36; modrl uses its own features extractor.
    r"The minimal resolution for an image is 36x36 for the default `CnnPolicy`",
)


@contextlib.contextmanager
def env_checker_warnings() -> Iterator[None]:
    """Run env checkers with the :data:`KNOWN_ENV_CHECKER_WARNINGS` silenced and every other warning an error, so a
    new warning (a real problem of an env) fails the test instead of vanishing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for pattern in KNOWN_ENV_CHECKER_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern, category=UserWarning)
        yield
