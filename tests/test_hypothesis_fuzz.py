"""Property-based fuzzing (Hypothesis) of the three ways input reaches modrl: configs through ``modrl train``,
checkpoint members through the loader, and env keyword arguments through the envs (``TaskEnv``, ``SubtaskEnv``, and the
stock-env constructors and wrappers: ``make_suite_env``, ``make_split_env``, a suite task of a stock MiniGrid id with
``gym.make`` keyword arguments, ``FullView``, ``TaskObservation``, ``SubtaskEventReward``, ``MissionTokens``).

Properties, for every generated case, each under a time limit of :data:`CASE_SECONDS` (a case that takes longer is a
hang, reported as such):

* a config is either accepted (training would start; it is stubbed out here) or refused with exit 2 and one
  ``modrl: error:`` line, never a traceback, and a refused config leaves no run directory behind;
* a checkpoint with one member replaced, truncated or flipped is refused with ``CheckpointError`` naming it (or, when
  the edit left every recorded size and hash consistent, possibly loaded), and ``latest_checkpoint`` then falls back
  to the previous, intact checkpoint with a warning; a changed byte whose hashes were not fixed up is always refused;
* an env built from generated keyword arguments either raises ``ConfigError`` (or, for an unknown suite or split,
  its ``KeyError``) on one line naming the argument, when it is constructed, or resets and steps: a bad argument is
  never found mid-episode.

Examples are derandomised (the same cases on every run) and no example database is written. Together the properties
run :data:`CONFIG_CASES` + :data:`CHECKPOINT_CASES` + :data:`ENV_CASES` + :data:`SUBTASK_ENV_CASES` +
:data:`STOCK_ENV_CASES` >= 2,000 cases.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from modrl.agents.common import training
from modrl.agents.common.config import load_experiment_config
from modrl.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, manifest_digest_line
from modrl.checkpoint_writer import save_checkpoint
from modrl.cli.main import main
from modrl.config import ConfigError, to_dict
from tests.conftest import TINY

pytest.importorskip("hypothesis")  # the `test` extra; an environment without it skips the fuzzer, not the suite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_limits import fuzz_settings, time_limit

pytestmark = pytest.mark.slow

CASE_SECONDS = 20
CONFIG_CASES = 1000
CHECKPOINT_CASES = 600
ENV_CASES = 500
SUBTASK_ENV_CASES = 300
STOCK_ENV_CASES = 400


class Accepted(BaseException):
    """The stand-in for training: the config passed validation and a run directory was set up."""


def _settings(cases: int) -> settings:
    return fuzz_settings(
        cases, suppress=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
    )


# -- configs --------------------------------------------------------------------------------------------------------
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def _leaf_paths(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, dict):
        return [p for key, value in data.items() for p in _leaf_paths(value, f"{prefix}.{key}" if prefix else key)]
    return [prefix]


BASE = to_dict(load_experiment_config(TINY))
PATHS = sorted(p for p in _leaf_paths(BASE) if p != "name")


def _with(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[last] = value
    return data


@st.composite
def config_documents(draw: st.DrawFn) -> bytes:
    """A config file's bytes: the tiny config with 1-3 leaves replaced (or a key added), or arbitrary YAML/bytes."""
    kind = draw(st.sampled_from(["mutate", "mutate", "mutate", "yaml", "text", "bytes"]))
    if kind == "mutate":
        data = BASE
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from([*PATHS, "env.zz_extra", "zz_extra"]))
            data = _with(data, path, draw(VALUES))
        return yaml.safe_dump(data, allow_unicode=draw(st.booleans())).encode("utf-8")
    if kind == "yaml":
        return yaml.safe_dump(draw(VALUES)).encode("utf-8")
    if kind == "text":
        return draw(st.text(max_size=200)).encode(draw(st.sampled_from(["utf-8", "utf-16"])), "surrogatepass")
    return draw(st.binary(max_size=200))


