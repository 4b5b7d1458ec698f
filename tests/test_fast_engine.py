"""The batched engine (modrl.envs.fast) against MiniGrid, step for step: the differential test.

Both sides get the same seeds and the same random actions; MiniGrid runs as modrl builds it (``make_task_env``: the
wrappers SB3 trains on) and resets unseeded after every episode end, as under SB3's ``DummyVecEnv``. Every step
compares the observation (image, direction), reward (exact float), terminated, truncated and mission, and on an
episode end the last observation and the next episode's first. Event counters prove the compared steps went through
what matters (keys picked up and dropped, doors unlocked and toggled, boxes opened, goals, lava, time-outs).
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from minigrid.core.grid import Grid
from minigrid.core.world_object import Ball, Box, Door, Key, Wall
from minigrid.envs import UnlockEnv

from modrl.envs import get_suite, make_task_env
from modrl.envs.fast import BatchedMiniGrid, EngineUnsupported, unsupported_reason
from modrl.envs.fast.instructions import PICKUP
from modrl.envs.fast.stock_goals import goal_instructions
from modrl.envs.fast.view import visibility

QUICKSTART = get_suite("minigrid-basic")
#: Other stock ids the engine covers (layouts with several rooms, closed and locked doors, balls, boxes, lava).
OTHER_FAMILIES = (
    "MiniGrid-Empty-Random-5x5-v0",
    "MiniGrid-DoorKey-8x8-v0",
    "MiniGrid-LavaGapS7-v0",
    "MiniGrid-FourRooms-v0",
    "MiniGrid-MultiRoom-N2-S4-v0",
    "MiniGrid-SimpleCrossingS9N1-v0",
    "MiniGrid-LavaCrossingS9N1-v0",
    "MiniGrid-LockedRoom-v0",
    "MiniGrid-Playground-v0",
)
#: Stock envs whose ``step`` adds an open or pick-up rule (envs/fast/stock_goals.py).
STOCK_GOAL_FAMILIES = (
    "MiniGrid-Unlock-v0",
    "MiniGrid-UnlockPickup-v0",
    "MiniGrid-BlockedUnlockPickup-v0",
    "MiniGrid-KeyCorridorS3R1-v0",
    "MiniGrid-KeyCorridorS3R3-v0",
    "MiniGrid-KeyCorridorS4R3-v0",
    "MiniGrid-ObstructedMaze-1Dl-v0",
    "MiniGrid-ObstructedMaze-1Dlh-v0",  # the key hidden in a box
    "MiniGrid-ObstructedMaze-1Dlhb-v0",  # and the door blocked by a ball
    "MiniGrid-ObstructedMaze-2Dlhb-v1",
    "MiniGrid-ObstructedMaze-Full-v1",
)
N_ENVS = 8
#: Action weights (left, right, forward, pickup, drop, toggle, done): forward-heavy so episodes reach goals and doors.
WEIGHTS = np.array([2, 2, 5, 2, 1, 2, 1], float) / 15


def run_differential(make: Any, steps: int, seed: int = 0, guide: Any = None) -> Counter[str]:
    """Step ``N_ENVS`` reference envs and the engine over ``steps`` env steps in total; assert equality every step.

    Actions are random; with ``guide`` (reference env -> actions), half the episodes (drawn per episode) first take
    ``guide``'s actions for the episode as it starts, then random ones.

    Returns the events seen on the reference side (``goal``, ``terminated``, ``truncated``, ``pickup``, ``drop``,
    ``door`` for a changed door state).
    """
    refs = [make() for _ in range(N_ENVS)]
    engine = BatchedMiniGrid([make() for _ in range(N_ENVS)])
    seeds = [seed * 1000 + i for i in range(N_ENVS)]
    image, direction = engine.reset(seeds)
    coin = np.random.default_rng([seed, 1])
    plans: list[list[int]] = []
    for i, ref in enumerate(refs):
        obs, _ = ref.reset(seed=seeds[i])
        assert_same(obs, image[i], direction[i], f"reset of slot {i}")
        assert engine.missions[i] == ref.unwrapped.mission
        plans.append(guide(ref) if guide is not None and coin.random() < 0.5 else [])
    rng = np.random.default_rng(seed)
    events: Counter[str] = Counter()
    for t in range(steps // N_ENVS):
        actions = rng.choice(7, size=N_ENVS, p=WEIGHTS)
        for i, plan in enumerate(plans):
            if plan:
                actions[i] = plan.pop(0)
        doors = [(door_states(ref.unwrapped), full_boxes(ref.unwrapped)) for ref in refs] if t % 4 == 0 else None
        carried = [ref.unwrapped.carrying for ref in refs]
        out = engine.step(actions)
        for i, ref in enumerate(refs):
            where = f"step {t} of slot {i} (action {actions[i]})"
            obs, reward, terminated, truncated, _ = ref.step(int(actions[i]))
            assert_same(obs, out.final_image[i], out.final_direction[i], where)
            assert (reward, terminated, truncated) == (out.reward[i], out.terminated[i], out.truncated[i]), where
            count_events(events, ref.unwrapped, carried[i], None if doors is None else doors[i], reward, terminated)
            events["truncated"] += truncated
            if terminated or truncated:
                obs, _ = ref.reset()
                assert_same(obs, out.image[i], out.direction[i], f"auto-reset after {where}")
                assert engine.missions[i] == ref.unwrapped.mission, where
                plans[i] = guide(ref) if guide is not None and coin.random() < 0.5 else []
            else:
                assert np.array_equal(out.image[i], out.final_image[i]), where
                assert engine.missions[i] == ref.unwrapped.mission, where
    return events


def assert_same(obs: dict[str, Any], image: np.ndarray, direction: Any, where: str) -> None:
    if not np.array_equal(obs["image"], image):
        cells = np.argwhere((obs["image"] != image).any(axis=-1)).tolist()
        raise AssertionError(f"{where}: images differ at view cells {cells}")
    assert int(obs["direction"]) == int(direction), where


def full_boxes(base: Any) -> int:
    """Boxes holding something, in the grid or in hand."""
    held = [base.carrying, *base.grid.grid]
    return sum(1 for obj in held if isinstance(obj, Box) and obj.contains is not None)


def door_states(base: Any) -> list[tuple[bool, bool]]:
    return [(o.is_open, o.is_locked) for o in base.grid.grid if isinstance(o, Door)]


def count_events(
    events: Counter[str], base: Any, carried: Any, doors: tuple[list, int] | None, reward: Any, terminated: bool
) -> None:
    events["steps"] += 1
    events["goal"] += float(reward) > 0
    events["terminated"] += terminated
    events["pickup"] += carried is None and base.carrying is not None
    events["drop"] += carried is not None and base.carrying is None
    if doors is not None and not terminated:
        events["door"] += doors[0] != door_states(base)
        events["box opened"] += full_boxes(base) < doors[1]


@pytest.mark.parametrize("task", QUICKSTART.task_names)
def test_quickstart_families_match_minigrid_for_10k_steps(task: str) -> None:
    index = QUICKSTART.task_index(task)
    events = run_differential(lambda: make_task_env(QUICKSTART, index), 10_000)
    assert events["steps"] == 10_000
    assert events["goal"] > 0
    if task == "lavagap5":
        assert events["terminated"] > events["goal"]  # lava
    else:
        assert events["truncated"] > 0
    if task == "doorkey5":
        assert events["pickup"] > 0 and events["drop"] > 0 and events["door"] > 0


@pytest.mark.parametrize("env_id", OTHER_FAMILIES)
def test_other_covered_families_match_minigrid(env_id: str) -> None:
    events = run_differential(lambda: gym.make(env_id), 1_000, seed=1)
    assert events["steps"] == 1_000


@pytest.mark.slow
@pytest.mark.parametrize("env_id", OTHER_FAMILIES)
def test_other_covered_families_match_minigrid_for_10k_steps(env_id: str) -> None:
    events = run_differential(lambda: gym.make(env_id), 10_000, seed=2)
    assert events["steps"] == 10_000 and events["terminated"] + events["truncated"] > 0


class _AsIs(gym.Wrapper):
    """Resets to the episode the env is in (the planner plans from it, not from a new layout)."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        return self.env.unwrapped.gen_obs(), {}


