"""The planner with scripted skills on MiniGrid's stock hard tasks: KeyCorridor (same-colour doors), ObstructedMaze
(a key hidden in a box, a ball in front of the door) and BlockedUnlockPickup."""

from __future__ import annotations

import copy

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid env ids)
import pytest

from modrl.cli.main import main
from modrl.envs.goals import goals_for_env
from modrl.envs.operators import planning_domain
from modrl.envs.predicates import env_planning_state
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.planner import ExecutionTrace, Outcome, SkillStatus, execute

DOMAIN = planning_domain()
STOCK = ("MiniGrid-KeyCorridorS4R3-v0", "MiniGrid-ObstructedMaze-1Dlh-v0", "MiniGrid-BlockedUnlockPickup-v0")


def _run(env_id: str, seed: int) -> tuple[bool, ExecutionTrace]:
    env = gym.make(env_id)
    env.reset(seed=seed)
    skills = ScriptedSkills(env)
    trace = execute(DOMAIN, goals_for_env(env, skills.observe()), skills)
    return trace.outcome is Outcome.SUCCESS and skills.episode_success, trace


@pytest.mark.parametrize(("env_id", "seed"), [("MiniGrid-KeyCorridorS4R3-v0", 0), ("MiniGrid-KeyCorridorS4R3-v0", 1)])
def test_key_corridor_opens_the_planned_one_of_same_colour_doors(env_id: str, seed: int) -> None:
    env = gym.make(env_id)
    env.reset(seed=seed)
    state = env_planning_state(env)
    assert any("@" in a for a in state if a.startswith("connects(door,"))  # these seeds have same-colour doors
    ok, trace = _run(env_id, seed)
    skills = [s.skill for s in trace.steps]
    assert ok and trace.replans == 0, skills
    assert any("@" in s for s in skills) and skills[-1].startswith("pickup(ball,")
    unlock = next(i for i, s in enumerate(trace.steps) if s.operator.startswith("unlock("))
    assert skills[unlock - 1].startswith("pickup(key,")  # fetched from a side room, nothing says so


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_obstructed_maze_opens_the_box_to_find_the_key(seed: int) -> None:
    ok, trace = _run("MiniGrid-ObstructedMaze-1Dlh-v0", seed)
    skills = [s.skill for s in trace.steps]
    assert ok, skills
    assert skills[0].startswith("open(box,") and skills[1].startswith("pickup(key,")
    assert skills[2].startswith("open(door,") and skills[-1] == "pickup(ball,blue)"


@pytest.mark.parametrize("seed", [0, 1])
def test_obstructed_maze_moves_the_ball_out_of_the_doorway(seed: int) -> None:
    env_id = "MiniGrid-ObstructedMaze-1Dlhb-v0"
    env = gym.make(env_id)
    env.reset(seed=seed)
    assert any(a.startswith("blocks(ball,green,door,") for a in env_planning_state(env))
    ok, trace = _run(env_id, seed)
    skills = [s.skill for s in trace.steps]
    door = next(s for s in skills if s.startswith("open(door,"))
    assert ok and skills.index("pickup(ball,green)") + 1 == skills.index("drop(ball,green)") < skills.index(door), (
        skills
    )


def test_cli_plans_and_executes_key_corridor(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "MiniGrid-KeyCorridorS4R3-v0", "--seed", "3", "--execute"]) == 0
    out = capsys.readouterr().out
    assert "0. open(door,purple@3_7)" in out and "outcome: success (env solved; 0 re-plan(s)" in out


@pytest.mark.slow
@pytest.mark.parametrize("env_id", STOCK)
def test_stock_hard_tasks_over_50_seeds(env_id: str) -> None:
    results = [_run(env_id, seed) for seed in range(50)]
    rate = sum(ok for ok, _ in results) / len(results)
    assert rate >= 0.95, f"{env_id}: success {rate:.2f} over 50 seeds"


def _agent_in(state: frozenset[str]) -> set[str]:
    return {a for a in state if a.startswith("agent_in(")}


