"""The batched engine on modrl's generated tasks (TaskEnv, one task or a split's task per episode) against MiniGrid +
BabyAI, step for step: the differential test of the instruction check (``modrl.envs.fast.instructions``).

Both sides get the same seeds and the same actions; the reference is the env modrl trains on (``make_suite_env`` /
``make_split_env``), reset unseeded after every episode end as under SB3's ``DummyVecEnv``. The actions are random,
BabyAI's bot (:class:`~modrl.envs.oracle.SequenceBot`, advised: it sees the action actually taken) or the bot with
random actions mixed in, chosen per episode, so that subtasks complete, episodes succeed and the odd states of
BabyAI's verifier (an object picked up, dropped elsewhere, a box toggled away) occur. Every step compares the
observation, reward (exact float), terminated, truncated, mission, task name and id, ``events`` and
``subtask_index``; counters prove that events, successes and time-outs happened.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from modrl.envs import SplitTaskEnv, TaskEnv, get_suite, make_split_env, make_suite_env, parse_task
from modrl.envs.fast import BatchedMiniGrid, EngineUnsupported
from modrl.envs.fast.coverage import find_wrapper
from modrl.envs.fast.instructions import task_instructions
from modrl.envs.oracle import SequenceBot
from modrl.envs.wrappers import SuccessInfo, TaskObservation, minigrid_env
from tests.test_fast_engine import assert_same

#: Tasks outside the suites whose subtasks share an object: one action may complete two subtasks, and a go-to after
#: a pick-up or put-next reaches the object's tracked (not live) position.
SAME_OBJECT = (
    "pickup-red-ball_then_goto-red-ball",
    "putnext-red-ball-blue-key_then_goto-red-ball",
    "open-red-door_then_goto-red-door",
    "goto-green-key_then_pickup-green-key_then_goto-blue-box",
)
N_ENVS = 8
WEIGHTS = np.array([2, 2, 5, 2, 1, 2, 1], float) / 15  # forward-heavy random actions, as in test_fast_engine
SUITES = ("colour-type", "verb-object", "sequences")


def family_tasks(family: str) -> list[tuple[str, int]]:
    """``(suite, task index)`` of every generated task of ``family``: a verb's single-subtask tasks, or ``sequence``
    (tasks of two to four subtasks)."""
    found = []
    for name in SUITES:
        suite = get_suite(name)
        for index, task in enumerate(suite.task_names):
            many = "_then_" in task
            if (family == "sequence" and many) or (not many and task.split("-")[0] == family):
                found.append((name, index))
    return found


class Actor:
    """Per slot and episode: random actions, BabyAI's bot, or the bot with a share of random actions."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.bots: list[Any] = [None] * N_ENVS
        self.noise = [0.0] * N_ENVS
        self.taken: list[int | None] = [None] * N_ENVS

    def start(self, slot: int, env: gym.Env, episode: int) -> None:
        mode = (slot + episode) % 3  # 0: random, 1: bot, 2: bot with 30 % random actions
        self.bots[slot] = None if mode == 0 else SequenceBot(_task_env(env))
        self.noise[slot] = 0.3 if mode == 2 else 0.0
        self.taken[slot] = None

    def act(self, slot: int) -> int:
        action = int(self.rng.choice(7, p=WEIGHTS))
        bot = self.bots[slot]
        if bot is not None:
            try:
                advice = int(bot.replan(self.taken[slot]))
            except Exception:  # the bot gives up in some states its advice mode led to: random from here
                self.bots[slot] = None
            else:
                action = action if self.rng.random() < self.noise[slot] else advice
        self.taken[slot] = action
        return action


def _task_env(env: gym.Env) -> gym.Env:
    base = env.unwrapped
    return base.current_env if isinstance(base, SplitTaskEnv) else env


