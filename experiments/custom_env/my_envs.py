"""Your own MiniGrid task, registered with gymnasium: ``modrl ... --import my_envs`` (run from this directory)."""

from __future__ import annotations

import gymnasium as gym
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Goal
from minigrid.minigrid_env import MiniGridEnv


class Corridor(MiniGridEnv):
    """Reach the green goal at the end of a corridor with one wall gap halfway."""

    def __init__(self, length: int = 7, **kwargs):
        self.length = length
        super().__init__(
            MissionSpace(lambda: "get to the green goal square"),
            width=length + 2,
            height=5,
            max_steps=4 * length * 3,
            **kwargs,
        )

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        self.grid.vert_wall(width // 2, 1, height - 2)
        self.grid.set(width // 2, self._rand_int(1, height - 1), None)  # the gap
        self.put_obj(Goal(), width - 2, self._rand_int(1, height - 1))
        self.place_agent(top=(1, 1), size=(1, height - 2))
        self.mission = "get to the green goal square"


gym.register("MyCorridor-v0", entry_point=Corridor)
