"""Stuck options: run_option's loop check (EndReason.LOOP), the planner executor's escape and re-plan, and the
``modrl eval --planner`` / ``modrl plan`` flags that set them."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from modrl.config import ConfigError
from modrl.options import EndReason, Option, OptionCall, OptionConfig, OptionLibrary, run_option
from modrl.options.call_and_return import observation_key
from modrl.planner import SkillStatus
from modrl.planner.operators import GroundOperator
from modrl.planner.option_executor import OptionExecutor

SMALL = dict(channels=(8,), features_dim=16, hidden=(16,), embed_dim=4, arg_dim=4)
FORWARD, NOOP = 2, 6


class Corridor(gym.Env[dict[str, Any], int]):
    """A corridor of ``length`` cells: action 2 moves forward, 0/1 turn (the heading cycles), anything else does
    nothing; reaching the end terminates with reward 1. The image shows the position, ``direction`` the heading."""

    def __init__(self, length: int = 12) -> None:
        self.length = length
        self.observation_space = spaces.Dict(
            {"image": spaces.Box(0, 10, (7, 7, 3), np.uint8), "direction": spaces.Discrete(4)}
        )
        self.action_space = spaces.Discrete(7)
        self.pos = self.heading = 0

    def _obs(self) -> dict[str, Any]:
        image = np.zeros((7, 7, 3), np.uint8)
        image[self.pos // 7, self.pos % 7, 0] = 1
        return {"image": image, "direction": self.heading}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.pos = self.heading = 0
        return self._obs(), {"pos": 0}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if action == FORWARD:
            self.pos += 1
        elif action in (0, 1):
            self.heading = (self.heading + (1 if action == 1 else -1)) % 4
        done = self.pos >= self.length - 1
        return self._obs(), float(done), done, False, {"pos": self.pos}


def scripted_option(actions: list[int]) -> Option:
    """An option that takes ``actions`` in turn, cyclically, whatever it sees."""
    option = Option(OptionConfig(**SMALL))
    turn = iter(range(10**6))

    def act(*_: Any, **__: Any) -> tuple[torch.Tensor, None]:
        return torch.tensor([actions[next(turn) % len(actions)]]), None

    option.act = act  # type: ignore[method-assign]
    return option


def _run(option: Option, env: Corridor, max_steps: int = 30, **kwargs: Any) -> Any:
    obs, info = env.reset(seed=0)
    return run_option(
        env, option, (), obs, info, max_steps=max_steps, gamma=1.0, rng=np.random.default_rng(0), **kwargs
    )


def test_observation_key_tells_observations_apart_exactly() -> None:
    env = Corridor()
    first, _ = env.reset()
    assert observation_key(first) == observation_key({k: np.copy(v) for k, v in first.items()})
    assert observation_key(first) != observation_key({**first, "direction": 1})
    assert observation_key({**first, "mission": "go"}) != observation_key({**first, "mission": "stop"})
    assert observation_key(np.zeros(3, np.uint8)) != observation_key(np.zeros(3, np.int64))


def test_an_option_doing_nothing_ends_as_a_loop_on_the_limit_th_sight() -> None:
    run = _run(scripted_option([NOOP]), Corridor(), loop_limit=3)
    # the calling observation is the first sight; two no-ops make the third
    assert (run.reason, run.duration, run.terminated) == (EndReason.LOOP, 2, False)


def test_turning_left_and_right_is_a_loop_too_and_progress_is_not() -> None:
    run = _run(scripted_option([0, 1]), Corridor(), loop_limit=3)
    assert (run.reason, run.duration) == (EndReason.LOOP, 4)  # back at the calling pose after 2 and 4 steps
    run = _run(scripted_option([FORWARD]), Corridor(length=40), loop_limit=2)
    assert (run.reason, run.duration) == (EndReason.STEP_CAP, 30)  # never the same observation twice


def test_without_a_loop_limit_a_stuck_option_runs_to_the_step_cap() -> None:
    run = _run(scripted_option([NOOP]), Corridor())
    assert (run.reason, run.duration) == (EndReason.STEP_CAP, 30)
    with pytest.raises(ConfigError, match="loop_limit"):
        _run(scripted_option([NOOP]), Corridor(), loop_limit=1)


def _executor(env: Corridor, option: Option, **kwargs: Any) -> OptionExecutor:
    library = OptionLibrary()
    library.add("walk", option)
    return OptionExecutor(
        env,
        library,
        resolve=lambda step: OptionCall(option="walk"),
        observe=lambda: frozenset({f"at({env.pos})"}),
        observation=env._obs,
        seed=0,
        **kwargs,
    )


STEP = GroundOperator(
    operator="walk",
    args=(),
    pre=frozenset(),
    neg=(),
    add=frozenset({"at(end)"}),
    delete_exact=frozenset(),
    skill="walk",
)


def test_the_executor_escapes_a_loop_with_random_moves_and_reports_failure() -> None:
    env = Corridor()
    env.reset(seed=0)
    executor = _executor(env, scripted_option([NOOP]), loop_limit=3, escape_actions=(FORWARD,), escape_steps=3)
    result = executor.execute(STEP)
    assert result.status is SkillStatus.FAILED and executor.loops == 1
    assert result.steps == 2 + 3 and env.pos == 3 and result.state == frozenset({"at(3)"})
    assert not result.episode_over


def test_an_escape_that_ends_the_episode_reports_its_success() -> None:
    env = Corridor(length=4)
    env.reset(seed=0)
    executor = _executor(env, scripted_option([NOOP]), loop_limit=2, escape_actions=(FORWARD,), escape_steps=10)
    result = executor.execute(STEP)
    assert result.status is SkillStatus.DONE and result.episode_over and result.success
    assert result.steps == 1 + 3 and executor.episode_success


def test_escape_moves_are_drawn_from_the_given_actions_reproducibly() -> None:
    def moves(seed: int) -> list[int]:
        env = Corridor(length=100)
        env.reset(seed=0)
        executor = _executor(
            env, scripted_option([NOOP]), loop_limit=2, escape_actions=(0, 1, FORWARD), escape_steps=30
        )
        executor.rng = np.random.default_rng(seed)
        executor.execute(STEP)
        return [env.pos, env.heading]

    assert moves(1) == moves(1) and moves(1) != moves(2)
    assert 0 < moves(1)[0] < 30  # some of the 30 were turns


def _one_step_turner(env: Corridor, planning_state: Any, **kwargs: Any) -> OptionExecutor:
    """An executor whose option turns left once and ends (its predicate holds), observed as ``planning_state``."""
    option = scripted_option([0])
    option.termination_predicate = lambda info, args: True
    library = OptionLibrary()
    library.add("turn", option)
    return OptionExecutor(
        env,
        library,
        resolve=lambda step: OptionCall(option="turn"),
        observe=planning_state,
        observation=env._obs,
        seed=0,
        escape_actions=(FORWARD,),
        escape_steps=2,
        **kwargs,
    )


HERE = GroundOperator(
    operator="turn", args=(), pre=frozenset(), neg=(), add=frozenset({"here"}), delete_exact=frozenset(), skill="turn"
)


def test_a_call_ending_in_a_planning_state_for_the_cycle_limit_th_time_is_followed_by_an_escape() -> None:
    env = Corridor()
    env.reset(seed=0)
    executor = _one_step_turner(env, lambda: frozenset({"here"}), cycle_limit=3)
    results = [executor.execute(HERE) for _ in range(4)]
    assert [r.status for r in results] == [SkillStatus.DONE] * 4  # the calls themselves ended as planned
    assert [r.steps for r in results] == [1, 1, 1 + 2, 1 + 2] and executor.cycles == 2 and executor.loops == 0
    assert env.pos == 4  # two escapes of two forward moves

    env.reset(seed=0)
    off = _one_step_turner(env, lambda: frozenset({"here"}))
    assert [off.execute(HERE).steps for _ in range(4)] == [1] * 4 and off.cycles == 0 and env.pos == 0
    env.reset(seed=0)
    moving = _one_step_turner(env, lambda: frozenset({f"heading({env.heading})"}), cycle_limit=3)
    no_effects = GroundOperator(
        operator="turn", args=(), pre=frozenset(), neg=(), add=frozenset(), delete_exact=frozenset(), skill="turn"
    )
    assert [moving.execute(no_effects).steps for _ in range(4)] == [1] * 4 and moving.cycles == 0  # no state came
    # back 3 times; calls whose step's effects did not show (STEP wants at(end)) and calls cut at the step cap are
    # not counted at all
    env.reset(seed=0)
    unmet = _one_step_turner(env, lambda: frozenset({"here"}), cycle_limit=2)
    assert [unmet.execute(STEP).status for _ in range(3)] == [SkillStatus.DONE] * 3 and unmet.cycles == 0
    env.reset(seed=0)
    capped = _one_step_turner(env, lambda: frozenset({"here"}), cycle_limit=2, max_skill_steps=1)
    capped.library.get("turn").termination_predicate = None  # every call now ends at the step cap: TIMEOUT
    assert [capped.execute(STEP).status for _ in range(3)] == [SkillStatus.TIMEOUT] * 3 and capped.cycles == 0
    with pytest.raises(ConfigError, match="cycle_limit"):
        _one_step_turner(env, lambda: frozenset(), cycle_limit=1)


def test_executor_refuses_an_escape_with_nothing_to_draw_from() -> None:
    env = Corridor()
    with pytest.raises(ConfigError, match="escape_actions"):
        _executor(env, scripted_option([NOOP]), loop_limit=3, escape_steps=3)
    with pytest.raises(ConfigError, match="loop_limit"):
        _executor(env, scripted_option([NOOP]), loop_limit=0)


def test_call_and_return_ends_a_looping_call_so_the_router_picks_again() -> None:
    from modrl.agents.options.config import load_route_config
    from modrl.options import CallAndReturn

    library = OptionLibrary()
    library.add("idle", scripted_option([NOOP]))
    env = CallAndReturn(Corridor(), library, [OptionCall(option="idle")], max_option_steps=20, loop_limit=4)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(0)
    assert (info["option_end"], info["option_duration"]) == ("loop", 3) and not (terminated or truncated)
    off = CallAndReturn(Corridor(), library, [OptionCall(option="idle")], max_option_steps=20)
    off.reset(seed=0)
    assert off.step(0)[-1]["option_end"] == "step_cap"
    with pytest.raises(ConfigError, match="loop_limit"):
        load_route_config({"library": "lib", "loop_limit": 1})
    assert load_route_config({"library": "lib", "loop_limit": 3}).loop_limit == 3


def test_without_its_own_termination_a_call_ends_on_the_steps_effects() -> None:
    """An option whose termination predicate already holds (words naming a second red door: "a red door is open")
    ends at once; with ``own_termination`` false for the step it walks on until the step's effects show."""
    env = Corridor(length=6)
    option = scripted_option([FORWARD])
    option.termination_predicate = lambda info, args: True
    ended = _run(option, env)
    assert ended.reason is EndReason.TERMINATED and ended.duration == 1
    walked = _run(option, env, own_termination=False)
    assert walked.reason is EndReason.EPISODE_END and walked.duration == 5  # the corridor's end: no predicate cut it
    at_end = GroundOperator(
        operator="walk",
        args=(),
        pre=frozenset(),
        neg=(),
        add=frozenset({"at(3)"}),
        delete_exact=frozenset(),
        skill="walk",
    )
    for own, steps in ((None, 1), (lambda step: step is not at_end, 3)):
        env.reset(seed=0)
        result = _executor(env, option, own_termination=own).execute(at_end)
        assert result.status is SkillStatus.DONE and result.steps == steps and env.pos == steps