def run_differential(make: Callable[[int], gym.Env], steps: int, seed: int = 0) -> Counter[str]:
    """Step ``N_ENVS`` reference envs (``make(slot)``) and the engine over ``steps`` env steps in all; assert equality
    every step. Returns counters of what happened on the reference side."""
    refs = [make(i) for i in range(N_ENVS)]
    engine = BatchedMiniGrid([make(i) for i in range(N_ENVS)])
    seeds = [seed * 1000 + i for i in range(N_ENVS)]
    image, direction = engine.reset(seeds)
    actor = Actor(seed)
    episodes = [0] * N_ENVS
    for i, ref in enumerate(refs):
        obs, info = ref.reset(seed=seeds[i])
        assert_same(obs, image[i], direction[i], f"reset of slot {i}")
        assert_same_episode(engine, i, obs, info, f"reset of slot {i}")
        actor.start(i, ref, 0)
    seen: Counter[str] = Counter()
    for t in range(steps // N_ENVS):
        actions = np.array([actor.act(i) for i in range(N_ENVS)])
        episode_symbols = [() if ins is None else ins.symbols for ins in engine.instructions]  # before auto-resets
        out = engine.step(actions)
        for i, ref in enumerate(refs):
            where = f"step {t} of slot {i} (action {actions[i]})"
            base = minigrid_env(ref)
            carried = base.carrying
            obs, reward, terminated, truncated, info = ref.step(int(actions[i]))
            assert_same(obs, out.final_image[i], out.final_direction[i], where)
            assert (reward, terminated, truncated) == (out.reward[i], out.terminated[i], out.truncated[i]), where
            symbols = episode_symbols[i]
            index, count = int(out.subtask_index[i]), int(out.events[i])
            assert (info["subtask_index"], info["events"]) == (index, list(symbols[index - count : index])), where
            count_events(seen, base, carried, info, float(reward), terminated, truncated)
            if terminated or truncated:
                episodes[i] += 1
                obs, info = ref.reset()
                assert_same(obs, out.image[i], out.direction[i], f"auto-reset after {where}")
                assert_same_episode(engine, i, obs, info, where)
                actor.start(i, ref, episodes[i])
            else:
                assert np.array_equal(out.image[i], out.final_image[i]), where
    return seen


def assert_same_episode(engine: BatchedMiniGrid, slot: int, obs: dict[str, Any], info: dict[str, Any], where: str):
    """The engine's episode in ``slot`` is the reference's: mission, task name and id, subtasks, step limit."""
    episode = engine.episode_envs[slot]
    assert engine.missions[slot] == info["mission"], where
    assert find_wrapper(episode, SuccessInfo).task_name == info["task"], where
    assert find_wrapper(episode, TaskObservation).task_id == obs["task"], where
    assert info["subtask_index"] == int(engine.subtask_index[slot]) == 0 and info["events"] == [], where
    assert engine.max_steps[slot] == minigrid_env(episode).max_steps, where


def count_events(
    seen: Counter[str], base: Any, carried: Any, info: dict[str, Any], reward: float, terminated: bool, truncated: bool
) -> None:
    seen["steps"] += 1
    seen["success"] += terminated and reward > 0
    seen["failure"] += terminated and reward == 0  # a strict subtask failed
    seen["truncated"] += truncated
    seen["pickup"] += carried is None and base.carrying is not None
    seen["drop"] += carried is not None and base.carrying is None
    for event in info["events"]:
        seen[event.split("(")[0]] += 1  # "goto(ball,red)" -> goto
    seen["several"] += len(info["events"]) > 1


FAMILIES = ("goto", "pickup", "open", "putnext", "sequence")


def _same_object_env(slot: int) -> gym.Env:
    name = SAME_OBJECT[slot % len(SAME_OBJECT)]
    env = SuccessInfo(TaskEnv(parse_task(name)), task_name=name)
    return TaskObservation(env, task_id=slot % len(SAME_OBJECT), num_tasks=len(SAME_OBJECT))


def _family_env(family: str, max_episode_steps: int | None = None, strict: bool = False) -> Callable[[int], gym.Env]:
    tasks = family_tasks(family)
    assert len(tasks) >= 3, family

    def make(slot: int) -> gym.Env:
        suite, index = tasks[(slot * 5) % len(tasks)]  # spread the slots over the family's tasks
        return make_suite_env(suite, index, max_episode_steps=max_episode_steps, strict=strict)

    return make


def _check_family(family: str, seen: Counter[str], steps: int) -> None:
    assert seen["steps"] == steps
    assert seen["success"] > 0 and seen["truncated"] > 0, seen
    if family == "sequence":
        assert all(seen[verb] > 0 for verb in ("goto", "pickup", "open", "putnext")), seen
    else:
        assert seen[family] > 0, seen


@pytest.mark.parametrize("family", FAMILIES)
def test_task_families_match_minigrid(family: str) -> None:
    """Short: sequences get a fixed limit of 60 steps (BabyAI's is 100 to 400), so that some time out."""
    seen = run_differential(_family_env(family, 60 if family == "sequence" else None), 800, seed=1)
    _check_family(family, seen, 800)


@pytest.mark.parametrize("family", ["pickup", "open", "sequence"])
def test_strict_task_families_match_minigrid(family: str) -> None:
    """BabyAI's strict pick-up and open: a wrong pick-up or door ends the episode, terminated with reward 0; the
    random and noisy-bot episodes make both happen."""
    seen = run_differential(_family_env(family, 60 if family == "sequence" else None, strict=True), 1_600, seed=7)
    _check_family(family, seen, 1_600)
    assert seen["failure"] > 0, seen


def test_a_strict_split_matches_minigrid_for_2k_steps() -> None:
    seen = run_differential(lambda slot: make_split_env("colour-type", "train", strict=True), 2_000, seed=8)
    assert seen["success"] > 0 and seen["failure"] > 0 and seen["pickup"] > 0, seen


def test_a_split_matches_minigrid_task_by_task() -> None:
    """``make_split_env``: the task (its id, name, mission, step limit) drawn per episode, then its episode."""
    seen = run_differential(lambda slot: make_split_env("sequences", "train", mission_tokens=True), 800, seed=2)
    assert seen["success"] > 0 and seen["truncated"] > 0, seen


def test_subtasks_on_one_object_match_minigrid() -> None:
    seen = run_differential(_same_object_env, 2_000, seed=5)
    assert seen["several"] > 0 and seen["success"] > 0, seen  # one action completing two subtasks at once


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "sequence"])
def test_task_families_match_minigrid_for_10k_steps(family: str) -> None:
    """The ``sequence`` family's 10,000 steps are those of the ``sequences`` test split (every task a sequence):
    :func:`test_splits_match_minigrid_for_10k_steps`."""
    seen = run_differential(_family_env(family), 10_000, seed=3)
    _check_family(family, seen, 10_000)


