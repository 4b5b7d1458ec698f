"""DAgger over whole planner episodes (agents/planning/dagger.py): what is labelled, with which action, for which skill;
and the ``planner_dagger_rounds`` phase of ``modrl options skills``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from modrl.agents.options import skill_cloning as skill_demos
from modrl.agents.options.skill_cloning import train_skill_library
from modrl.agents.options.skill_cloning_config import load_skill_cloning_config, skill_option_config
from modrl.agents.planning.dagger import planner_dagger_demos
from modrl.config import ConfigError
from modrl.envs.goals import goals_for_env
from modrl.envs.operators import planning_domain
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.skill_env import skill_call, skill_observation, skill_targets
from modrl.options import Option, OptionLibrary
from modrl.planner import Plan, plan

TINY = {
    "episodes": 2,
    "view_size": 9,
    "epochs": 2,
    "batch_size": 32,
    "net": {"channels": [4], "features_dim": 8, "hidden": [8], "arg_dim": 2, "embed_dim": 2},
}
ENV = "MiniGrid-UnlockPickup-v0"
SKILLS = ("goto", "pickup", "drop", "open")


def _library(**overrides: Any) -> OptionLibrary:
    torch.manual_seed(0)
    config = load_skill_cloning_config(TINY, [f"{k}={v}" for k, v in overrides.items()])
    library = OptionLibrary()
    for skill in SKILLS:
        library.add(skill, Option(skill_option_config(config)))
    return library


def test_labels_are_the_scripted_skills_action_in_the_options_own_states() -> None:
    library = _library()
    result = planner_dagger_demos(
        library, [ENV], SKILLS, episodes=2, seed_base=5, view_size=9, marker=False, max_skill_steps=6, max_replans=1
    )
    # Untrained options, at most 6 steps per skill and one re-plan cannot unlock, open and pick up: the planner fails
    # both episodes (a success count that is not the episodes' own would show here).
    assert result.success == 0.0 and result.steps > 0 and set(result.demos) <= set(SKILLS)
    labelled = sum(d.size for d in result.demos.values())
    assert 0 < labelled <= result.steps
    # Episode 0's first call starts in the reset state with the first step of the plan: its first labelled state is
    # the option's view of that state, its label the scripted skill's next action there.
    env = gym.make(ENV)
    env.reset(seed=5)
    expert = ScriptedSkills(env.unwrapped)
    found = plan(planning_domain(), expert.observe(), goals_for_env(env, expert.observe()))
    assert isinstance(found, Plan)
    first = found.steps[0]
    call = skill_call(first)
    assert call is not None
    obs = skill_observation(env.unwrapped, 9, call[1], targets=skill_targets(first))
    demos = result.demos[call[0]]
    assert np.array_equal(demos.observations["image"][0], obs["image"])
    assert demos.observations["direction"][0] == obs["direction"]
    assert np.array_equal(demos.observations["args"][0], obs["args"])
    assert demos.actions[0] == expert.next_action(first)
    env.close()


def test_rounds_are_reproducible_and_keep_only_the_named_skills() -> None:
    library = _library()
    kwargs: dict[str, Any] = dict(episodes=2, seed_base=9, view_size=9, marker=False, max_skill_steps=5, max_replans=1)
    torch.manual_seed(123)
    expected = torch.rand(2)
    torch.manual_seed(123)
    one = planner_dagger_demos(library, [ENV], SKILLS, **kwargs)
    assert torch.equal(torch.rand(2), expected)  # the caller's RNG is left alone
    two = planner_dagger_demos(library, [ENV], SKILLS, **kwargs)
    assert one.demos.keys() == two.demos.keys() and one.success == two.success
    for skill, demos in one.demos.items():
        assert np.array_equal(demos.actions, two.demos[skill].actions)
        assert np.array_equal(demos.observations["image"], two.demos[skill].observations["image"])
    only = planner_dagger_demos(library, [ENV], ["open"], **kwargs)
    assert set(only.demos) <= {"open"}


def test_marker_libraries_are_labelled_with_the_marker_view() -> None:
    library = _library(target_marker="true")
    result = planner_dagger_demos(
        library, [ENV], SKILLS, episodes=1, seed_base=3, view_size=9, marker=True, max_skill_steps=4, max_replans=0
    )
    images = np.concatenate([d.observations["image"] for d in result.demos.values()])
    assert images.shape[-1] == 4 and (images[..., 3] == 1).any(axis=(1, 2)).all()  # every state marks its object


def test_training_reclones_every_skill_after_each_planner_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = skill_demos.behaviour_clone
    reclones: list[tuple[str, bool]] = []

    def spy(policy: Any, demos: Any, config: Any, **kwargs: Any) -> Any:
        before = [p.detach().clone() for p in policy.parameters()]
        history = real(policy, demos, config, **kwargs)
        changed = any(not torch.equal(a, b.detach()) for a, b in zip(before, policy.parameters(), strict=True))
        reclones.append((kwargs.get("tag", ""), changed))
        return history

    monkeypatch.setattr(skill_demos, "behaviour_clone", spy)
    config = load_skill_cloning_config(
        TINY,
        [
            "planner_dagger_rounds=1",
            "planner_dagger_episodes=4",
            "eval_episodes=0",
            "max_skill_steps=8",
            "dagger_epochs=1",
        ],
    )
    _, results = train_skill_library(config, tmp_path)
    planner = [(tag, changed) for tag, changed in reclones if tag.endswith("/planner_dagger")]
    added = {r.skill: r.planner_dagger_pairs for r in results}
    assert sum(added.values()) > 0
    # every skill that got labels was cloned again -- and learned (the library had frozen it: it is unfrozen first)
    assert sorted(tag.split("/")[2] for tag, _ in planner) == sorted(s for s, n in added.items() if n)
    assert all(changed for _, changed in planner)
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["round"] for r in data["planner_dagger"]] == [1] and data["planner_dagger"][0]["episodes"] == 4
    assert data["planner_dagger"][0]["pairs"] == {k: v for k, v in added.items() if v}
    assert "planner DAgger round 1: the planner with the options solved" in (tmp_path / "results.md").read_text()
    from modrl.agents.planning.library import load_library

    assert load_library(str(tmp_path / "options")).names == [r.skill for r in results]


def test_planner_dagger_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="planner_dagger_rounds"):
        load_skill_cloning_config(TINY, ["planner_dagger_rounds=-1"])
    with pytest.raises(ConfigError, match="planner_dagger_episodes"):
        load_skill_cloning_config(TINY, ["planner_dagger_episodes=0"])