class _Record(gym.Wrapper):
    def __init__(self, env: gym.Env, actions: list[int]) -> None:
        super().__init__(env)
        self.actions = actions

    def step(self, action: Any) -> Any:
        self.actions.append(int(action))
        return self.env.step(action)


def planner_actions(ref: gym.Env) -> list[int]:
    """The actions with which modrl's planner and scripted skills (full grid) solve ``ref``'s episode from where it
    is, planned on a copy."""
    from modrl.agents.planning.episode import PlannerRunConfig, play_planner_episode

    actions: list[int] = []
    env = _AsIs(copy.deepcopy(ref.unwrapped))
    play_planner_episode(env, seed=0, config=PlannerRunConfig(), wrap=lambda inner: _Record(inner, actions))
    return actions


def assert_stock_goal_events(events: Counter[str], env_id: str) -> None:
    """Successes by the env's own rule happened, and so did what leads to them (key pick-ups; for the pick-up tasks
    an unlocked door, which in Unlock is the success itself and ends the episode)."""
    assert events["goal"] > 0 and events["goal"] == events["terminated"] and events["pickup"] > 0, events
    if env_id != "MiniGrid-Unlock-v0":
        assert events["door"] > 0, events
    if "ObstructedMaze" in env_id and env_id != "MiniGrid-ObstructedMaze-1Dl-v0":
        assert events["box opened"] > 0, events  # the keys hide in boxes


@pytest.mark.parametrize("env_id", STOCK_GOAL_FAMILIES)
def test_stock_goal_families_match_minigrid(env_id: str) -> None:
    events = run_differential(lambda: gym.make(env_id), 1_000, seed=1, guide=planner_actions)
    assert events["steps"] == 1_000
    assert_stock_goal_events(events, env_id)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", STOCK_GOAL_FAMILIES)
