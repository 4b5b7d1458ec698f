"""Generated task envs: env checkers after SB3 wrapping, seeded determinism, layout rules, info keys, step limits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from modrl.config import ConfigError
from modrl.envs import get_suite, make_task_env
from modrl.envs.grammar import parse_task
from modrl.envs.task_env import TaskEnv
from tests.conftest import env_checker_warnings


def _sample() -> list[tuple[str, int]]:
    """One task per (generated suite, first verb), plus the longest sequence."""
    picked: dict[tuple[str, str], int] = {}
    for suite_name in ("colour-type", "verb-object", "sequences"):
        suite = get_suite(suite_name)
        for index, name in enumerate(suite.task_names):
            picked.setdefault((suite_name, parse_task(name).subtasks[0].verb), index)
    sequences = get_suite("sequences")
    longest = max(range(sequences.num_tasks), key=lambda i: len(parse_task(sequences.task_names[i])))
    return sorted({*((s, i) for (s, _), i in picked.items()), ("sequences", longest)})


SAMPLE = _sample()


def test_sample_covers_every_verb_and_a_long_sequence() -> None:
    tasks = [parse_task(get_suite(s).task_names[i]) for s, i in SAMPLE]
    assert {sub.verb for t in tasks for sub in t.subtasks} == {"goto", "pickup", "open", "putnext"}
    assert max(len(t) for t in tasks) == 4


@pytest.mark.parametrize(("suite_name", "index"), SAMPLE, ids=[f"{s}:{i}" for s, i in SAMPLE])
def test_wrapped_task_passes_both_env_checkers(suite_name: str, index: int) -> None:
    with env_checker_warnings():  # only the known, explained ones are silenced
        gym_check_env(make_task_env(suite_name, index), skip_render_check=True)
        env = make_task_env(suite_name, index)
        sb3_check_env(env, warn=True)
    obs, info = env.reset(seed=0)
    assert set(obs) == {"image", "direction", "task"} and obs["task"] == index
    assert info["task"] == get_suite(suite_name).task_names[index]


def _trace(env: TaskEnv, seed: int, actions: list[int]) -> list[Any]:
    _, info = env.reset(seed=seed)
    out: list[Any] = [env.grid.encode().tobytes(), env.agent_pos, env.agent_dir, info["predicates"]]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out.append(
            (
                obs["image"].tobytes(),
                float(reward),
                terminated,
                truncated,
                info["events"],
                info["predicates"],
                info["subtask_index"],
            )
        )
        if terminated or truncated:
            break
    return out


@pytest.mark.parametrize("name", ["putnext-red-ball-green-box", "open-red-door_then_pickup-blue-key"])
def test_same_seed_same_episode(name: str) -> None:
    actions = np.random.default_rng(0).integers(0, 6, size=120).tolist()
    first = _trace(TaskEnv(name), 7, actions)
    assert first == _trace(TaskEnv(name), 7, actions)
    assert all(_trace(TaskEnv(name), seed, actions)[0] != first[0] for seed in (8, 9))


def _cells(env: TaskEnv) -> list[tuple[str, str, tuple[int, int]]]:
    w = env.grid.width
    cells = enumerate(env.grid.grid)
    return [(c.color, c.type, (k % w, k // w)) for k, c in cells if c is not None and c.type != "wall"]


@pytest.mark.parametrize(
    ("name", "rooms", "doors"),
    [
        ("putnext-red-ball-green-box", 1, 0),
        ("open-red-door_then_goto-blue-door", 2, 3),
    ],
)
def test_layout_mentions_each_object_once_with_distinct_distractors(name: str, rooms: int, doors: int) -> None:
    t = parse_task(name)
    env = TaskEnv(name, num_distractors=4)
    assert env.num_cols == rooms
    for seed in range(30):
        env.reset(seed=seed)
        cells = _cells(env)
        kinds = [(c, k) for c, k, _ in cells]
        assert len(kinds) == len(set(kinds)) == len(t.objects) + 4 + (1 if doors else 0)
        assert {(o.colour, o.type) for o in t.objects} <= set(kinds)
        assert sum(k == "door" for _, k in kinds) == doors
        agent = np.asarray(env.agent_pos)
        front = env.grid.get(*env.front_pos)
        assert front is None or front.type == "wall", seed  # the bot needs one action before the first check
        for colour, kind, pos in cells:
            if kind != "door":
                assert np.abs(agent - pos).sum() >= 2, (seed, colour, kind)
        if t.subtasks[0].verb == "putnext":
            where = {(c, k): np.asarray(p) for c, k, p in cells}
            assert np.abs(where[("red", "ball")] - where[("green", "box")]).sum() > 1, seed


def test_info_keys_and_step_limits() -> None:
    env = TaskEnv("open-red-door_then_putnext-green-ball-blue-key")
    _, info = env.reset(seed=1)
    assert info["mission"] == "open the red door, then put the green ball next to the blue key"
    assert info["sketch"] == ("open(door,red)", "putnext(ball,green,key,blue)")
    assert info["task"] == "open-red-door_then_putnext-green-ball-blue-key"
    assert info["events"] == [] and info["subtask_index"] == 0 and isinstance(info["predicates"], frozenset)
    assert env.max_steps == 3 * 7**2 * 2  # 3 navigations (putnext counts 2) in two 7x7 rooms
    _, _, _, _, info = env.step(0)
    assert info["events"] == [] and info["subtask_index"] == 0
    single = TaskEnv("pickup-red-key", predicates_in_info=False)
    _, info = single.reset(seed=0)
    assert single.max_steps == 7**2 and "predicates" not in info
    wrapped = make_task_env("colour-type", 0, max_episode_steps=5)
    wrapped.reset(seed=0)
    assert wrapped.unwrapped.max_steps == 5
    truncated = False
    for _ in range(5):
        _, _, _, truncated, info = wrapped.step(0)
    assert truncated and info["is_success"] is False


def test_constructor_validation() -> None:
    with pytest.raises(ConfigError, match="avoid: the task mentions avoided objects: red-ball"):
        TaskEnv("pickup-red-ball", avoid=("red-ball",))
    with pytest.raises(ConfigError, match="obj: pickup takes a ball or box or key, not a door"):
        TaskEnv("pickup-red-door")
    with pytest.raises(ConfigError, match="room_size"):
        TaskEnv("pickup-red-key", room_size=4)
    avoided = TaskEnv("pickup-red-key", avoid=("blue-ball", "green-box"), num_distractors=15)
    for seed in range(5):
        avoided.reset(seed=seed)
        kinds = {(c, k) for c, k, _ in _cells(avoided)}
        assert not kinds & {("blue", "ball"), ("green", "box")} and len(kinds) == 16  # all 15 others + the key
