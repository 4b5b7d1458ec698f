"""The options trainers' typed results write exactly the ``results.json`` the dicts they replaced wrote: same keys,
same values (each expected dict below is built the way the old trainer code built it)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from modrl._io import atomic_write_json
from modrl.options import StageResult


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)  # what atomic_write_json writes


def test_option_critic_results_to_dict_is_the_old_results_json(tmp_path: Any) -> None:
    from modrl.agents.options.hier_results import OptionCriticResults, OptionCriticTaskEval, UpdateRecord

    record = UpdateRecord(
        frames=128,
        mean_duration=3.5,
        termination_prob=0.25,
        success=0.5,
        policy_loss=0.1,
        option_loss=0.2,
        value_loss=0.3,
        termination_loss=0.4,
    )
    stoch = {"empty5": {"success": 0.5, "mean_duration": 4.0}, "emptyrand5": {"success": 0.0, "mean_duration": 12.0}}
    det = {"empty5": {"success": 1.0, "mean_duration": 8.0}, "emptyrand5": {"success": 0.0, "mean_duration": 2.0}}
    old: dict[str, Any] = {"frames": record.frames, "final": asdict(record)}
    old |= {"stoch": stoch, "det": det}
    typed = {
        mode: {task: OptionCriticTaskEval(**row) for task, row in rows.items()}
        for mode, rows in (("stoch", stoch), ("det", det))
    }
    results = OptionCriticResults(frames=128, final=record, **typed)
    assert results.to_dict() == old
    atomic_write_json(tmp_path / "results.json", results.to_dict())
    assert (tmp_path / "results.json").read_text() == _json(old) + "\n"
    empty = OptionCriticResults(frames=0, final=None, stoch={}, det={})
    assert empty.to_dict() == {"frames": 0, "final": None, "stoch": {}, "det": {}}


def test_sketch_results_to_dict_is_the_old_results_json() -> None:
    from modrl.agents.options.hier_results import SketchResults, SketchTaskEval, SketchUpdateRecord

    final = {
        "frames": 256,
        "policy_loss": 0.1,
        "value_loss": 0.2,
        "entropy": 1.9,
        "success": 0.25,
        "stop_prob": 0.125,
        "stop_after_event": 0.5,
    }  # the old record: {"frames", **losses} | {success, ...}
    stages = [
        StageResult(name="length-1", steps=64, episodes=10, success=0.5, passed=False),
        StageResult(name="length-2", steps=64, episodes=3, success=None, passed=True),
    ]
    stoch = {"goto-green-ball": {"split": "train", "success": 0.5}, "open-red-door": {"split": "test", "success": 0.0}}
    det = {"goto-green-ball": {"split": "train", "success": 1.0}, "open-red-door": {"split": "test", "success": 0.5}}
    old: dict[str, Any] = {
        "frames": final["frames"],
        "modules": ["goto-green-ball", "open-red-door"],
        "curriculum": [asdict(r) for r in stages],
        "final": final,
    }
    old |= {"stoch": stoch, "det": det}
    results = SketchResults(
        frames=256,
        modules=("goto-green-ball", "open-red-door"),
        curriculum=tuple(stages),
        final=SketchUpdateRecord(**final),  # type: ignore[arg-type]
        stoch={task: SketchTaskEval(**row) for task, row in stoch.items()},
        det={task: SketchTaskEval(**row) for task, row in det.items()},
    )
    assert results.to_dict() == old
    assert _json(results.to_dict()) == _json(old)


def test_planner_dagger_round_is_the_old_summary_and_line() -> None:
    from modrl.agents.options.skill_results import PlannerDaggerRound, format_skill_results
    from modrl.agents.planning.recording import SkillRecording

    old = {"round": 1, "train_success": 0.75, "episodes": 4, "pairs": {"open": 3, "pickup": 12}}
    round_ = PlannerDaggerRound(round=1, train_success=0.75, episodes=4, pairs={"open": 3, "pickup": 12})
    assert asdict(round_) == old
    recording = SkillRecording(episodes=4, solved=4, frames=40, demos={}, calls={})
    lines = format_skill_results(
        recording, [], [round_, PlannerDaggerRound(round=2, train_success=1.0, episodes=4, pairs={})]
    ).splitlines()
    assert lines[1:3] == [
        "planner DAgger round 1: the planner with the options solved 0.75 of 4 train episodes; "
        "labelled states added: open 3, pickup 12",
        "planner DAgger round 2: the planner with the options solved 1.00 of 4 train episodes; "
        "labelled states added: none",
    ]


def test_option_result_per_task_is_the_old_results_json() -> None:
    from modrl.agents.options.train_results import OptionResult, OptionTaskEval

    stage = StageResult(name="goto", steps=1000, episodes=40, success=0.9, passed=True)
    per_task = {
        "goto-green-ball": {"split": "train", "stoch": 0.75, "det": 1.0},
        "goto-red-key": {"split": "test", "stoch": 0.5, "det": 0.25},
    }
    result = OptionResult(
        name="goto",
        stage=stage,
        train_success=0.75,
        train_success_det=1.0,
        test_success=0.5,
        test_success_det=0.25,
        per_task={task: OptionTaskEval(**row) for task, row in per_task.items()},
    )  # type: ignore[arg-type]
    assert asdict(result) == {
        "name": "goto",
        "stage": asdict(stage),
        "train_success": 0.75,
        "train_success_det": 1.0,
        "test_success": 0.5,
        "test_success_det": 0.25,
        "per_task": per_task,
        "demos": None,
        "seconds": 0.0,
    }