@pytest.mark.slow
def test_subtasks_on_one_object_match_minigrid_for_10k_steps() -> None:
    seen = run_differential(_same_object_env, 10_000, seed=6)
    assert seen["several"] > 0 and seen["success"] > 0 and seen["truncated"] > 0, seen


@pytest.mark.slow
@pytest.mark.parametrize("split", [("colour-type", "train"), ("sequences", "test")])
def test_splits_match_minigrid_for_10k_steps(split: tuple[str, str]) -> None:
    """The ``sequences`` test split holds sequences only: its run is also the ``sequence`` family's 10,000 steps."""
    seen = run_differential(lambda slot: make_split_env(*split), 10_000, seed=4)
    assert seen["success"] > 0 and seen["truncated"] > 0, seen
    if split[0] == "sequences":
        assert all(len(parse_task(name).subtasks) > 1 for name in _split_tasks(*split))
        _check_family("sequence", seen, 10_000)


def _split_tasks(suite: str, split: str) -> list[str]:
    tasks = get_suite(suite)
    return [tasks.task_names[i] for i in tasks.split_indices(split)]


def test_instructions_name_one_object_each() -> None:
    """The engine identifies a task's objects by type and colour; an episode where a description matches two
    objects is refused, not verified wrongly."""
    env = make_suite_env("sequences", get_suite("sequences").task_index("pickup-blue-key"))
    env.reset(seed=0)
    base = env.unwrapped
    instructions = task_instructions(base)
    assert instructions.symbols == tuple(base.instrs.symbols) and len(instructions.verbs) == 1
    base.instrs.instrs[0].desc.obj_set.append(base.instrs.instrs[0].desc.obj_set[0])
    with pytest.raises(EngineUnsupported, match="exactly one object"):
        task_instructions(base)


