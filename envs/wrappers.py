"""Stable-Baselines3-ready MiniGrid wrappers and the factory that builds one task of a suite.

``make_task_env`` returns ``gym.make(env_id) -> SuccessInfo -> TaskObservation``: observations are a ``Dict`` of the
egocentric ``image``, the agent ``direction`` and the integer ``task`` id (the text mission is dropped, SB3 rejects
text spaces), and ``info`` carries ``is_success`` when an episode ends and the task name on every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import minigrid  # noqa: F401  (importing minigrid registers the MiniGrid-* gymnasium ids)
import numpy as np
from gymnasium import spaces
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

from modrl.config import (
    MAX_EPISODE_STEPS,
    MAX_GRID_SIDE,
    MAX_VIEW_SIZE,
    ConfigError,
    check,
    check_bool,
    check_int,
    short_repr,
)
from modrl.envs.minigrid_kwargs import check_minigrid_kwargs
from modrl.envs.predicates import find_object
from modrl.envs.suites import Suite, get_suite

IMAGE_HIGH: np.ndarray = np.array(
    [max(OBJECT_TO_IDX.values()), max(COLOR_TO_IDX.values()), max(STATE_TO_IDX.values())], dtype=np.uint8
)
"""``(3,) uint8``: the largest category index per image channel (object type, colour, state).

