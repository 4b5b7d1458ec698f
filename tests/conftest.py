"""Shared test setup: one torch thread per process (2-vCPU machines oversubscribe badly otherwise)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: learning or install tests that take tens of seconds")
    config.stash[ORDER_SEED] = _order_seed(config)


# -- test files in a random order ------------------------------------------------------------------------------------
# The suite's contract is that every test file passes alone and that the order of the files does not matter, so every
# run shuffles the *files* (each file's tests keep their order and stay together, so module fixtures are built once)
# with a seed printed after collection and at the end. MODRL_TEST_ORDER=<seed> repeats an order, MODRL_TEST_ORDER=off
# keeps pytest's. A private random.Random draws the order: the global RNGs the tests use are never touched
# (pytest-random-order reseeds the global `random` and shuffles inside files too; pytest-randomly reseeds every RNG
# before each test, changing test numerics).
ORDER_ENV = "MODRL_TEST_ORDER"
ORDER_SEED = pytest.StashKey["int | str"]()  # the seed, or why the order is pytest's
ORDER_KEY = "modrl_test_order"  # pytest-xdist hands the controller's seed to its workers under this key


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist (``-n N``): every worker must collect the files in the controller's order."""
    node.workerinput[ORDER_KEY] = node.config.stash[ORDER_SEED]


def _order_seed(config: pytest.Config) -> int | str:
    worker = getattr(config, "workerinput", None)  # a pytest-xdist worker: its controller's order, or xdist refuses
    if worker is not None and ORDER_KEY in worker:
        return worker[ORDER_KEY]
    value = os.environ.get(ORDER_ENV, "").strip()
    if value.lower() == "off":
        return f"{ORDER_ENV}=off"
    for option in ("stepwise", "failedfirst", "newfirst"):  # these order by the cache; a shuffle would undo them
        if config.getoption(option, False):
            return f"--{option.replace('first', '-first')} orders the tests"
    if not value:
        return secrets.randbelow(1_000_000)
    if not value.isdigit():
        raise pytest.UsageError(f"{ORDER_ENV} must be a seed (a non-negative integer) or 'off', got {value!r}")
    return int(value)


def _order_line(config: pytest.Config) -> str:
    seed = config.stash.get(ORDER_SEED, None)
    if isinstance(seed, int):
        return f"test files in random order, seed {seed} (repeat it with {ORDER_ENV}={seed}, or {ORDER_ENV}=off)"
    return f"test files in collection order ({seed})"


@pytest.hookimpl(trylast=True)  # after pytest's own reordering (fixtures, --lf)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seed = config.stash.get(ORDER_SEED, None)
    if not isinstance(seed, int):
        return
    files: dict[Path, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.path, []).append(item)
    order = list(files)
    random.Random(seed).shuffle(order)
    items[:] = [item for path in order for item in files[path]]


def pytest_report_collectionfinish(config: pytest.Config) -> str:
    return _order_line(config)  # shown under -q too, unlike the report header


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    terminalreporter.write_line(_order_line(config))


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


def load_script(path: Path) -> Any:
    """Import a script that is not part of a package (``experiments/...``, ``scripts/...``) as a module; each call
    makes a fresh module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: A tiny ``modrl options skills`` config learning by PPO alone (``drop`` on minigrid-hard's train split, 64 frames).
TINY_SKILLS: dict[str, Any] = {
    "demonstrations": False,
    "view_size": 9,
    "skills": ["drop"],
    "finetune_steps": 64,
    "n_envs": 2,
    "algo": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
    "eval_episodes": 2,
    "max_skill_steps": 20,
    "net": {"channels": [4], "features_dim": 8, "hidden": [8], "arg_dim": 2, "embed_dim": 2},
}


def tiny_skill_ppo_envs(skill: str, **overrides: Any) -> list[Any]:
    """The calling-state envs of the PPO model ``modrl options skills`` builds for ``skill`` from :data:`TINY_SKILLS`
    on minigrid-hard (``overrides``: config keys), unwrapped from their monitors; the vector env is left open."""
    from modrl.agents.options.skill_cloning import split_envs
    from modrl.agents.options.skill_cloning_config import load_skill_cloning_config
    from modrl.agents.options.skill_ppo import skill_model

    config = load_skill_cloning_config({**TINY_SKILLS, "suite": "minigrid-hard", **overrides})
    model = skill_model(config, skill, split_envs(config.suite, config.split), seed=0)
    return [monitor.env for monitor in model.env.envs]  # type: ignore[attr-defined]
