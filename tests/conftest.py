"""Shared test setup: one torch thread per process (2-vCPU machines oversubscribe badly otherwise)."""

from __future__ import annotations

import os

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
