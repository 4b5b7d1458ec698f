"""Config fuzzer: seeded random mutations of a valid config through ``modrl train`` (in-process) must each fail
cleanly before training: exit 2, one ``modrl: error:`` line naming the key or file, no traceback, no run directory."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modrl.agents.common import training
from modrl.agents.common.config import load_experiment_config
from modrl.cli.main import main
from modrl.config import to_dict
from tests.conftest import TINY

SEED = 20240607
CASES = 300
SECTIONS = ["", "env", "agent", "agent.extractor", "agent.modules", "agent.router", "algo", "train"]
#: Values outside each key's allowed range (from agents/common/config.py and the suite's cross-field rules).
OUT_OF_RANGE: dict[str, list[Any]] = {
    "seed": [-1, 1_000_000, 10**30],
    "torch_threads": [0, -2],
    "env.n_envs": [0, -3, 1],
    "env.max_episode_steps": [0, -1],
    "env.suite": ["nope", ""],
    "env.split": ["nope"],
    "agent.kind": ["nope"],
    "agent.algo": ["dqn"],
    "agent.aggregation": ["max"],
    "agent.router_input": ["pixels"],
    "agent.latent_dim": [0],
    "agent.critic_hidden": [[0], [16, -1]],
    "agent.monolithic_hidden": [0],
    "agent.extractor.kind": ["mlp"],
    "agent.extractor.embed_dim": [0],
    "agent.extractor.features_dim": [0, -64],
    "agent.extractor.channels": [[], [0], [1, 2, 3, 4]],
    "agent.extractor.mission_dim": [0],
    "agent.router.kind": ["nope"],
    "agent.modules.kind": ["nope"],
    "algo.learning_rate": [0, -1.0, float("nan")],
    "algo.n_steps": [0],
    "algo.batch_size": [0, 10**9],
    "algo.n_epochs": [0],
    "algo.gamma": [1.5, -0.1, float("nan")],
    "algo.gae_lambda": [2.0],
    "algo.ent_coef": [-1.0],
    "algo.vf_coef": [-0.5],
    "algo.clip_range": [-0.2],
    "algo.max_grad_norm": [-1.0],
    "train.total_timesteps": [0, -5],
    "train.checkpoint_every": [0],
    "train.keep_checkpoints": [0],
    "train.eval_episodes": [-1],
    "train.eval_every": [-1, 10**13],
    "train.eval_every_episodes": [0],
    "env.vec_env": ["threads"],
}
YAML_TAGS = [
    "!!python/object/apply:os.system ['touch {canary}']",
    "!!python/object/apply:subprocess.check_output [['touch', '{canary}']]",
    "!!python/name:os.system",
    "!!python/object/new:builtins.open ['{canary}', 'w']",
    "!!python/module:os",
]
#: Broken or hostile YAML text and what the error must name (a self-referencing alias reaches the key check).
SYNTAX = [
    ("a: [1, 2\n", "config.yaml"),
    ("env: {n_envs: 2\n", "config.yaml"),
    ("seed: 1\n  bad: indent\n", "config.yaml"),
    ("\tseed: 1\n", "config.yaml"),
    ("seed: &a [*a]\n", "seed"),
    ("key: 'unclosed\n", "config.yaml"),
]
BAD_NAMES = ["../x", "a/b", "", ".hidden", "x" * 101, "a b", "..", "ü"]
BAD_SETS = [
    ["--set", "agent.nope=1"],
    ["--set", "train.total_timesteps=abc"],
    ["--set", "noequals"],
    ["--set", "a..b=1"],
    ["--set", "env.n_envs=[1"],
    ["--set", "env.n_envs.x=1"],
    ["--set", "=3"],
]


def _leaves(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        return [leaf for key, value in data.items() for leaf in _leaves(value, f"{prefix}.{key}" if prefix else key)]
    return [(prefix, data)]


def _set(data: dict, path: str, value: Any) -> dict:
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[last] = value
    return data


def _wrong_type(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        choices: list[Any] = [1, "yes", 0.5, [True], {"a": 1}]
    elif isinstance(value, int):
        choices = [1.5, "7", True, [1], {"a": 1}, "1e3"]
    elif isinstance(value, float):
        choices = ["abc", True, [1.0], {"x": 1.0}]
    elif isinstance(value, str):
        choices = [5, 1.5, True, ["a"], {"a": "b"}]
    elif isinstance(value, list):
        choices = [5, "abc", {"a": 1}, ["x"], [[1]]]
    else:  # null-valued optional leaves
        choices = [[1], {"a": 1}, True]
    return rng.choice(choices)


def _cases(base: dict, canary: Path) -> list[tuple[str, Callable[[Path], list[str]], str]]:
    """``(description, write(path) -> extra argv, fragment the error must contain)``, seeded."""
    rng = random.Random(SEED)
    leaves = [(p, v) for p, v in _leaves(base) if p != "name"]

    def as_yaml(data: Any) -> Callable[[Path], list[str]]:
        return lambda path: (path.write_text(yaml.safe_dump(data)), [])[1]

    def as_text(text: str, extra: list[str] | None = None) -> Callable[[Path], list[str]]:
        return lambda path: (path.write_text(text), list(extra or []))[1]

    cases = []
    for i in range(CASES):
        kind = rng.choice(["unknown", "type", "range", "range", "tag", "root", "name", "set", "syntax"])
        if kind == "unknown":
            section = rng.choice(SECTIONS)
            key = f"zz{rng.randrange(10**6)}"
            path = f"{section}.{key}" if section else key
            cases.append((f"unknown key {path}", as_yaml(_set(base, path, rng.choice([1, "x", None, [1]]))), key))
        elif kind == "type":
            path, value = rng.choice(leaves)
            bad = _wrong_type(value, rng)
            cases.append((f"{path}={bad!r}", as_yaml(_set(base, path, bad)), path.split(".")[-1]))
        elif kind == "range":
            path = rng.choice(sorted(OUT_OF_RANGE))
            bad = rng.choice(OUT_OF_RANGE[path])
            cases.append((f"{path}={bad!r}", as_yaml(_set(base, path, bad)), path.split(".")[-1]))
        elif kind == "tag":
            path = rng.choice([p for p, _ in leaves])
            text = yaml.safe_dump(_set(base, path, "TAGGED")).replace(
                "TAGGED", rng.choice(YAML_TAGS).format(canary=canary)
            )
            cases.append((f"yaml tag at {path}", as_text(text), "config.yaml"))
        elif kind == "root":
            text = rng.choice(["- 1\n- 2\n", "42\n", "'a string'\n", "[]\n", "!!set {a: null}\n", "3.5\n", "true\n"])
            cases.append((f"root {text!r}", as_text(text), "top level must be a mapping"))
        elif kind == "name":
            name = rng.choice(BAD_NAMES)
            cases.append((f"name {name!r}", as_yaml({**base, "name": name}), "invalid run name"))
        elif kind == "set":
            extra = rng.choice(BAD_SETS)
            key = extra[1].split("=")[0] or "override"
            cases.append((f"--set {extra[1]}", as_text(yaml.safe_dump(base), extra), key.split(".")[-1]))
        else:
            text, fragment = rng.choice(SYNTAX)
            cases.append((f"syntax {text!r}", as_text(text), fragment))
        assert len(cases) == i + 1
    return cases


def test_config_fuzz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def no_training(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("training started: the mutated config was accepted")

    monkeypatch.setattr(training, "run_training", no_training)
    monkeypatch.chdir(tmp_path)
    base = to_dict(load_experiment_config(TINY))
    canary = tmp_path / "canary"
    runs_root = tmp_path / "runs"
    config_path = tmp_path / "config.yaml"
    cases = _cases(base, canary)
    failures = []
    for description, write, fragment in cases:
        extra = write(config_path)
        try:
            code = main(["train", str(config_path), "--runs-root", str(runs_root), *extra])
        except BaseException as exc:  # a crash: anything but a clean exit code
            failures.append(f"{description}: raised {type(exc).__name__}: {exc}")
            capsys.readouterr()
            continue
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        problems = [
            f"exit {code}" if code != 2 else "",
            "traceback" if "Traceback" in err else "",
            f"{len(lines)} lines" if len(lines) != 1 or not lines[0].startswith("modrl: error: ") else "",
            f"does not name {fragment!r}" if fragment not in err else "",
            "run directory created" if runs_root.exists() and any(runs_root.iterdir()) else "",
            "canary created" if canary.exists() else "",
        ]
        if any(problems):
            failures.append(f"{description}: {', '.join(p for p in problems if p)}: {err.strip()[:200]}")
    summary = f"{len(cases)} mutated configs tried, {len(failures)} not refused cleanly"
    print(summary)
    assert not failures, summary + "\n" + "\n".join(failures)
    assert len(cases) == CASES, summary
