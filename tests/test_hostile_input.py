"""Input shaped to hurt: each case is a generated file of the shape that once gave a traceback, a hang or a silent
surprise, and must now give one ``modrl: error:`` line (exit 2 for bad input, 1 for a broken run) and lose nothing.

The parsing limits themselves live in :mod:`modrl.safe_load`; see README, Reliability.
"""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path

import pytest
import yaml

from modrl.cli.main import main
from modrl.config import ConfigError, load_yaml
from modrl.safe_load import MAX_DEPTH, MAX_YAML_BYTES, InputError, loads_json, short_repr
from tests.conftest import TINY


def alias_bomb(levels: int = 9, fan: int = 9) -> str:
    """A "billion laughs" YAML document: ``fan ** levels`` leaves in a few hundred bytes."""
    lines = ["l0: &l0 [" + ", ".join(['"lol"'] * fan) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modrl: error: "), err
    assert "Traceback" not in err
    return lines[0]


def train_refuses(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    runs = tmp_path / "runs"
    assert main(["train", str(path), "--runs-root", str(runs), *extra]) == 2
    assert not runs.exists() or not any(runs.iterdir())  # no run directory created
    return one_error_line(capsys)


def test_yaml_alias_bomb_fails_fast_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb() + "name: *l8\n")
    assert path.stat().st_size < 1000
    line = train_refuses(path, tmp_path, capsys)
    assert str(path) in line and "aliases are expanded" in line


def test_a_huge_value_in_an_error_message_is_truncated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "name.yaml"
    path.write_text(yaml.safe_dump({"name": list(range(5_000))}, default_flow_style=True, width=1 << 30))
    line = train_refuses(path, tmp_path, capsys)
    assert "name" in line and len(line) < 400 and "..." in line
    assert len(short_repr([[[[[[1]]]]]] * 10**6)) < 300


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500, 5000])
def test_deeply_nested_yaml_is_refused(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(ConfigError, match="nested deeper than"):
        load_yaml(path)
    block = min(depth, 500)  # 5000 indented levels would be a 25 MB file (refused by size instead)
    path.write_text("".join("  " * i + f"k{i}:\n" for i in range(block)) + "  " * block + "x: 1\n")
    with pytest.raises(ConfigError, match="nested deeper than"):
        load_yaml(path)


def test_recursive_alias_and_oversized_documents_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [*a]\n")
    with pytest.raises(ConfigError, match="refers to itself"):
        load_yaml(path)
    path.write_text("name: '" + "x" * MAX_YAML_BYTES + "'\n")
    with pytest.raises(ConfigError, match="larger than the limit"):
        load_yaml(path)


@pytest.mark.parametrize(
    ("text", "why"),
    [("seed: 1:30\n", "base-60"), ("seed: 017\n", "octal"), ("algo:\n  learning_rate: 1:30.5\n", "base-60")],
)
def test_yaml11_numbers_are_refused_not_reinterpreted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, why: str
) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(text)
    assert why in train_refuses(path, tmp_path, capsys)
    path.write_text("name: x\n")
    assert "base-60" in train_refuses(path, tmp_path, capsys, "--set", "seed=1:30")
    path.write_text("seed: '1:30'\n")  # quoted: a string, refused as a seed of the wrong type
    assert "seed: expected an integer" in train_refuses(path, tmp_path, capsys)


def test_yaml12_integers_still_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("a: 0x1f\nb: 1_000\nc: 0\nd: -7\ne: 2.5e-4\nf: 0.5\n")
    assert load_yaml(path) == {"a": 31, "b": 1000, "c": 0, "d": -7, "e": 0.00025, "f": 0.5}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("name: x\n".encode("utf-16"), "UTF-16"),
        ("name: x\n".encode("utf-16-le"), "NUL byte"),
        ("name: caf\u00e9\n".encode("latin-1"), "not UTF-8"),
        (bytes(range(256)) * 4, "NUL byte"),
        (b"\x1f", "special characters are not allowed"),  # found by tests/test_hypothesis_fuzz.py
        (b"seed: 1\nname: a\x07b\n", "special characters are not allowed"),
    ],
)
def test_config_encoding_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, why: str) -> None:
    path = tmp_path / "enc.yaml"
    path.write_bytes(data)
    line = train_refuses(path, tmp_path, capsys)
    assert why in line and str(path) in line


def test_binary_config_in_a_run_directory_on_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (run_dir / "meta.json").write_text('{"status": "running"}')
    assert main(["train", "--resume", str(run_dir)]) == 2
    assert "config.yaml" in one_error_line(capsys)


