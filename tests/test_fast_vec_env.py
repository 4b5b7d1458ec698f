"""The fast engine as SB3's vector env (``env.engine: fast``) against the MiniGrid one, and its guarantees.

* Same values: the same seed and actions on ``make_vec_env`` with ``minigrid`` (``DummyVecEnv`` over modrl's
  wrappers) and with ``fast`` give identical observations (keys, dtypes, values), rewards, dones and infos (success,
  task, Monitor's episode record but its wall time, time-out flag, terminal observation) and identical resume states.
* Same learning: PPO from the same seed ends with bit-identical weights, optimizer, RNG and resume state, metrics and
  TensorBoard scalars on both engines.
* Exact resume on the fast engine, stop and SIGTERM included (the helpers of ``tests/test_exact_resume.py``).
* The switch: ``fast`` on what it does not cover is a one-line config error naming the task or setting; ``auto``
  falls back to MiniGrid with one log line saying why.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from modrl.agents.common.builders import make_vec_env
from modrl.agents.common.fast_vec_env import FastVecEnv, select_engine
from modrl.agents.common.guards import EnvWorkerError
from modrl.agents.common.training import CHECKPOINTS, run_training
from modrl.checkpoint import latest_checkpoint
from modrl.config import ConfigError
from modrl.faults import FAULT_ENV, reset_fault_counters
from tests.test_exact_resume import STEPS, _metrics, _new_run, _scalars, _without_wall_clock
from tests.test_exact_resume import assert_same_run as assert_same_resumed_run

BASIC = ("env.suite=minigrid-basic", "env.n_envs=6")


def _engines(tiny_config: Any, *overrides: str) -> tuple[Any, Any]:
    return tuple(make_vec_env(tiny_config(*overrides, f"env.engine={engine}")) for engine in ("minigrid", "fast"))


def assert_same_obs(a: dict[str, Any], b: dict[str, Any], where: Any) -> None:
    assert list(a) == list(b), where
    for key in a:
        assert type(a[key]) is type(b[key]) and np.asarray(a[key]).dtype == np.asarray(b[key]).dtype, (where, key)
        assert np.array_equal(a[key], b[key]), (where, key)


def assert_same_infos(a: list[dict[str, Any]], b: list[dict[str, Any]], where: Any) -> None:
    for info_a, info_b in zip(a, b, strict=True):
        assert sorted(info_a) == sorted(info_b), where
        for key, value in info_a.items():
            if key == "terminal_observation":
                assert_same_obs(value, info_b[key], where)
            elif key == "episode":  # Monitor's "t" is wall time
                assert {**value, "t": 0} == {**info_b[key], "t": 0}, where
            else:
                assert value == info_b[key] and type(value) is type(info_b[key]), (where, key)


def assert_steps_alike(
    a: Any, b: Any, actions: Iterable[np.ndarray], infos_of: Callable[[list[dict[str, Any]]], Any] = list
) -> Counter[str]:
    """Step the vector envs ``a`` and ``b`` with the same ``actions``; every step, assert the same observations,
    rewards and dones (values and dtypes) and infos (``infos_of`` applied to ``a``'s first). Returns how often each
    info key of ``a``'s was set (a true value)."""
    seen: Counter[str] = Counter()
    for t, step_actions in enumerate(actions):
        (obs_a, rew_a, done_a, infos_a), (obs_b, rew_b, done_b, infos_b) = a.step(step_actions), b.step(step_actions)
        assert_same_obs(obs_a, obs_b, t)
        assert rew_a.dtype == rew_b.dtype and np.array_equal(rew_a, rew_b), t
        assert done_a.dtype == done_b.dtype and np.array_equal(done_a, done_b), t
        assert_same_infos(infos_of(infos_a), infos_b, t)
        for info in infos_a:
            seen.update(key for key, value in info.items() if value)
    return seen


@pytest.mark.parametrize(
    "overrides",
    [(), ("env.mission_tokens=true",), ("env.max_episode_steps=20",)],
    ids=["plain", "mission-tokens", "time-outs"],
)
def test_fast_vec_env_gives_sb3_what_the_minigrid_vec_env_gives(tiny_config, overrides: tuple[str, ...]) -> None:
    reference, fast = _engines(tiny_config, *BASIC, *overrides)
    assert isinstance(reference, DummyVecEnv) and isinstance(fast, FastVecEnv)
    assert reference.observation_space == fast.observation_space and reference.action_space == fast.action_space
    assert_same_obs(reference.reset(), fast.reset(), "reset")
    assert reference.reset_infos == fast.reset_infos
    rng = np.random.default_rng(0)
    seen = assert_steps_alike(reference, fast, (rng.integers(0, 7, size=6) for _ in range(600)))
    assert reference.env_method("get_env_state") == fast.env_method("get_env_state")
    assert seen["episode"] > 0 and seen["is_success"] > 0
    if overrides == ("env.max_episode_steps=20",):
        assert seen["TimeLimit.truncated"] > 0


@pytest.mark.parametrize(("suite", "n_envs"), [("minigrid-keys", 5), ("minigrid-hard", 12)])
def test_the_key_suites_run_on_the_fast_engine_as_on_minigrid(tiny_config, suite: str, n_envs: int) -> None:
    """Unlock, UnlockPickup, KeyCorridor, BlockedUnlockPickup and ObstructedMaze (their own success rules:
    envs/fast/stock_goals.py) beside DoorKey, one per slot, as SB3's vector env; random actions, so episodes end by
    time-out (successes by those rules are compared step by step in tests/test_fast_engine.py)."""
    overrides = (f"env.suite={suite}", f"env.n_envs={n_envs}", "env.max_episode_steps=30")
    reference, fast = _engines(tiny_config, *overrides)
    assert isinstance(fast, FastVecEnv)
    assert_same_obs(reference.reset(), fast.reset(), "reset")
    rng = np.random.default_rng(0)
    seen = assert_steps_alike(reference, fast, (rng.integers(0, 7, size=n_envs) for _ in range(300)))
    assert reference.env_method("get_env_state") == fast.env_method("get_env_state")
    assert seen["episode"] > 0 and seen["TimeLimit.truncated"] > 0


def test_env_state_round_trip_continues_identically(tiny_config) -> None:
    """A fresh fast vec env given the recorded states of another steps on exactly as the other does."""
    one, other, _, rng = restored_copy(tiny_config(*BASIC, "env.max_episode_steps=20", "env.engine=fast"))
    # Infos equal: episode returns and lengths counted the replayed steps too.
    assert_steps_alike(one, other, (rng.integers(0, 7, size=one.num_envs) for _ in range(100)))


def restored_copy(config: Any) -> tuple[Any, Any, list[dict[str, Any]], np.random.Generator]:
    """Two fast vector envs of ``config``: ``one`` after 50 random steps (every slot crosses episode ends, so unseeded
    starts, RNG states, are recorded), ``other`` reseeded, reset and given ``one``'s recorded states (through JSON)
    slot by slot, each then showing ``one``'s image. Returns ``one``, ``other``, the observations the restores
    returned and the generator of the actions."""
    one, other = make_vec_env(config), make_vec_env(config)
    one.reset()
    rng = np.random.default_rng(1)
    for _ in range(50):
        one.step(rng.integers(0, 7, size=one.num_envs))
    states = json.loads(json.dumps(one.env_method("get_env_state")))
    assert all("rng" in s["start"] and s["actions"] for s in states)
    other.seed(123)
    other.reset()
    restored = []
    for index, state in enumerate(states):
        restored.append(other.env_method("set_env_state", state, indices=[index])[0])
        assert np.array_equal(restored[-1]["image"], one.engine.observe(np.array([index]))[0][0])
    return one, other, restored, rng


def test_same_seed_trains_to_the_same_parameters_on_both_engines(tiny_config, tmp_path: Path) -> None:
    """PPO on minigrid-basic (6 envs, 4 rollouts of 192 steps, 2 epochs each): every checkpoint tensor (policy,
    optimizer, RNG, last observation), the JSON state (env states included), metrics and scalars are identical."""
    runs = {}
    for engine in ("minigrid", "fast"):
        config = tiny_config(*BASIC, "train.total_timesteps=768", "train.checkpoint_every=384", f"env.engine={engine}")
        assert select_engine(config) == engine
        runs[engine] = _new_run(tmp_path, engine, config)
        assert run_training(config, runs[engine]).steps == 768
    a, b = (latest_checkpoint(runs[engine] / CHECKPOINTS) for engine in ("minigrid", "fast"))
    assert a is not None and b is not None and a.step == b.step == 768
    assert sorted(a.tensors) == sorted(b.tensors) == ["optimizer", "policy", "resume", "rng"]
    for group, tensors in a.tensors.items():
        assert sorted(tensors) == sorted(b.tensors[group]), group
        for key, tensor in tensors.items():
            assert torch.equal(tensor, b.tensors[group][key]), f"{group}.{key} differs"
    assert _without_wall_clock(a.meta) == _without_wall_clock(b.meta)
    assert a.meta["n_updates"] == 4 * 2  # SB3 counts epochs: 4 rollouts of 2 epochs (6 batches each) ran
    assert _metrics(runs["minigrid"]) == _metrics(runs["fast"])
    assert _scalars(runs["minigrid"]) == _scalars(runs["fast"])


@pytest.fixture
def spy_restores(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Slots restored through ``FastVecEnv.set_env_state``: proves a resume ran on the fast engine."""
    restored: list[int] = []
    original = FastVecEnv.set_env_state

    def spy(self: FastVecEnv, slot: int, state: dict[str, Any]) -> Any:
        restored.append(slot)
        return original(self, slot, state)

    monkeypatch.setattr(FastVecEnv, "set_env_state", spy)
    return restored


@pytest.mark.parametrize("overrides", [(), ("env.max_episode_steps=20",)], ids=["seeded-starts", "episodes-in-flight"])
def test_stop_then_resume_on_the_fast_engine_is_exact(
    tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy_restores: list[int], overrides: tuple[str, ...]
) -> None:
    config = tiny_config(*STEPS, *overrides, "env.engine=fast")
    assert select_engine(config) == "fast"
    one_go = _new_run(tmp_path, "one-go", config)
    assert run_training(config, one_go).steps == 512
    run_dir = _new_run(tmp_path, "stopped", config)
    monkeypatch.setenv(FAULT_ENV, "rollout-end:3:term")  # SIGTERM at the end of the 3rd rollout (step 192)
    reset_fault_counters()
    assert run_training(config, run_dir).steps == 192
    state = latest_checkpoint(run_dir / CHECKPOINTS).meta["resume"]["envs"]  # type: ignore[union-attr]
    assert all(env["actions"] for env in state), "want episodes in flight at the checkpoint"
    if overrides:
        assert any("rng" in env["start"] for env in state), "want an episode started from the RNG, not a seed"
    monkeypatch.delenv(FAULT_ENV)
    assert run_training(config, run_dir, resume=True).steps == 512
    assert spy_restores == [0, 1]
    assert_same_resumed_run(one_go, run_dir)


def test_a_run_stopped_on_minigrid_resumes_exactly_on_the_fast_engine(
    tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy_restores: list[int]
) -> None:
    """What a run started before ``env.engine`` existed (MiniGrid) and resumed under the default ``auto`` does."""
    minigrid, fast = tiny_config(*STEPS, "env.engine=minigrid"), tiny_config(*STEPS, "env.engine=fast")
    one_go = _new_run(tmp_path, "one-go", minigrid)
    run_training(minigrid, one_go)
    run_dir = _new_run(tmp_path, "stopped", minigrid)
    monkeypatch.setenv(FAULT_ENV, "rollout-end:3:term")
    reset_fault_counters()
    assert run_training(minigrid, run_dir).steps == 192
    monkeypatch.delenv(FAULT_ENV)
    assert run_training(fast, run_dir, resume=True).steps == 512
    assert spy_restores == [0, 1]
    assert_same_resumed_run(one_go, run_dir)


def test_an_env_step_fault_names_the_slot(tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config("env.engine=fast")
    monkeypatch.setenv(FAULT_ENV, "env-step#1:40:raise")
    reset_fault_counters()
    with pytest.raises(EnvWorkerError, match=r"env 1: step raised at step 80:(.|\n)*InjectedFault"):
        run_training(config, _new_run(tmp_path, "run", config))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ("env.suite=babyai", "env.n_envs=6"),
            "env.engine: fast cannot run suite babyai (task gotoobj: GoToObj overrides MiniGridEnv.step)",
        ),
        (("env.split=train",), "(env.split 'train' draws a task per episode (SplitTaskEnv)"),
        (("env.vec_env=subproc",), "(env.vec_env 'subproc' runs MiniGrid in worker processes"),
    ],
)
def test_fast_on_what_it_does_not_cover_is_a_config_error(tiny_config, overrides, message: str) -> None:
    """Refused when the config is loaded (before a run directory exists) and again by ``make_vec_env``."""
    with pytest.raises(ConfigError) as error:
        tiny_config(*overrides, "env.engine=fast")
    assert message in str(error.value) and "\n" not in str(error.value)
    config = tiny_config(*overrides, "env.engine=minigrid")
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_vec_env(dataclasses.replace(config, env=dataclasses.replace(config.env, engine="fast")))


def test_auto_falls_back_to_minigrid_with_one_log_line(tiny_config, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="modrl.agents.common.fast_vec_env"):
        venv = make_vec_env(tiny_config("env.suite=babyai", "env.n_envs=6", "env.engine=auto"))
    assert isinstance(venv, DummyVecEnv)
    assert [r.getMessage() for r in caplog.records] == [
        "env.engine auto: suite babyai uses MiniGrid (task gotoobj: GoToObj overrides MiniGridEnv.step)"
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="modrl.agents.common.fast_vec_env"):
        assert isinstance(make_vec_env(tiny_config("env.engine=auto")), FastVecEnv)
    assert caplog.records == []
