"""Random scripted steps before recorded episodes and calling states (``random_steps``): which steps are drawn, that
the task stays solvable, that the draws are reproducible, and that recordings and skill episodes use them."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from modrl.agents.options.skill_cloning_config import load_skill_cloning_config
from modrl.agents.planning.recording import record_skill_demos
from modrl.config import ConfigError
from modrl.envs.goals import goals_for_env
from modrl.envs.operators import planning_domain
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.skill_env import SKILL_SLOTS, SkillStepEnv, random_skill_steps, skill_call
from modrl.planner import GroundOperator, Plan, SkillResult, plan

PUTNEXT = "ModRL-sequences-putnext-yellow-box-blue-key-v0"
OPEN_RED = "ModRL-sequences-open-red-door-v0"
TINY = {
    "episodes": 2,
    "view_size": 9,
    "epochs": 2,
    "batch_size": 32,
    "net": {"channels": [4], "features_dim": 8, "hidden": [8], "arg_dim": 2, "embed_dim": 2},
}


def _run(env_id: str, seed: int, count: int, rng_seed: int) -> tuple[list[GroundOperator], ScriptedSkills, bool]:
    env = gym.make(env_id)
    env.reset(seed=seed)
    skills = ScriptedSkills(env)
    ran: list[GroundOperator] = []

    def run(step: GroundOperator) -> SkillResult:
        ran.append(step)
        return skills.execute(step)

    ok = random_skill_steps(skills, np.random.default_rng(rng_seed), count, run=run)
    return ran, skills, ok


def test_random_steps_are_skill_steps_that_reach_no_goal_atom_and_leave_the_task_solvable() -> None:
    kinds = set()
    for seed in range(6):
        ran, skills, ok = _run(PUTNEXT, seed, 3, seed)
        assert ok and len(ran) == 3
        goals = goals_for_env(skills.env, skills.observe())
        goal_atoms = frozenset().union(*(g.holds | g.achieve for g in goals))
        for step in ran:
            call = skill_call(step)
            assert call is not None
            kinds.add(call[0])
            assert not step.add & goal_atoms
        found = plan(planning_domain(), skills.observe(), goals)
        assert isinstance(found, Plan) and len(found) >= 1
        skills.env.close()
    assert len(kinds) >= 3  # a mix of skills, not one


def test_a_door_the_task_opens_is_never_opened_by_a_random_step() -> None:
    for seed in range(8):
        ran, skills, _ = _run(OPEN_RED, seed, 4, 100 + seed)
        assert not any(s.skill == "open" and "red" in " ".join(s.skill_args) for s in ran)
        assert not any(atom.startswith("open(door,red") for atom in skills.observe())
        skills.env.close()


def test_random_steps_are_reproducible_and_zero_steps_do_nothing() -> None:
    first, skills_a, _ = _run(PUTNEXT, 3, 3, 7)
    again, skills_b, _ = _run(PUTNEXT, 3, 3, 7)
    assert [s.symbol for s in first] == [s.symbol for s in again]
    assert skills_a.observe() == skills_b.observe()
    none, skills_c, ok = _run(PUTNEXT, 3, 0, 7)
    env = gym.make(PUTNEXT)
    env.reset(seed=3)
    assert ok and none == [] and skills_c.observe() == ScriptedSkills(env).observe()
    for skills in (skills_a, skills_b, skills_c):
        skills.env.close()
    env.close()


def test_recordings_with_random_steps_keep_those_calls_and_are_reproducible() -> None:
    plain = record_skill_demos([PUTNEXT], episodes=6, view_size=15, marker=True)
    mixed = record_skill_demos([PUTNEXT], episodes=6, view_size=15, marker=True, random_steps=3)
    again = record_skill_demos([PUTNEXT], episodes=6, view_size=15, marker=True, random_steps=3)
    assert mixed.calls == again.calls
    for skill, demos in mixed.demos.items():
        assert np.array_equal(demos.actions, again.demos[skill].actions)
        assert np.array_equal(demos.observations["image"], again.demos[skill].observations["image"])
    assert sum(mixed.calls.values()) > sum(plain.calls.values())
    assert mixed.solved >= 4
    # The plain task only ever picks up the yellow box; random steps pick up, or go to, other objects too.
    words = {
        tuple(SKILL_SLOTS[i][j] for i, j in enumerate(row))
        for d in mixed.demos.values()
        for row in d.observations["args"]
    }
    assert words - {("yellow", "box"), ("blue", "key")}


def test_skill_step_env_with_random_steps_still_starts_at_a_call_of_its_skill() -> None:
    from gymnasium.utils.env_checker import check_env

    plain = SkillStepEnv([PUTNEXT], "putnext", view_size=15, max_steps=30, marker=True)
    mixed = SkillStepEnv([PUTNEXT], "putnext", view_size=15, max_steps=30, marker=True, random_steps=3)
    check_env(mixed, skip_render_check=True)
    moved = 0
    for seed in range(6):
        plain.reset(seed=seed)
        _, info = mixed.reset(seed=seed)
        assert info["call"].startswith("putnext(box,yellow")
        assert mixed.target.skill == "putnext"
        before = {
            (type(o).__name__, o.color, tuple(o.cur_pos))
            for o in mixed.base.grid.grid
            if o is not None and o.type in ("ball", "box", "key")
        }
        reference = {
            (type(o).__name__, o.color, tuple(o.cur_pos))
            for o in plain.base.grid.grid
            if o is not None and o.type in ("ball", "box", "key")
        }
        moved += before != reference or mixed.base.carrying is not None
    assert moved >= 1
    with pytest.raises(ConfigError, match="random_steps"):
        SkillStepEnv([PUTNEXT], "putnext", random_steps=-1)
    plain.close()
    mixed.close()


def test_skills_config_checks_random_steps() -> None:
    assert load_skill_cloning_config(TINY, ["random_steps=3"]).random_steps == 3
    with pytest.raises(ConfigError, match="random_steps"):
        load_skill_cloning_config(TINY, ["random_steps=-1"])