@pytest.mark.parametrize("text", [b"[" * 1000 + b"]" * 1000, b'{"a":' * 100 + b"1" + b"}" * 100])
def test_deep_json_is_refused(text: bytes) -> None:
    with pytest.raises(InputError, match="nested deeper than"):
        loads_json(text, "x.json")


def test_tiny_config_still_loads(tmp_path: Path) -> None:
    from modrl.agents.common.config import load_experiment_config

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert load_experiment_config(path).name == "tiny"


def write_tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.mark.parametrize(
    "overrides",
    [
        ["agent.modules.hidden=[65536, 65536]"],
        ["agent.extractor.features_dim=65536", "agent.critic_hidden=[65536]"],
        ["agent.kind=monolithic", "agent.monolithic_hidden=65536", "agent.latent_dim=65536"],
    ],
)
def test_layer_widths_of_65536_fail_at_validation_with_the_estimate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: list[str]
) -> None:
    sets = [arg for item in overrides for arg in ("--set", item)]
    line = train_refuses(write_tiny(tmp_path), tmp_path, capsys, *sets)
    assert "agent: about " in line and " parameters" in line and "limit is 100,000,000" in line


def test_a_network_larger_than_available_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from modrl import budget
    from modrl.agents.common.config import load_experiment_config

    assert load_experiment_config(TINY).agent.latent_dim == 16  # fits
    monkeypatch.setattr(budget, "available_memory_bytes", lambda: 1_000_000)
    with pytest.raises(ConfigError, match=r"agent: about .* more than the 1\.0 MB of memory available"):
        load_experiment_config(TINY, ["agent.modules.hidden=[1024]"])


@pytest.mark.parametrize(
    "override",
    ["train.eval_episodes=" + "1" + "0" * 67, "train.total_timesteps=" + "9" * 30, "env.max_episode_steps=10000001"],
)
def test_counts_are_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str) -> None:
    line = train_refuses(write_tiny(tmp_path), tmp_path, capsys, "--set", override)
    assert override.split("=")[0] in line and len(line) < 300


def test_eval_episodes_flag_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path), "--episodes", "1000000000"]) == 2
    assert "--episodes must be in [1, 100000]" in one_error_line(capsys)


def fabricated_run(tmp_path: Path, **status: str) -> Path:
    """A run directory as ``modrl train`` leaves it (config.yaml, meta.json), without training it."""
    from modrl.agents.common.config import load_experiment_config
    from modrl.config import to_dict
    from modrl.runs import RunStatus, set_status, write_run_metadata

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run_metadata(run_dir, config=to_dict(load_experiment_config(TINY)), seed=0, argv=["modrl"])
    if status:
        set_status(run_dir, RunStatus.INTERRUPTED, **status)
    return run_dir


def test_emptied_checkpoints_on_resume_are_refused_when_meta_records_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = fabricated_run(tmp_path, checkpoint="checkpoints/step-000000000256")
    (run_dir / "checkpoints").mkdir()
    (run_dir / "metrics.jsonl").write_text('{"step": 128}\n')
    assert main(["train", "--resume", str(run_dir)]) == 1
    line = one_error_line(capsys)
    assert "holds no checkpoint" in line and "were removed" in line
    assert (run_dir / "metrics.jsonl").read_text() == '{"step": 128}\n'  # history untouched
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "interrupted"


def test_a_run_without_any_checkpoint_yet_restarts_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from modrl.agents.common.training import find_resume_checkpoint

    with caplog.at_level(logging.WARNING, logger="modrl.agents.common.training"):
        assert find_resume_checkpoint(tmp_path / "checkpoints", fingerprint="f", identity={}) is None
    assert "training starts again from step 0" in caplog.text


@pytest.mark.parametrize("command", ["resume", "eval"])
def test_checkpoints_that_is_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    run_dir = fabricated_run(tmp_path)
    (run_dir / "checkpoints").write_text("oops")
    argv = ["train", "--resume", str(run_dir)] if command == "resume" else ["eval", str(run_dir), "--episodes", "1"]
    assert main(argv) == 1
    assert "checkpoints: not a directory" in one_error_line(capsys)


