"""Stock MiniGrid envs whose ``step`` adds a success rule that the engine's instruction check already implements.

MiniGrid's ``UnlockEnv.step`` ends the episode with ``_reward()`` on a ``toggle`` that leaves ``env.door`` open;
``UnlockPickupEnv``, ``BlockedUnlockPickupEnv``, ``KeyCorridorEnv`` and ``ObstructedMazeEnv`` (every ObstructedMaze)
do so on a ``pickup`` that leaves the agent carrying ``env.obj``. Each runs MiniGrid's base step first and changes
nothing else, so after the base step the rule is BabyAI's open or pick-up check of one object (:mod:`.instructions`),
with the same reward (``1 - 0.9 * step_count / max_steps``) and the same ``terminated`` (``truncated`` stays the base
step's):

* open: only a ``toggle`` of the cell in front changes a door, so the door is open after a ``toggle`` exactly when
  that toggle opened the door in front (the door starts locked; the episode ends at the toggle that opens it);
* pick up: MiniGrid's ``pickup`` takes the object in front only with empty hands, so the agent carries ``env.obj``
  after a ``pickup`` exactly when that action picked it up (the episode ends there, so it is never carried before).

The engine names objects by type and colour, so :func:`goal_instructions` checks, per episode, that the object is the
only one of its type and colour in the grid (MiniGrid compares the object itself). An env is covered by the ``step``
its class runs: a subclass that keeps one of these ``step`` functions keeps its rule, one that overrides ``step`` is
refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minigrid.envs import BlockedUnlockPickupEnv, KeyCorridorEnv, UnlockEnv, UnlockPickupEnv
from minigrid.envs.obstructedmaze import ObstructedMazeEnv
from minigrid.minigrid_env import MiniGridEnv

from modrl.envs.fast.errors import EngineUnsupported
from modrl.envs.fast.instructions import OPEN, PICKUP, Instructions, object_code

#: ``step`` function -> ``(verb, attribute holding the object)`` of the success rule it adds to MiniGrid's step.
STOCK_GOALS: dict[Callable[..., Any], tuple[int, str]] = {
    UnlockEnv.step: (OPEN, "door"),
    UnlockPickupEnv.step: (PICKUP, "obj"),
    BlockedUnlockPickupEnv.step: (PICKUP, "obj"),
    KeyCorridorEnv.step: (PICKUP, "obj"),
    ObstructedMazeEnv.step: (PICKUP, "obj"),  # every ObstructedMaze (1Dl ... Full, v0 and v1)
}


def has_stock_goal(env: MiniGridEnv) -> bool:
    """Whether ``env``'s ``step`` is one of :data:`STOCK_GOALS` (its class defines or inherits it unchanged)."""
    return type(env).step in STOCK_GOALS


def goal_instructions(env: MiniGridEnv) -> Instructions:
    """The success rule of ``env``'s episode (its grid just generated) as one open or pick-up instruction.

    Raises:
        EngineUnsupported: The object is not the only one of its type and colour in the grid.
    """
    verb, attribute = STOCK_GOALS[type(env).step]
    target = getattr(env, attribute)
    same = sum(1 for obj in env.grid.grid if obj is not None and (obj.type, obj.color) == (target.type, target.color))
    if same != 1:
        raise EngineUnsupported(
            f"{type(env).__name__}'s {target.color} {target.type} is one of {same} objects of its type and colour; "
            "the fast engine names objects by type and colour"
        )
    word = object_code(target.type, target.color)
    symbol = f"{'open' if verb == OPEN else 'pickup'}-{target.color}-{target.type}"
    return Instructions((verb,), (word,), (0,), (symbol,), (False,))