In MiniGrid's partial view the agent's own cell shows what it carries (or nothing), never the agent, so the state
channel only holds door states (open/closed/locked), not the agent direction.
"""
IMAGE_HIGH.setflags(write=False)
MARKED_IMAGE_HIGH: np.ndarray = np.append(IMAGE_HIGH, np.uint8(2))
"""``(4,) uint8``: :data:`IMAGE_HIGH` and the target-marker channel of a :func:`full_view_image` with ``marker`` (0:
unmarked, 1: the step's object, 2: its second object, e.g. where ``putnext`` puts the first)."""
MARKED_IMAGE_HIGH.setflags(write=False)

#: Most tasks a suite's task id may range over (the ``task`` space of :class:`TaskObservation`).
MAX_TASKS = 100_000

Target = tuple[str, str]
"""An object as the planner names it: ``(type, name)``, e.g. ``("door", "red@3_4")`` or ``("key", "blue")``."""


class TaskObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace MiniGrid's observation by ``{"image", "direction", "task"}``, all spaces SB3 accepts.

    The ``image`` space is ``Box(0, IMAGE_HIGH, (view, view, 3), uint8)``. Its high is the category maximum, not 255,
    on purpose: the values are category indices, not pixels. SB3 treats a ``uint8`` Box as an image only when its
    bounds are exactly [0, 255], so with these bounds it neither divides by 255 nor transposes to channels-first;
    feature extractors see the raw indices (embed them, or one-hot them). SB3's ``check_env`` warns about this; the
    warning is expected.

    Observation:
        image: ``(view, view, 3) uint8`` category indices (object, colour, state).
        direction: ``int`` in ``[0, 4)``, the agent's heading (0 = right, 1 = down, 2 = left, 3 = up).
        task: ``int`` in ``[0, num_tasks)``, the constant ``task_id`` of this env.

    Args:
        env: A MiniGrid env (possibly wrapped) whose observation space is a ``Dict`` with ``image`` and
            ``direction``.
        task_id: The id reported in every observation.
        num_tasks: Size of the ``task`` space; the same for every task of a suite so vector envs can mix tasks.
    """

    def __init__(self, env: gym.Env, *, task_id: int, num_tasks: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, task_id=task_id, num_tasks=num_tasks)
        gym.ObservationWrapper.__init__(self, env)
        check_int(num_tasks, "num_tasks", low=1, high=MAX_TASKS)
        check(
            isinstance(task_id, int) and not isinstance(task_id, bool) and 0 <= task_id < num_tasks,
            "task_id",
            f"must be an integer in [0, {num_tasks}), got {task_id!r}",
        )
        inner = env.observation_space
        if not isinstance(inner, spaces.Dict) or "image" not in inner.spaces or "direction" not in inner.spaces:
            raise TypeError(
                f"TaskObservation needs a MiniGrid Dict observation with 'image' and 'direction', got {inner}"
            )
        shape = inner["image"].shape
        if shape is None or len(shape) != 3 or shape[0] != shape[1] or shape[2] != 3:
            raise TypeError(f"TaskObservation needs a (view, view, 3) image, got shape {shape}")
        high = np.broadcast_to(IMAGE_HIGH, shape).copy()
        self.task_id = task_id
        self.num_tasks = num_tasks
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(low=0, high=high, shape=shape, dtype=np.uint8),
                "direction": spaces.Discrete(4),
                "task": spaces.Discrete(num_tasks),
            }
        )

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Keep image and direction, add the task id, drop the mission."""
        return {
            "image": observation["image"],
            "direction": int(observation["direction"]),
            "task": self.task_id,
        }


def minigrid_env(env: gym.Env) -> Any:
    """The MiniGrid env under ``env``'s wrappers: ``env.unwrapped``, or for a multi-task env that switches tasks per
    episode (:class:`modrl.envs.SplitTaskEnv`, which has a ``current_env``) the current task's."""
    base = env.unwrapped
    current = getattr(base, "current_env", None)
    return base if current is None else current.unwrapped


def full_view_image(
    base: Any, size: int, *, marker: bool = False, targets: Sequence[Target] = (), known: np.ndarray | None = None
) -> np.ndarray:
    """``(size, size, 3) uint8``: the whole grid as category indices, centred on the agent and turned so that it faces
    up, like MiniGrid's egocentric view but with nothing hidden (walls and closed doors occlude nothing) and the agent
    in the middle, at ``(size // 2, size // 2)``, instead of at the bottom. That cell shows what the agent carries, as
    in MiniGrid's view; cells beyond the grid are 0 (unseen). ``base`` is an unwrapped MiniGrid env.

    With ``marker`` a fourth channel (``(size, size, 4)``, maxima :data:`MARKED_IMAGE_HIGH`) is ``i + 1`` on the cell
    of ``targets[i]`` (at most two; :func:`modrl.envs.predicates.find_object`, the agent's cell while it carries it)
    and 0 elsewhere -- how a skill option is told *which* object the planner means (one of two red doors, a box it
    never opened).

    Privileged, like the planner's symbolic state: an option that reads it needs no memory to find an object in
    another room. A grid wider than ``size // 2`` cells on either side of the agent is cut at the border.

    ``base`` may also be the own-view map (:class:`modrl.envs.own_view.OwnViewMap`: a grid, the pose, what is carried)
    with ``known`` its ``(W, H)`` mask of the cells seen: the cells not seen are then 0 (unseen), as beyond the grid.
    """
    half = size // 2
    grid = base.grid.encode()  # (W, H, 3), indexed [x, y]
    if known is not None:
        grid[~known] = 0
    width, height = grid.shape[:2]
    depth = 4 if marker else 3
    padded = np.zeros((width + 2 * half, height + 2 * half, depth), np.uint8)
    padded[half : half + width, half : half + height, :3] = grid
    check(len(targets) <= int(MARKED_IMAGE_HIGH[3]), "targets", f"marks at most two objects, got {len(targets)}")
    for value, target in reversed(list(enumerate(targets if marker else (), start=1))):
        where = find_object(base, *target, carried=True)
        if where is not None:
            padded[half + where[0], half + where[1], 3] = value
    x, y = int(base.agent_pos[0]), int(base.agent_pos[1])
    crop = padded[x : x + size, y : y + size].copy()
    carried = base.carrying
    crop[half, half, :3] = carried.encode() if carried is not None else (OBJECT_TO_IDX["empty"], 0, 0)
    return np.ascontiguousarray(np.rot90(crop, (3 - int(base.agent_dir)) % 4, axes=(0, 1)))


def current_observation(
    base: Any, view_size: int | None, *, marker: bool = False, targets: Sequence[Target] = ()
) -> dict[str, Any]:
    """The observation of an unwrapped MiniGrid env now (``gen_obs()``), with the :func:`full_view_image` of side
    ``view_size`` (and ``marker`` / ``targets``) as its image when one is given -- what an option trained on that view
    sees (e.g. after skills that stepped the env without handing their observations on)."""
    obs = base.gen_obs()
    return (
        obs if view_size is None else {**obs, "image": full_view_image(base, view_size, marker=marker, targets=targets)}
    )


class FullView(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace a MiniGrid observation's ``image`` by :func:`full_view_image` (``(size, size, 3)``, ``size`` odd);
    the other keys are kept. MiniGrid's 7x7 view is the sub-block ``[h-3 : h+4, h-6 : h+1]`` (``h = size // 2``) of it,
    wherever MiniGrid's view is not occluded. With ``marker`` the image has the target-marker channel
    (``(size, size, 4)``); set :attr:`targets` to the objects to mark (none: no mark)."""

    def __init__(self, env: gym.Env, *, size: int, marker: bool = False) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, size=size, marker=marker)
        gym.ObservationWrapper.__init__(self, env)
        check(
            isinstance(size, int) and not isinstance(size, bool) and 7 <= size <= MAX_VIEW_SIZE and size % 2 == 1,
            "size",
            f"must be an odd integer in [7, {MAX_VIEW_SIZE}], got {short_repr(size)}",
        )
        check_bool(marker, "marker")
        inner = env.observation_space
        if not isinstance(inner, spaces.Dict) or "image" not in inner.spaces:
            raise TypeError(f"FullView needs a MiniGrid Dict observation with 'image', got {inner}")
        self.size, self.marker = size, marker
        #: The objects the marker channel shows (``marker`` only).
        self.targets: Sequence[Target] = ()
        high = MARKED_IMAGE_HIGH if marker else IMAGE_HIGH
        shape = (size, size, len(high))
        self.observation_space = spaces.Dict(
            {**inner.spaces, "image": spaces.Box(0, np.broadcast_to(high, shape).copy(), shape, np.uint8)}
        )

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """The observation with the full-view image."""
        return {
            **observation,
            "image": full_view_image(minigrid_env(self.env), self.size, marker=self.marker, targets=self.targets),
        }


class SuccessInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Report success in ``info`` the way SB3 reads it, and name the task on every step.

    On the step an episode ends (terminated or truncated) ``info["is_success"]`` is ``terminated and reward > 0``
    (MiniGrid pays a positive reward only for reaching the goal; lava and time-outs pay 0). ``info["task"]`` is the
    task name after every ``reset`` and ``step``.

    Both wrappers record their constructor arguments, so ``gymnasium.make(env.spec)`` rebuilds the wrapped env.

    Args:
        env: Any env with MiniGrid's reward convention.
        task_name: The name put in ``info["task"]``.
    """

    def __init__(self, env: gym.Env, *, task_name: str) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, task_name=task_name)
        gym.Wrapper.__init__(self, env)
        self.task_name = task_name

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env; ``info["task"]`` names the task."""
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {**info, "task": self.task_name}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env; adds ``info["task"]`` and, at the end of an episode, ``info["is_success"]``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "task": self.task_name}
        if terminated or truncated:
            info["is_success"] = bool(terminated and float(reward) > 0)
        return obs, reward, terminated, truncated, info


class SubtaskEventReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Training-time shaping from the suites' own event stream: ``bonus`` added to the reward for every subtask
    completed on a step (``info["events"]`` of :class:`~modrl.envs.task_env.TaskEnv` and the split envs over it).

    Each subtask of a task completes at most once per episode, so the bonus is bounded (``bonus x subtasks``) and
    cannot be farmed. Wrap it outside :class:`SuccessInfo` (success is read from the env's own reward) and use it for
    training only: evaluation scores the unshaped reward. Envs without events (the stock MiniGrid suites) are left
    unchanged.

    Args:
        env: The env to shape.
        bonus: Reward per completed subtask, in ``[0, 1]``.
    """

    def __init__(self, env: gym.Env, *, bonus: float) -> None:
        check(isinstance(bonus, (int, float)) and 0.0 <= bonus <= 1.0, "bonus", f"must be in [0, 1], got {bonus!r}")
        gym.utils.RecordConstructorArgs.__init__(self, bonus=bonus)
        gym.Wrapper.__init__(self, env)
        self.bonus = float(bonus)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env; the reward gains ``bonus`` per subtask in ``info["events"]``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        events = info.get("events") or ()
        return obs, float(reward) + self.bonus * len(events), terminated, truncated, info


#: (env id, repr of its keyword arguments) already made and reset once in this process (:func:`make_task_env`).
_PROBED: set[tuple[str, str]] = set()


def _make_checked(spec: Any, render_mode: str | None, kwargs: dict[str, Any]) -> gym.Env:
    """``gymnasium.make`` of a suite task, its failures from bad keyword arguments as one :class:`ConfigError` naming
    the task; a task with keyword arguments is reset once on a throwaway instance (the first time it is seen in this
    process) so that arguments its env cannot generate a grid from fail here, not in the first episode."""
    where = f"task {spec.name!r} ({spec.env_id}"
    try:
        check_minigrid_kwargs(kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}): {exc}") from None

    def make() -> gym.Env:
        try:
            env = gym.make(spec.env_id, render_mode=render_mode, **kwargs)
        except gym.error.Error as exc:
            raise ConfigError(f"{where}): {exc}") from None
        except (TypeError, ValueError, AssertionError) as exc:  # the env's constructor refused an argument
            raise ConfigError(f"{where} with {short_repr(kwargs)}): {type(exc).__name__}: {exc}") from None
        base = env.unwrapped
        side = max(int(getattr(base, "width", 0) or 0), int(getattr(base, "height", 0) or 0))
        if side > MAX_GRID_SIDE:
            env.close()
            raise ConfigError(f"{where}): a grid of {side} cells a side, more than {MAX_GRID_SIDE}")
        return env

    key = (spec.env_id, short_repr(sorted(kwargs.items())))
    if spec.kwargs and key not in _PROBED:
        probe = make()
        try:
            probe.reset(seed=0)
        except Exception as exc:  # any failure to generate a grid is a bad argument
            raise ConfigError(
                f"{where} with {short_repr(kwargs)}): cannot start an episode ({type(exc).__name__}: {exc})"
            ) from None
        finally:
            probe.close()
        _PROBED.add(key)
    return make()


