"""Mission vocabulary, mission tokens and the split env: env checkers, split sampling, task ids, determinism."""

from __future__ import annotations

from collections import Counter
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from modrl.config import ConfigError
from modrl.envs import (
    SPLITS,
    MissionTokens,
    MissionVocabulary,
    SplitTaskEnv,
    Suite,
    TaskSpec,
    get_suite,
    make_split_env,
    make_task_env,
)
from modrl.envs.mission import VOCABULARY_VERSION, grammar_missions, suite_max_len, suite_missions, tokenize
from tests.conftest import env_checker_warnings

EXPECTED_WORDS = (
    "<pad>",
    "<unk>",
    ",",
    "ball",
    "blue",
    "box",
    "door",
    "go",
    "green",
    "grey",
    "key",
    "next",
    "open",
    "pick",
    "purple",
    "put",
    "red",
    "the",
    "then",
    "to",
    "up",
    "yellow",
    # version 2: the stock suites' other words, appended so the ids above never change
    "a",
    "after",
    "and",
    "avoid",
    "behind",
    "front",
    "get",
    "goal",
    "in",
    "lava",
    "left",
    "of",
    "on",
    "right",
    "square",
    "use",
    "you",
    "your",
)
VOCAB = MissionVocabulary.from_grammar()


def _episodes(env: gym.Env, seed: int, resets: int, steps: int) -> list[tuple[Any, ...]]:
    """(task id, info task, mission tokens, image bytes, reward) after every reset and step."""
    actions = np.random.default_rng(0).integers(0, 7, size=steps).tolist()
    trace = []
    for n in range(resets):
        obs, info = env.reset(seed=seed if n == 0 else None)
        trace.append((obs["task"], info["task"], tuple(obs.get("mission", ())), obs["image"].tobytes(), 0.0))
        for action in actions:
            obs, reward, terminated, truncated, info = env.step(action)
            trace.append((obs["task"], info["task"], tuple(obs.get("mission", ())), obs["image"].tobytes(), reward))
            if terminated or truncated:
                break
    return trace


# -- vocabulary ------------------------------------------------------------------------------------------------


def test_grammar_vocabulary_is_pinned() -> None:
    assert VOCAB.words == EXPECTED_WORDS, "the grammar's words changed: bump VOCABULARY_VERSION and this list"
    assert VOCAB.version == VOCABULARY_VERSION == 2 and VOCAB.size == 40
    assert VOCAB.token_id("<pad>") == 0 and VOCAB.token_id("<unk>") == 1 and VOCAB.token_id("zebra") == 1
    assert MissionVocabulary.from_grammar().fingerprint == VOCAB.fingerprint and len(VOCAB.fingerprint) == 16


def test_encode_round_trip_padding_and_unknown_words() -> None:
    mission = "open the red door, then pick up the blue key"
    ids = VOCAB.encode(mission, 12)
    assert ids.dtype == np.int64 and ids.shape == (12,)
    words = ["open", "the", "red", "door", ",", "then", "pick", "up", "the", "blue", "key"]
    assert tokenize(mission) == words
    assert ids.tolist() == [EXPECTED_WORDS.index(w) for w in words] + [0]
    assert VOCAB.decode(ids) == mission
    assert VOCAB.encode("go to the purple zebra", 6).tolist() == [7, 19, 17, 14, 1, 0]
    assert VOCAB.encode(mission, 11).tolist() == ids[:11].tolist()  # exactly max_len: no padding


def test_encode_too_long_names_the_length() -> None:
    with pytest.raises(ValueError, match="has 11 tokens, more than max_len=10"):
        VOCAB.encode("open the red door, then pick up the blue key", 10)
    with pytest.raises(ConfigError, match="max_len"):
        VOCAB.encode("open the red door", 0)


def test_vocabulary_validation() -> None:
    with pytest.raises(ConfigError, match="words"):
        MissionVocabulary(words=("a", "<pad>", "<unk>"), version=1)
    with pytest.raises(ConfigError, match="unique"):
        MissionVocabulary(words=("<pad>", "<unk>", "a", "a"), version=1)


def test_every_generated_mission_encodes_without_unk_and_round_trips() -> None:
    missions = set(grammar_missions())
    for name in SPLITS.names():
        suite = get_suite(name)
        expected = suite_missions(suite)
        for index in range(suite.num_tasks):
            env = make_task_env(suite, index)
            env.reset(seed=index)
            assert env.unwrapped.mission == expected[index]  # what the env says, not only the grammar
            missions.add(env.unwrapped.mission)
    assert len(missions) == 354 + 1 + 30  # every grammar subtask, one grammar pair, the 30 longer sequences
    for mission in missions:
        ids = VOCAB.encode(mission, 40)
        assert 1 not in ids.tolist(), mission
        assert VOCAB.decode(ids) == mission
    assert [suite_max_len(get_suite(n)) for n in ("colour-type", "verb-object", "sequences")] == [5, 9, 30]


def test_max_len_of_a_stock_suite_comes_from_the_suite_or_must_be_given() -> None:
    stock = get_suite("minigrid-tiny")
    undeclared = Suite(name="undeclared", version=1, description="", tasks=stock.tasks)
    with pytest.raises(ConfigError, match="max_len"):
        make_split_env(undeclared, "train", mission_tokens=True)
    env = make_split_env(stock, "train", mission_tokens=True)
    obs, _ = env.reset(seed=0)
    assert obs["mission"].shape == (stock.mission_max_len,) and 1 not in obs["mission"].tolist()
    env = make_split_env(undeclared, "train", mission_tokens=True, max_len=8)
    obs, _ = env.reset(seed=0)
    assert obs["mission"].shape == (8,)
    assert VOCAB.decode(obs["mission"]) == "get to the green goal square"