def test_os_error_in_lock_run_dir_is_one_line_and_leaves_no_running_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modrl import runs

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs.os, "pwrite", full)
    run_dir = tmp_path / "new"
    assert main(["train", str(write_tiny(tmp_path)), "--run-dir", str(run_dir)]) == 1
    line = one_error_line(capsys)
    assert "cannot write the lock file" in line and "No space left" in line
    assert not run_dir.exists()  # nothing half-made is left behind, so nothing says "running"
    # modrl continual the same way: metadata under the lock, exit 1 for the environment, nothing left behind
    continual = Path(__file__).resolve().parents[1] / "experiments" / "continual" / "conflict_pair.yaml"
    assert main(["continual", str(continual), "--run-dir", str(run_dir)]) == 1
    assert "cannot write the lock file" in one_error_line(capsys)
    assert not run_dir.exists()


def test_a_run_dir_killed_before_config_yaml_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modrl.runs import CLAIM_FILE

    run_dir = tmp_path / "half"
    run_dir.mkdir()
    (run_dir / CLAIM_FILE).touch()
    assert main(["train", "--resume", str(run_dir)]) == 2
    line = one_error_line(capsys)
    assert "stopped before it started" in line and f"rm -r {run_dir}" in line
    assert main(["train", str(write_tiny(tmp_path)), "--run-dir", str(run_dir)]) == 2
    assert f"rm -r {run_dir}" in one_error_line(capsys)
    assert sorted(p.name for p in run_dir.iterdir()) == [CLAIM_FILE]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_steps": -5}, "max_steps"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_steps": 10**12}, "max_steps"),
        ({"predicates_in_info": "yes"}, "predicates_in_info"),
        ({"room_size": 100_000}, "room_size"),
        ({"room_size": 7.0}, "room_size"),
    ],
)
def test_task_env_kwargs_are_refused_by_a_bound(kwargs: dict[str, object], field: str) -> None:
    import gymnasium as gym

    from modrl.envs.task_env import TaskEnv

    with pytest.raises(ConfigError, match=f"^{field}: must be"):
        TaskEnv("pickup-red-key", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=f"^{field}: must be"):
        gym.make("ModRL-sequences-goto-green-ball-v0", **kwargs)


@pytest.mark.parametrize("avoid", [None, 5, "red-key", ["red-key", 3], ["nope"]])
def test_task_env_avoid_is_a_list_of_object_names(avoid: object) -> None:
    from modrl.envs.task_env import TaskEnv

    with pytest.raises(ConfigError, match=r"^avoid: "):  # found by tests/test_hypothesis_fuzz.py: None was a TypeError
        TaskEnv("pickup-red-key", avoid=avoid)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"max_steps": -5}, {"max_steps": "yes"}, {"marker": "yes"}, {"view_size": 10**6}])
def test_skill_env_kwargs_are_refused(kwargs: dict[str, object]) -> None:
    from modrl.envs.skill_env import SkillStepEnv

    with pytest.raises(ConfigError, match="must be"):
        SkillStepEnv(["MiniGrid-Empty-5x5-v0"], "pickup", **kwargs)  # type: ignore[arg-type]


def test_stock_env_episode_limit_is_bounded() -> None:
    from modrl.envs.wrappers import make_task_env

    for bad in (0, -5, 10**9, True):
        with pytest.raises(ConfigError, match="max_episode_steps"):
            make_task_env("minigrid-tiny", 0, max_episode_steps=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("argv", "why"), [(["--fail-skill", "-3"], "got -3"), (["--fail-skill", "0"], "--execute")])
def test_plan_fail_skill_is_checked(capsys: pytest.CaptureFixture[str], argv: list[str], why: str) -> None:
    assert main(["plan", "pickup-red-key", *argv, *(["--execute"] if "-3" in argv else [])]) == 2
    line = one_error_line(capsys)
    assert "--fail-skill" in line and why in line


def test_deeply_nested_metrics_lines_are_refused_or_dropped_not_a_traceback(tmp_path: Path) -> None:
    from modrl.agents.common.callbacks import truncate_metrics
    from modrl.report.collect import read_curve
    from modrl.report.files import ReportError

    good = json.dumps({"step": 64, "success": {}, "return": {}, "wall_s": 1.0})
    deep = "[" * 5000 + "]" * 5000
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(f"{good}\n{deep}\n{good}\n")
    with pytest.raises(ReportError, match=r"metrics\.jsonl:2: nested deeper than"):
        read_curve(metrics)
    metrics.write_text(f"{good}\n{deep}\n")  # a bad last line is dropped like a torn one
    assert read_curve(metrics) is not None
    truncate_metrics(metrics, 10_000)  # on resume: kept up to the first line that cannot be trusted
    assert metrics.read_text() == good + "\n"


