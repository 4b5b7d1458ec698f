"""Object identity for planning: same-type same-colour objects get names from where they were first seen, names follow
the objects when they move, unique objects keep their colour, and skills and goals use the names."""

from __future__ import annotations

from minigrid.core.actions import Actions
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Ball, Box, Key
from minigrid.minigrid_env import MiniGridEnv

from modrl.envs.goals import goals_for_env, resolve_goal
from modrl.envs.operators import planning_domain
from modrl.envs.predicates import env_planning_state, env_predicates, identify_objects, object_name, planning_state
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.planner import Goal, Outcome, SkillStatus, execute

DOMAIN = planning_domain()


class _ThreeRedKeys(MiniGridEnv):
    """One room: red keys at (1, 1) and (5, 5), a third inside the green box at (1, 5), a blue ball at (5, 1)."""

    def __init__(self) -> None:
        super().__init__(
            mission_space=MissionSpace(mission_func=lambda: "pick up the red key"), grid_size=7, max_steps=500
        )

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        self.near, self.far, self.hidden = Key("red"), Key("red"), Key("red")
        self.grid.set(1, 1, self.near)
        self.grid.set(5, 5, self.far)
        self.grid.set(1, 5, Box("green", contains=self.hidden))
        self.grid.set(5, 1, Ball("blue"))
        self.agent_pos, self.agent_dir = (2, 1), 0
        self.mission = "pick up the red key"


def _env() -> _ThreeRedKeys:
    env = _ThreeRedKeys()
    env.reset(seed=0)
    return env


def _step_from(env: MiniGridEnv, pos: tuple[int, int], direction: int, action: Actions) -> None:
    env.agent_pos, env.agent_dir = pos, direction
    env.step(int(action))


def _ground(name: str, **binding: str) -> object:
    return DOMAIN.operator(name).ground(binding)


def test_duplicates_are_named_by_first_position_and_unique_objects_keep_their_colour() -> None:
    env = _env()
    state = env_planning_state(env)
    assert sorted(a for a in state if a.startswith(("in(", "contains("))) == [
        "contains(box,green,key,red@1_5)",
        "in(ball,blue,room,0)",
        "in(box,green,room,0)",
        "in(key,red@1_1,room,0)",
        "in(key,red@5_5,room,0)",
    ]
    assert [object_name(k) for k in (env.near, env.far, env.hidden)] == ["red@1_1", "red@5_5", "red@1_5"]
    assert "adjacent(key,red@1_1)" in state and "adjacent(key,red)" not in state
    assert "adjacent(key,red)" in env_predicates(env)  # info["predicates"] (options' terminations) keep colours


def test_names_follow_the_objects_through_pickup_drop_and_box_opening() -> None:
    env = _env()
    env_planning_state(env)
    _step_from(env, (1, 2), 3, Actions.pickup)  # the key at (1, 1)
    assert env.carrying is env.near and "carrying(key,red@1_1)" in env_planning_state(env)
    _step_from(env, (3, 3), 0, Actions.drop)  # onto (4, 3)
    _step_from(env, (5, 4), 1, Actions.pickup)  # the key at (5, 5)
    assert "carrying(key,red@5_5)" in env_planning_state(env)
    _step_from(env, (1, 2), 3, Actions.drop)  # onto (1, 1), where the other key started
    state = env_planning_state(env)
    assert "facing(key,red@5_5)" in state and "facing(key,red@1_1)" not in state  # not renamed by position
    assert env.grid.get(1, 1) is env.far and env.grid.get(4, 3) is env.near
    _step_from(env, (1, 4), 1, Actions.toggle)  # open the box at (1, 5): the hidden key takes its place
    state = env_planning_state(env)
    assert env.grid.get(1, 5) is env.hidden and {"facing(key,red@1_5)", "in(key,red@1_5,room,0)"} <= state
    assert not any(a.startswith("contains(") for a in state)
    assert sorted(a for a in state if a.startswith("in(key,")) == [
        "in(key,red@1_1,room,0)",
        "in(key,red@1_5,room,0)",
        "in(key,red@5_5,room,0)",
    ]


def test_names_are_given_once_even_when_the_duplicate_is_gone() -> None:
    grid = Grid(5, 5)
    grid.wall_rect(0, 0, 5, 5)
    first, second = Ball("grey"), Ball("grey")
    grid.set(1, 1, first)
    grid.set(3, 3, second)
    assert "in(ball,grey@1_1,room,0)" in planning_state(grid, (2, 2), 0, None)
    grid.set(3, 3, None)  # one leaves the grid: the other keeps its name, a new grey ball gets a fresh one
    third = Ball("grey")
    grid.set(1, 3, third)
    identify_objects(grid, None, (2, 2))
    assert [object_name(b) for b in (first, second, third)] == ["grey@1_1", "grey@3_3", "grey@1_3"]
    lone = Grid(5, 5)
    lone.set(2, 1, Key("yellow"))
    assert planning_state(lone, (2, 2), 3, None) >= {"facing(key,yellow)", "in(key,yellow,room,0)"}


def test_scripted_skills_target_the_named_object_not_the_nearest() -> None:
    env = _env()
    skills = ScriptedSkills(env)
    skills.observe()
    result = skills.execute(_ground("pickup", **{"?t": "key", "?c": "red@5_5", "?r": "0"}))  # type: ignore[arg-type]
    assert result.status is SkillStatus.DONE and env.carrying is env.far
    result = skills.execute(_ground("drop", **{"?t": "key", "?c": "red@5_5", "?r": "0"}))  # type: ignore[arg-type]
    assert result.status is SkillStatus.DONE and env.carrying is None and "facing(key,red@5_5)" in result.state
    opened = skills.execute(_ground("open_box", **{"?c": "green", "?t": "key", "?k": "red@1_5", "?r": "0"}))  # type: ignore[arg-type]
    assert opened.status is SkillStatus.DONE and "facing(key,red@1_5)" in opened.state
    skills.execute(_ground("pickup", **{"?t": "key", "?c": "red", "?r": "0"}))  # type: ignore[arg-type]
    assert env.carrying is env.hidden  # a plain colour still means the nearest of that type and colour


def test_goals_pick_the_envs_target_among_same_colour_objects() -> None:
    env = _env()
    state = env_planning_state(env)
    mission = Goal(achieve=frozenset({"carrying(key,red)"}))
    assert resolve_goal(mission, state) == Goal(achieve=frozenset({"carrying(key,red@1_1)"}))  # first by name
    assert resolve_goal(Goal(holds=frozenset({"facing(ball,blue)"})), state).holds == {"facing(ball,blue)"}
    env.obj = env.far  # what stock MiniGrid envs reward
    goals = goals_for_env(env, state)
    assert goals == (Goal(achieve=frozenset({"carrying(key,red@5_5)"})),)
    trace = execute(DOMAIN, goals, ScriptedSkills(env))
    assert trace.outcome is Outcome.SUCCESS and env.carrying is env.far