def test_stock_goal_families_match_minigrid_for_10k_steps(env_id: str) -> None:
    events = run_differential(lambda: gym.make(env_id), 10_000, seed=2, guide=planner_actions)
    assert events["steps"] == 10_000
    assert events["truncated"] > 0 or env_id == "MiniGrid-ObstructedMaze-Full-v1"  # its limit: 3,600 steps
    assert_stock_goal_events(events, env_id)


def test_visibility_is_process_vis_on_random_views() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        grid = Grid(7, 7)
        for x, y in zip(*np.nonzero(rng.random((7, 7)) < rng.uniform(0.1, 0.6)), strict=True):
            kind = rng.integers(4)
            grid.set(int(x), int(y), [Wall(), Door("red", is_open=bool(rng.integers(2))), Key(), Ball()][kind])
        cells = [[grid.get(x, y) for y in range(7)] for x in range(7)]
        blocking = np.array([[c is not None and not c.see_behind() for c in column] for column in cells])
        assert np.array_equal(visibility(blocking[None])[0], grid.process_vis((3, 6)))


@pytest.mark.parametrize(
    ("env_id", "reason"),
    [
        ("MiniGrid-Fetch-5x5-N2-v0", "FetchEnv overrides MiniGridEnv.step"),
        ("MiniGrid-MemoryS7-v0", "MemoryEnv overrides MiniGridEnv.step"),
        ("BabyAI-GoToObj-v0", "overrides MiniGridEnv.step"),
    ],
)
def test_uncovered_envs_are_refused_with_the_reason(env_id: str, reason: str) -> None:
    env = gym.make(env_id)
    assert reason in (unsupported_reason(env) or "")
    with pytest.raises(ValueError, match="not covered by the fast engine"):
        BatchedMiniGrid([env])


def test_a_stock_goal_env_is_covered_by_the_step_its_class_runs() -> None:
    class MyUnlock(UnlockEnv):  # its own step may change the success rule: not covered
        def step(self, action: Any) -> Any:
            return super().step(action)

    class QuickUnlock(UnlockEnv):  # the same step, another step limit: covered
        def __init__(self) -> None:
            super().__init__(max_steps=50)

    assert unsupported_reason(MyUnlock()) == "MyUnlock overrides MiniGridEnv.step"
    assert unsupported_reason(QuickUnlock()) is None


def test_a_stock_goal_object_must_be_the_only_one_of_its_kind() -> None:
    env = gym.make("MiniGrid-UnlockPickup-v0").unwrapped
    env.reset(seed=0)
    assert goal_instructions(env).verbs == (PICKUP,)
    env.grid.set(1, 1, Box(env.obj.color))  # a second box of the target's colour
    with pytest.raises(EngineUnsupported, match=r"is one of 2 objects of its type and colour"):
        goal_instructions(env)


def _with_box(box: Box) -> gym.Env:
    """Empty-5x5 with ``box`` in front of the agent (at (1, 1), facing right)."""
    env = gym.make("MiniGrid-Empty-5x5-v0")
    base = env.unwrapped
    generate_grid = base._gen_grid

    def with_box(width: int, height: int) -> None:
        generate_grid(width, height)
        base.grid.set(2, 1, copy.deepcopy(box))

    base._gen_grid = with_box
    return env


def test_a_box_keeps_what_it_holds_when_carried_and_gives_it_up_when_toggled() -> None:
    ref, engine_env = _with_box(Box("red", contains=Key("blue"))), _with_box(Box("red", contains=Key("blue")))
    engine = BatchedMiniGrid([engine_env])
    image, direction = engine.reset([0])
    obs, _ = ref.reset(seed=0)
    assert_same(obs, image[0], direction[0], "reset")
    # pick the box up, turn, put it down, toggle it (the key appears), pick the key up, turn back, toggle nothing
    for t, action in enumerate([3, 1, 4, 5, 3, 0, 5, 1, 4, 5]):
        out = engine.step(np.array([action]))
        obs, reward, terminated, truncated, _ = ref.step(action)
        assert_same(obs, out.final_image[0], out.final_direction[0], f"step {t} (action {action})")
        assert (reward, terminated, truncated) == (out.reward[0], out.terminated[0], out.truncated[0])
    assert isinstance(ref.unwrapped.grid.get(1, 2), Key)  # the box gave up its key, which was dropped back


def test_a_box_holding_what_the_engine_does_not_implement_is_refused() -> None:
    engine = BatchedMiniGrid([_with_box(Box("red", contains=Box("blue", contains=Key("green"))))])
    with pytest.raises(EngineUnsupported, match="boxes holding a key, a ball or an empty box"):
        engine.reset([0])


def test_actions_are_checked() -> None:
    engine = BatchedMiniGrid([gym.make("MiniGrid-Empty-5x5-v0") for _ in range(2)])
    engine.reset([0, 1])
    with pytest.raises(ValueError, match="in \\[0, 6\\]"):
        engine.step(np.array([0, 7]))
    with pytest.raises(ValueError, match="integers"):
        engine.step(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(2,\)"):
        engine.step(np.array([0]))