def make_task_env(
    suite: Suite | str,
    task_index: int,
    *,
    max_episode_steps: int | None = None,
    render_mode: str | None = None,
    strict: bool = False,
) -> gym.Env:
    """Build task ``task_index`` of ``suite``, wrapped for SB3.

    Args:
        suite: A :class:`Suite` or the name of a registered one.
        task_index: Task id, in ``[0, suite.num_tasks)``.
        max_episode_steps: Episode length limit; passed to MiniGrid as ``max_steps`` so that truncation and MiniGrid's
            time-discounted reward ``1 - 0.9 * steps / max_steps`` agree. ``None`` keeps the env's default.
        render_mode: Passed to ``gymnasium.make`` (``"rgb_array"`` for videos).
        strict: BabyAI's strict pick-up and open (:class:`~modrl.envs.task_env.TaskEnv`): a wrong pick-up or door
            fails the episode. Generated tasks only.

    Returns:
        ``gym.make(env_id, **kwargs) -> SuccessInfo -> TaskObservation(task_id=task_index, num_tasks=num_tasks)``.

    Raises:
        modrl.registry.UnknownNameError: Unknown suite name.
        modrl.config.ConfigError: ``task_index``, ``max_episode_steps`` or ``render_mode`` out of range, ``strict``
            for a task that is not a generated one, or the task's keyword arguments refused
            (:func:`check_minigrid_kwargs`, the env's constructor, or a first reset of a task with keyword arguments),
            naming the task.
    """
    check(isinstance(suite, (str, Suite)), "suite", f"must be a suite or its name, got {short_repr(suite)}")
    if isinstance(suite, str):
        suite = get_suite(suite)
    check(
        isinstance(task_index, int) and not isinstance(task_index, bool) and 0 <= task_index < suite.num_tasks,
        "task_index",
        f"must be in [0, {suite.num_tasks}) for suite {suite.name!r}, got {task_index!r}",
    )
    if max_episode_steps is not None:
        check_int(max_episode_steps, "max_episode_steps", low=1, high=MAX_EPISODE_STEPS)
    check(
        render_mode in (None, "rgb_array", "human"),
        "render_mode",
        f"must be null, rgb_array or human, got {short_repr(render_mode)}",
    )
    check_bool(strict, "strict")
    spec = suite.tasks[task_index]
    kwargs: dict[str, Any] = dict(spec.kwargs)
    if max_episode_steps is not None:
        kwargs["max_steps"] = max_episode_steps
    if strict:
        from modrl.envs.task_env import is_task_env  # lazy: task_env imports this module's checks

        check(
            is_task_env(spec.env_id),
            "strict",
            f"task {spec.name!r} ({spec.env_id}) is a stock MiniGrid env; strict pick-up and open are BabyAI "
            "instructions of the generated suites' tasks (colour-type, verb-object, sequences)",
        )
        kwargs["strict"] = True
    env = _make_checked(spec, render_mode, kwargs)
    env = SuccessInfo(env, task_name=spec.name)
    return TaskObservation(env, task_id=task_index, num_tasks=suite.num_tasks)


def task_for_env_index(env_index: int, num_tasks: int) -> int:
    """Task id of vectorised env slot ``env_index``: round robin, ``env_index % num_tasks``.

    With ``n_envs`` a multiple of ``num_tasks`` every task gets the same number of slots.
    """
    check(isinstance(num_tasks, int) and num_tasks >= 1, "num_tasks", f"must be an integer >= 1, got {num_tasks!r}")
    check(isinstance(env_index, int) and env_index >= 0, "env_index", f"must be an integer >= 0, got {env_index!r}")
    return env_index % num_tasks
