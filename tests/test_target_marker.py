"""The target marker (envs/wrappers.full_view_image(marker=...)): a fourth whole-grid channel on the object a planner
step names, so a skill option knows which of two same-coloured objects is meant -- in the view itself, the skill-step
env, recorded demonstrations and under the planner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from minigrid.core.world_object import Ball

from modrl.agents.options.skill_cloning_config import load_skill_cloning_config, skill_option_config
from modrl.agents.planning.recording import record_skill_demos
from modrl.agents.planning.skills import learned_skills, library_marks_target, with_predicates, wrap_for_library
from modrl.config import ConfigError
from modrl.envs.operators import planning_domain
from modrl.envs.predicates import env_planning_state, find_object, object_name
from modrl.envs.skill_env import SkillStepEnv, skill_call, skill_targets
from modrl.envs.wrappers import MARKED_IMAGE_HIGH, FullView, full_view_image
from modrl.options import Option, OptionLibrary

BALL, KEY, DOOR = 6, 5, 4  # minigrid OBJECT_TO_IDX


def _two_red_balls() -> tuple[gym.Env, Any]:
    env = gym.make("MiniGrid-Empty-8x8-v0")
    env.reset(seed=0)
    base = env.unwrapped
    base.agent_pos, base.agent_dir = np.array([1, 1]), 0
    base.grid.set(3, 1, Ball("red"))
    base.grid.set(5, 5, Ball("red"))
    return env, base


def _marked(image: np.ndarray) -> list[tuple[int, int]]:
    rows, cols = np.nonzero(image[..., 3])
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


def test_find_object_tells_same_coloured_objects_apart_by_name() -> None:
    env, base = _two_red_balls()
    near, far = base.grid.get(3, 1), base.grid.get(5, 5)
    assert find_object(base, "ball", "red") == (3, 1)  # a plain colour: the nearest
    assert find_object(base, "ball", object_name(far)) == (5, 5) and object_name(far) == "red@5_5"
    assert find_object(base, "ball", object_name(near)) == (3, 1)
    assert find_object(base, "key", "red") is None
    base.grid.set(5, 5, None)
    base.carrying = far
    assert find_object(base, "ball", "red@5_5") is None  # not on the grid
    assert find_object(base, "ball", "red@5_5", carried=True) == (1, 1)  # in the agent's hands
    env.close()


def test_the_marker_channel_marks_the_named_object_and_leaves_the_rest_of_the_view_alone() -> None:
    env, base = _two_red_balls()
    plain = full_view_image(base, 15)
    far = full_view_image(base, 15, marker=True, targets=[("ball", "red@5_5")])
    near = full_view_image(base, 15, marker=True, targets=[("ball", "red")])
    assert far.shape == (15, 15, 4) and np.array_equal(far[..., :3], plain)
    assert len(_marked(far)) == len(_marked(near)) == 1 and _marked(far) != _marked(near)
    assert all(far[r, c, 0] == BALL for r, c in _marked(far)) and all(near[r, c, 0] == BALL for r, c in _marked(near))
    assert not full_view_image(base, 15, marker=True)[..., 3].any()  # no target
    assert not full_view_image(base, 15, marker=True, targets=[("key", "red")])[..., 3].any()  # none there
    both = full_view_image(base, 15, marker=True, targets=[("ball", "red@5_5"), ("ball", "red")])
    assert both[..., 3][_marked(far)[0]] == 1 and both[..., 3][_marked(near)[0]] == 2  # first 1, second 2
    with pytest.raises(ConfigError, match="targets"):
        full_view_image(base, 15, marker=True, targets=[("ball", "red")] * 3)
    base.carrying = base.grid.get(3, 1)
    base.grid.set(3, 1, None)
    held = full_view_image(base, 15, marker=True, targets=[("ball", "red")])
    assert _marked(held) == [(7, 7)]  # the agent's cell, which shows what it carries
    # The marker turns with the view: the same cell, seen facing the other way, is mirrored through the centre.
    base.carrying = None
    base.grid.set(3, 1, Ball("red"))
    base.agent_dir = 2
    ((r, c),) = _marked(full_view_image(base, 15, marker=True, targets=[("ball", "red")]))
    ((r0, c0),) = _marked(near)
    assert (r, c) == (14 - r0, 14 - c0)
    env.close()


def test_the_full_view_wrapper_marks_its_target() -> None:
    env = FullView(gym.make("MiniGrid-Unlock-v0"), size=11, marker=True)
    assert env.observation_space["image"].shape == (11, 11, 4)
    assert np.array_equal(env.observation_space["image"].high[0, 0], MARKED_IMAGE_HIGH)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space and not obs["image"][..., 3].any()
    env.targets = [("door", env.unwrapped.grid.get(*find_door(env.unwrapped)).color)]
    obs, *_ = env.step(0)
    ((r, c),) = _marked(obs["image"])
    assert obs["image"][r, c, 0] == DOOR
    env.close()


def find_door(base: Any) -> tuple[int, int]:
    return next(
        (x, y)
        for x in range(base.width)
        for y in range(base.height)
        if (cell := base.grid.get(x, y)) is not None and cell.type == "door"
    )


def test_skill_step_env_marks_the_calls_object() -> None:
    env = SkillStepEnv(["MiniGrid-UnlockPickup-v0"], "open", view_size=11, max_steps=20, marker=True)
    check_env(env, skip_render_check=True)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        ((r, c),) = _marked(obs["image"])
        assert obs["image"][r, c, 0] == DOOR and info["call"].startswith("open(door,")
        assert skill_targets(env.target) == ((env.target.skill_args[0], env.target.skill_args[1]),)
    env.close()
    unmarked = SkillStepEnv(["MiniGrid-UnlockPickup-v0"], "open", view_size=11, max_steps=20)
    assert unmarked.reset(seed=0)[0]["image"].shape == (11, 11, 3)
    unmarked.close()


def test_recorded_demonstrations_mark_each_steps_object_on_every_frame() -> None:
    recording = record_skill_demos(["MiniGrid-Unlock-v0"], episodes=2, view_size=11, marker=True)
    for skill, kind in (("pickup", KEY), ("open", DOOR)):
        images = recording.demos[skill].observations["image"]
        assert images.shape[1:] == (11, 11, 4)
        assert all(len(_marked(image)) == 1 and image[_marked(image)[0]][0] == kind for image in images), skill


class _Looker(Option):
    """Turns left and keeps the images it was shown."""

    seen: list[np.ndarray]

    def act(self, image: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        self.seen.append(image[0].numpy().copy())
        return torch.tensor([0]), None


def test_the_planner_points_the_marker_at_each_steps_object() -> None:
    config = load_skill_cloning_config(
        {
            "view_size": 11,
            "target_marker": True,
            "net": {"channels": [4], "features_dim": 8, "hidden": [8], "arg_dim": 2, "embed_dim": 2},
        }
    )
    option_config = skill_option_config(config)
    assert option_config.image_shape == (11, 11, 4) and option_config.image_high == (10, 5, 2, 2)
    looker = _Looker(option_config, termination_predicate=lambda info, args: False)
    looker.seen = []
    library = OptionLibrary()
    library.add("pickup", looker)
    assert library_marks_target(library)
    plain = with_predicates(gym.make("MiniGrid-Unlock-v0"))
    with pytest.raises(ValueError, match="marker"):
        learned_skills(plain, library, fallback=None)
    with pytest.raises(ConfigError, match="marker"):
        with_predicates(gym.make("MiniGrid-Unlock-v0"), marker=True)
    env = wrap_for_library(gym.make("MiniGrid-Unlock-v0"), library)
    env.reset(seed=0)
    executor = learned_skills(env, library, fallback=None, max_skill_steps=3)
    step = next(op for op in planning_domain().ground(env_planning_state(env.unwrapped)) if op.operator == "pickup")
    call = executor.resolve(step)
    assert call is not None and call.option == "pickup" and call.args[1] == "key"
    executor.execute(step)
    assert len(looker.seen) == 3 + 1  # the first observation, then one per step taken
    assert all(len(_marked(image)) == 1 and image[_marked(image)[0]][0] == KEY for image in looker.seen)
    env.close()


def test_putnext_marks_the_moved_object_then_its_destination_and_a_skill_option_serves_it() -> None:
    from modrl.agents.planning.skills import call_resolver
    from modrl.envs.skill_env import SKILL_SLOTS
    from modrl.options import OptionCall, OptionConfig

    env = gym.make("ModRL-sequences-putnext-yellow-box-blue-key-v0")
    env.reset(seed=0)
    base = env.unwrapped
    step = next(
        op
        for op in planning_domain().ground(env_planning_state(base))
        if op.skill == "putnext" and op.skill_args == ("box", "yellow", "key", "blue")
    )
    assert skill_targets(step) == (("box", "yellow"), ("key", "blue"))
    assert skill_call(step) == ("putnext", ("yellow", "box"))
    image = full_view_image(base, 25, marker=True, targets=skill_targets(step))
    assert sorted(image[..., 3][image[..., 3] > 0].tolist()) == [1, 2]
    assert image[..., 0][image[..., 3] == 1].tolist() == [7] and image[..., 0][image[..., 3] == 2].tolist() == [KEY]
    library = OptionLibrary()
    library.add(
        "putnext",
        Option(
            OptionConfig(
                image_shape=(25, 25, 4),
                image_high=(10, 5, 2, 2),
                channels=(4,),
                features_dim=4,
                hidden=(),
                embed_dim=2,
                arg_slots=SKILL_SLOTS,
            )
        ),
    )
    assert call_resolver(library)(step) == OptionCall(option="putnext", args=("yellow", "box"))
    env.close()


def test_marker_only_skill_options_take_no_words_and_are_called_with_the_steps_words(tmp_path: Path) -> None:
    from modrl.agents.options.skill_cloning import train_skill_library
    from modrl.agents.planning.evaluation import PlannerEvalConfig, evaluate_planner
    from modrl.agents.planning.library import load_library
    from modrl.agents.planning.skills import call_resolver
    from modrl.options import OptionCall

    tiny = {
        "episodes": 2,
        "view_size": 9,
        "epochs": 2,
        "batch_size": 32,
        "eval_episodes": 1,
        "net": {"channels": [4], "features_dim": 8, "hidden": [8], "arg_dim": 2, "embed_dim": 2},
    }
    with pytest.raises(ConfigError, match="words"):
        load_skill_cloning_config(tiny, ["words=false"])
    config = load_skill_cloning_config(tiny, ["words=false", "target_marker=true", "skills=[open,pickup]"])
    assert skill_option_config(config).arg_slots == ()
    train_skill_library(config, tmp_path)
    library = load_library(str(tmp_path / "options"))
    assert not library.get("open").parameterised and library_marks_target(library)
    env = gym.make("MiniGrid-ObstructedMaze-1Dlh-v0")
    env.reset(seed=0)
    box = next(op for op in planning_domain().ground(env_planning_state(env.unwrapped)) if op.operator == "open_box")
    env.close()
    call = skill_call(box)
    assert call is not None and call_resolver(library)(box) == OptionCall(option="open", args=call[1])
    report = evaluate_planner(
        PlannerEvalConfig(
            suite="minigrid-hard", split="test", episodes=1, library=str(tmp_path / "options"), option_steps=5
        )
    )
    assert sum(t.option_calls for t in report.tasks) > 0 and sum(t.fallback_calls for t in report.tasks) == 0


def test_redrawn_targets_change_what_the_marked_cell_shows_never_where_or_the_actions() -> None:
    from modrl.agents.planning.rollouts import redraw_targets

    demos = record_skill_demos(["MiniGrid-Unlock-v0"], episodes=3, view_size=11, marker=True).demos["open"]
    assert redraw_targets(demos, 0.0, np.random.default_rng(0)) is demos
    redrawn = redraw_targets(demos, 1.0, np.random.default_rng(0))
    before, after = demos.observations["image"], redrawn.observations["image"]
    assert np.array_equal(before[..., 3], after[..., 3]) and np.array_equal(demos.actions, redrawn.actions)
    assert np.array_equal(before[before[..., 3] == 0], after[after[..., 3] == 0])  # only the marked cells change
    start, shown = 0, []
    for length in demos.lengths:
        cells = after[start : start + length][after[start : start + length, ..., 3] == 1][:, :2]
        assert len(np.unique(cells, axis=0)) == 1  # one object for the whole call
        shown.append(tuple(cells[0]))
        start += length
    assert len(set(shown)) > 1 or shown[0] != (DOOR, before[before[..., 3] == 1][0, 1])
    with pytest.raises(ConfigError, match="target_noise"):
        load_skill_cloning_config({"target_noise": 0.5})
