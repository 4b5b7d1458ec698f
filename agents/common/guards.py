"""Guards that stop training at the step a fault appears: non-finite values, env errors, dead env workers.

* :class:`NonFiniteGuard` (a callback, first in the list) checks every env step's observations, rewards and
  actions, and the observation training starts from; it also hooks the policy optimizer: a step *pre*-hook refuses
  non-finite gradients (a NaN/inf loss shows up there, before any parameter changes) and a step *post*-hook refuses
  non-finite parameters (an update that blew up by itself, e.g. an infinite learning rate). SB3's ``VecCheckNan``
  only watches the env, and by the time it fires on a bad loss the parameters are already NaN.
  The only policy is to stop: skipping an update cannot be made honest with these hooks (a skipped Adam step would
  still have to undo the gradient clipping, the moment estimates and the step counter), so there is no
  ``skip_update`` option.
* :class:`CaptureEnvErrors` (inside each env slot, so inside a subprocess worker) turns an exception in an env's
  ``step`` into ``info["modrl_env_error"]`` (the worker's traceback), which :class:`NonFiniteGuard` raises as
  :class:`EnvWorkerError` naming the env index, instead of killing the worker.
* :class:`ReportingSubprocVecEnv`: a worker that dies anyway (a crash in C code, ``os._exit``) or stops answering is
  reported by env index and exit code, and ``close`` always reaps every worker.

Each error raised here is caught by ``modrl train``: exit status 1, ``meta.json`` status ``failed`` with the message.
No checkpoint is written after the fault (checkpoints are only written at rollout starts and after ``learn``).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing.connection
import traceback
from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import SubprocVecEnv

from modrl.faults import fault_point

log = logging.getLogger(__name__)

ENV_ERROR_KEY = "modrl_env_error"
#: Seconds to wait for a worker's answer before calling it hung, and for a worker to exit on close.
WORKER_TIMEOUT_S = 600.0
CLOSE_TIMEOUT_S = 10.0


class NonFiniteError(RuntimeError):
    """A NaN or inf appeared; ``source`` is observation, reward, action, gradient or parameter.

    Attributes:
        source: Where it appeared.
        env_index: The env slot (``None`` for gradient/parameter).
        step: Env steps taken when it appeared (``model.num_timesteps``).
    """

    def __init__(self, source: str, *, env_index: int | None, step: int, detail: str = "") -> None:
        where = f" from env {env_index}" if env_index is not None else ""
        suffix = f": {detail}" if detail else ""
        super().__init__(f"non-finite {source}{where} at step {step}{suffix}; training stopped")
        self.source = source
        self.env_index = env_index
        self.step = step
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: a training worker reports it to the main process
        return _non_finite_error, (self.source, self.env_index, self.step, self.detail)


class EnvWorkerError(RuntimeError):
    """An env slot failed (an exception in its step, or its worker process died or hung); names the env index."""

    def __init__(self, env_index: int, message: str) -> None:
        super().__init__(f"env {env_index}: {message}")
        self.env_index = env_index
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return EnvWorkerError, (self.env_index, self.message)


def _non_finite_error(source: str, env_index: int | None, step: int, detail: str) -> NonFiniteError:
    return NonFiniteError(source, env_index=env_index, step=step, detail=detail)


class CaptureEnvErrors(gym.Wrapper[Any, Any, Any, Any]):
    """Report an exception in ``step`` through ``info`` (see the module docstring) instead of raising it.

    The step returns the last observation, reward 0 and not done, so the vector env stays consistent until the
    guard raises. Also the ``env-step`` fault point (:mod:`modrl.faults`).

    Args:
        env: The env of one slot.
        index: The slot's index in the vector env.
    """

    def __init__(self, env: gym.Env[Any, Any], *, index: int) -> None:
        super().__init__(env)
        self.index = index
        self._last_obs: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        try:
            fault_point("env-step", index=self.index)
            obs, reward, terminated, truncated, info = self.env.step(action)
        except Exception:
            return self._last_obs, 0.0, False, False, {ENV_ERROR_KEY: traceback.format_exc()}
        self._last_obs = obs
        return obs, reward, terminated, truncated, info


def _first_non_finite(values: Any) -> int | None:
    """Row (env index) of the first NaN/inf in a batch ``(n_envs, ...)`` or a dict of them; ``None`` if all finite."""
    arrays = values.values() if isinstance(values, dict) else [values]
    for array in arrays:
        array = np.asarray(array)
        if array.dtype.kind != "f" or np.isfinite(array).all():  # integer observations/actions cannot be NaN
            continue
        bad = ~np.isfinite(array.reshape(array.shape[0], -1)) if array.ndim else ~np.isfinite(array[None, None])
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            return int(rows[0])
    return None


def all_finite(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether no tensor of ``tensors`` (floating point, any shapes) holds a NaN or inf, in one pass over all of them.

    ``x * 0`` is 0 for every finite ``x`` and NaN for NaN or +-inf, so the sum of ``x * 0`` over every element is
    exactly 0 when all are finite and NaN otherwise (it cannot overflow, unlike a sum or norm of the values). On CPU
    this is several times faster than ``torch.isfinite(t).all()`` per tensor, which the optimizer hooks of
    :class:`NonFiniteGuard` would otherwise run twice per parameter on every SGD step.
    """
    if not tensors:
        return True
    with torch.no_grad():
        return bool(torch.cat([t.reshape(-1) for t in tensors]).mul_(0).sum() == 0)