def test_generated_configs_are_accepted_or_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def accepted(*args: Any, **kwargs: Any) -> Any:
        raise Accepted

    monkeypatch.setattr(training, "run_training", accepted)
    monkeypatch.chdir(tmp_path)
    runs, config = tmp_path / "runs", tmp_path / "config.yaml"
    seen = {"accepted": 0, "refused": 0}

    @_settings(CONFIG_CASES)
    @given(document=config_documents())
    def case(document: bytes) -> None:
        config.write_bytes(document)
        try:
            with time_limit(CASE_SECONDS):
                code = main(["train", str(config), "--runs-root", str(runs)])
        except Accepted:
            seen["accepted"] += 1
            shutil.rmtree(runs)
            capsys.readouterr()
            return
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("modrl: error: "), (code, err[-2000:])
        assert not runs.exists() or not any(runs.iterdir()), "a refused config left a run directory"
        seen["refused"] += 1

    case()
    assert seen["refused"] > 0 and sum(seen.values()) >= CONFIG_CASES // 2, seen


# -- checkpoint members ---------------------------------------------------------------------------------------------
def _two_checkpoints(root: Path) -> Path:
    checkpoints = root / "checkpoints"
    gen = torch.Generator().manual_seed(0)
    for step in (1, 2):
        save_checkpoint(
            checkpoints,
            step=step,
            tensors={"model": {"w": torch.randn(3, 4, generator=gen), "b": torch.zeros(4)}},
            meta={"step": step, "rng": [1, 2, 3], "note": "fuzz"},
            fingerprint="f" * 16,
        )
    return checkpoints


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


@st.composite
def member_edits(draw: st.DrawFn) -> tuple[str, str, bytes | int, bool]:
    """``(member, how, payload, fix_hashes)``: which file of the newest checkpoint, and what is done to it."""
    member = draw(st.sampled_from(["manifest.json", "manifest.sha256", "state.json", "model.safetensors"]))
    how = draw(st.sampled_from(["replace", "json", "deep", "truncate", "flip"]))
    payload: bytes | int
    if how == "replace":
        payload = draw(st.binary(max_size=300))
    elif how == "json":
        payload = json.dumps(draw(JSON_VALUES)).encode()
    elif how == "deep":
        depth = draw(st.integers(50, 3000))
        payload = (draw(st.sampled_from(["[", '{"a":'])) * depth).encode()
    else:
        payload = draw(st.integers(0, 10_000))
    return member, how, payload, draw(st.booleans())


def _edit(path: Path, how: str, payload: bytes | int) -> None:
    data = path.read_bytes()
    if how == "truncate":
        assert isinstance(payload, int)
        path.write_bytes(data[: payload % max(len(data), 1)])
    elif how == "flip":
        assert isinstance(payload, int)
        if data:
            index = payload % len(data)
            path.write_bytes(data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :])
    else:
        assert isinstance(payload, bytes)
        path.write_bytes(payload)


def _fix_hashes(checkpoint: Path, member: str) -> None:
    """Record the edited member's size and digest in the manifest and the manifest's digest in its sidecar, so the
    edit reaches the parser instead of stopping at a hash check."""
    import hashlib

    manifest_path = checkpoint / "manifest.json"
    if member not in ("manifest.json", "manifest.sha256"):
        with contextlib.suppress(Exception):
            manifest = json.loads(manifest_path.read_text())
            data = (checkpoint / member).read_bytes()
            manifest["files"][member] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            manifest_path.write_text(json.dumps(manifest))
    if member != "manifest.sha256":
        (checkpoint / "manifest.sha256").write_text(manifest_digest_line(manifest_path.read_bytes()))


def test_edited_checkpoint_members_are_refused_and_the_previous_one_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pristine = _two_checkpoints(tmp_path / "pristine")
    work = tmp_path / "work"
    outcomes = {"refused": 0, "loaded": 0}

    @_settings(CHECKPOINT_CASES)
    @given(edit=member_edits())
    def case(edit: tuple[str, str, bytes | int, bool]) -> None:
        member, how, payload, fix = edit
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(pristine, work)
        newest = sorted(work.iterdir())[-1]
        original = (newest / member).read_bytes()
        _edit(newest / member, how, payload)
        changed = (newest / member).read_bytes() != original
        if fix:
            _fix_hashes(newest, member)
        # Without the hashes fixed up, any changed byte must be caught (the sidecar has no hash of its own).
        must_refuse = changed and (not fix or member == "manifest.sha256")
        caplog.clear()
        with time_limit(CASE_SECONDS):
            refusal = None
            try:
                load_checkpoint(newest)
            except CheckpointError as exc:
                refusal = str(exc)
            outcomes["loaded" if refusal is None else "refused"] += 1
            assert refusal is None or str(newest) in refusal, refusal  # a refusal names the checkpoint
            refused = refusal is not None
            assert refused or not must_refuse, f"{member} ({how}) changed and was loaded"
            found = latest_checkpoint(work)
        assert found is not None and found.step == (1 if refused else 2), (member, how)
        if refused:
            assert any("skipping checkpoint" in r.getMessage() for r in caplog.records)

    case()
    shutil.rmtree(work, ignore_errors=True)
    assert outcomes["refused"] > CHECKPOINT_CASES // 2, outcomes


