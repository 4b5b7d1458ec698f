"""The resource budget counts the image the suite actually observes (agents/common/budget.py): a task's
``agent_view_size`` (in its kwargs or its registered id's) and an option's whole-grid ``view_size`` change the
estimate, which tracks the networks modrl builds, and a view too large to train is refused before anything exists,
the estimate in the error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from modrl.agents.common.budget import estimate_agent, estimate_option, suite_view_size, task_view_size
from modrl.agents.common.config import load_experiment_config
from modrl.cli.main import main
from modrl.config import ConfigError
from modrl.envs.suites import TaskSpec, ids_suite
from tests.conftest import TINY

VIEW_IDS = {side: f"ModRLBudgetTest-Empty-View{side}-v0" for side in (3, 25, 2001)}
for _side, _id in VIEW_IDS.items():
    if _id not in gym.registry:
        gym.register(_id, entry_point="minigrid.envs:EmptyEnv", kwargs={"size": 5, "agent_view_size": _side})


def _tiny(*overrides: str, ids: tuple[str, ...] = ()) -> Any:
    """The tiny test config; with ``ids`` on a suite of those ids, one env."""
    data = {**TINY, "env": {"ids": list(ids), "n_envs": 1}} if ids else TINY
    return load_experiment_config(data, list(overrides))


def _built_parameters(config: Any) -> int:
    from modrl.agents.common.builders import build_policy

    policy, _, _ = build_policy(config)
    return sum(p.numel() for p in policy.parameters())


def test_the_view_comes_from_the_task_kwargs_or_the_registered_id() -> None:
    assert task_view_size(TaskSpec(name="a", env_id="MiniGrid-Empty-5x5-v0")) == 7
    assert task_view_size(TaskSpec(name="a", env_id="MiniGrid-Empty-5x5-v0", kwargs={"agent_view_size": 11})) == 11
    assert task_view_size(TaskSpec(name="a", env_id=VIEW_IDS[25])) == 25
    assert task_view_size(TaskSpec(name="a", env_id=VIEW_IDS[25], kwargs={"agent_view_size": 9})) == 9
    assert task_view_size(TaskSpec(name="a", env_id="No-Such-Env-v0")) == 7  # named when the env is made
    assert suite_view_size(ids_suite(["MiniGrid-Empty-5x5-v0", VIEW_IDS[25]])) == 25


@pytest.mark.parametrize("side", [7, 25])
def test_the_estimate_tracks_the_built_policy_on_the_suites_view(side: int) -> None:
    config = _tiny(ids=("MiniGrid-Empty-5x5-v0",) if side == 7 else (VIEW_IDS[side],))
    estimate = estimate_agent(config, num_tasks=1, view_size=side)
    assert estimate.parameters == pytest.approx(_built_parameters(config), rel=0.1)
    # The rollout buffer: n_steps x n_envs observations of side x side x 3 (+ direction, task) float32 values.
    assert estimate.storage == config.algo.n_steps * 1 * (3 * side * side + 2) * 4


def test_a_large_view_raises_the_estimate_and_is_refused_where_the_small_one_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modrl import budget

    small = estimate_agent(_tiny(), num_tasks=2)
    large = estimate_agent(_tiny(), num_tasks=2, view_size=25)
    assert large.parameters > 10 * small.parameters and large.train_bytes > 10 * small.train_bytes
    # Memory between the two estimates: the 7x7 suite trains, the same agent on a 25x25 suite is refused.
    monkeypatch.setattr(budget, "available_memory_bytes", lambda: (small.train_bytes + large.train_bytes) // 2)
    _tiny(ids=("MiniGrid-Empty-5x5-v0",))
    with pytest.raises(
        ConfigError, match=r"agent \(on the suite's 25x25 view\): about [\d,]+ parameters, .* available"
    ):
        _tiny(ids=(VIEW_IDS[25],))


def test_a_huge_view_is_refused_by_modrl_train_with_the_estimate_and_no_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    config = tmp_path / "huge.yaml"
    config.write_text(yaml.safe_dump({**TINY, "env": {"ids": [VIEW_IDS[2001]], "n_envs": 1}}))
    code = main(["train", str(config), "--runs-root", str(tmp_path / "runs")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("modrl: error: agent (on the suite's 2001x2001 view): about ")
    assert "parameters" in lines[0] and "limit is 100,000,000" in lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_more_convolutions_than_the_view_has_cells_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"agent\.extractor\.channels: 3 convolutions .* observes 3x3"):
        _tiny("agent.extractor.channels=[4, 4, 4]", ids=(VIEW_IDS[3],))
    _tiny("agent.extractor.channels=[4, 4]", ids=(VIEW_IDS[3],))  # 3 -> 2 -> 1 cells


@pytest.mark.parametrize("side", [7, 25, 101])
def test_the_option_estimate_tracks_the_built_option(side: int) -> None:
    from modrl.agents.options.skill_cloning_config import load_skill_cloning_config, skill_option_config
    from modrl.options import Option

    option = skill_option_config(load_skill_cloning_config({"view_size": side}))
    built = sum(p.numel() for p in Option(option).parameters())
    assert estimate_option(option, batch=64).parameters == pytest.approx(built, rel=0.01)


def test_a_wide_whole_grid_view_of_options_and_skills_is_refused_with_the_estimate() -> None:
    """The same network fits on a 25x25 whole-grid view and not on a 101x101 one (the largest view_size): the layer
    after the convolutions grows with the view's area."""
    from modrl.agents.options.config import load_options_config
    from modrl.agents.options.skill_cloning_config import load_skill_cloning_config

    load_options_config({"env": {"view_size": 25}, "net": {"features_dim": 512}})
    load_skill_cloning_config({"view_size": 25, "net": {"features_dim": 512}})
    with pytest.raises(ConfigError, match=r"net \(on the 101x101 view of env\.view_size\): about [\d,]+ param"):
        load_options_config({"env": {"view_size": 101}, "net": {"features_dim": 512}})
    with pytest.raises(ConfigError, match=r"net \(on the 101x101 view of view_size\): about [\d,]+ param"):
        load_skill_cloning_config({"view_size": 101, "net": {"features_dim": 512}})
    with pytest.raises(ConfigError, match=r"view_size: must be .* \[7, 101\]"):
        load_skill_cloning_config({"view_size": 103})