class NonFiniteGuard(BaseCallback):
    """Stops training at the step a NaN/inf or an env error appears (see the module docstring)."""

    def __init__(self, *, env_offset: int = 0) -> None:
        super().__init__()
        self.env_offset = env_offset  # slot i is env ``env_offset + i`` in messages (a training worker's share)
        self._handles: list[Any] = []
        self._names: dict[int, str] = {}

    def _init_callback(self) -> None:
        policy = self.model.policy
        self._names = {id(p): name for name, p in policy.named_parameters()}
        optimizer = policy.optimizer
        self._handles = [
            optimizer.register_step_pre_hook(self._check_gradients),
            optimizer.register_step_post_hook(self._check_parameters),
        ]

    def _on_training_start(self) -> None:
        env_index = _first_non_finite(self.model._last_obs)
        if env_index is not None:
            raise NonFiniteError("observation", env_index=self.env_offset + env_index, step=self.model.num_timesteps)

    def _on_step(self) -> bool:
        step = self.num_timesteps
        for env_index, info in enumerate(self.locals["infos"]):
            if ENV_ERROR_KEY in info:
                raise EnvWorkerError(self.env_offset + env_index, f"step raised at step {step}:\n{info[ENV_ERROR_KEY]}")
        for source, key in (("observation", "new_obs"), ("reward", "rewards"), ("action", "actions")):
            bad_env = _first_non_finite(self.locals[key])
            if bad_env is not None:
                raise NonFiniteError(source, env_index=self.env_offset + bad_env, step=step)
        return True

    def _on_training_end(self) -> None:
        self.remove_hooks()

    def remove_hooks(self) -> None:
        """Detach the optimizer hooks (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _first_bad(self, tensors: Sequence[tuple[torch.nn.Parameter, torch.Tensor | None]]) -> str | None:
        present = [(param, tensor) for param, tensor in tensors if tensor is not None]
        if all_finite([tensor for _, tensor in present]):  # the common case: one check over every tensor
            return None
        for param, tensor in present:  # something is bad: name the first parameter
            if not bool(torch.isfinite(tensor).all()):
                return self._names.get(id(param), "?")
        return None

    def _params(self, optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
        return [p for group in optimizer.param_groups for p in group["params"]]

    def _check_gradients(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        bad = self._first_bad([(p, p.grad) for p in self._params(optimizer)])
        if bad is not None:
            raise NonFiniteError(
                "gradient",
                env_index=None,
                step=self.model.num_timesteps,
                detail=f"parameter {bad!r} after the loss's backward pass (non-finite loss?) in update "
                f"{self.model._n_updates + 1}; parameters left unchanged",
            )

    def _check_parameters(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        bad = self._first_bad([(p, p.data) for p in self._params(optimizer)])
        if bad is not None:
            raise NonFiniteError(
                "parameter",
                env_index=None,
                step=self.model.num_timesteps,
                detail=f"{bad!r} after optimizer step in update {self.model._n_updates + 1} (finite gradients: "
                "learning rate or optimizer state?)",
            )


class _WorkerConnection:
    """The parent's end of one worker pipe: answers within a timeout, or raises :class:`EnvWorkerError`."""

    def __init__(self, conn: multiprocessing.connection.Connection, index: int, exitcode: Callable[[], int | None]):
        self._conn = conn
        self._index = index
        self._exitcode = exitcode

    def send(self, obj: Any) -> None:
        try:
            self._conn.send(obj)
        except (BrokenPipeError, ConnectionError, EOFError):
            raise self._dead() from None

    def recv(self) -> Any:
        try:
            if not self._conn.poll(WORKER_TIMEOUT_S):
                raise EnvWorkerError(self._index, f"worker did not answer within {WORKER_TIMEOUT_S:.0f}s (hung?)")
            return self._conn.recv()
        except (EOFError, ConnectionError):
            raise self._dead() from None

    def close(self) -> None:
        self._conn.close()

    def _dead(self) -> EnvWorkerError:
        code = self._exitcode()
        how = "is gone" if code is None else (f"was killed by signal {-code}" if code < 0 else f"exited with {code}")
        return EnvWorkerError(self._index, f"worker process {how} (its traceback, if any, is in the log above)")


class ReportingSubprocVecEnv(SubprocVecEnv):
    """SB3 2.9.2's ``SubprocVecEnv`` with failures named by env index and a ``close`` that always reaps.

    SB3's class raises a bare ``EOFError`` when a worker dies, waits forever on a hung one, and its ``close``
    raises (leaving processes behind) when a worker is already dead. Here each pipe end is wrapped (timeout, env
    index, exit code) and ``close`` joins every worker with a timeout, killing what does not exit.
    """

    def __init__(self, env_fns: list[Callable[[], gym.Env[Any, Any]]], start_method: str | None = None) -> None:
        super().__init__(env_fns, start_method=start_method)
        self.remotes = [
            _WorkerConnection(remote, index, lambda p=process: _exitcode(p))  # type: ignore[misc]
            for index, (remote, process) in enumerate(zip(self.remotes, self.processes, strict=True))
        ]

    def close(self) -> None:
        if self.closed:
            return
        for remote in self.remotes:
            with contextlib.suppress(EnvWorkerError, OSError):
                remote.send(("close", None))
        for process in self.processes:
            process.join(CLOSE_TIMEOUT_S)
            if process.is_alive():
                log.warning("env worker %s did not exit; killing it", process.pid)
                process.kill()
                process.join()
        for remote in self.remotes:
            remote.close()
        self.closed = True
        self.waiting = False


def _exitcode(process: Any) -> int | None:
    process.join(CLOSE_TIMEOUT_S)
    return process.exitcode
