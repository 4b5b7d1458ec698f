"""Layout targets for parameterised options (an ``open`` option that learns every door of the train rooms), the
``mixed`` option library mode, and the ``putnext_held`` operator (put next to the object in hand)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from modrl.agents.options import train as options_module
from modrl.agents.options.config import load_options_config
from modrl.agents.options.demos import _OracleView, collect_demos
from modrl.config import ConfigError
from modrl.envs import get_suite
from modrl.envs.goals import goals_for_env
from modrl.envs.grammar import parse_task
from modrl.envs.operators import planning_domain, skill_subtask
from modrl.envs.oracle import SequenceBot
from modrl.envs.predicates import env_planning_state
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.subtask_env import SubtaskEnv, layout_targets
from modrl.envs.subtask_symbols import argument_slots
from modrl.planner import Outcome, Plan, execute, plan

DOOR_TASKS = ["open-red-door", "goto-purple-door", "open-red-door_then_pickup-blue-key"]
MIXED = {
    "mode": "mixed",
    "options": ["goto-green-ball", "open"],
    "env": {"suite": "sequences", "test_split": None, "n_envs": 2, "train_tasks": "first_subtask", "targets": "layout"},
    "net": {"channels": [8], "features_dim": 16, "hidden": [16], "critic_hidden": [16]},
    "algo": {"n_steps": 32, "batch_size": 64, "n_epochs": 2},
    "curriculum": {"threshold": 0.9, "window": 30, "min_episodes": 30, "max_steps": 64},
    "eval_episodes": 0,
}


def _door_colours(env: SubtaskEnv) -> set[str]:
    return {obj.color for obj in env.current_env.unwrapped.grid.grid if obj is not None and obj.type == "door"}


def test_layout_targets_draw_every_door_of_the_rooms_and_the_episode_follows_the_drawn_one() -> None:
    env = SubtaskEnv(DOOR_TASKS, suite="sequences", targets="layout", verb="open")
    slots = argument_slots("open")
    drawn: Counter[str] = Counter()
    for seed in range(40):
        obs, info = env.reset(seed=seed)
        sub = env.current_subtask
        drawn[sub.obj.colour] += 1
        assert sub.verb == "open" and sub.obj.type == "door" and sub.obj.colour in _door_colours(env)
        assert info["subtask"] == sub.symbol and info["events"] == []
        assert tuple(slot[i] for slot, i in zip(slots, obs["args"], strict=True)) == (sub.obj.colour, "door")
        assert env.current_env.unwrapped.mission == f"open the {sub.obj.colour} door"
    # Distractor doors bring colours the missions never name (the missions name only red and purple doors).
    assert len(drawn) >= 4 and set(drawn) - {"red", "purple"}
    env.close()


def test_a_layout_episode_ends_only_when_the_drawn_door_opens() -> None:
    env = SubtaskEnv(["open-red-door"], suite="sequences", targets="layout", verb="open")
    for seed in range(30):
        env.reset(seed=seed)
        if env.current_subtask.obj.colour != "red":
            break
    else:
        pytest.fail("no seed drew a door other than the mission's")
    base = env.current_env.unwrapped
    skills = ScriptedSkills(env.current_env)
    red = next(
        op for op in planning_domain().ground(env_planning_state(base)) if op.operator == "open" and op.args[0] == "red"
    )
    skills.execute(red)  # opens the mission's red door: not the target any more
    assert base.grid.get(*_door(base, "red")).is_open
    _, reward, terminated, _, info = env.step(6)  # done: no event
    assert not terminated and reward == 0 and "is_success" not in info
    _oracle_finishes(env, 100)
    assert base.grid.get(*_door(base, env.current_subtask.obj.colour)).is_open
    env.close()


def _oracle_finishes(env: SubtaskEnv, steps: int) -> None:
    """BabyAI's bot finishes ``env``'s episode within ``steps``, and the episode ends a success with a reward."""
    bot = SequenceBot(_OracleView(env))
    for _ in range(steps):
        _, reward, terminated, truncated, info = env.step(int(bot.replan()))
        if terminated or truncated:
            break
    assert terminated and info["is_success"] and float(reward) > 0


def _door(base: object, colour: str) -> tuple[int, int]:
    grid = base.grid  # type: ignore[attr-defined]
    for index, obj in enumerate(grid.grid):
        if obj is not None and obj.type == "door" and obj.color == colour:
            return index % grid.width, index // grid.width
    raise AssertionError(f"no {colour} door")


def test_layout_targets_refuse_what_they_cannot_serve() -> None:
    with pytest.raises(ConfigError, match="verb"):
        SubtaskEnv(DOOR_TASKS, suite="sequences", parameterised=False, targets="layout", verb="open")
    with pytest.raises(ConfigError, match="verb"):
        SubtaskEnv(DOOR_TASKS, suite="sequences", targets="layout", verb="putnext")
    with pytest.raises(ConfigError, match="targets"):
        SubtaskEnv(DOOR_TASKS, suite="sequences", targets="room", verb="open")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="never has an object to open"):  # one room, no door: refused when made
        SubtaskEnv(["goto-green-ball"], suite="sequences", targets="layout", verb="open")
    with pytest.raises(ConfigError, match="layout"):
        options_module.option_jobs(load_options_config(MIXED, ["options=[putnext]"]))


def test_layout_targets_leave_opened_doors_out() -> None:
    env = gym.make(get_suite("sequences").tasks[get_suite("sequences").task_index("open-red-door")].env_id)
    env.reset(seed=3)
    base = env.unwrapped
    before = layout_targets(base, "open")
    base.grid.get(*_door(base, "red")).is_open = True
    after = layout_targets(base, "open")
    assert [s.obj.colour for s in before if s.obj.colour != "red"] == [s.obj.colour for s in after]
    assert len(after) == len(before) - 1
    assert {s.obj.type for s in layout_targets(base, "goto")} >= {"door", "ball"}
    env.close()


def test_mixed_mode_plans_per_symbol_and_layout_options_and_demos_cover_many_doors() -> None:
    config = load_options_config(MIXED)
    goto, door = options_module.option_jobs(config)
    assert not goto.parameterised and goto.targets == "task" and goto.train[0] == "goto-green-ball"
    assert door.parameterised and door.name == "open" and door.targets == "layout"
    assert set(door.train) == {
        t for t in get_suite("sequences").split("train") if any(o.type == "door" for o in parse_task(t).objects)
    }
    with pytest.raises(ConfigError, match="nor a verb"):
        options_module.option_jobs(load_options_config(MIXED, ["options=[fly]"]))
    with pytest.raises(ConfigError, match="not a verb"):
        options_module.option_jobs(load_options_config(MIXED, ["mode=parameterised", "options=[goto-green-ball]"]))
    env = options_module._subtask_env(config, door, door.train)
    demos = collect_demos(env, episodes=12, gamma=0.9)
    colours = {argument_slots("open")[0][row[0]] for row in demos.observations["args"]}
    assert len(colours) >= 3 and demos.size >= 12
    env.close()


def test_shipped_mixed_library_config_loads() -> None:
    path = Path(__file__).resolve().parents[1] / "experiments" / "options" / "sequences_mixed.yaml"
    plans = options_module.option_jobs(load_options_config(path))
    assert [p.name for p in plans][-1] == "open" and plans[-1].targets == "layout"
    assert [p.parameterised for p in plans] == [False] * 5 + [True]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_putnext_with_the_target_in_hand_is_one_step_that_sets_it_down(seed: int) -> None:
    suite = get_suite("sequences")
    name = "pickup-blue-key_then_putnext-yellow-box-blue-key"
    env = gym.make(suite.tasks[suite.task_index(name)].env_id)
    env.reset(seed=seed)
    skills = ScriptedSkills(env)
    domain = planning_domain()
    goals = goals_for_env(env, skills.observe())
    found = plan(domain, skills.observe(), goals)
    assert isinstance(found, Plan) and [s.operator for s in found.steps] == ["pickup", "putnext_held"]
    held = found.steps[1]
    assert skill_subtask(held) is not None and skill_subtask(held).name == "putnext-yellow-box-blue-key"  # type: ignore[union-attr]
    # Without a drop skill the plan still exists (the putnext option serves both steps' kinds).
    no_drop = plan(domain, skills.observe(), goals, allowed=lambda op: op.skill != "drop")
    assert isinstance(no_drop, Plan) and len(no_drop) == 2
    trace = execute(domain, goals, skills)
    assert trace.outcome is Outcome.SUCCESS and skills.episode_success and trace.replans == 0
    assert env.unwrapped.carrying is None
    env.close()


def test_oracle_segments_show_the_putnext_option_holding_its_target() -> None:
    """The putnext option's demonstrations include starts with the blue key in hand (what putnext_held calls it in)."""
    env = SubtaskEnv(["pickup-blue-key_then_putnext-yellow-box-blue-key"], suite="sequences", parameterised=False)
    demos = collect_demos(env, episodes=3, gamma=0.9, segment=lambda sub: sub.verb == "putnext")
    starts = np.cumsum((0, *demos.lengths[:-1]))
    key, blue = 5, 2  # minigrid OBJECT_TO_IDX["key"], COLOR_TO_IDX["blue"]
    assert all(tuple(demos.observations["image"][s][3, 6, :2]) == (key, blue) for s in starts)
    env.close()


