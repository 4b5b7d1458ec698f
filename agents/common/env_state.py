"""Exact resume: the state of the envs and of SB3's rollout bookkeeping at a checkpoint, as JSON and tensors.

SB3 resets its envs when training resumes, so a resumed run sees different episodes than an uninterrupted one.
modrl resumes exactly instead:

* :class:`EnvStateRecorder` (the outermost wrapper of every env slot, around SB3's ``Monitor``) records, per
  episode, how the episode was started: the ``reset`` seed, or, for an unseeded reset, the bit-generator state of
  the env's ``np_random`` just before the reset (the only randomness the env stack uses per episode: a MiniGrid env
  draws its layout from it, and :class:`modrl.envs.SplitTaskEnv` draws the task and the task env's seed from it),
  plus every action taken since. Restoring sets that RNG state (or reseeds), resets and replays the actions: MiniGrid
  is deterministic given its RNG, so the env, its ``TimeLimit`` counter and the ``Monitor``'s running episode
  return are exactly where they were, and the RNG has advanced exactly as far.
* :func:`capture_resume_state` / :func:`restore_resume_state` add what SB3 keeps between rollouts: the last
  observation and episode starts, the episode info/success buffers, the episode counter, the progress fraction,
  values the logger has recorded but not yet written (PPO records ``train/*`` after a rollout's TensorBoard dump,
  so they are written with the *next* rollout's), and the state of modrl's stateful callbacks.

Checkpoints are taken at a rollout boundary (after an update, before the next rollout's first step), the one point
where nothing else is in flight: the rollout buffer is empty and the policy's per-step outputs are not needed. The
restored observation is compared with the checkpointed one, so an env that does not replay deterministically is
refused instead of resuming silently off course. Wall-clock values (``Monitor``'s episode time ``t``, fps) are not
part of this: they are measured, not reproduced.
"""

from __future__ import annotations

import math
import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Literal, Protocol, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from torch import Tensor

from modrl.agents.common.guards import CaptureEnvErrors, ReportingSubprocVecEnv
from modrl.checkpoint import CheckpointError

RESUME_FORMAT = 1


class StatefulCallback(Protocol):
    """A callback whose state goes into checkpoints (JSON-able dicts)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class EnvStateRecorder(gym.Wrapper[Any, Any, Any, Any]):
    """Records how the current episode started and the actions since, so the env can be rebuilt exactly.

    Args:
        env: One env slot (e.g. ``Monitor(task env)``); its ``unwrapped.np_random`` must be its only per-episode RNG.
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self._start: dict[str, Any] | None = None
        self._actions: list[Any] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            start: dict[str, Any] = {"seed": int(seed)}
        else:
            start = {"rng": self.env.unwrapped.np_random.bit_generator.state}
        start["options"] = options
        self._start, self._actions = start, []
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        self._actions.append(np.asarray(action).tolist())
        return self.env.step(action)

    def get_env_state(self) -> dict[str, Any]:
        """``{"start": {"seed": int} | {"rng": bit-generator state}, "options", "actions": [...]}`` (JSON-able).

        Raises:
            RuntimeError: Before the first reset.
        """
        if self._start is None:
            raise RuntimeError("EnvStateRecorder: no episode started yet")
        return {"start": dict(self._start), "actions": list(self._actions)}

    def set_env_state(self, state: Mapping[str, Any]) -> Any:
        """Rebuild the episode ``state`` describes (see :meth:`get_env_state`); returns the current observation.

        Raises:
            ValueError, KeyError, TypeError: ``state`` is malformed.
        """
        start = dict(state["start"])
        options = start.get("options")
        seed = start.get("seed")
        if seed is None:
            self.env.unwrapped.np_random.bit_generator.state = start["rng"]
        obs, _ = self.reset(seed=None if seed is None else int(seed), options=options)
        if seed is None:
            self._start = start  # reset() recorded the state it had just been given; keep the original record
        space = self.action_space
        dtype = space.dtype if space.dtype is not None else None
        for action in state["actions"]:
            obs, *_ = self.step(np.asarray(action, dtype=dtype)[()])
        return obs


def slot_env(maker: Callable[[], gym.Env[Any, Any]], index: int) -> gym.Env[Any, Any]:
    """Env slot ``index``: ``EnvStateRecorder(CaptureEnvErrors(maker()))`` (module level: workers unpickle it).

    In a worker process SIGINT is ignored: Ctrl-C reaches the whole process group, and the parent's graceful stop
    (finish the rollout, checkpoint) needs its workers alive.
    """
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return EnvStateRecorder(CaptureEnvErrors(maker(), index=index))


def vectorise(
    makers: Sequence[Callable[[], gym.Env[Any, Any]]],
    *,
    kind: Literal["dummy", "subproc"],
    seed: int,
    first_index: int = 0,
) -> VecEnv:
    """A vector env over ``makers``, each slot wrapped by :func:`slot_env`, env ``i`` seeded ``seed + i``.

    ``subproc`` is :class:`~modrl.agents.common.guards.ReportingSubprocVecEnv` with SB3's default start method.
    ``first_index`` is the run's index of the first slot (a data-parallel training worker's share starts later).
    """
    slots = [partial(slot_env, maker, first_index + index) for index, maker in enumerate(makers)]
    venv: VecEnv = DummyVecEnv(slots) if kind == "dummy" else ReportingSubprocVecEnv(slots)  # type: ignore[arg-type]
    venv.seed(seed)
    return venv


