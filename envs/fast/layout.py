"""MiniGrid layouts as arrays: which envs the batched engine covers, and a layout drawn by MiniGrid's own generator.

The engine does not re-implement any ``_gen_grid``: :func:`generate` runs the env's own generator with the env's own
RNG, exactly as ``MiniGridEnv.reset`` does (minus the observation, which the engine computes itself), and
:func:`encode_layout` turns the resulting :class:`~minigrid.core.grid.Grid` into MiniGrid's ``(type, colour, state)``
codes. Layouts are therefore identical to MiniGrid's by construction; only stepping and observing are the engine's.

An env is covered when stepping it is MiniGrid's base ``step`` over objects whose behaviour the engine knows, or
that step followed by BabyAI's instruction check of one of modrl's generated tasks (:class:`~modrl.envs.TaskEnv`,
verified by :mod:`.instructions`) or by a stock env's own open or pick-up rule (:mod:`.stock_goals`), or a
:class:`~modrl.envs.SplitTaskEnv` drawing such tasks per episode (:func:`unsupported_reason`, :func:`draw`); anything
else is refused with a reason, so callers can name the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np
from minigrid.core.constants import OBJECT_TO_IDX, STATE_TO_IDX
from minigrid.core.world_object import Ball, Box, Door, Floor, Goal, Key, Lava, Wall, WorldObj
from minigrid.envs.babyai.core import verifier
from minigrid.minigrid_env import MiniGridEnv

from modrl.envs.fast.errors import EngineUnsupported
from modrl.envs.fast.instructions import Instructions, task_instructions
from modrl.envs.fast.stock_goals import goal_instructions, has_stock_goal
from modrl.envs.multitask import SplitTaskEnv
from modrl.envs.task_env import TaskEnv

EMPTY_CODE = (OBJECT_TO_IDX["empty"], 0, 0)
"""MiniGrid's code of an empty cell (and, in the engine, of "carrying nothing")."""
WORD = np.dtype("<u4")
"""A cell packed in one little-endian word: MiniGrid's three code bytes, then a byte "blocks sight" (:func:`pack`)."""

#: Object classes whose behaviour the engine implements (exact classes: a subclass may change behaviour).
SUPPORTED_OBJECTS: tuple[type[WorldObj], ...] = (Wall, Floor, Door, Key, Ball, Box, Goal, Lava)

MAX_VIEW = 9
"""Largest ``agent_view_size`` covered (the visibility table has ``2 ** (2 * view)`` entries)."""

#: Attributes of ``MiniGridEnv`` the engine re-implements; an env class that overrides one is not covered.
_REIMPLEMENTED = ("step", "gen_obs", "gen_obs_grid", "reset", "_reward")


@dataclass(frozen=True)
class Layout:
    """One episode's start as drawn by MiniGrid.

    Attributes:
        cells: ``(width, height) <u4`` the cells' MiniGrid codes (object type, colour, state) packed by :func:`pack`,
            indexed ``[x, y]``.
        agent_pos: ``(x, y)``.
        agent_dir: ``0..3`` (0 = right, 1 = down, 2 = left, 3 = up).
        mission: The mission string.
        max_steps: The episode's step limit (a BabyAI level sets it per episode, from its instruction).
        instructions: A :class:`~modrl.envs.TaskEnv` episode's subtasks as the engine verifies them, else ``None``.
        source: The env that drew the layout as its caller passed it (for a :class:`~modrl.envs.SplitTaskEnv`, the
            drawn task's wrapped env), or ``None`` when it is the env :func:`generate` was given.
        contents: ``(width, height) <u4`` what each box holds, packed (:data:`EMPTY_WORD` for nothing), or ``None``
            when no box holds anything (:func:`encode_contents`).
    """

    cells: np.ndarray
    agent_pos: tuple[int, int]
    agent_dir: int
    mission: str
    max_steps: int
    instructions: Instructions | None = None
    source: gym.Env[Any, Any] | None = None
    contents: np.ndarray | None = None


