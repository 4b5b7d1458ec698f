"""The batched MiniGrid engine (:mod:`modrl.envs.fast`) as an SB3 ``VecEnv``, and the ``env.engine`` switch.

:class:`FastVecEnv` steps every slot of a suite with one :class:`~modrl.envs.fast.BatchedMiniGrid` call and hands
SB3 what :func:`modrl.agents.common.builders.make_vec_env` hands it on MiniGrid (``DummyVecEnv`` over
``EnvStateRecorder(CaptureEnvErrors(Monitor(make_suite_env(...))))``), value for value:

* observations ``{"image", "direction", "task"}`` (+ ``"mission"`` with ``env.mission_tokens``) with the dtypes of
  ``DummyVecEnv``'s buffers, rewards ``float32``, dones;
* ``info["task"]`` on every step and ``info["is_success"]`` at an episode's end (:class:`~modrl.envs.SuccessInfo`),
  for a generated task (:class:`~modrl.envs.TaskEnv`) ``info["mission"]``, ``"sketch"``, ``"events"`` and
  ``"subtask_index"`` too, but not ``"predicates"`` (the planner's symbolic state: nothing in training reads it,
  and computing it is about a fifth of a MiniGrid task step's CPU time);
  Monitor's ``info["episode"] = {"r", "l", "t"}`` (what SB3's ``ep_info_buffer`` and modrl's ``EpisodeStatsCallback``
  read), ``info["TimeLimit.truncated"]`` and ``info["terminal_observation"]`` (SB3 bootstraps time-outs from it);
* seeding: slot ``i`` reset with ``seed + i`` by the first ``reset`` after :meth:`seed` (SB3's ``VecEnv.seed``);
* exact resume through ``env_method("get_env_state")`` / ``env_method("set_env_state", state, indices=[i])``, the
  protocol of :func:`~modrl.agents.common.env_state.capture_resume_state`, in the format of
  :class:`~modrl.agents.common.env_state.EnvStateRecorder` (how the episode started, the actions since);
* the ``env-step`` fault point per slot, reported like :class:`~modrl.agents.common.guards.CaptureEnvErrors`.

* ``env.split``: every slot a :class:`~modrl.envs.SplitTaskEnv` of a generated suite (the task, its id, name and
  mission drawn per episode, from the split env's RNG as its ``reset`` draws them);
* ``env.event_reward``: :class:`~modrl.envs.wrappers.SubtaskEventReward`'s bonus per completed subtask added to the
  reward (and to Monitor's episode return), ``is_success`` read from the unshaped reward, as there.

Written against stable-baselines3 2.9 (``VecEnv``'s abstract methods; ``DummyVecEnv``'s buffers and info keys).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from modrl.agents.common.config import ExperimentConfig
from modrl.agents.common.config_checks import fast_engine_reason
from modrl.agents.common.guards import ENV_ERROR_KEY
from modrl.config import ConfigError
from modrl.envs import (
    MissionTokens,
    SuccessInfo,
    TaskEnv,
    TaskObservation,
    get_suite,
    make_split_env,
    make_suite_env,
    task_for_env_index,
)
from modrl.envs.fast import BatchedMiniGrid
from modrl.envs.fast.coverage import find_wrapper, first_task_env, task_env_reason
from modrl.faults import fault_point, faults_armed

log = logging.getLogger(__name__)

Engine = Literal["minigrid", "fast"]


class FastVecEnv(VecEnv):
    """All slots of a suite in one :class:`~modrl.envs.fast.BatchedMiniGrid`, as an SB3 ``VecEnv``.

    Args:
        envs: One env per slot as :func:`modrl.envs.make_suite_env` (or, for a split,
            :func:`modrl.envs.make_split_env`) builds it, each covered
            (:func:`modrl.envs.fast.coverage.task_env_reason`). Each slot's MiniGrid env draws that slot's layouts
            (its RNG, seeding and ``_gen_grid``); the wrappers give the spaces, the task id and name, and the mission
            vocabulary.
        event_reward: :class:`~modrl.envs.wrappers.SubtaskEventReward`'s ``bonus`` (0: no shaping).
        first_slot: The run's index of slot 0 (a data-parallel training worker's share starts later); it names the
            slots at the ``env-step`` fault point.

    Raises:
        ValueError: An env that is not covered (the message names the slot and the reason), or spaces that differ.
    """

    def __init__(self, envs: Sequence[gym.Env], *, event_reward: float = 0.0, first_slot: int = 0) -> None:
        for index, env in enumerate(envs):
            reason = task_env_reason(env)
            if reason is not None:
                raise ValueError(f"env {index}: not covered by the fast engine: {reason}")
            if env.observation_space != envs[0].observation_space or env.action_space != envs[0].action_space:
                raise ValueError(f"env {index}: spaces differ from env 0's")
        self.envs = list(envs)
        super().__init__(len(envs), envs[0].observation_space, envs[0].action_space)
        self.engine = BatchedMiniGrid(self.envs)
        self.event_reward = float(event_reward)
        self.first_slot = first_slot
        self.keys = list(self.observation_space.spaces)  # type: ignore[attr-defined]
        self._known: dict[gym.Env, tuple[int, dict[str, Any], tuple[str, ...]]] = {}  # see _episode_started
        self._task = np.zeros(self.num_envs, np.int64)
        self._infos: list[dict[str, Any]] = [{} for _ in envs]  # each slot's episode's constant info keys
        self._symbols: list[tuple[str, ...]] = [() for _ in envs]
        for slot in range(self.num_envs):
            self._task[slot], self._infos[slot], self._symbols[slot] = self._describe(first_task_env(envs[slot]))
        tokens = find_wrapper(first_task_env(envs[0]), MissionTokens)
        self._vocabulary = None if tokens is None else (tokens.vocabulary, tokens.max_len)
        self._encoded: dict[str, np.ndarray] = {}
        self._mission = np.zeros((self.num_envs, 0 if tokens is None else tokens.max_len), np.int64)
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, np.int64)
        self._actions: list[list[int]] = [[] for _ in envs]
        self._last_obs: dict[str, np.ndarray] | None = None
        self._pending: np.ndarray | None = None
        self._t_start = time.time()  # Monitor's episode time "t" counts from here

    # ------------------------------------------------------------------------------------------------ stepping

    def reset(self) -> VecEnvObs:
        """Start every slot's episode: with the seeds :meth:`seed` set (used once), else continuing its RNG."""
        image, direction = self.engine.reset(self._seeds)
        for slot in range(self.num_envs):
            self._episode_started(slot)
        self.reset_infos = [self._info(slot, 0, 0, step=False) for slot in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return self._observe(image, direction)

    def step_async(self, actions: np.ndarray) -> None:
        self._pending = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        assert self._pending is not None and self._last_obs is not None, "reset() first"
        actions = self._pending.reshape(self.num_envs).astype(np.int64)
        errors = self._faults()
        if errors:  # as CaptureEnvErrors: the last observation, reward 0, not done; the guard stops training
            infos: list[dict[str, Any]] = [{**info, "TimeLimit.truncated": False} for info in self._infos]
            for slot, error in errors.items():
                infos[slot][ENV_ERROR_KEY] = error
            obs = {key: value.copy() for key, value in self._last_obs.items()}
            return obs, np.zeros(self.num_envs, np.float32), np.zeros(self.num_envs, bool), infos
        out = self.engine.step(actions)
        for history, action in zip(self._actions, actions.tolist(), strict=True):
            history.append(action)
        reward = out.reward + self.event_reward * out.events if self.event_reward else out.reward
        self._returns += reward
        self._lengths += 1
        dones = out.terminated | out.truncated
        infos = [
            self._info(slot, int(index), int(events))
            for slot, (index, events) in enumerate(zip(out.subtask_index.tolist(), out.events.tolist(), strict=True))
        ]
        for slot in np.flatnonzero(dones).tolist():
            terminated = bool(out.terminated[slot])
            info = infos[slot]
            info["is_success"] = terminated and float(out.reward[slot]) > 0
            info["episode"] = {
                "r": round(float(self._returns[slot]), 6),
                "l": int(self._lengths[slot]),
                "t": round(time.time() - self._t_start, 6),
            }
            info["TimeLimit.truncated"] = bool(out.truncated[slot]) and not terminated
            info["terminal_observation"] = self._slot_obs(slot, out.final_image[slot], out.final_direction[slot])
            self._episode_started(slot)
        return self._observe(out.image, out.direction), reward.astype(np.float32), dones, infos

    def _info(self, slot: int, index: int, events: int, *, step: bool = True) -> dict[str, Any]:
        """Slot ``slot``'s step info before the episode-end keys (reset info with ``step=False``): the task name and,
        for a task episode, what :class:`~modrl.envs.TaskEnv` adds (``events``: the ``events`` subtasks completed
        before ``index``)."""
        info = {**self._infos[slot], "TimeLimit.truncated": False} if step else dict(self._infos[slot])
        if self._symbols[slot]:
            info["events"] = list(self._symbols[slot][index - events : index])
            info["subtask_index"] = index
        return info

    def _describe(self, env: gym.Env) -> tuple[int, dict[str, Any], tuple[str, ...]]:
        """``(task id, constant info keys, subtask symbols)`` of an episode of the wrapped task env ``env``."""
        known = self._known.get(env)
        if known is None:
            base = env.unwrapped
            info: dict[str, Any] = {"task": find_wrapper(env, SuccessInfo).task_name}
            symbols: tuple[str, ...] = ()
            if isinstance(base, TaskEnv):
                info = {"mission": "", "sketch": base.task.sketch, **info}
                symbols = tuple(s.symbol for s in base.task.subtasks)
            known = self._known[env] = (find_wrapper(env, TaskObservation).task_id, info, symbols)
        return known

    def _faults(self) -> dict[int, str]:
        """The ``env-step`` fault point of every slot; ``{slot: traceback}`` of those that raised."""
        errors: dict[int, str] = {}
        if not faults_armed():
            return errors
        for slot in range(self.num_envs):
            try:
                fault_point("env-step", index=self.first_slot + slot)
            except Exception:
                errors[slot] = traceback.format_exc()
        return errors

    def _episode_started(self, slot: int) -> None:
        self._returns[slot] = 0.0
        self._lengths[slot] = 0
        self._actions[slot] = []
        self._task[slot], info, self._symbols[slot] = self._describe(self.engine.episode_envs[slot])
        self._infos[slot] = {**info, "mission": self.engine.missions[slot]} if "mission" in info else info
        if self._vocabulary is not None:
            mission = self.engine.missions[slot]
            encoded = self._encoded.get(mission)
            if encoded is None:
                encoded = self._encoded[mission] = self._vocabulary[0].encode(mission, self._vocabulary[1])
            self._mission[slot] = encoded

    def _observe(self, image: np.ndarray, direction: np.ndarray) -> dict[str, np.ndarray]:
        """The batch observation (``DummyVecEnv``'s dtypes, the space's key order); kept for fault steps."""
        values = {"image": image, "direction": direction, "task": self._task.copy(), "mission": self._mission.copy()}
        self._last_obs = {key: values[key] for key in self.keys}
        return {key: value.copy() for key, value in self._last_obs.items()}

    def _slot_obs(self, slot: int, image: np.ndarray, direction: Any) -> dict[str, Any]:
        """One slot's observation as its wrapped env returns it, in its key order (``terminal_observation``,
        :meth:`set_env_state`), the mission being the one of the episode the observation belongs to."""
        values = {"image": image, "direction": int(direction), "task": int(self._task[slot])}
        if self._vocabulary is not None:
            values["mission"] = self._mission[slot].copy()
        return values

    # ------------------------------------------------------------------------------------------- exact resume

    def get_env_state(self, slot: int) -> dict[str, Any]:
        """Slot ``slot``'s episode as :meth:`EnvStateRecorder.get_env_state` gives it: ``{"start": {"seed": s} |
        {"rng": state}, "options": None}, "actions": [...]}`` (JSON-able)."""
        return {"start": {**self.engine.starts[slot], "options": None}, "actions": list(self._actions[slot])}

    def set_env_state(self, slot: int, state: dict[str, Any]) -> dict[str, Any]:
        """Rebuild slot ``slot``'s episode from :meth:`get_env_state`'s record: reseed (or set the slot env's RNG to
        the recorded state), draw the layout, replay the actions on a one-slot engine over the same env, copy that
        slot in. Returns the slot's observation; the episode's return and length count the replayed steps.

        Raises:
            KeyError, TypeError, ValueError: ``state`` is malformed.
        """
        start = dict(state["start"])
        seed = start.get("seed")
        env = self.engine.envs[slot]
        if seed is None:
            env.np_random.bit_generator.state = start["rng"]
        replay = BatchedMiniGrid([self.engine.sources[slot]])  # the wrapped env: the episode env of a task slot
        replay.reset([None if seed is None else int(seed)])
        replay.starts[0] = {key: value for key, value in start.items() if key != "options"}
        actions = [int(a) for a in state["actions"]]
        total = 0.0
        for action in actions:
            out = replay.step(np.array([action], np.int64))
            total += float(out.reward[0]) + self.event_reward * int(out.events[0])
        self.engine.copy_slot(slot, replay, 0)
        self._episode_started(slot)
        self._returns[slot], self._lengths[slot], self._actions[slot] = total, len(actions), actions
        image, direction = self.engine.observe(np.array([slot]))
        assert self._last_obs is not None, "reset() first"
        self._last_obs["image"][slot], self._last_obs["direction"][slot] = image[0], direction[0]
        if self._vocabulary is not None:
            self._last_obs["mission"][slot] = self._mission[slot]
        return self._slot_obs(slot, image[0], direction[0])

    # ------------------------------------------------------------------------------------------ VecEnv plumbing

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kwargs: Any) -> list:
        """``get_env_state`` / ``set_env_state`` per slot (the exact-resume protocol); nothing else.

        Raises:
            AttributeError: Another method name.
        """
        methods: dict[str, Callable[..., Any]] = {
            "get_env_state": self.get_env_state,
            "set_env_state": self.set_env_state,
        }
        if method_name not in methods:
            raise AttributeError(f"FastVecEnv has no env method {method_name!r}; it has {', '.join(methods)}")
        return [methods[method_name](slot, *method_args, **kwargs) for slot in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Attributes of the slots' wrapped envs (spaces, ``render_mode``, ``task_name`` ...). Their MiniGrid envs
        only draw layouts: live state (agent position, grid) is the engine's, not theirs."""
        return [self.envs[i].get_wrapper_attr(attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Refused: the slots' envs do not step, so an attribute set on them would not change the episodes."""
        raise AttributeError(f"FastVecEnv cannot set {attr_name!r}: its envs are stepped by the batched engine")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Whether the slots' envs are wrapped in ``wrapper_class`` (never SB3's ``Monitor``: this class does its
        bookkeeping itself)."""
        return [is_wrapped(self.envs[i], wrapper_class) for i in self._get_indices(indices)]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def check_fast_engine(config: ExperimentConfig) -> None:
    """Refuse a config the fast engine does not cover.

    Raises:
        ConfigError: One line naming the suite and the task (and why) or the setting.
    """
    reason = fast_engine_reason(config.env)
    if reason is not None:
        raise ConfigError(f"env.engine: fast cannot run suite {config.env.suite} ({reason}); use minigrid or auto")


def select_engine(config: ExperimentConfig) -> Engine:
    """The engine ``config.env.engine`` means for this config: ``fast`` or ``minigrid``.

    ``auto`` is ``fast`` when the fast engine covers every task of the suite under this config, else ``minigrid``
    with one log line naming the suite and why.

    Raises:
        ConfigError: ``fast`` for a config the fast engine does not cover (one line naming the task or setting).
    """
    wanted = config.env.engine
    if wanted == "minigrid":
        return "minigrid"
    if wanted == "fast":
        check_fast_engine(config)
        return "fast"
    reason = fast_engine_reason(config.env)
    if reason is None:
        return "fast"
    log.info("env.engine auto: suite %s uses MiniGrid (%s)", config.env.suite, reason)
    return "minigrid"


def make_fast_vec_env(config: ExperimentConfig, *, slots: range | None = None) -> FastVecEnv:
    """The :class:`FastVecEnv` of ``config`` (slot ``i`` runs task ``i mod T``, or with ``env.split`` a task of the
    split drawn per episode), seeded ``config.seed + i``; ``slots`` (default: every slot) builds only those."""
    suite = get_suite(config.env.suite)
    split = config.env.split
    options = config.env.suite_env_kwargs(training=True)
    slots = range(config.env.n_envs) if slots is None else slots
    envs: list[gym.Env]
    if split is None:
        tasks = [task_for_env_index(i, suite.num_tasks) for i in slots]
        envs = [make_suite_env(suite, task, **options) for task in tasks]
    else:
        envs = [make_split_env(suite, split, **options) for _ in slots]
    venv = FastVecEnv(envs, event_reward=config.env.event_reward, first_slot=slots.start)
    venv.seed(config.seed + slots.start)
    return venv
