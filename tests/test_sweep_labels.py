"""Trial ids and group labels of grids whose values are whole config sections (modrl.sweep.labels)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modrl.sweep import SweepError, expand, load_sweep_spec, open_sweep_dir
from modrl.sweep.labels import distinguishing_items
from modrl.sweep.store import resume_sweep_dir
from tests.test_sweep_tune import write_sweep

ROUTERS = [
    {"kind": "modular", "router": {"kind": "soft", "condition": "obs"}, "router_input": "words", "latent_dim": 64},
    {"kind": "modular", "router": {"kind": "soft", "condition": "task"}, "router_input": "features", "latent_dim": 64},
]


def test_sections_are_cut_to_their_differing_leaves() -> None:
    groups = [{"agent": ROUTERS[0], "algo.n_epochs": 3}, {"agent": ROUTERS[1], "algo.n_epochs": 3}]
    assert distinguishing_items(groups) == [
        {"agent.router.condition": "obs", "agent.router_input": "words", "algo.n_epochs": 3},
        {"agent.router.condition": "task", "agent.router_input": "features", "algo.n_epochs": 3},
    ]


def test_a_leaf_one_section_lacks_counts_as_different_and_identical_sections_say_nothing() -> None:
    lacking = {key: value for key, value in ROUTERS[0].items() if key != "latent_dim"}
    assert distinguishing_items([{"agent": ROUTERS[0]}, {"agent": lacking}]) == [{"agent.latent_dim": 64}, {}]
    assert distinguishing_items([{"agent": ROUTERS[0]}, {"agent": ROUTERS[0]}]) == [{}, {}]
    assert distinguishing_items([{"agent.kind": "modular"}]) == [{"agent.kind": "modular"}]  # scalars as written
    assert distinguishing_items([{"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}}]) == [{"a.b": [1, 2]}, {"a.b": [1, 3]}]


def test_trial_ids_of_a_section_grid_name_the_router_not_a_hash(tmp_path: Path) -> None:
    spec = load_sweep_spec(write_sweep(tmp_path, grid={"agent": ROUTERS}, seeds=[0]))
    trials = expand(spec)
    assert [t.id for t in trials] == [
        "t000-agent.router.condition=obs-agent.router_input=words-seed=0",
        "t001-agent.router.condition=task-agent.router_input=features-seed=0",
    ]
    assert trials[0].group == {"agent": ROUTERS[0]}  # the trial still runs the whole section
    assert trials[0].overrides[0].startswith("agent={")


def test_a_sweep_directory_made_under_the_old_ids_is_continued_under_them(tmp_path: Path) -> None:
    """Re-running ``modrl sweep SPEC --sweep-dir DIR`` on a directory whose ids spelled out the whole section."""
    spec = load_sweep_spec(write_sweep(tmp_path, grid={"agent": ROUTERS}, seeds=[0]))
    sweep_dir, reused = open_sweep_dir(spec, root=tmp_path / "runs", explicit=tmp_path / "sw")
    entries = json.loads((sweep_dir / "trials.json").read_text())
    for n, entry in enumerate(entries):
        entry["id"] = f"t00{n}-agent=_aggregation_weighted_sum-0b6f89587{n}"
        entry["run_dir"] = f"trials/{entry['id']}"
    (sweep_dir / "trials.json").write_text(json.dumps(entries))
    again, reused = open_sweep_dir(spec, root=tmp_path / "runs", explicit=tmp_path / "sw")
    assert reused and again == sweep_dir
    assert [t.id for t in resume_sweep_dir(again).trials] == [e["id"] for e in entries]
    entries[0]["seed"] = 7  # a real difference is still refused
    (sweep_dir / "trials.json").write_text(json.dumps(entries))
    with pytest.raises(SweepError, match="other trials"):
        open_sweep_dir(spec, root=tmp_path / "runs", explicit=tmp_path / "sw")