def unsupported_reason(env: gym.Env) -> str | None:
    """Why the engine cannot step ``env`` (any wrapping; its ``unwrapped`` is looked at), or ``None`` if it can.

    Checked here: a ``MiniGridEnv`` whose class keeps MiniGrid's ``step``, ``reset``, observation and reward, or is
    exactly :class:`~modrl.envs.TaskEnv` (MiniGrid's step, then BabyAI's instruction check) while BabyAI verifies
    instructions without the done action, or exactly one of the stock envs whose ``step`` adds an open or pick-up
    rule (:mod:`.stock_goals`: Unlock, UnlockPickup, BlockedUnlockPickup, KeyCorridor, ObstructedMaze); a
    :class:`~modrl.envs.SplitTaskEnv` by its split's first task (every task is checked when first drawn,
    :func:`draw`). The objects of each layout are checked by :func:`encode_layout`, the instructions of each task
    episode by :func:`~modrl.envs.fast.instructions.task_instructions` (a stock env's by
    :func:`~modrl.envs.fast.stock_goals.goal_instructions`).
    """
    base = env.unwrapped
    if isinstance(base, SplitTaskEnv):
        return unsupported_reason(base.task_env(base.task_ids[0]))
    if not isinstance(base, MiniGridEnv):
        return f"{type(base).__name__} is not a MiniGridEnv"
    task = type(base) is TaskEnv
    if task and verifier.use_done_actions:
        return "BABYAI_DONE_ACTIONS is set (BabyAI then verifies on the done action, which the engine does not)"
    for name in _REIMPLEMENTED:
        if task and name in ("step", "reset"):
            continue  # TaskEnv's own: MiniGrid's step and reset plus the instruction check the engine implements
        if name == "step" and has_stock_goal(base):
            continue  # MiniGrid's step plus an open or pick-up check the engine implements (.stock_goals)
        if getattr(type(base), name) is not getattr(MiniGridEnv, name):
            return f"{type(base).__name__} overrides MiniGridEnv.{name}"
    if base.agent_view_size > MAX_VIEW:
        return f"agent_view_size {base.agent_view_size} > {MAX_VIEW} is not implemented"
    return None


def generate(env: MiniGridEnv, seed: int | None) -> Layout:
    """Draw the next layout of ``env`` exactly as ``env.reset(seed=seed)`` would (same RNG use, same state after).

    ``seed=None`` continues the env's RNG, like an unseeded reset. The env is left as after a reset (grid, agent,
    ``carrying = None``, ``step_count = 0``; a :class:`~modrl.envs.TaskEnv` also with its verifier reset and its
    episode limit set, as ``RoomGridLevel.reset`` does), so it can serve as the reference of the episode it generated.
    """
    gym.Env.reset(env, seed=seed)  # what MiniGridEnv.reset's super().reset does: (re)seed np_random when given a seed
    env.agent_pos = (-1, -1)
    env.agent_dir = -1
    env._gen_grid(env.width, env.height)
    env.carrying = None
    env.step_count = 0
    instructions = None
    if isinstance(env, TaskEnv):  # RoomGridLevel.reset after MiniGridEnv.reset (no RNG used)
        env.instrs.reset_verifier(env)
        if not env.fixed_max_steps:
            env.max_steps = env.num_navs_needed(env.instrs) * env.room_size**2 * env.num_rows * env.num_cols
        instructions = task_instructions(env)
    elif has_stock_goal(env):
        instructions = goal_instructions(env)
    x, y = (int(v) for v in env.agent_pos)
    return Layout(
        cells=encode_layout(env),
        agent_pos=(x, y),
        agent_dir=int(env.agent_dir),
        mission=str(env.mission),
        max_steps=int(env.max_steps),
        instructions=instructions,
        contents=encode_contents(env),
    )


