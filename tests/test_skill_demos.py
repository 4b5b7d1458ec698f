"""Skill options cloned from the planner's demonstrations (agents/options/skill_cloning.py), the planner serving steps
the grammar has no subtask for (drop, open a box) with skill-named options, and calls ending on the step's observed
effects."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from modrl.agents.options.skill_cloning import train_skill_library
from modrl.agents.options.skill_cloning_config import load_skill_cloning_config
from modrl.agents.planning.evaluation import PlannerEvalConfig, evaluate_planner
from modrl.agents.planning.library import load_library
from modrl.agents.planning.recording import record_skill_demos, split_calls
from modrl.agents.planning.skills import call_resolver, learned_skills, with_predicates
from modrl.cli.main import main
from modrl.config import ConfigError
from modrl.envs import get_suite
from modrl.envs.goals import goals_for_env
from modrl.envs.operators import planning_domain
from modrl.envs.predicates import env_planning_state
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.skill_env import SKILL_SLOTS, skill_call
from modrl.envs.wrappers import full_view_image
from modrl.options import Option, OptionCall, OptionConfig, OptionLibrary
from modrl.planner import GroundOperator
from modrl.planner.monitor import SkillStatus

KEY = 5  # minigrid OBJECT_TO_IDX["key"]
TINY = {
    "episodes": 2,
    "view_size": 9,
    "epochs": 2,
    "batch_size": 32,
    "net": {"channels": [4], "features_dim": 8, "hidden": [8], "arg_dim": 2, "embed_dim": 2},
}


def _steps(env_id: str, seed: int) -> list[GroundOperator]:
    env = gym.make(env_id)
    env.reset(seed=seed)
    from modrl.planner import Plan, plan

    skills = ScriptedSkills(env)
    found = plan(planning_domain(), skills.observe(), goals_for_env(env, skills.observe()))
    assert isinstance(found, Plan)
    env.close()
    return list(found.steps)


def test_skill_calls_name_the_skill_and_the_plain_colour_and_type() -> None:
    steps = _steps("MiniGrid-BlockedUnlockPickup-v0", 0)
    calls = [skill_call(s) for s in steps]
    assert [c[0] for c in calls if c] == ["pickup", "drop", "pickup", "open", "drop", "pickup"]
    unlock = next(s for s in steps if s.operator == "unlock")
    assert skill_call(unlock) == ("open", (unlock.skill_args[1].split("@")[0], "door"))
    box = next(s for s in _steps("MiniGrid-ObstructedMaze-1Dlh-v0", 0) if s.operator == "open_box")
    assert skill_call(box) is not None and skill_call(box)[1][1] == "box"  # type: ignore[index]
    goal = next(s for s in _steps("MiniGrid-DoorKey-5x5-v0", 0) if s.operator == "goto_goal")
    assert skill_call(goal) == ("goto", ("green", "goal"))
    putnext = GroundOperator(
        operator="putnext",
        args=(),
        pre=frozenset(),
        neg=(),
        add=frozenset(),
        delete_exact=frozenset(),
        delete_patterns=(),
        skill="putnext",
        skill_args=("box", "red", "key", "blue"),
    )
    assert skill_call(putnext) == ("putnext", ("red", "box"))  # the moved object's words; the key is marked
    assert skill_call(replace(putnext, skill_args=("box", "red"))) is None  # putnext needs both objects
    assert skill_call(replace(putnext, skill_args=("box", "red", "wall", "blue"))) is None


def test_recorded_demonstrations_are_the_agents_view_before_each_scripted_action() -> None:
    recording = record_skill_demos(["MiniGrid-Unlock-v0"], episodes=3, view_size=11)
    assert recording.episodes == 3 and recording.solved == 3
    assert set(recording.demos) == {"pickup", "open"} and recording.calls["pickup"] == 3
    pickup = recording.demos["pickup"]
    assert pickup.observations["image"].shape[1:] == (11, 11, 3) and pickup.size == sum(pickup.lengths)
    words = {tuple(SKILL_SLOTS[i][j] for i, j in enumerate(row)) for row in pickup.observations["args"]}
    assert all(w[1] == "key" for w in words)
    # The last action of every pickup call is MiniGrid's pickup, taken facing the key; the view holds the key.
    ends = np.cumsum(pickup.lengths) - 1
    assert (pickup.actions[ends] == 3).all()
    assert all((pickup.observations["image"][i][..., 0] == KEY).sum() == 1 for i in ends)
    # Replaying episode 0's seed gives the same first observation.
    env = gym.make("MiniGrid-Unlock-v0")
    env.reset(seed=1_500_000_000)
    assert np.array_equal(full_view_image(env.unwrapped, 11), pickup.observations["image"][0])
    env.close()


def test_split_calls_holds_out_whole_calls() -> None:
    demos = record_skill_demos(["MiniGrid-Unlock-v0"], episodes=4, view_size=9).demos["pickup"]
    fit, held = split_calls(demos, 0.25)
    assert held is not None and len(held.lengths) == 1 and fit.size + held.size == demos.size
    assert np.array_equal(np.concatenate([fit.actions, held.actions]), demos.actions)
    assert split_calls(demos, 0.0) == (demos, None)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("skills=[fly]", "skills"),
        ("view_size=10", "view_size"),
        ("split=test2", "suite"),
        ("episodes=0", "episodes"),
        ("validation=1", "validation"),
    ],
)
def test_skills_config_names_the_bad_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_skill_cloning_config(TINY, [override])


def test_a_cloned_library_serves_drop_and_box_steps_and_runs_under_the_planner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modrl.agents.options import skill_cloning

    real_clone, by_hand = skill_cloning.behaviour_clone, {}

    def clone(policy: Any, demos: Any, *args: Any, **kwargs: Any) -> Any:
        history = real_clone(policy, demos, *args, **kwargs)
        # The cloning accuracy by hand: the share of the cloned (observation, action) pairs whose action is the argmax
        # of the option's logits right after cloning (nothing trains it afterwards in this config).
        obs, _ = policy.obs_to_tensor(demos.observations)
        with torch.no_grad():
            greedy = policy.get_distribution(obs).distribution.logits.argmax(dim=-1).numpy()
        by_hand[kwargs["tag"].rsplit("/", 1)[-1]] = (int((greedy == demos.actions).sum()), demos.size)
        return history

    monkeypatch.setattr(skill_cloning, "behaviour_clone", clone)
    # One evaluation episode per skill and split: the success rates are not what this test checks (that is
    # test_fine_tuning_runs_ppo_in_calling_states_and_reports_calling_state_success), and 20 cost most of its time.
    config = load_skill_cloning_config(TINY, ["split=train", "eval_episodes=1"])
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("suite: minigrid-hard\n")
    recording, results = train_skill_library(config, run)
    assert {r.skill for r in results} == {"pickup", "drop", "open", "goto"} & set(recording.demos)
    assert {"pickup", "drop", "open"} <= {r.skill for r in results}
    for r in results:
        demos = recording.demos[r.skill]
        fit, _ = split_calls(demos, config.validation)  # cloned on all calls but the held-out last ones
        right, size = by_hand[r.skill]
        assert r.pairs == demos.size == sum(demos.lengths) and size == fit.size, r
        assert r.accuracy == pytest.approx(right / size, abs=1e-6), (r.skill, right, size)
    data = json.loads((run / "results.json").read_text())
    train_tasks = len(get_suite("minigrid-hard").split("train"))
    assert data["recording"]["solved"] == data["recording"]["episodes"] == 2 * train_tasks
    library = load_library(str(run / "options"))
    assert library.get("drop").parameterised and library.get("open").config.image_shape == (9, 9, 3)
    resolve = call_resolver(library)
    drop = next(s for s in _steps("MiniGrid-BlockedUnlockPickup-v0", 0) if s.operator == "drop")
    box = next(s for s in _steps("MiniGrid-ObstructedMaze-1Dlh-v0", 0) if s.operator == "open_box")
    assert resolve(drop) == OptionCall(option="drop", args=skill_call(drop)[1])  # type: ignore[index]
    assert resolve(box) == OptionCall(option="open", args=skill_call(box)[1])  # type: ignore[index]
    report = evaluate_planner(
        PlannerEvalConfig(suite="minigrid-hard", split="test", episodes=1, library=str(run / "options"), option_steps=5)
    )
    assert sum(t.option_calls for t in report.tasks) > 0 and sum(t.fallback_calls for t in report.tasks) == 0


def test_cli_skills_writes_a_library(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    spec = tmp_path / "skills.yaml"
    # One evaluation episode: the table's success columns are filled, at a twentieth of the default's cost.
    spec.write_text(yaml.safe_dump({**TINY, "skills": ["pickup"], "target_marker": True, "eval_episodes": 1}))
    assert main(["options", "skills", str(spec), "--run-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "| pickup |" in out and "modrl eval" in out
    assert "TensorBoard" not in out and not (tmp_path / "run" / "tb").exists()  # cloning only: no PPO scalars
    library = OptionLibrary.load(tmp_path / "run" / "options")
    assert library.names == ["pickup"] and library.get("pickup").config.image_shape == (9, 9, 4)
    # The run's config names its suite: the planner evaluation finds it without --suite.
    assert main(["eval", str(tmp_path / "run"), "--planner", "--episodes", "1", "--option-steps", "2"]) == 0
    assert "minigrid-hard/test" in capsys.readouterr().out
    assert main(["options", "skills", str(spec), "--set", "skills=[jump]"]) == 2


class _Walker(Option):
    """Picks up the key when facing it, else turns: its own termination never holds."""

    def act(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        base = self._env.unwrapped  # type: ignore[attr-defined]
        front = base.grid.get(*base.front_pos)
        return torch.tensor([3 if front is not None and front.type == "key" else 0]), None


def test_a_call_ends_when_the_steps_effects_are_observed_and_not_before(tmp_path: Path) -> None:
    outcomes = {}
    for end_on_effects in (True, False):
        env = with_predicates(gym.make("MiniGrid-Unlock-v0"))
        env.reset(seed=2)
        walker = _Walker(
            OptionConfig(channels=(4,), features_dim=4, hidden=(), embed_dim=2),
            termination_predicate=lambda info, args: False,
        )
        walker._env = env  # type: ignore[attr-defined]
        library = OptionLibrary()
        library.add("pickup-grey-key", walker)
        executor = learned_skills(env, library, fallback=None, max_skill_steps=40)
        executor.end_on_effects = end_on_effects
        base = env.unwrapped
        step = next(op for op in planning_domain().ground(env_planning_state(base)) if op.operator == "pickup")
        executor.resolve = lambda _step: OptionCall(option="pickup-grey-key")
        result = executor.execute(step)
        outcomes[end_on_effects] = (result.status, result.steps, base.carrying is not None)
        env.close()
    assert outcomes[True][0] is SkillStatus.DONE and outcomes[True][2] and outcomes[True][1] < 40
    assert outcomes[False][0] is SkillStatus.TIMEOUT and outcomes[False][1] == 40


def test_suite_minigrid_hard_keeps_the_targets_out_of_training() -> None:
    from modrl.agents.options.skill_cloning import split_envs

    suite = get_suite("minigrid-hard")
    assert ("MiniGrid-KeyCorridorS3R1-v0", {"room_size": 4}) in split_envs("minigrid-hard", "train")
    assert all(isinstance(spec, str) for spec in split_envs("minigrid-hard", "test"))
    test_ids = {suite.tasks[suite.task_index(t)].env_id for t in suite.split("test")}
    assert test_ids == {
        "MiniGrid-KeyCorridorS4R3-v0",
        "MiniGrid-ObstructedMaze-1Dlh-v0",
        "MiniGrid-BlockedUnlockPickup-v0",
    }
    assert not test_ids & {suite.tasks[suite.task_index(t)].env_id for t in suite.split("train")}


def test_skill_step_env_starts_at_a_call_of_its_skill_and_succeeds_on_the_calls_effects() -> None:
    from gymnasium.utils.env_checker import check_env

    from modrl.envs.skill_env import SkillStepEnv

    env = SkillStepEnv(["MiniGrid-UnlockPickup-v0"], "drop", view_size=9, max_steps=30)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert info["call"].startswith("drop(key,") and info["prefix"] == 2  # pickup key, unlock, then drop the key
    assert env.target.operator == "drop" and env.base.carrying is not None
    assert tuple(SKILL_SLOTS[i][j] for i, j in enumerate(obs["args"]))[1] == "key"
    # Dropping straight ahead (a free cell after unlocking? turn until one is free) completes the call.
    for _ in range(4):
        if env.base.grid.get(*env.base.front_pos) is None:
            break
        env.step(0)
    _, reward, terminated, truncated, info = env.step(4)
    assert terminated and not truncated and info["is_success"] and 0 < float(reward) < 1
    _, info = env.reset(seed=4)
    for _ in range(30):
        _, reward, terminated, truncated, info = env.step(2)  # walking into things never drops the key
        if terminated or truncated:
            break
    assert truncated and not terminated and info["is_success"] is False and reward == 0
    with pytest.raises(RuntimeError, match="no plan"):
        SkillStepEnv(["MiniGrid-Empty-5x5-v0"], "drop", view_size=9).reset(seed=0)
    # A skill only one env calls (DoorKey's goal) is drawn from that env only, every reset.
    rare = SkillStepEnv(
        ["MiniGrid-Unlock-v0", "MiniGrid-KeyCorridorS3R1-v0", "MiniGrid-DoorKey-5x5-v0"], "goto", view_size=9
    )
    assert {rare.reset(seed=k)[1]["env_id"] for k in range(30)} == {"MiniGrid-DoorKey-5x5-v0"}


def test_fine_tuning_runs_ppo_in_calling_states_and_reports_calling_state_success(tmp_path: Path) -> None:
    config = load_skill_cloning_config(
        TINY,
        [
            "skills=[drop]",
            "finetune_steps=64",
            "n_envs=2",
            "algo.n_steps=32",
            "algo.batch_size=32",
            "algo.n_epochs=1",
            "eval_episodes=2",
            "max_skill_steps=20",
        ],
    )
    _, results = train_skill_library(config, tmp_path)
    (drop,) = results
    assert drop.finetune_frames >= 64
    assert drop.train_success is not None and drop.test_success is not None  # BlockedUnlockPickup drops things
    # Each rate is successes / eval_episodes: sampled (the first) a multiple of 1/2, greedy (the second) recomputed
    # here by running the saved, fine-tuned option in the same calling states (reset seeds EVAL_SEED_BASE + k).
    from modrl.agents.options.skill_cloning import split_envs
    from modrl.agents.planning.rollouts import skill_action
    from modrl.envs.skill_env import SkillStepEnv
    from modrl.seeds import EVAL_SEED_BASE

    option = load_library(str(tmp_path / "options")).get("drop")
    option.eval()
    for split, (sampled, greedy) in ((config.split, drop.train_success), (config.eval_split, drop.test_success)):
        assert split is not None and sampled * 2 == int(sampled * 2)
        env = SkillStepEnv(split_envs(config.suite, split), "drop", view_size=9, max_steps=20)
        wins = 0
        for k in range(2):
            obs, info = env.reset(seed=EVAL_SEED_BASE + k)
            done = False
            while not done:
                action = int(skill_action(option, obs, deterministic=True)[0])
                obs, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            wins += bool(info["is_success"])
        env.close()
        assert greedy == wins / 2, (split, greedy, wins)
    assert "| drop |" in (tmp_path / "results.md").read_text()


class _Recording(gym.Wrapper):  # type: ignore[type-arg]
    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.actions: list[int] = []

    def step(self, action: Any) -> Any:
        self.actions.append(int(action))
        return self.env.step(action)


@pytest.mark.parametrize("env_id", ["MiniGrid-UnlockPickup-v0", "MiniGrid-BlockedUnlockPickup-v0"])
def test_next_action_is_the_first_action_execute_takes_and_takes_none(env_id: str) -> None:
    from modrl.planner import Plan, plan

    env = _Recording(gym.make(env_id))
    env.reset(seed=4)
    skills = ScriptedSkills(env)
    found = plan(planning_domain(), skills.observe(), goals_for_env(env, skills.observe()))
    assert isinstance(found, Plan)
    for step in found.steps:
        before = (tuple(env.unwrapped.agent_pos), env.unwrapped.agent_dir, env.unwrapped.step_count)
        probed = skills.next_action(step)
        assert (tuple(env.unwrapped.agent_pos), env.unwrapped.agent_dir, env.unwrapped.step_count) == before
        taken = len(env.actions)
        result = skills.execute(step)
        assert result.status is SkillStatus.DONE
        assert probed == env.actions[taken]
        assert skills.next_action(step) is None  # done: nothing left to do
    env.close()


def test_dagger_labels_the_options_own_states_with_the_scripted_action_and_reclones(tmp_path: Path) -> None:
    from modrl.agents.options.skill_cloning_config import skill_option_config
    from modrl.agents.planning.rollouts import dagger_demos, skill_action
    from modrl.envs.skill_env import SkillStepEnv

    config = load_skill_cloning_config(TINY)
    option = Option(skill_option_config(config))
    torch.manual_seed(5)
    demos, rate = dagger_demos(
        option, ["MiniGrid-UnlockPickup-v0"], "open", view_size=9, max_steps=6, episodes=3, seed_base=11
    )
    assert demos is not None and len(demos.lengths) == 3 and demos.size <= demos.frames <= 18
    # The success rate and the frames, recomputed: the same sampled actions (same torch seed) in the same episodes.
    torch.manual_seed(5)
    replay = SkillStepEnv(["MiniGrid-UnlockPickup-v0"], "open", view_size=9, max_steps=6)
    wins = frames = 0
    for k in range(3):
        obs, info = replay.reset(seed=11 + k)
        done = False
        while not done:
            obs, _, terminated, truncated, info = replay.step(int(skill_action(option, obs, deterministic=False)[0]))
            done, frames = terminated or truncated, frames + 1
        wins += bool(info["is_success"])
    replay.close()
    assert rate == wins / 3 and demos.frames == frames, (rate, wins, demos.frames, frames)
    # Each episode's first label is the scripted skill's action in the episode's first (calling) state.
    env = SkillStepEnv(["MiniGrid-UnlockPickup-v0"], "open", view_size=9, max_steps=6)
    starts = np.concatenate([[0], np.cumsum(demos.lengths)[:-1]])
    for k, start in enumerate(starts):
        obs, _ = env.reset(seed=11 + k)
        assert np.array_equal(obs["image"], demos.observations["image"][start])
        assert demos.actions[start] == ScriptedSkills(env.base).next_action(env.target)
    env.close()
    # In training: rounds run after cloning, their states join the demonstrations and are reported.
    config = load_skill_cloning_config(
        TINY,
        [
            "skills=[open]",
            "dagger_rounds=2",
            "dagger_episodes=3",
            "eval_episodes=0",
            "max_skill_steps=10",
            "dagger_epochs=1",
        ],
    )
    _, (result,) = train_skill_library(config, tmp_path)
    assert len(result.dagger_success) == 2 and 0 < result.dagger_pairs <= 2 * 3 * 10
    assert "DAgger" in (tmp_path / "results.md").read_text()
    with pytest.raises(ConfigError, match="dagger_rounds"):
        load_skill_cloning_config(TINY, ["dagger_rounds=-1"])
    with pytest.raises(ConfigError, match="dagger_epochs"):
        load_skill_cloning_config(TINY, ["dagger_epochs=0"])


def test_a_skill_episode_that_ends_the_envs_task_in_success_succeeds() -> None:
    from modrl.agents.options.skill_cloning import split_envs
    from modrl.envs.skill_env import SkillStepEnv

    # Seed 38 draws a last goto(door,purple) that the scripted skill completes facing the door from the other room
    # than the plan named: the step's agent_in(room) effect never holds, but the env's task is solved.
    env = SkillStepEnv(split_envs("sequences", "train"), "goto", view_size=9, max_steps=100)
    _, info = env.reset(seed=38)
    assert info["call"] == "goto(door,purple)"
    done, reward = False, 0.0
    while not done:
        action = ScriptedSkills(env.base).next_action(env.target)
        assert action is not None
        _, reward, terminated, truncated, step_info = env.step(action)
        done = terminated or truncated
    assert terminated and step_info["is_success"] and reward > 0
    assert not env.target.add <= env_planning_state(env.base)  # by the env's success, not the step's effects
    env.close()


def test_a_run_of_some_skills_clones_them_as_a_run_of_all_does(tmp_path: Path) -> None:
    """Skills are seeded by their place in SKILL_NAMES: separate processes can train parts of a library."""
    overrides = ["eval_episodes=0", "dagger_rounds=1", "dagger_episodes=3", "random_steps=1"]
    tensors = {}
    for name, skills in (("all", "[pickup,drop,open]"), ("part", "[open]")):
        run = tmp_path / name
        run.mkdir()
        train_skill_library(load_skill_cloning_config(TINY, [*overrides, f"skills={skills}"]), run)
        tensors[name] = load_library(str(run / "options")).get("open").state_dict()
    assert tensors["all"].keys() == tensors["part"].keys()
    assert all(torch.equal(tensors["all"][k], tensors["part"][k]) for k in tensors["all"])
