"""Skill-aware planning: the ``allowed`` search filter, the free-hands ``putnext_fetch`` operator, and the
OptionExecutor's filter (plans use only the skills a library of options serves)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest

from modrl.agents.planning.skills import call_resolver, learned_skills, with_predicates
from modrl.cli.main import main
from modrl.config import ConfigError
from modrl.envs import get_suite
from modrl.envs.goals import goals_for_env
from modrl.envs.operators import planning_domain, skill_subtask
from modrl.envs.predicates import env_planning_state
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.task_env import TaskEnv
from modrl.options import Option, OptionConfig, OptionLibrary
from modrl.planner import (
    Goal,
    GroundOperator,
    MonitorConfig,
    NoPlan,
    NoPlanReason,
    Operator,
    Outcome,
    Param,
    Plan,
    PrunedPolicy,
    SearchConfig,
    execute,
    plan,
)

DOMAIN = planning_domain()
TINY = OptionConfig(channels=(4,), features_dim=4, hidden=(), embed_dim=2)
PUTNEXT = "putnext-yellow-box-blue-key"


def _no_open(op: GroundOperator) -> bool:
    return op.operator != "open"


def _no_pickup(op: GroundOperator) -> bool:
    return op.operator != "pickup"


def _purple_door_state() -> frozenset[str]:
    suite = get_suite("sequences")
    spec = suite.tasks[suite.task_index("goto-purple-door_then_putnext-yellow-box-blue-key")]
    env = gym.make(spec.env_id, **spec.kwargs)
    env.reset(seed=1_000_000_000)  # the purple door is closed: opening it also ends facing it
    return env_planning_state(env)


def test_filter_prunes_open_so_goto_door_serves_facing_the_door() -> None:
    state = _purple_door_state()
    goal = Goal(holds=frozenset({"facing(door,purple)"}))
    # Both goto_door and open (the door is closed) end facing it: the filter decides which one the plan may use.
    opened = plan(DOMAIN, state, goal, allowed=lambda op: op.operator != "goto_door")
    assert isinstance(opened, Plan) and [s.operator for s in opened.steps] == ["open"]
    found = plan(DOMAIN, state, goal, allowed=_no_open)
    assert isinstance(found, Plan) and [s.operator for s in found.steps] == ["goto_door"]
    assert found.steps[0].symbol == "goto(door,purple)"
    for algorithm in ("bfs", "astar"):  # both searches honour the filter
        again = plan(DOMAIN, state, goal, SearchConfig(algorithm=algorithm), allowed=_no_open)
        assert isinstance(again, Plan) and again.names == found.names


def test_no_plan_says_the_filter_removed_every_way() -> None:
    state = _purple_door_state()
    goal = Goal(holds=frozenset({"facing(door,purple)"}))
    found = plan(DOMAIN, state, goal, allowed=lambda op: op.operator not in ("open", "goto_door"))
    assert isinstance(found, NoPlan) and found.reason is NoPlanReason.PRUNED
    assert "allowed skills" in found.message and "goto(door,purple)" in found.message
    unreachable = plan(DOMAIN, state, Goal(holds=frozenset({"facing(door,nope)"})))
    assert isinstance(unreachable, NoPlan) and unreachable.reason is NoPlanReason.UNREACHABLE  # no filter: as before
    everything = plan(DOMAIN, state, goal, allowed=lambda op: True)
    assert isinstance(everything, Plan) and everything.names == plan(DOMAIN, state, goal).names  # type: ignore[union-attr]


def test_execute_replans_with_the_filter_and_reports_no_plan() -> None:
    env = TaskEnv("goto-purple-door")
    env.reset(seed=0)
    goals = goals_for_env(env, env_planning_state(env))
    trace = execute(DOMAIN, goals, ScriptedSkills(env), allowed=_no_open)
    assert trace.outcome is Outcome.SUCCESS and [s.skill for s in trace.steps] == ["goto(door,purple)"]
    assert trace.steps[0].operator.startswith("goto_door(")
    env.reset(seed=0)
    stop = MonitorConfig(on_pruned=PrunedPolicy.STOP)
    blocked = execute(DOMAIN, goals, ScriptedSkills(env), stop, allowed=lambda op: False)
    assert blocked.outcome is Outcome.NO_PLAN and not blocked.steps
    assert blocked.plans[0].no_plan is not None and "allowed skills" in blocked.plans[0].no_plan
    env.reset(seed=0)  # by default a pruned search falls back to every operator, and the executor tries
    tried = execute(DOMAIN, goals, ScriptedSkills(env), allowed=lambda op: False)
    assert tried.outcome is Outcome.SUCCESS and [s.skill for s in tried.steps] == ["goto(door,purple)"]
    with pytest.raises(ConfigError, match="on_pruned"):
        MonitorConfig(on_pruned="stop")  # type: ignore[arg-type]


def _putnext_env(seed: int) -> gym.Env:
    suite = get_suite("sequences")
    spec = suite.tasks[suite.task_index(PUTNEXT)]
    env = gym.make(spec.env_id, **spec.kwargs)
    env.reset(seed=seed)
    return env


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_putnext_from_free_hands_is_one_step_and_scripted_skills_solve_it(seed: int) -> None:
    env = _putnext_env(seed)
    skills = ScriptedSkills(env)
    goals = goals_for_env(env, skills.observe())
    found = plan(DOMAIN, skills.observe(), goals, allowed=_no_pickup)
    assert isinstance(found, Plan) and len(found) == 1 and found.steps[0].operator == "putnext_fetch"
    assert found.steps[0].symbol == "putnext(box,yellow,key,blue)"
    assert skill_subtask(found.steps[0]) is not None and skill_subtask(found.steps[0]).name == PUTNEXT  # type: ignore[union-attr]
    trace = execute(DOMAIN, goals, skills, allowed=_no_pickup)
    assert trace.outcome is Outcome.SUCCESS and skills.episode_success
    assert not any(s.operator.startswith("pickup(") for s in trace.steps)
    assert env.unwrapped.carrying is None  # the hands end free, as the operator says
    env.close()


def test_putnext_fetch_keeps_the_carried_putnext_and_never_puts_an_object_next_to_itself() -> None:
    env = _putnext_env(0)
    state = env_planning_state(env)
    ops = DOMAIN.ground(state)
    fetch = [op for op in ops if op.operator == "putnext_fetch"]
    assert fetch and all(op.args[:2] != op.args[2:4] for op in fetch)
    carried = next(o for o in DOMAIN.operators if o.name == "putnext")
    assert "carrying(?t,?c)" in carried.pre  # the old operator is still declared
    held = plan(DOMAIN, state, Goal(achieve=frozenset({"next_to(box,yellow,key,blue)"})), allowed=lambda op: True)
    assert isinstance(held, Plan) and [s.operator for s in held.steps] == ["putnext_fetch"]
    with pytest.raises(ConfigError, match="distinct"):
        Operator(name="bad", params=(Param(name="?a"), Param(name="?b")), distinct=((("?a",), ("?a", "?b")),))
    pair = Operator(
        name="pair", params=(Param(name="?a"), Param(name="?b")), pre=("p(?a)", "p(?b)"), distinct=((("?a",), ("?b",)),)
    )
    assert pair.admits({"?a": "x", "?b": "y"}) and not pair.admits({"?a": "x", "?b": "x"})
    env.close()


def _library(*names: str) -> OptionLibrary:
    library = OptionLibrary()
    for name in names:
        library.add(name, Option(TINY))
    return library


def test_option_executor_filter_matches_its_resolver() -> None:
    env = with_predicates(_putnext_env(0).unwrapped)
    env.reset(seed=0)
    library = _library(PUTNEXT, "goto-green-ball")
    executor = learned_skills(env, library, fallback=None)
    resolve = call_resolver(library)
    ops = DOMAIN.ground(executor.observe())
    assert executor.allowed is not None
    assert [executor.allowed(op) for op in ops] == [resolve(op) is not None for op in ops]
    served = {op.operator for op in ops if executor.allowed(op)}
    assert "putnext_fetch" in served and "pickup" not in served and "open" not in served
    assert learned_skills(env, library, fallback=ScriptedSkills(env)).allowed is None  # a fallback runs the rest
    goals = goals_for_env(env, executor.observe())
    found = plan(DOMAIN, executor.observe(), goals, allowed=executor.allowed)
    assert isinstance(found, Plan) and [s.operator for s in found.steps] == ["putnext_fetch"]
    assert resolve(found.steps[0]) is not None and resolve(found.steps[0]).option == PUTNEXT  # type: ignore[union-attr]
    env.close()


def test_cli_plan_with_options_and_no_fallback_plans_over_served_skills(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _library(PUTNEXT).save(tmp_path / "lib")
    assert (
        main(["plan", f"sequences/{PUTNEXT}", "--seed", "0", "--options", str(tmp_path / "lib"), "--no-fallback"]) == 0
    )
    out = capsys.readouterr().out
    assert "planning over the skills the options serve only" in out
    assert "0. putnext(box,yellow,key,blue)" in out and "[putnext_fetch(box,yellow,key,blue," in out
    assert main(["plan", f"sequences/{PUTNEXT}", "--no-fallback"]) == 2
    assert "--no-fallback needs --options" in capsys.readouterr().err
    lib = str(tmp_path / "lib")
    code = main(
        [
            "plan",
            f"sequences/{PUTNEXT}",
            "--seed",
            "0",
            "--options",
            lib,
            "--ensemble",
            lib,
            lib,
            "--no-fallback",
            "--execute",
            "--option-steps",
            "3",
        ]
    )
    assert code in (0, 1)  # untrained options may not reach the goal
    assert "0. putnext(box,yellow,key,blue)" in capsys.readouterr().out  # an ensemble of three serves the same skills
    odd = OptionLibrary()
    odd.add(PUTNEXT, Option(OptionConfig(channels=(4,), features_dim=4, hidden=(), embed_dim=2, image_shape=(5, 5, 3))))
    odd.save(tmp_path / "odd")
    assert (
        main(["plan", f"sequences/{PUTNEXT}", "--options", str(tmp_path / "lib"), "--ensemble", str(tmp_path / "odd")])
        == 2
    )
    assert f"option {PUTNEXT!r}: ensemble member 1 does not fit member 0 (image_shape" in capsys.readouterr().err
    assert main(["plan", f"sequences/{PUTNEXT}", "--ensemble", str(tmp_path / "lib")]) == 2
    assert "--ensemble needs --options" in capsys.readouterr().err
    assert main(["plan", f"sequences/{PUTNEXT}", "--loop-limit", "1"]) == 2
    assert "--loop-limit must be 0 (off) or >= 2, got 1" in capsys.readouterr().err
    assert main(["plan", f"sequences/{PUTNEXT}", "--escape-steps", "-1"]) == 2
    assert "--escape-steps must be >= 0" in capsys.readouterr().err