def draw(env: gym.Env[Any, Any], seed: int | None) -> Layout:
    """The next episode's layout of ``env`` as a slot steps it: :func:`generate` of its MiniGrid env, or for a
    :class:`~modrl.envs.SplitTaskEnv` the task and task seed its ``reset(seed=seed)`` draws
    (:meth:`~modrl.envs.SplitTaskEnv.draw_task`), then that task's layout (``source``: the task's wrapped env).

    Raises:
        EngineUnsupported: A drawn task env the engine does not cover (the reason), or a layout it cannot step.
    """
    base = env.unwrapped
    if not isinstance(base, SplitTaskEnv):
        assert isinstance(base, MiniGridEnv), base
        return generate(base, seed)
    index, task_seed = base.draw_task(seed)
    task_env = base.task_env(index)
    reason = unsupported_reason(task_env)  # a few attribute looks: cheap next to generating the grid
    if reason is not None:
        raise EngineUnsupported(f"task {base.suite.tasks[index].name}: {reason}")
    task_base = task_env.unwrapped
    assert isinstance(task_base, MiniGridEnv), task_base  # unsupported_reason checked it
    return replace(generate(task_base, task_seed), source=task_env)


def encode_layout(env: MiniGridEnv) -> np.ndarray:
    """``(width, height) <u4``: ``env.grid.encode()`` as packed words (:func:`pack`), refusing objects the engine does
    not implement (a box's contents are :func:`encode_contents`').

    Raises:
        EngineUnsupported: An object of another class than :data:`SUPPORTED_OBJECTS`.
    """
    grid = env.grid
    words = []
    for obj in grid.grid:
        if obj is None:
            words.append(EMPTY_WORD)
            continue
        key = (type(obj), obj.color, getattr(obj, "is_open", False), getattr(obj, "is_locked", False))
        word = _WORDS.get(key)
        if word is None:
            if type(obj) not in SUPPORTED_OBJECTS:
                raise EngineUnsupported(f"the fast engine does not implement {type(obj).__name__} objects")
            word = _WORDS[key] = int(pack(np.array(obj.encode())))
        words.append(word)
    return np.array(words, dtype=WORD).reshape(grid.height, grid.width).T


def encode_contents(env: MiniGridEnv) -> np.ndarray | None:
    """``(width, height) <u4``: what each box of ``env``'s grid holds, packed (:data:`EMPTY_WORD` where nothing), or
    ``None`` when no box holds anything. ``Box.toggle`` replaces the box by what it holds.

    Raises:
        EngineUnsupported: A box holding something else than a key, a ball or an empty box.
    """
    grid = env.grid
    held: list[tuple[int, WorldObj]] = []
    for index, obj in enumerate(grid.grid):
        if isinstance(obj, Box) and obj.contains is not None:
            held.append((index, obj.contains))
    if not held:
        return None
    words = np.full(len(grid.grid), EMPTY_WORD, WORD)
    for index, inner in held:
        if type(inner) not in (Key, Ball, Box) or getattr(inner, "contains", None) is not None:
            raise EngineUnsupported(
                f"the fast engine implements boxes holding a key, a ball or an empty box, not {inner!r}"
            )
        words[index] = pack(np.array(inner.encode()))
    return words.reshape(grid.height, grid.width).T


def pack(codes: np.ndarray) -> np.ndarray:
    """``(..., 3) uint8`` MiniGrid codes to ``(...) <u4`` words: ``type | colour << 8 | state << 16 | blocks << 24``,
    ``blocks`` set for walls and doors that are not open (what ``WorldObj.see_behind`` says)."""
    codes = np.asarray(codes, np.uint8)
    kind, colour, state = (codes[..., i].astype(WORD) for i in range(3))
    blocks = (kind == OBJECT_TO_IDX["wall"]) | ((kind == OBJECT_TO_IDX["door"]) & (state != STATE_TO_IDX["open"]))
    return kind | colour << 8 | state << 16 | blocks.astype(WORD) << 24


EMPTY_WORD = int(pack(np.array(EMPTY_CODE)))
"""The packed empty cell."""
_WORDS: dict[tuple[type, str, bool, bool], int] = {}  # (class, colour, is_open, is_locked) -> word, filled on use
