"""Options: the option module, the library (save/load/freeze), single-subtask episodes, the curriculum, call-and-return
execution, option telemetry, the router and the training path from subtask events."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import safetensors.torch
import torch
from gymnasium import spaces

from modrl.config import ConfigError
from modrl.modules.library import tensor_digest
from modrl.options import (
    CallAndReturn,
    CurriculumConfig,
    EndReason,
    Option,
    OptionCall,
    OptionConfig,
    OptionLibrary,
    OptionStats,
    SuccessCurriculum,
)
from modrl.telemetry import TelemetryWriter

SMALL = dict(channels=(8,), features_dim=16, hidden=(16,), embed_dim=4, arg_dim=4)
SLOTS = (("red", "green", "blue"), ("ball", "key"))


def small(**kwargs: Any) -> OptionConfig:
    return OptionConfig(**{**SMALL, **kwargs})


def batch(b: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    image = torch.stack([torch.randint(0, h + 1, (b, 7, 7), generator=gen) for h in (10, 5, 2)], dim=3)
    return image, torch.randint(0, 4, (b,), generator=gen)


# -- the option -------------------------------------------------------------------------------------------------------
def test_option_shapes_and_arguments() -> None:
    option = Option(small(arg_slots=SLOTS, termination="learned"))
    image, direction = batch()
    args = torch.stack([option.encode_args(("blue", "key"))] * 3)
    assert args[0].tolist() == [2, 1]
    out = option(image, direction, args)
    assert out.logits.shape == (3, 7) and out.termination is not None and out.termination.shape == (3,)
    assert bool(((out.termination > 0) & (out.termination < 1)).all())
    other = option(image, direction, torch.stack([option.encode_args(("red", "ball"))] * 3))
    assert not torch.allclose(out.logits, other.logits), "the argument must change the policy"
    with pytest.raises(ValueError, match="'yellow' is not one of red, green, blue"):
        option.encode_args(("yellow", "key"))
    with pytest.raises(ValueError, match=r"args must have shape \(3, 2\)"):
        option(image, direction)
    plain = Option(small())
    assert plain(image, direction).termination is None and not plain.parameterised


def test_option_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="image_high"):
        OptionConfig(image_high=(10, 5))
    with pytest.raises(ConfigError, match=r"arg_slots\[0\]"):
        OptionConfig(arg_slots=(("red", "red"),))


def test_termination_predicate_and_learned_beta() -> None:
    rng = np.random.default_rng(0)
    option = Option(small(), termination_predicate=lambda info, args: info.get("done", False))
    assert option.terminates({"done": True}, (), None, rng)
    assert not option.terminates({"done": False}, (), None, rng)
    assert option.terminates({}, (), 1.0, rng) and not option.terminates({}, (), 0.0, rng)
    gated = Option(small(), initiation=lambda info, args: "carrying" not in info)
    assert gated.can_start({}) and not gated.can_start({"carrying": 1})


# -- the library ------------------------------------------------------------------------------------------------------
def test_library_save_load_roundtrip(tmp_path: Path) -> None:
    library = OptionLibrary()
    library.add("pickup", Option(small(arg_slots=SLOTS, termination="learned")))
    library.add("goto-red-ball", Option(small()))
    library.freeze(["pickup"])
    library.save(tmp_path)
    loaded = OptionLibrary.load(tmp_path)
    assert loaded.names == ["pickup", "goto-red-ball"]
    assert loaded.is_frozen("pickup") and not loaded.is_frozen("goto-red-ball")
    image, direction = batch()
    args = torch.stack([library.get("pickup").encode_args(("green", "ball"))] * 3)
    for name, extra in (("pickup", (args,)), ("goto-red-ball", ())):
        a, b = library.get(name)(image, direction, *extra), loaded.get(name)(image, direction, *extra)
        assert torch.equal(a.logits, b.logits)
    other = OptionLibrary()
    assert other.load_option(tmp_path / "pickup.safetensors", name="grab", trainable=False) == "grab"
    assert other.is_frozen("grab") and other.get("grab").config.arg_slots == SLOTS
    with pytest.raises(ValueError, match="already taken"):
        other.load_option(tmp_path / "pickup.safetensors", name="grab")


def test_load_refuses_mismatched_shapes_and_corruption(tmp_path: Path) -> None:
    library = OptionLibrary()
    library.add("a", Option(small(hidden=(16,))))
    library.save_option("a", tmp_path / "a.safetensors")
    tensors = safetensors.torch.load_file(tmp_path / "a.safetensors")
    spec = Option(small(hidden=(32,))).spec()
    metadata = {
        "format": "modrl.option",
        "format_version": "1",
        "name": "a",
        "tensors_sha256": tensor_digest(tensors),
        "spec": json.dumps(spec),
    }
    (tmp_path / "b.safetensors").write_bytes(safetensors.torch.save(tensors, metadata=metadata))
    with pytest.raises(
        ValueError,
        match=r"b.safetensors: cannot load option: tensor 'policy.0.bias' has shape "
        r"\(16,\), the spec builds \(32,\)",
    ):
        OptionLibrary().load_option(tmp_path / "b.safetensors")
    data = bytearray((tmp_path / "a.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "c.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        OptionLibrary().load_option(tmp_path / "c.safetensors")
    with pytest.raises(ValueError, match=r"interface \(num_actions: 3 vs 7\)"):
        library.add("b", Option(small(num_actions=3)))


def test_freeze_keeps_frozen_options_bit_identical() -> None:
    library = OptionLibrary()
    library.add("a", Option(small()))
    library.add("b", Option(small()))
    library.set_trainable(["b"])
    before = {k: v.clone() for k, v in library.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in library.parameters() if p.requires_grad], lr=0.5)
    image, direction = batch()
    loss = sum(library.get(n)(image, direction).logits.square().sum() for n in library.names)
    loss.backward()  # type: ignore[union-attr]
    optimizer.step()
    after = library.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("options.a."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("options.b."))
    counts = library.parameter_counts()
    assert counts.frozen == sum(p.numel() for p in library.get("a").parameters()) and counts.trainable > 0


def test_core_package_imports_no_sb3_envs_or_agents() -> None:
    code = (
        "import sys, modrl.options; bad = [m for m in sys.modules if m.split('.')[0] == 'stable_baselines3' "
        "or m.startswith(('modrl.envs', 'modrl.agents'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the curriculum ---------------------------------------------------------------------------------------------------
def test_curriculum_advances_on_threshold_and_on_budget() -> None:
    curriculum = SuccessCurriculum(
        ["a", "b"], CurriculumConfig(threshold=0.75, window=4, min_episodes=4, max_steps=100)
    )
    for success in (True, True, True):
        curriculum.record_episode(success)
    assert not curriculum.should_advance()  # 3 < min_episodes
    curriculum.record_episode(False)
    curriculum.add_steps(40)
    assert curriculum.should_advance() and curriculum.current == "a"
    first = curriculum.advance()
    assert (first.name, first.passed, first.steps, first.episodes, first.success) == ("a", True, 40, 4, 0.75)
    curriculum.record_episode(False)
    curriculum.add_steps(99)
    assert not curriculum.should_advance()
    curriculum.add_steps(1)
    second = curriculum.advance()
    assert (second.name, second.passed, second.success) == ("b", False, 0.0) and curriculum.done


# -- call-and-return --------------------------------------------------------------------------------------------------
class CountingEnv(gym.Env[dict[str, Any], int]):
    """Reward 1 per step, ``info["t"]`` the step count, episode over after ``length`` steps."""

    def __init__(self, length: int = 10) -> None:
        self.length = length
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 2, (7, 7, 3), np.uint8),
                "direction": spaces.Discrete(4),
                "task": spaces.Discrete(2),
            }
        )
        self.action_space = spaces.Discrete(7)
        self.t = 0

    def _obs(self) -> dict[str, Any]:
        return {"image": np.zeros((7, 7, 3), np.uint8), "direction": self.t % 4, "task": 1}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {"t": 0, "task": "t1"}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.t += 1
        return self._obs(), 1.0, self.t >= self.length, False, {"t": self.t, "task": "t1"}


def smdp_env(length: int = 10, **kwargs: Any) -> CallAndReturn:
    library = OptionLibrary()
    library.add("three", Option(small(), termination_predicate=lambda info, args: info["t"] % 3 == 0))
    library.add("never", Option(small()))
    library.add("blocked", Option(small(), initiation=lambda info, args: False))
    calls = [OptionCall(option=name) for name in library.names]
    return CallAndReturn(CountingEnv(length), library, calls, **kwargs)


def test_call_and_return_sums_discounted_reward_over_the_duration() -> None:
    env = smdp_env(gamma=0.9, max_option_steps=5)
    env.reset(seed=0)
    _, reward, *_, info = env.step(0)
    assert info["option_duration"] == 3 and info["option_end"] == "terminated" and info["option"] == "three"
    assert reward == pytest.approx(1 + 0.9 + 0.81) and info["option_discount"] == pytest.approx(0.9**3)
    _, reward, *_, info = env.step(1)
    assert (info["option_duration"], info["option_end"]) == (5, "step_cap")
    assert reward == pytest.approx(sum(0.9**k for k in range(5)))
    _, reward, terminated, _, info = env.step(1)
    assert (info["option_duration"], info["option_end"], terminated) == (2, "episode_end", True)
    assert env.action_space == spaces.Discrete(3)


def test_call_and_return_blocked_option_and_decision_cap() -> None:
    env = smdp_env(max_decisions=2)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(2)
    assert (reward, info["option_duration"], info["option_end"], truncated) == (0.0, 0, "not_initiable", False)
    _, _, terminated, truncated, info = env.step(2)
    assert truncated and not terminated and info["is_success"] is False


def test_option_stats_written_to_tensorboard(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stats = OptionStats(["three", "never"], ["t0", "t1"])
    stats.record(0, 1, 3, EndReason.TERMINATED)
    stats.record(0, 1, 1, "step_cap")
    stats.record(1, 0, 5, "episode_end")
    summary = stats.summary()
    assert summary is not None and summary.mean_duration.tolist() == [2.0, 5.0]
    assert summary.termination_rate(0) == 0.5 and summary.total_mean_duration == pytest.approx(3.0)
    with TelemetryWriter(tmp_path) as writer:
        stats.log(writer, step=7)
    events = EventAccumulator(str(tmp_path)).Reload()
    assert events.Scalars("modrl/option/three/mean_duration")[0].value == 2.0
    assert events.Scalars("modrl/options/termination_rate")[0].value == pytest.approx(1 / 3)
    assert events.Scalars("modrl/module/three/usage")[0].value == pytest.approx(2 / 3)
    assert "modrl/routing/task_module_heatmap" in events.Tags()["images"]
    assert "modrl/options/timeline" not in events.Tags()["images"]  # no slot given, no episode ended: no timeline
    assert stats.count == 0


def test_option_timeline_of_the_last_finished_episode(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stats = OptionStats(["goto", "pickup", "open"], ["t0", "t1"])
    stats.record(0, 1, 4, EndReason.TERMINATED, slot=0)
    stats.record(2, 0, 2, EndReason.STEP_CAP, slot=1)  # another slot's episode, still running
    stats.record(1, 1, 3, EndReason.EPISODE_END, slot=0)
    stats.end_episode(0, 1, success=True)
    episode = stats.last_episode
    assert episode is not None and episode.task == "t1" and episode.success
    assert episode.calls == ((0, 4, EndReason.TERMINATED), (1, 3, EndReason.EPISODE_END))
    stats.end_episode(3, 0, success=False)  # a slot with no recorded call changes nothing
    assert stats.last_episode is episode
    with TelemetryWriter(tmp_path) as writer:
        stats.log(writer, step=5)
        stats.record(0, 0, 1, EndReason.TERMINATED)
        stats.log(writer, step=6)  # the same last episode: not drawn again
        stats.record(2, 0, 1, EndReason.EPISODE_END, slot=1)
        stats.end_episode(1, 0, success=False)
        stats.log(writer, step=7)
    images = EventAccumulator(str(tmp_path), size_guidance={"images": 0}).Reload().Images("modrl/options/timeline")
    assert [image.step for image in images] == [5, 7]
    assert stats.last_episode is not None and stats.last_episode.calls == (
        (2, 2, EndReason.STEP_CAP),
        (2, 1, EndReason.EPISODE_END),
    )
    assert images[0].width > 300 and images[0].height > 100  # a labelled figure, not a few pixels


def test_timeline_figure_rows_are_the_calls_that_ran() -> None:
    from modrl.options.stats import EpisodeCalls, timeline_figure

    one = EpisodeCalls(task="t", calls=((1, 5, EndReason.TERMINATED),), success=False)
    three = EpisodeCalls(
        task="t",
        calls=((0, 5, EndReason.TERMINATED), (2, 0, EndReason.STEP_CAP), (1, 9, EndReason.EPISODE_END)),
        success=True,
    )
    small, tall = timeline_figure(one, ["a", "b", "c"]), timeline_figure(three, ["a", "b", "c"])
    assert small.dtype == np.uint8 and small.shape[2] == 3 and tall.shape[1] == small.shape[1]
    assert tall.shape[0] > small.shape[0]  # one row per call name that ran


# -- single-subtask episodes ------------------------------------------------------------------------------------------
def test_subtask_env_rewards_the_completion_event_and_matches_the_effect_predicate() -> None:
    from modrl.envs import get_split
    from modrl.envs.subtask_env import SubtaskEnv
    from modrl.envs.subtask_symbols import argument_slots, effect_predicate

    tasks = [t for t in get_split("colour-type").train if t.startswith("pickup-")][:6]
    env = SubtaskEnv(tasks, task_kwargs={"room_size": 5, "num_distractors": 1}, max_episode_steps=30)
    predicate = effect_predicate("pickup")
    obs, info = env.reset(seed=3, options={"task": "pickup-grey-box"})
    slots = argument_slots("pickup")
    assert [slots[i][j] for i, j in enumerate(obs["args"])] == ["grey", "box"]
    assert info["subtask"] == "pickup(box,grey)" and env.observation_space.contains(obs)
    outcomes = {True: 0, False: 0}
    for episode in range(12):
        obs, info = env.reset(seed=episode)
        rng = np.random.default_rng(episode)
        while True:
            obs, reward, terminated, truncated, info = env.step(int(rng.integers(7)))
            assert predicate(info, info["arguments"]) == terminated  # effect predicate <=> completion event
            if terminated or truncated:
                break
        assert info["is_success"] == terminated and (reward > 0) == terminated
        outcomes[terminated] += 1
    assert outcomes[True] > 0 and outcomes[False] > 0
    with pytest.raises(ConfigError, match="one verb"):
        SubtaskEnv(["pickup-green-key", "goto-green-key"])


# -- training paths (tiny) --------------------------------------------------------------------------------------------
TINY_OPTIONS = {
    "mode": "per_symbol",
    "options": ["goto-green-ball"],
    "env": {
        "suite": "sequences",
        "test_split": None,
        "room_size": 5,
        "num_distractors": 0,
        "n_envs": 4,
        "max_episode_steps": 20,
    },
    "net": {"channels": [8], "features_dim": 16, "hidden": [16], "critic_hidden": [16]},
    "algo": {"n_steps": 64, "batch_size": 128, "n_epochs": 8, "learning_rate": 0.001},
    "curriculum": {"threshold": 0.9, "window": 30, "min_episodes": 30, "max_steps": 8000},
    "eval_episodes": 20,
}


def test_options_config_refuses_unknown_keys_and_tasks() -> None:
    from modrl.agents.options.config import load_options_config
    from modrl.agents.options.train import option_jobs

    with pytest.raises(ConfigError, match=r"unknown key 'curriculum\.treshold'"):
        load_options_config(TINY_OPTIONS, ["curriculum.treshold=0.5"])
    with pytest.raises(ConfigError, match="options: 'fly' is not a verb"):
        option_jobs(load_options_config(TINY_OPTIONS, ["mode=parameterised", "options=[fly]"]))
    plans = option_jobs(load_options_config({"options": ["open"]}))
    assert plans[0].parameterised and "open-red-door" in plans[0].train and "open-purple-door" in plans[0].test


@pytest.mark.slow
def test_path1_learns_a_trivial_subtask_and_saves_the_option(tmp_path: Path) -> None:
    from modrl.agents.options.config import load_options_config
    from modrl.agents.options.train import _subtask_env, evaluate_option, option_config, option_jobs, train_options

    config = load_options_config(TINY_OPTIONS)
    plan = option_jobs(config)[0]
    env = _subtask_env(config, plan, plan.train)
    untrained = evaluate_option(
        Option(option_config(config, plan)), env, plan.train[0], episodes=20, deterministic=False
    )
    results = train_options(config, tmp_path)
    stage = results[0].stage
    assert stage.success is not None and stage.success >= 0.6  # measured: passes 0.9 after ~3.8k frames
    assert results[0].train_success is not None and results[0].train_success >= untrained + 0.25
    library = OptionLibrary.load(tmp_path / "options")
    assert library.names == ["goto-green-ball"] and library.is_frozen("goto-green-ball")
    assert "| goto-green-ball |" in (tmp_path / "results.md").read_text()
    per_task = json.loads((tmp_path / "results.json").read_text())["options"][0]["per_task"]
    assert per_task and all(set(row) == {"split", "stoch", "det"} for row in per_task.values())  # the old keys


@pytest.mark.slow
def test_router_trains_over_a_library_and_logs_option_telemetry(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from modrl.agents.options.config import load_route_config
    from modrl.agents.options.ppo_controller import evaluate_controller, train_controller
    from modrl.envs import get_suite
    from modrl.envs.subtask_symbols import argument_slots

    library = OptionLibrary()
    library.add("goto", Option(small(arg_slots=argument_slots("goto"))))
    library.add("pickup-blue-key", Option(small()))
    library.save(tmp_path / "lib")
    config = load_route_config(
        {
            "library": str(tmp_path / "lib"),
            "env": {"suite": "sequences", "n_envs": 2},
            "max_option_steps": 4,
            "max_decisions": 4,
            "total_timesteps": 200,
            "algo": {"n_steps": 8, "batch_size": 16, "n_epochs": 1},
        }
    )
    with TelemetryWriter(tmp_path / "tb") as writer:
        model, library, calls, callback = train_controller(config, writer=writer)
    assert [c.name for c in calls] == ["pickup-blue-key", "goto-green-ball", "goto-purple-door"]
    assert callback.frames >= 200 and model.num_timesteps >= 16
    tags = EventAccumulator(str(tmp_path / "tb")).Reload().Tags()
    assert "modrl/options/mean_duration" in tags["scalars"]
    assert "modrl/option/goto-green-ball/mean_duration" in tags["scalars"]
    assert "modrl/routing/task_module_heatmap" in tags["images"]
    assert "modrl/options/timeline" in tags["images"]
    # Evaluation, greedy and sampled: every task of every split, with its success rate and decisions.
    for deterministic in (True, False):
        results = evaluate_controller(model, config, library, calls, episodes=1, deterministic=deterministic)
        assert set(results) == set(get_suite("sequences").task_names)
        # One episode per task: its outcome (0 or 1, not a fraction) and a whole number of decisions within the limit.
        assert all(row.success in (0.0, 1.0) and row.decisions in (1, 2, 3, 4) for row in results.values())
        if deterministic:  # seeded episodes and a greedy controller: the same evaluation again
            assert evaluate_controller(model, config, library, calls, episodes=1, deterministic=True) == results


def test_cli_options_train_refuses_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modrl.cli.main import main

    config = tmp_path / "o.yaml"
    config.write_text("options: [pickup]\ncurriculum: {threshold: 2.0}\n")
    assert main(["options", "train", str(config), "--runs-root", str(tmp_path / "runs")]) == 2
    assert "curriculum.threshold: must be in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_cli_options_route_checkpoints_the_router_and_writes_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``modrl options route`` end to end: the run's checkpoint loads and verifies, results.json holds greedy and
    sampled rows for every task, and the printed means are those rows' means."""
    import json

    import yaml

    from modrl.checkpoint import latest_checkpoint
    from modrl.cli.main import main
    from modrl.envs import get_suite

    library = OptionLibrary()
    library.add("pickup-blue-key", Option(small()))
    library.save(tmp_path / "lib")
    config = {
        "library": str(tmp_path / "lib"),
        "env": {"suite": "sequences", "n_envs": 2},
        "eval_episodes": 1,
        "max_option_steps": 4,
        "max_decisions": 4,
        "total_timesteps": 64,
        "algo": {"n_steps": 8, "batch_size": 16, "n_epochs": 1},
    }
    (tmp_path / "route.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["options", "route", str(tmp_path / "route.yaml"), "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    results = json.loads((run / "results.json").read_text())
    assert set(results) == {"frames", "tasks", "tasks_sampled"} and results["frames"] >= 64
    assert set(results["tasks"]) == set(results["tasks_sampled"]) == set(get_suite("sequences").task_names)
    checkpoint = latest_checkpoint(run / "checkpoints")
    assert checkpoint is not None and checkpoint.step == results["frames"]
    for split in ("train", "test"):
        rows = [r["success"] for r in results["tasks"].values() if r["split"] == split]
        assert f"{split:>5}: success {sum(rows) / len(rows):.2f} deterministic" in out
    assert f"router trained: {results['frames']} frames" in out