def test_random_skill_prefixes_start_the_option_elsewhere_with_its_subtask_still_to_do() -> None:
    tasks = ["putnext-yellow-box-blue-key", "putnext-yellow-box-blue-key_then_goto-green-ball"]
    plain = SubtaskEnv(tasks, suite="sequences", parameterised=False)
    prefixed = SubtaskEnv(tasks, suite="sequences", parameterised=False, prefix_skills=2)
    moved = carrying = 0
    for seed in range(20):
        plain.reset(seed=seed)
        obs, info = prefixed.reset(seed=seed)
        base = prefixed.current_env.unwrapped
        assert prefixed.observation_space.contains(obs)
        assert np.array_equal(obs["image"], base.gen_obs()["image"])  # the observation after the prefix
        assert base.instrs.index == 0 and info["subtask_index"] == 0  # nothing completed yet
        moved += base.step_count > 0
        carrying += base.carrying is not None
    assert moved >= 10 and carrying >= 3
    # The option still earns its reward on its own subtask's event (BabyAI's bot cannot start with full hands).
    seed = next(
        s
        for s in range(100, 200)
        if prefixed.reset(seed=s)
        and prefixed.current_env.unwrapped.carrying is None
        and prefixed.current_env.unwrapped.step_count > 0
    )
    assert seed >= 100
    _oracle_finishes(prefixed, 200)
    with pytest.raises(ConfigError, match="prefix_skills"):
        SubtaskEnv(tasks, suite="sequences", parameterised=False, prefix_skills=11)
    with pytest.raises(ConfigError, match="prefix_skills"):
        load_options_config(MIXED, ["env.prefix_skills=-1"])
    plain.close()
    prefixed.close()