def test_mission_tokens_wrapper_reads_the_unwrapped_mission() -> None:
    suite = get_suite("sequences")
    index = suite.num_tasks - 1
    env = MissionTokens(make_task_env(suite, index), vocabulary=VOCAB, max_len=30)
    assert env.observation_space["mission"] == spaces.MultiDiscrete([40] * 30)
    obs, _ = env.reset(seed=0)
    assert VOCAB.decode(obs["mission"]) == suite_missions(suite)[index]
    obs, *_ = env.step(0)
    assert VOCAB.decode(obs["mission"]) == suite_missions(suite)[index]
    assert env.observation_space.contains(obs)
    with pytest.raises(TypeError, match="without 'mission'"):
        MissionTokens(env, vocabulary=VOCAB, max_len=30)
    short = MissionTokens(make_task_env(suite, index), vocabulary=VOCAB, max_len=5)
    with pytest.raises(ValueError, match="more than max_len=5"):
        short.reset(seed=0)


# -- split env -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mission_tokens", [False, True])
def test_split_env_passes_both_env_checkers(mission_tokens: bool) -> None:
    with env_checker_warnings():  # only the known, explained ones are silenced
        gym_check_env(make_split_env("colour-type", "train", mission_tokens=mission_tokens), skip_render_check=True)
        sb3_check_env(make_split_env("colour-type", "train", mission_tokens=mission_tokens), warn=True)
    env = make_split_env("colour-type", "train", mission_tokens=mission_tokens)
    expected = {"image", "direction", "task"} | ({"mission"} if mission_tokens else set())
    assert set(env.observation_space.spaces) == expected
    assert env.observation_space["task"] == spaces.Discrete(get_suite("colour-type").num_tasks)
    if mission_tokens:
        assert env.observation_space["mission"] == spaces.MultiDiscrete([40] * 5)


def test_resets_sample_only_and_every_train_task_with_suite_ids() -> None:
    suite = get_suite("colour-type")
    train, missions = suite.split("train"), suite_missions(suite)
    env = make_split_env(suite, "train", mission_tokens=True)
    seen: Counter[str] = Counter()
    for n in range(200):
        obs, info = env.reset(seed=7 if n == 0 else None)
        assert info["task"] in train and env.task_name == info["task"]
        assert obs["task"] == suite.task_index(info["task"]) == env.task_index
        assert VOCAB.decode(obs["mission"]) == missions[obs["task"]]
        seen[info["task"]] += 1
    assert set(seen) == set(train)
    assert len(env._envs) == len(train)  # one cached env per task, built lazily


def test_test_split_ids_are_the_suite_indices_after_train() -> None:
    suite = get_suite("colour-type")
    env = SplitTaskEnv(suite, "test")
    assert env.task_ids == tuple(range(len(suite.split("train")), suite.num_tasks))
    ids = {int(env.reset(seed=s)[0]["task"]) for s in range(60)}
    assert ids <= set(env.task_ids) and len(ids) > 1
    assert len(env._envs) == len(ids)  # lazily built: only the drawn tasks


def test_same_seed_same_tasks_and_observations() -> None:
    first = _episodes(make_split_env("colour-type", "train", mission_tokens=True, max_episode_steps=8), 3, 12, 8)
    second = _episodes(make_split_env("colour-type", "train", mission_tokens=True, max_episode_steps=8), 3, 12, 8)
    other = _episodes(make_split_env("colour-type", "train", mission_tokens=True, max_episode_steps=8), 4, 12, 8)
    assert first == second
    assert [t[1] for t in first] != [t[1] for t in other]
    assert len({t[1] for t in first}) > 3


def test_reset_option_picks_a_task_and_unknown_split_or_task_raises() -> None:
    env = make_split_env("sequences", "test", mission_tokens=True)
    name = get_suite("sequences").split("test")[-1]
    obs, info = env.reset(seed=0, options={"task": name})
    assert info["task"] == name and VOCAB.decode(obs["mission"]) == suite_missions(get_suite("sequences"))[-1]
    with pytest.raises(ConfigError, match=r"options\.task"):
        env.reset(options={"task": get_suite("sequences").split("train")[0]})
    with pytest.raises(KeyError, match="splits: train, test"):
        make_split_env("sequences", "validation")
    with pytest.raises(RuntimeError, match="reset"):
        make_split_env("colour-type", "train").step(0)


def test_close_closes_every_task_env_and_steps_report_the_task() -> None:
    env = make_split_env("verb-object", "train", max_episode_steps=5)
    for seed in range(4):
        env.reset(seed=seed)
        info = env.step(0)[-1]
        assert info["task"] == env.task_name
    closed: list[int] = []
    for index, task_env in env._envs.items():
        task_env.close = lambda index=index: closed.append(index)
    built = sorted(env._envs)
    assert len(built) > 1
    env.close()
    assert sorted(closed) == built and not env._envs and env.task_index is None


def test_mismatched_task_spaces_are_refused() -> None:
    suite = Suite(
        name="mixed",
        version=1,
        description="",
        tasks=(
            TaskSpec(name="empty5", env_id="MiniGrid-Empty-5x5-v0"),
            TaskSpec(name="empty5view3", env_id="MiniGrid-Empty-5x5-v0", kwargs={"agent_view_size": 3}),
        ),
    )
    env = SplitTaskEnv(suite, "train")
    assert env.reset(seed=0, options={"task": "empty5"})[0]["image"].shape == (7, 7, 3)
    with pytest.raises(TypeError, match="'empty5view3' of suite 'mixed' has observation space"):
        env.reset(options={"task": "empty5view3"})