# ------------------------------------------------------------------------------------- SB3 state around the envs


def _scalar_to_json(value: Any) -> Any:
    """A logger/episode-info scalar as JSON; non-finite floats become ``{"float": "nan"}`` (JSON has no NaN)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else {"float": repr(number)}
    if isinstance(value, str):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__} value ({value!r})")


def _scalar_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        return float(value["float"])
    return value


def _obs_tensors(obs: Any) -> dict[str, Tensor]:
    if isinstance(obs, dict):
        return {f"obs.{key}": torch.from_numpy(np.ascontiguousarray(value)) for key, value in obs.items()}
    return {"obs": torch.from_numpy(np.ascontiguousarray(obs))}


def _obs_from_tensors(tensors: Mapping[str, Tensor]) -> Any:
    if "obs" in tensors:
        return tensors["obs"].numpy().copy()
    return {key[len("obs.") :]: value.numpy().copy() for key, value in tensors.items() if key.startswith("obs.")}


def capture_resume_state(
    model: OnPolicyAlgorithm, callbacks: Mapping[str, StatefulCallback]
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """What an exact resume needs beyond weights, optimizer, RNG and counters (see the module docstring).

    Returns:
        ``tensors`` (``obs.<key>`` ``(n_envs, *space shape)``, ``episode_starts`` ``(n_envs,) bool``) and
        JSON-able ``data``.

    Raises:
        RuntimeError: Training has not started (no last observation).
        TypeError: A logger or episode-info value that cannot be stored.
    """
    venv = model.get_env()
    if venv is None or model._last_obs is None or model._last_episode_starts is None:
        raise RuntimeError("no rollout state to capture: training has not started")
    tensors = _obs_tensors(model._last_obs)
    tensors["episode_starts"] = torch.from_numpy(np.asarray(model._last_episode_starts, dtype=bool).copy())
    logger = model.logger
    data = {
        "format": RESUME_FORMAT,
        "envs": venv.env_method("get_env_state"),
        "ep_info_buffer": [{k: _scalar_to_json(v) for k, v in info.items()} for info in model.ep_info_buffer or ()],
        "ep_success_buffer": [_scalar_to_json(v) for v in model.ep_success_buffer or ()],
        "episode_num": int(model._episode_num),
        "progress_remaining": _scalar_to_json(model._current_progress_remaining),
        "logger": {
            "values": {k: _scalar_to_json(v) for k, v in logger.name_to_value.items()},
            "excluded": {k: list(v) for k, v in logger.name_to_excluded.items() if k in logger.name_to_value},
        },
        "callbacks": {name: callback.state_dict() for name, callback in callbacks.items()},
    }
    return tensors, data


def restore_resume_state(
    model: OnPolicyAlgorithm,
    tensors: Mapping[str, Tensor],
    data: Mapping[str, Any],
    callbacks: Mapping[str, StatefulCallback],
) -> None:
    """Put the envs, SB3's rollout bookkeeping and the callbacks back where :func:`capture_resume_state` saw them.

    The model's logger must be set first (pending logger values are restored into it).

    Raises:
        CheckpointError: Malformed state, a different number of envs, or an env that did not replay to the
            checkpointed observation.
    """
    venv = model.get_env()
    assert venv is not None
    try:
        if data.get("format") != RESUME_FORMAT:
            raise ValueError(f"unknown resume format {data.get('format')!r}")
        envs = list(data["envs"])
        if len(envs) != venv.num_envs:
            raise ValueError(f"checkpoint has {len(envs)} envs, the config makes {venv.num_envs}")
        last_obs = _obs_from_tensors(tensors)
        starts = tensors["episode_starts"].numpy().astype(bool).copy()
        venv.reset()  # consumes the seeds a fresh vector env carries, as the original run's first reset did
        for index, state in enumerate(envs):
            replayed = venv.env_method("set_env_state", state, indices=[index])[0]
            _check_replay(index, replayed, last_obs)
        model._last_obs = last_obs
        model._last_episode_starts = starts
        window = model._stats_window_size
        model.ep_info_buffer = deque(
            ({k: _scalar_from_json(v) for k, v in info.items()} for info in data["ep_info_buffer"]), maxlen=window
        )
        model.ep_success_buffer = deque((_scalar_from_json(v) for v in data["ep_success_buffer"]), maxlen=window)
        model._episode_num = int(data["episode_num"])
        model._current_progress_remaining = float(_scalar_from_json(data["progress_remaining"]))
        for key, value in data["logger"]["values"].items():
            model.logger.name_to_value[key] = _scalar_from_json(value)
        for key, excluded in data["logger"]["excluded"].items():
            model.logger.name_to_excluded[key] = tuple(excluded)
        for name, callback in callbacks.items():
            callback.load_state_dict(data["callbacks"][name])
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"resume state cannot be restored: {exc!r}") from None


def _check_replay(index: int, replayed: Any, last_obs: Any) -> None:
    if isinstance(last_obs, dict):
        same = all(np.array_equal(np.asarray(replayed[key]), last_obs[key][index]) for key in last_obs)
    else:
        same = np.array_equal(np.asarray(replayed), last_obs[index])
    if not same:
        raise CheckpointError(
            f"env {index} did not replay to the checkpointed observation (an env that is not deterministic given "
            "its RNG?); refusing an inexact resume"
        )