# -- env keyword arguments ------------------------------------------------------------------------------------------
ODD = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.lists(st.integers(-3, 40), max_size=3),
)
SMALL_INTS = st.integers(min_value=-3, max_value=40)
TASKS = [
    "goto-red-ball",
    "pickup-green-key",
    "open-blue-door",
    "putnext-red-key-grey-box",
    "open-red-door_then_goto-blue-door",
]


@st.composite
def env_kwargs(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A task and TaskEnv keyword arguments: mostly near the valid ranges, sometimes of any type."""
    names = ["room_size", "num_distractors", "num_distractor_doors", "max_steps", "predicates_in_info", "avoid"]
    kwargs: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names))):
        if name == "avoid":
            objects = st.sampled_from(["red-key", "blue-ball", "green-box", "purple-door", "nope", "", "red-ball"])
            kwargs[name] = draw(st.one_of(st.lists(objects, max_size=4), ODD))
        elif name == "predicates_in_info":
            kwargs[name] = draw(st.one_of(st.booleans(), ODD))
        else:
            kwargs[name] = draw(st.one_of(SMALL_INTS, SMALL_INTS, ODD))
    return draw(st.sampled_from(TASKS)), kwargs


def test_generated_env_kwargs_are_refused_by_name_or_run() -> None:
    from modrl.envs.task_env import TaskEnv

    outcomes = {"refused": 0, "ran": 0}

    @_settings(ENV_CASES)
    @given(drawn=env_kwargs(), seed=st.integers(0, 2**31 - 1))
    def case(drawn: tuple[str, dict[str, Any]], seed: int) -> None:
        task, kwargs = drawn
        with time_limit(CASE_SECONDS):
            try:
                env = TaskEnv(task, **kwargs)
            except ConfigError as exc:
                refusal = str(exc)
            else:
                refusal = None
            if refusal is not None:
                assert any(name in refusal for name in (*kwargs, "task")), refusal  # names the argument
                outcomes["refused"] += 1
                return
            env.reset(seed=seed)
            for action in (2, 0, 2, 3, 5):
                env.step(action)
            env.close()
            outcomes["ran"] += 1

    case()
    assert outcomes["refused"] > 0 and outcomes["ran"] > 0, outcomes


# -- SubtaskEnv keyword arguments -----------------------------------------------------------------------------------
def near(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any] = ODD) -> st.SearchStrategy[Any]:
    """Mostly (4 in 5) a valid value, else an odd one: a case then has a fair chance to get past every check.
    (``st.one_of`` would flatten ``odd``'s alternatives beside ``valid``, which would then be drawn rarely.)"""
    return st.sampled_from((valid, valid, valid, valid, odd)).flatmap(lambda strategy: strategy)


def _suite_tasks(suite: str) -> dict[str, list[str]]:
    from modrl.envs import get_suite

    by_verb: dict[str, list[str]] = {}
    for name in get_suite(suite).task_names:
        by_verb.setdefault(name.split("-")[0], []).append(name)
    return by_verb


SUBTASK_SUITES = {"colour-type": _suite_tasks("colour-type"), "sequences": _suite_tasks("sequences")}
ODD_TASKS = ["nope", "empty5", "goto-red-ball", "pickup-green-key_then_goto-red-ball"]


def _refused_by_name(exc: BaseException, names: Any) -> bool:
    """A refusal as the property wants it: a ConfigError (a ValueError) or an unknown-name KeyError, on one line,
    naming one of ``names``."""
    text = str(exc)
    return isinstance(exc, (ConfigError, KeyError)) and "\n" not in text and any(n in text for n in names)


@st.composite
def subtask_env_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    """``SubtaskEnv`` arguments, mostly valid (tasks of one verb of a generated suite), each sometimes odd."""
    suite = draw(near(st.sampled_from(sorted(SUBTASK_SUITES)), st.sampled_from(["minigrid-tiny", "nope"]) | ODD))
    by_verb = SUBTASK_SUITES[suite if isinstance(suite, str) and suite in SUBTASK_SUITES else "colour-type"]
    verb = draw(st.sampled_from(sorted(by_verb)))
    tasks = draw(
        near(
            st.lists(st.sampled_from(by_verb[verb]), min_size=1, max_size=3),
            st.lists(st.sampled_from(ODD_TASKS + by_verb["goto"][:2]), max_size=3) | ODD,
        )
    )
    kwargs: dict[str, Any] = {"tasks": tasks, "suite": suite}
    task_kwargs = st.dictionaries(
        st.sampled_from(["room_size", "num_distractors", "max_steps", "agent_view_size", "avoid", "task", "bogus"]),
        near(st.integers(0, 12), SMALL_INTS | ODD),
        max_size=3,
    )
    optional = {
        "parameterised": near(st.booleans()),
        "max_episode_steps": near(st.none() | st.integers(1, 200), SMALL_INTS | ODD),
        "task_kwargs": near(task_kwargs),
        "render_mode": near(st.sampled_from([None, "rgb_array"]), st.just("bogus") | ODD),
        "targets": near(st.sampled_from(["task", "layout"]), st.just("nope") | ODD),
        "verb": near(
            st.sampled_from([None, verb, "goto", "pickup", "open"]), st.sampled_from(["putnext", "fly"]) | ODD
        ),
        "view_size": near(st.sampled_from([None, 7, 9, 11]), st.sampled_from([8, 5, 257, 10**6 + 1]) | ODD),
        "prefix_skills": near(st.integers(0, 2), st.integers(-2, 12) | ODD),
        "start_carrying": near(st.sampled_from([0.0, 0.5, 1.0]), st.floats(-2, 3) | ODD),
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=4)):
        kwargs[name] = draw(optional[name])
    return kwargs


def test_generated_subtask_env_kwargs_are_refused_at_construction_or_run() -> None:
    from modrl.envs.subtask_env import SubtaskEnv

    outcomes = {"refused": 0, "ran": 0}

    @_settings(SUBTASK_ENV_CASES)
    @given(kwargs=subtask_env_kwargs(), seed=st.integers(0, 2**31 - 1))
    def case(kwargs: dict[str, Any], seed: int) -> None:
        with time_limit(CASE_SECONDS):
            try:
                env = SubtaskEnv(**kwargs)
            except Exception as exc:  # the property: which exceptions, with what message
                assert _refused_by_name(exc, kwargs), f"{type(exc).__name__}: {exc} <- {kwargs}"  # noqa: PT017
                outcomes["refused"] += 1
                return
            try:
                for episode in range(2):
                    env.reset(seed=seed + episode)
                    for action in (2, 0, 2, 3, 5, 1, 2):
                        env.step(action)
            finally:
                env.close()
            outcomes["ran"] += 1

    case()
    assert outcomes["refused"] > 0 and outcomes["ran"] > 0, outcomes


# -- stock-env constructors and wrappers ----------------------------------------------------------------------------
STOCK_IDS = ["MiniGrid-Empty-5x5-v0", "MiniGrid-DoorKey-5x5-v0", "BabyAI-GoToLocal-v0", "MiniGrid-Nope-v0"]


@st.composite
def stock_env_cases(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """One of modrl's stock-env entry points and its arguments, mostly valid: ``make_suite_env``, ``make_split_env``,
    a suite task of a stock id with ``gym.make`` keyword arguments, or a wrapper (``FullView``, ``TaskObservation``,
    ``SubtaskEventReward``, ``MissionTokens``) over a stock env."""
    kind = draw(st.sampled_from(["suite_env", "split_env", "task_spec", "full_view", "observation", "bonus", "tokens"]))
    suites = near(st.sampled_from(["minigrid-tiny", "minigrid-basic", "colour-type", "babyai"]), st.just("nope") | ODD)
    steps = near(st.none() | st.integers(1, 300), SMALL_INTS | ODD)
    optional: dict[str, Any]
    if kind == "suite_env":
        kwargs = {"suite": draw(suites), "task_index": draw(near(st.integers(0, 2), SMALL_INTS | ODD))}
        optional = {
            "mission_tokens": near(st.booleans()),
            "max_len": near(st.none() | st.integers(30, 80), SMALL_INTS | ODD),
            "max_episode_steps": steps,
            "render_mode": near(st.sampled_from([None, "rgb_array"]), st.just("bogus") | ODD),
        }
    elif kind == "split_env":
        kwargs = {"suite": draw(suites), "split": draw(near(st.sampled_from(["train", "test"]), st.just("nope") | ODD))}
        optional = {
            "mission_tokens": near(st.booleans()),
            "max_len": near(st.none() | st.integers(30, 80), SMALL_INTS | ODD),
            "max_episode_steps": steps,
        }
    elif kind == "task_spec":
        kwargs = {"env_id": draw(near(st.sampled_from(STOCK_IDS[:-1]), st.just(STOCK_IDS[-1])))}
        optional = {
            "agent_view_size": near(st.sampled_from([3, 5, 9]), st.sampled_from([4, 1, 257, 10**6 + 1]) | ODD),
            "size": near(st.integers(5, 12), st.sampled_from([3, 4, 10**6]) | ODD),
            "max_steps": steps,
            "see_through_walls": near(st.booleans()),
            "tile_size": near(st.integers(8, 32), SMALL_INTS | ODD),
            "bogus": st.integers(0, 3),
        }
    elif kind == "full_view":
        size = near(st.sampled_from([7, 9, 25]), st.sampled_from([8, 5, 257, 10**6 + 1]) | ODD)
        kwargs, optional = {"size": draw(size)}, {"marker": near(st.booleans())}
    elif kind == "observation":
        kwargs = {"task_id": draw(near(st.integers(0, 3), SMALL_INTS | ODD))}
        optional = {"num_tasks": near(st.integers(1, 5), SMALL_INTS | ODD)}
        kwargs["num_tasks"] = draw(optional.pop("num_tasks"))
    elif kind == "bonus":
        kwargs, optional = {"bonus": draw(near(st.floats(0, 1), st.floats(-1, 2) | ODD))}, {}
    else:
        kwargs, optional = {"max_len": draw(near(st.integers(40, 80), SMALL_INTS | ODD))}, {}
    if optional:
        for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=len(optional))):
            kwargs[name] = draw(optional[name])
    return kind, kwargs


