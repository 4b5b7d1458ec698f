"""Checks of the MiniGrid keyword arguments a task passes to ``gymnasium.make`` (every MiniGrid env reads them), kept
apart from :mod:`modrl.envs.wrappers` so that :class:`~modrl.envs.task_env.TaskEnv` can use them without importing
the wrappers (which build TaskEnvs)."""

from __future__ import annotations

from typing import Any

from modrl.config import MAX_EPISODE_STEPS, MAX_GRID_SIDE, MAX_VIEW_SIZE, check, check_bool, check_int, short_repr

__all__ = ["GRID_SIZES", "MINIGRID_FLAGS", "check_minigrid_kwargs", "check_view_size"]

#: MiniGrid's own keyword arguments (``MiniGridEnv``), shared by every stock env, TaskEnv included.
MINIGRID_FLAGS = ("see_through_walls", "highlight", "agent_pov")
#: Keyword arguments that size a stock env's grid (its walls included), with their smallest value: below it a
#: MiniGrid env with random placement has no free cell and retries forever (``room_size`` is RoomGrid's room side).
GRID_SIZES = {"size": 5, "width": 5, "height": 5, "grid_size": 5, "room_size": 3}


def check_view_size(value: object, field: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a MiniGrid ``agent_view_size``: odd, in [3, MAX_VIEW_SIZE]."""
    check_int(value, field, low=3, high=MAX_VIEW_SIZE)
    check(value % 2 == 1, field, f"must be odd (the agent sits in the middle of its view), got {value}")  # type: ignore[operator]


def check_minigrid_kwargs(kwargs: Any) -> None:
    """Check the MiniGrid keyword arguments a task passes to ``gymnasium.make`` that every MiniGrid env reads:
    ``agent_view_size``, the flags (booleans), ``render_mode``, ``tile_size``, ``screen_size``, ``max_steps`` and the
    grid sizes (:data:`GRID_SIZES` up to MAX_GRID_SIDE). Other names are left to the env's constructor (see
    :func:`modrl.envs.wrappers.make_task_env`)."""
    check(
        isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs),
        "kwargs",
        f"must be a mapping of argument names, got {short_repr(kwargs)}",
    )
    for name, value in kwargs.items():
        if name == "agent_view_size":
            check_view_size(value, name)
        elif name in MINIGRID_FLAGS:
            check_bool(value, name)
        elif name == "render_mode":
            check(
                value in (None, "rgb_array", "human"),
                name,
                f"must be null, rgb_array or human, got {short_repr(value)}",
            )
        elif name == "tile_size":
            check_int(value, name, low=1, high=256)
        elif name == "screen_size":
            check_int(value, name, low=1, high=4096)
        elif name == "max_steps" and value is not None:
            check_int(value, name, low=1, high=MAX_EPISODE_STEPS)
        elif name in GRID_SIZES:
            check_int(value, name, low=GRID_SIZES[name], high=MAX_GRID_SIDE)
