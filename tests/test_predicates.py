"""Symbolic state: predicates read from hand-built grids, and from a generated env as it changes."""

from __future__ import annotations

from minigrid.core.actions import Actions
from minigrid.core.grid import Grid
from minigrid.core.world_object import Ball, Box, Door, Goal, Key, Lava

from modrl.envs.predicates import predicate, symbolic_state
from modrl.envs.task_env import TaskEnv


def _room(size: int = 6) -> Grid:
    grid = Grid(size, size)
    grid.wall_rect(0, 0, size, size)
    return grid


def test_predicate_spelling() -> None:
    assert predicate("open", "door", "red") == "open(door,red)"
    assert predicate("at_goal") == "at_goal"


def test_hand_built_state() -> None:
    grid = _room()
    grid.set(2, 1, Key("red"))  # in front of the agent (agent at (2, 2) facing up)
    grid.set(1, 1, Ball("green"))  # next to the red key, diagonal to the agent
    grid.set(3, 2, Door("blue", is_locked=True))  # right of the agent
    grid.set(4, 4, Door("purple", is_open=True))
    grid.set(2, 2, Goal())  # under the agent
    grid.set(1, 4, Lava())  # scenery: never described
    state = symbolic_state(grid, (2, 2), 3, Box("yellow"))
    assert state == frozenset(
        {
            "carrying(box,yellow)",
            "at_goal",
            "facing(key,red)",
            "adjacent(key,red)",
            "adjacent(door,blue)",
            "locked(door,blue)",
            "open(door,purple)",
            "next_to(key,red,ball,green)",
            "next_to(ball,green,key,red)",
            # The goal under the agent is an object too (only walls, floor and lava are scenery).
            "next_to(goal,green,key,red)",
            "next_to(key,red,goal,green)",
            "next_to(goal,green,door,blue)",
            "next_to(door,blue,goal,green)",
        }
    )


def test_heading_changes_facing_only() -> None:
    grid = _room()
    grid.set(3, 2, Ball("blue"))
    grid.set(2, 3, Key("grey"))
    right = symbolic_state(grid, (2, 2), 0, None)
    down = symbolic_state(grid, (2, 2), 1, None)
    left = symbolic_state(grid, (2, 2), 2, None)
    assert right == {"facing(ball,blue)", "adjacent(ball,blue)", "adjacent(key,grey)"}
    assert down == {"facing(key,grey)", "adjacent(ball,blue)", "adjacent(key,grey)"}
    assert left == {"adjacent(ball,blue)", "adjacent(key,grey)"}


def test_closed_unlocked_door_and_far_objects() -> None:
    grid = _room(7)
    grid.set(5, 5, Door("red"))
    grid.set(5, 1, Box("green"))
    state = symbolic_state(grid, (1, 1), 0, None)
    assert state == frozenset()  # a closed, unlocked door is neither open nor locked; nothing is near


def test_env_predicates_follow_pickup_and_drop() -> None:
    env = TaskEnv("pickup-red-key", num_distractors=0)
    env.reset(seed=0)
    key_pos = next(o.cur_pos for o in env.get_room(0, 0).objs if o.type == "key")
    # Stand on a free cell next to the key, facing it (direction d moves by DIR_TO_VEC[d]).
    for direction, (dx, dy) in enumerate(((1, 0), (0, 1), (-1, 0), (0, -1))):
        stand = (int(key_pos[0]) - dx, int(key_pos[1]) - dy)
        if env.grid.get(*stand) is None:
            env.agent_pos, env.agent_dir = stand, direction
            break
    assert {"facing(key,red)", "adjacent(key,red)"} <= env.predicates()
    _, _, terminated, _, info = env.step(int(Actions.pickup))
    assert terminated and "carrying(key,red)" in info["predicates"]
    assert "facing(key,red)" not in info["predicates"]
    env.step(int(Actions.drop))
    assert env.predicates() >= {"facing(key,red)"} and "carrying(key,red)" not in env.predicates()