def test_obstructed_maze_1q_seed_2_a_box_opened_from_the_doorway_keeps_the_model_honest() -> None:
    """Regression (ObstructedMaze-1Q seed 2): the box behind the yellow door is opened from the doorway, where the key
    it held then bars the way into the box's room. The planner used to count the agent in that room (``goto`` of the
    key added ``agent_in(room,5)``), a 0-step ``goto`` never made it true, and it re-planned that goto 21 times. Now
    every operator that reaches the key predicts the region the agent is observed in afterwards."""
    env = gym.make("MiniGrid-ObstructedMaze-1Q-v1")
    env.reset(seed=2)
    skills = ScriptedSkills(env)
    for name in ("open(yellow,4)", "open_box_doorway(grey@11_6,key,grey,5,yellow,4)"):
        before = skills.observe()
        step = {op.name: op for op in DOMAIN.applicable(before)}[name]
        after = skills.execute(step).state
        assert _agent_in(step.apply(before)) == _agent_in(after), name
    state = skills.observe()
    assert {"facing(key,grey)", "blocks(key,grey,door,yellow)", "agent_in(room,4)"} <= state
    assert "agent_in(room,5)" not in state and "reach(room,5)" not in DOMAIN.closure(state)
    on_key = [op for op in DOMAIN.applicable(state) if op.skill_args == ("key", "grey")]
    assert sorted(op.operator for op in on_key) == ["goto_doorway", "pickup_doorway"]
    for op in on_key:
        trial = copy.deepcopy(env)
        result = ScriptedSkills(trial).execute(op)
        assert result.status is SkillStatus.DONE and _agent_in(op.apply(state)) == _agent_in(result.state), op.name


@pytest.mark.slow
def test_obstructed_maze_1q_seed_2_is_solved_without_a_replan_loop(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "MiniGrid-ObstructedMaze-1Q-v1", "--seed", "2", "--execute"]) == 0
    out = capsys.readouterr().out
    assert "outcome: success (env solved; 0 re-plan(s)" in out


@pytest.mark.parametrize("env_id", ["MiniGrid-ObstructedMaze-1Q-v0", "MiniGrid-ObstructedMaze-2Dlhb-v0"])
def test_obstructed_maze_v0_seed_7_has_no_key_for_the_door_in_front_of_the_ball(env_id: str) -> None:
    """Why the coverage table's no_plan on seed 7 of these v0 ids is right: MiniGrid's v0 generator put the box that
    held the purple key, then set the ball that blocks the blue door on the same cell, so the locked purple door in
    front of the target ball has no key anywhere (v1 fixed that generator; its seed 7 has the key)."""
    env = gym.make(env_id)
    env.reset(seed=7)
    grid = env.unwrapped.grid.grid
    cells = [c for c in grid if c is not None]
    contents = [c.contains for c in cells if c.type == "box" and c.contains is not None]
    assert any(c.type == "door" and c.color == "purple" and c.is_locked for c in cells)
    assert not any(k.type == "key" and k.color == "purple" for k in cells + contents)
    state = env_planning_state(env)
    assert "fits(key,purple,door,purple)" not in state and "in(ball,blue,room,2)" in state
    fixed = gym.make(env_id.replace("-v0", "-v1"))
    fixed.reset(seed=7)
    assert any(c is not None and c.type == "key" and c.color == "purple" for c in fixed.unwrapped.grid.grid) or any(
        c is not None and c.type == "box" and c.contains is not None and c.contains.color == "purple"
        for c in fixed.unwrapped.grid.grid
    )


class _FrontChecked(gym.Wrapper):
    """Records, for every forward action, what stood in front of the agent when it was chosen."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.fronts: list[str | None] = []

    def step(self, action: int):  # type: ignore[no-untyped-def,override]
        if action == int(self.env.unwrapped.actions.forward):
            cell = self.env.unwrapped.grid.get(*self.env.unwrapped.front_pos)
            self.fronts.append(None if cell is None else cell.type)
        return self.env.step(action)


@pytest.mark.parametrize("env_id", ["MiniGrid-Dynamic-Obstacles-8x8-v0", "MiniGrid-Dynamic-Obstacles-16x16-v0"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dynamic_obstacles_walk_one_replanned_action_at_a_time(env_id: str, seed: int) -> None:
    """Regression (coverage table: Dynamic-Obstacles 0.10-0.65, episode_over): the skills walked a path planned on the
    grid at the start while the obstacles moved into it. Walking forward into a cell an obstacle stands on when the
    action is chosen ends the episode; the skills now re-plan every action on the grid as it is, so they never do."""
    env = _FrontChecked(gym.make(env_id))
    env.reset(seed=seed)
    skills = ScriptedSkills(env)
    trace = execute(DOMAIN, goals_for_env(env, skills.observe()), skills)
    assert trace.outcome is Outcome.SUCCESS and skills.episode_success
    assert env.fronts and set(env.fronts) <= {None, "goal"}