def _build_stock_env(kind: str, kwargs: dict[str, Any]) -> Any:
    import gymnasium as gym

    from modrl.envs import MissionTokens, MissionVocabulary, TaskObservation, make_split_env, make_suite_env
    from modrl.envs.suites import Suite, TaskSpec
    from modrl.envs.wrappers import FullView, SubtaskEventReward, make_task_env

    if kind == "suite_env":
        return make_suite_env(**kwargs)
    if kind == "split_env":
        return make_split_env(**kwargs)
    if kind == "task_spec":
        env_id = kwargs.pop("env_id")
        task = TaskSpec(name="fuzz", env_id=env_id, kwargs=kwargs)
        return make_task_env(Suite(name="fuzz", version=1, description="", tasks=(task,)), 0)
    if kind == "full_view":
        return FullView(gym.make("MiniGrid-Empty-5x5-v0"), **kwargs)
    if kind == "observation":
        return TaskObservation(gym.make("MiniGrid-Empty-5x5-v0"), **kwargs)
    if kind == "bonus":
        return SubtaskEventReward(make_suite_env("colour-type", 0), **kwargs)
    return MissionTokens(make_task_env("babyai", 0), vocabulary=MissionVocabulary.from_grammar(), **kwargs)


def test_generated_stock_env_arguments_are_refused_at_construction_or_run() -> None:
    outcomes = {"refused": 0, "ran": 0}

    @_settings(STOCK_ENV_CASES)
    @given(drawn=stock_env_cases(), seed=st.integers(0, 2**31 - 1))
    def case(drawn: tuple[str, dict[str, Any]], seed: int) -> None:
        kind, kwargs = drawn
        names = [*kwargs, *(f"{k}" for k in kwargs.values() if isinstance(k, str))]
        with time_limit(CASE_SECONDS):
            try:
                env = _build_stock_env(kind, dict(kwargs))
            except Exception as exc:  # the property: which exceptions, with what message
                assert _refused_by_name(exc, names), f"{kind}: {type(exc).__name__}: {exc} <- {kwargs}"  # noqa: PT017
                outcomes["refused"] += 1
                return
            try:
                env.reset(seed=seed)
                for action in (2, 0, 2, 3, 5, 1, 2):
                    env.step(action)
            finally:
                env.close()
            outcomes["ran"] += 1

    case()
    assert outcomes["refused"] > 0 and outcomes["ran"] > 0, outcomes