def test_more_objects_than_a_room_holds_are_refused_instead_of_retrying_forever() -> None:
    """BabyAI retries mission generation forever when an object cannot be placed (found by the Hypothesis fuzzer:
    TaskEnv(room_size=5, num_distractors=40) hung in reset)."""
    from modrl.envs.task_env import TaskEnv

    with pytest.raises(ConfigError, match=r"num_distractors: 41 objects \(40 distractors\) do not fit a 5-room"):
        TaskEnv("goto-red-ball", room_size=5, num_distractors=40)
    env = TaskEnv("goto-red-ball", room_size=5, num_distractors=3)  # the largest that fits: it resets every time
    for seed in range(20):
        env.reset(seed=seed)


# -- env keyword arguments found by tests/test_hypothesis_fuzz.py (SubtaskEnv, stock-env constructors) -------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tasks": 196}, "tasks"),  # was TypeError: object of type 'int' has no len()
        ({"tasks": "goto-red-ball"}, "tasks"),  # a string was read as a list of one-letter tasks
        ({"tasks": ["goto-blue-ball"], "suite": None}, "suite"),  # was AttributeError: no attribute 'task_names'
        ({"tasks": ["goto-blue-ball"], "suite": "nope"}, "suite"),
        ({"tasks": ["empty5"], "suite": "minigrid-tiny"}, "tasks"),  # a stock suite has no grammar tasks
        ({"tasks": ["goto-blue-ball"], "render_mode": [39, 15]}, "render_mode"),  # was AttributeError in gym.make
        ({"tasks": ["goto-blue-ball"], "max_episode_steps": "x"}, "max_episode_steps"),  # was TypeError: '>='
        ({"tasks": ["goto-blue-ball"], "max_episode_steps": True}, "max_episode_steps"),
        ({"tasks": ["goto-blue-ball"], "parameterised": "yes"}, "parameterised"),
        ({"tasks": ["goto-blue-ball"], "verb": ["goto"]}, "verb"),  # was TypeError: unhashable type: 'list'
        ({"tasks": ["goto-blue-ball"], "task_kwargs": [13]}, "task_kwargs"),  # was TypeError in dict()
        ({"tasks": ["goto-blue-ball"], "task_kwargs": {"task": "open-red-door"}}, "task_kwargs"),  # ran another task
        ({"tasks": ["goto-blue-ball"], "prefix_skills": True}, "prefix_skills"),
        ({"tasks": ["goto-blue-ball"], "view_size": 10**6 + 1}, "view_size"),  # a 10^12-cell image every step
        ({"tasks": ["goto-blue-ball"], "targets": "layout", "verb": "open"}, "tasks"),  # no door: failed at reset
        (
            {
                "tasks": ["goto-purple-door"],
                "targets": "layout",
                "verb": "pickup",
                "task_kwargs": {"num_distractors": 0},
            },
            "tasks",
        ),  # nothing to pick up: failed at reset
    ],
)
def test_subtask_env_refuses_bad_arguments_at_construction(kwargs: dict[str, object], field: str) -> None:
    from modrl.envs.subtask_env import SubtaskEnv

    with pytest.raises(ConfigError, match=f"^{field}: "):
        SubtaskEnv(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("task_kwargs", "why"),
    [
        ({"room_size": 1}, "room_size: must be an integer in [5, 32], got 1"),  # was raised by the first reset
        ({"avoid": 5}, "avoid: must be a list of objects"),  # was raised by the first reset
        ({"bogus": 11}, "'bogus': not an argument of TaskEnv"),  # was TypeError from MiniGridEnv.__init__
        ({"agent_view_size": 28}, "agent_view_size: must be odd"),  # was a bare AssertionError in MiniGrid
        ({"agent_view_size": 1}, "agent_view_size: must be an integer in [3, 101], got 1"),
    ],
)
def test_subtask_env_task_kwargs_are_refused_at_construction_naming_the_task(
    task_kwargs: dict[str, object], why: str
) -> None:
    from modrl.envs.subtask_env import SubtaskEnv

    with pytest.raises(ConfigError) as refused:
        SubtaskEnv(["goto-blue-ball", "goto-red-ball"], task_kwargs=task_kwargs)
    assert str(refused.value).startswith("task_kwargs: task 'goto-blue-ball': ") and why in str(refused.value)


def test_subtask_env_with_a_larger_view_and_fewer_distractors_still_runs() -> None:
    from modrl.envs.subtask_env import SubtaskEnv

    env = SubtaskEnv(["pickup-green-key"], task_kwargs={"agent_view_size": 9, "num_distractors": 0}, view_size=9)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (9, 9, 3) and env.current_env.unwrapped.agent_view_size == 9
    env.step(2)