# ------------------------------------------------------------------------------------ as SB3's vector env (training)

SPLIT = ("env.suite=colour-type", "env.split=train", "env.n_envs=8", "env.mission_tokens=true")


def _without_predicates(infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fast engine leaves out ``predicates`` (the planner's state; nothing in training reads it)."""
    for info in infos:
        assert "predicates" in info
    return [{k: v for k, v in info.items() if k != "predicates"} for info in infos]


@pytest.mark.parametrize(
    "overrides",
    [
        (*SPLIT, "env.event_reward=0.1", "env.max_episode_steps=30"),
        ("env.suite=sequences", "env.n_envs=35", "env.max_episode_steps=25"),
    ],
    ids=["split-tokens-shaped", "one-task-per-slot"],
)
def test_fast_vec_env_gives_sb3_what_the_minigrid_vec_env_gives_on_tasks(tiny_config, overrides) -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv

    from modrl.agents.common.builders import make_vec_env
    from modrl.agents.common.fast_vec_env import FastVecEnv
    from tests.test_fast_vec_env import assert_same_obs, assert_steps_alike

    reference, fast = (make_vec_env(tiny_config(*overrides, f"env.engine={e}")) for e in ("minigrid", "fast"))
    assert isinstance(reference, DummyVecEnv) and isinstance(fast, FastVecEnv)
    assert reference.observation_space == fast.observation_space
    assert_same_obs(reference.reset(), fast.reset(), "reset")
    assert _without_predicates(reference.reset_infos) == fast.reset_infos
    n, rng = reference.num_envs, np.random.default_rng(0)
    actions = (rng.choice(7, size=n, p=WEIGHTS) for _ in range(2400 // n))
    seen = assert_steps_alike(reference, fast, actions, _without_predicates)
    assert reference.env_method("get_env_state") == fast.env_method("get_env_state")
    assert seen["is_success"] > 0 and seen["TimeLimit.truncated"] > 0 and seen["events"] > 0, seen


def test_split_env_state_round_trip_continues_identically(tiny_config) -> None:
    """Exact resume of split slots: a fresh fast vec env given the recorded states steps on as the other does."""
    from tests.test_fast_vec_env import assert_steps_alike, restored_copy

    config = tiny_config(*SPLIT, "env.max_episode_steps=20", "env.event_reward=0.1", "env.engine=fast")
    one, other, restored, rng = restored_copy(config)
    for index, obs in enumerate(restored):
        assert np.array_equal(obs["mission"], one._mission[index]) and obs["task"] == one._task[index]
    # Infos equal: episode returns (shaped) and lengths counted the replayed steps.
    assert_steps_alike(one, other, (rng.integers(0, 7, size=one.num_envs) for _ in range(100)))


def test_same_seed_trains_a_split_to_the_same_parameters_on_both_engines(tiny_config, tmp_path) -> None:
    """PPO on the colour-type train split (mission tokens, event shaping), 4 rollouts: identical checkpoints."""
    import torch

    from modrl.agents.common.fast_vec_env import select_engine
    from modrl.agents.common.training import CHECKPOINTS, run_training
    from modrl.checkpoint import latest_checkpoint
    from tests.test_exact_resume import _metrics, _new_run, _without_wall_clock

    runs = {}
    for engine in ("minigrid", "fast"):
        config = tiny_config(
            *SPLIT[:2],
            "env.mission_tokens=true",
            "env.event_reward=0.1",
            "env.max_episode_steps=30",
            "train.total_timesteps=256",
            "train.checkpoint_every=128",
            "train.eval_episodes=0",
            f"env.engine={engine}",
        )
        assert select_engine(config) == engine
        runs[engine] = _new_run(tmp_path, engine, config)
        assert run_training(config, runs[engine]).steps == 256
    a, b = (latest_checkpoint(runs[engine] / CHECKPOINTS) for engine in ("minigrid", "fast"))
    assert a is not None and b is not None and a.step == b.step == 256
    for group, tensors in a.tensors.items():
        for key, tensor in tensors.items():
            assert torch.equal(tensor, b.tensors[group][key]), f"{group}.{key} differs"
    assert _without_wall_clock(a.meta) == _without_wall_clock(b.meta)
    assert _metrics(runs["minigrid"]) == _metrics(runs["fast"])


def test_babyai_done_action_verification_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from minigrid.envs.babyai.core import verifier

    from modrl.envs.fast import unsupported_reason

    env = make_suite_env("sequences", 0)
    assert unsupported_reason(env) is None
    monkeypatch.setattr(verifier, "use_done_actions", True)
    assert "BABYAI_DONE_ACTIONS" in (unsupported_reason(env) or "")
    with pytest.raises(ValueError, match=r"not covered by the fast engine.*BABYAI_DONE_ACTIONS"):
        BatchedMiniGrid([env])


def test_auto_runs_the_generalisation_config_on_the_fast_engine() -> None:
    from modrl.agents.common.config import load_experiment_config
    from modrl.agents.common.fast_vec_env import select_engine

    config = load_experiment_config("experiments/configs/generalisation_colour_type.yaml", [])
    assert config.env.engine == "auto" and config.env.split == "train" and config.env.mission_tokens
    assert select_engine(config) == "fast"


@pytest.mark.slow
def test_stop_then_resume_a_split_on_the_fast_engine_is_exact(tiny_config, tmp_path, monkeypatch) -> None:
    """Exact resume with split slots (episodes in flight, started from the split env's RNG), SIGTERM mid-run, and a
    run stopped on MiniGrid resumed on the engine: the same checkpoints, metrics and scalars as one go."""
    from modrl.agents.common.fast_vec_env import FastVecEnv, select_engine
    from modrl.agents.common.training import CHECKPOINTS, run_training
    from modrl.checkpoint import latest_checkpoint
    from modrl.faults import FAULT_ENV, reset_fault_counters
    from tests.test_exact_resume import STEPS, _new_run
    from tests.test_exact_resume import assert_same_run as assert_same_resumed_run

    restored: list[int] = []
    original = FastVecEnv.set_env_state

    def spy(self: FastVecEnv, slot: int, state: dict[str, Any]) -> Any:
        restored.append(slot)
        return original(self, slot, state)

    monkeypatch.setattr(FastVecEnv, "set_env_state", spy)
    split = (*SPLIT[:2], "env.mission_tokens=true", "env.event_reward=0.1", "env.max_episode_steps=20", *STEPS)
    fast, minigrid = tiny_config(*split, "env.engine=fast"), tiny_config(*split, "env.engine=minigrid")
    assert select_engine(fast) == "fast"
    one_go = _new_run(tmp_path, "one-go", fast)
    assert run_training(fast, one_go).steps == 512
    for name, first in (("stopped-fast", fast), ("stopped-minigrid", minigrid)):
        run_dir = _new_run(tmp_path, name, first)
        monkeypatch.setenv(FAULT_ENV, "rollout-end:3:term")  # SIGTERM at the end of the 3rd rollout (step 192)
        reset_fault_counters()
        assert run_training(first, run_dir).steps == 192
        state = latest_checkpoint(run_dir / CHECKPOINTS).meta["resume"]["envs"]  # type: ignore[union-attr]
        assert all(env["actions"] for env in state) and any("rng" in env["start"] for env in state)
        monkeypatch.delenv(FAULT_ENV)
        restored.clear()
        assert run_training(fast, run_dir, resume=True).steps == 512
        assert restored == [0, 1]
        assert_same_resumed_run(one_go, run_dir)