def _stock_task(env_id: str, **kwargs: object) -> object:
    from modrl.envs.suites import Suite, TaskSpec
    from modrl.envs.wrappers import make_task_env

    return make_task_env(
        Suite(name="s", version=1, description="", tasks=(TaskSpec(name="t", env_id=env_id, kwargs=kwargs),)), 0
    )


@pytest.mark.parametrize(
    ("env_id", "kwargs", "why"),
    [
        ("MiniGrid-DoorKey-5x5-v0", {"bogus": 0}, "unexpected keyword argument 'bogus'"),  # was TypeError
        ("BabyAI-GoToLocal-v0", {"see_through_walls": False}, "multiple values for keyword argument"),  # TypeError
        ("MiniGrid-Nope-v0", {}, "doesn't exist"),  # was gymnasium's NameNotFound
        ("MiniGrid-Empty-5x5-v0", {"size": 10**6}, "size: must be an integer in [5, 128]"),  # MemoryError at reset
        ("MiniGrid-Empty-5x5-v0", {"agent_view_size": 4}, "agent_view_size: must be odd"),  # MiniGrid's assert
        ("MiniGrid-Empty-5x5-v0", {"max_steps": 0}, "max_steps: must be an integer in [1, "),
        ("MiniGrid-Empty-5x5-v0", {"see_through_walls": "yes"}, "see_through_walls: must be true or false"),
        ("MiniGrid-DoorKey-5x5-v0", {"size": 5, "tile_size": 0}, "tile_size: must be an integer in [1, 256]"),
        ("MiniGrid-KeyCorridorS3R1-v0", {"room_size": 3, "num_rows": 70}, "more than 128"),  # a 141-cell grid
    ],
)
def test_stock_task_kwargs_are_one_error_naming_the_task(env_id: str, kwargs: dict[str, object], why: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _stock_task(env_id, **kwargs)
    assert str(refused.value).startswith(f"task 't' ({env_id}") and why in str(refused.value), str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_stock_task_whose_kwargs_cannot_start_an_episode_is_refused_when_made() -> None:
    """Empty's agent_start_pos outside the grid passed construction and failed in the first reset (a bare
    AssertionError); a first reset on a throwaway env now refuses it when the env is made."""
    with pytest.raises(
        ConfigError, match=r"^task 't' \(MiniGrid-Empty-5x5-v0 with .*\): cannot start an episode \(Ass"
    ):
        _stock_task("MiniGrid-Empty-5x5-v0", agent_start_pos=(10, 10))
    env = _stock_task("MiniGrid-DoorKey-5x5-v0", size=6, agent_view_size=5)
    obs, _ = env.reset(seed=3)  # type: ignore[attr-defined]
    assert obs["image"].shape == (5, 5, 3)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: __import__("modrl.envs", fromlist=["x"]).make_suite_env(None, 0), "suite"),  # AttributeError
        (lambda: __import__("modrl.envs", fromlist=["x"]).make_suite_env("minigrid-tiny", True), "task_index"),
        (
            lambda: __import__("modrl.envs", fromlist=["x"]).make_suite_env("minigrid-tiny", 0, mission_tokens=1),
            "mission_tokens",
        ),
        (
            lambda: __import__("modrl.envs", fromlist=["x"]).make_suite_env("minigrid-tiny", 0, render_mode="x"),
            "render_mode",
        ),
        (lambda: __import__("modrl.envs", fromlist=["x"]).make_split_env(True, "train"), "suite"),  # AttributeError
        (lambda: __import__("modrl.envs", fromlist=["x"]).make_split_env("colour-type", [35]), "split"),  # TypeError
        (
            lambda: __import__("modrl.envs", fromlist=["x"]).make_split_env("colour-type", "train", max_len=10**9),
            "max_len",
        ),  # a 10^9-entry MultiDiscrete
    ],
)
def test_stock_env_constructors_refuse_bad_arguments_by_name(make: object, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        make()  # type: ignore[operator]


def test_full_view_size_is_bounded() -> None:
    import gymnasium as gym

    from modrl.envs.wrappers import FullView

    for size in (10**6 + 1, 103, True, 8):
        with pytest.raises(ConfigError, match=r"^size: must be an odd integer in \[7, 101\]"):
            FullView(gym.make("MiniGrid-Empty-5x5-v0"), size=size)
