"""Planner evaluation (modrl.agents.planning.evaluation) and ``modrl eval --planner``: the scripted upper bound, a tiny
untrained option library through the CLI, the JSON it writes, and the one-line errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from modrl.agents.planning.evaluation import (
    PlannerEvalConfig,
    SkillSource,
    default_split,
    evaluate_planner,
    format_planner_report,
)
from modrl.cli.main import main
from modrl.config import ConfigError
from modrl.envs import get_suite
from modrl.options import Option, OptionConfig, OptionLibrary
from modrl.planner import Outcome
from modrl.seeds import EVAL_SEED_BASE

TEST_TASKS = get_suite("sequences").splits["test"]
TINY = OptionConfig(channels=(4,), features_dim=4, hidden=(), embed_dim=2)


@pytest.fixture
def options_run(tmp_path: Path) -> Path:
    """A 'modrl options train'-shaped run directory: config.yaml naming the suite, an untrained library in options/."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": "tiny", "env": {"suite": "sequences"}}))
    library = OptionLibrary()
    for name in ("goto-green-ball", "pickup-blue-key"):
        library.add(name, Option(TINY))
    library.save(run_dir / "options")
    return run_dir


def test_scripted_planner_solves_two_test_tasks(caplog: pytest.LogCaptureFixture) -> None:
    config = PlannerEvalConfig(suite="sequences", split="test", episodes=2, tasks=TEST_TASKS[:2])
    seen: list[str] = []
    with caplog.at_level(logging.INFO, logger="modrl.progress"):
        report = evaluate_planner(config, on_task=lambda result: seen.append(result.task))
    assert config.skills is SkillSource.SCRIPTED and report.skills_label == "scripted skills"
    assert [t.task for t in report.tasks] == list(TEST_TASKS[:2]) == seen
    assert report.mean_success == 1.0
    for task in report.tasks:
        assert task.episodes == 2 and task.success_rate == 1.0 and task.outcomes == {"success": 2}
        assert [r.seed for r in task.runs] == [EVAL_SEED_BASE, EVAL_SEED_BASE + 1]
        assert all(r.outcome is Outcome.SUCCESS and r.steps > 0 and r.option_calls == 0 for r in task.runs)
        assert task.mean_steps == sum(r.steps for r in task.runs) / 2
        # scripted skills: every call of the plan runs and ends as planned (goto, pickup, ... by operator)
        assert task.operators and all(planned == calls > 0 for calls, planned in task.operators.values())
        assert sum(c for c, _ in task.operators.values()) == sum(
            sum(c for c, _ in r.operators.values()) for r in task.runs
        )
    progress = [r.getMessage() for r in caplog.records if r.name == "modrl.progress"]
    assert len(progress) == 2 and progress[1].startswith(f"[planner] 2/2 {TEST_TASKS[1]}: success 1.00")
    table = format_planner_report(report)
    assert "sequences/test: mean success 1.000 over 2 task(s) x 2 episode(s)" in table
    assert all(name in table for name in TEST_TASKS[:2]) and "scripted fallback" not in table
    data = json.loads(json.dumps(report.to_dict()))
    assert data["skills"] == "scripted" and data["tasks"][0]["runs"][0]["outcome"] == "success"


def test_config_refuses_what_cannot_be_evaluated() -> None:
    with pytest.raises(ConfigError, match="fallback_scripted: needs an option library"):
        PlannerEvalConfig(fallback_scripted=True)
    with pytest.raises(ConfigError, match="deterministic: only options sample"):
        PlannerEvalConfig(deterministic=False)
    with pytest.raises(ConfigError, match="split: suite 'sequences' has no split 'dev'; its splits: train, test"):
        PlannerEvalConfig(split="dev")
    with pytest.raises(ConfigError, match="suite: unknown suite 'nope'"):
        PlannerEvalConfig(suite="nope")
    with pytest.raises(ConfigError, match="tasks: pickup-red-key: pick tasks of sequences/test"):
        PlannerEvalConfig(tasks=("pickup-red-key",))
    with pytest.raises(ConfigError, match="episodes: must be >= 1"):
        PlannerEvalConfig(episodes=0)
    with pytest.raises(ConfigError, match="ensemble: needs an option library to join"):
        PlannerEvalConfig(ensemble=("lib",))
    assert default_split("sequences") == "test" and default_split("minigrid-tiny") == "train"


def test_cli_scripted_upper_bound_prints_and_writes_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scripted.json"
    assert main(["eval", "--planner", "--scripted", "--suite", "sequences", "--episodes", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "with scripted skills" in printed and "sequences/test: mean success 1.000 over 15 task(s)" in printed
    data = json.loads(out.read_text())
    assert [t["task"] for t in data["tasks"]] == list(TEST_TASKS) and data["mean_success"] == 1.0


def test_cli_planner_with_an_untrained_library_writes_eval_json(
    options_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(options_run), "--planner", "--episodes", "1", "--option-steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert "learned options (greedy)" in printed and "skills run by learned options:" in printed
    data = json.loads((options_run / "eval" / "planner-test.json").read_text())
    assert data["skills"] == "options" and data["config"]["option_steps"] == 2
    assert [t["task"] for t in data["tasks"]] == list(TEST_TASKS)
    # Recomputed by hand from the recorded episodes (one per task): each task's rate and the mean.
    runs = [run for task in data["tasks"] for run in task["runs"]]
    assert len(runs) == len(TEST_TASKS) and all(type(run["success"]) is bool for run in runs)
    assert all(t["success_rate"] == np.mean([r["success"] for r in t["runs"]]) for t in data["tasks"])
    assert data["mean_success"] == pytest.approx(np.mean([run["success"] for run in runs]))
    assert sum(t["option_calls"] for t in data["tasks"]) > 0  # goto-green-ball / pickup-blue-key steps ran options
    assert sum(t["fallback_calls"] for t in data["tasks"]) == 0  # no fallback unless asked


def test_max_nodes_and_max_replans_bound_the_search_and_are_recorded(tmp_path: Path) -> None:
    out = tmp_path / "scripted.json"
    assert (
        main(
            [
                "eval",
                "--planner",
                "--scripted",
                "--suite",
                "sequences",
                "--episodes",
                "1",
                "--max-nodes",
                "3",
                "--max-replans",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads(out.read_text())
    assert data["config"]["max_nodes"] == 3 and data["config"]["max_replans"] == 0
    assert data["mean_success"] < 1.0  # three expansions cannot plan a two-subtask task
    assert {o for t in data["tasks"] for o in t["outcomes"]} >= {"no_plan"}
    with pytest.raises(ConfigError, match="max_nodes"):
        PlannerEvalConfig(max_nodes=0)


def test_stuck_option_calls_are_cut_counted_and_recorded(
    options_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*flags: str) -> dict[str, Any]:
        out = tmp_path / f"loops{len(flags)}.json"
        assert (
            main(
                [
                    "eval",
                    str(options_run),
                    "--planner",
                    "--episodes",
                    "2",
                    "--option-steps",
                    "40",
                    "--max-replans",
                    "2",
                    *flags,
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        return json.loads(out.read_text())

    on = run("--loop-limit", "2", "--escape-steps", "1")
    printed = capsys.readouterr().out
    assert on["config"]["loop_limit"] == 2 and on["config"]["escape_steps"] == 1
    assert "stuck" in printed and "then 1 random moves" in printed
    # an untrained greedy option in a deterministic env soon repeats an observation: every such call is cut
    loops = sum(t["loops"] for t in on["tasks"])
    assert loops > 0 and loops == sum(r["loops"] for t in on["tasks"] for r in t["runs"])
    # per operator: the untrained options' calls are counted, and the stuck ones did not end as planned
    for task in on["tasks"]:
        for name, (calls, planned) in task["operators"].items():
            assert calls == sum(r["operators"].get(name, [0, 0])[0] for r in task["runs"])
            assert planned == sum(r["operators"].get(name, [0, 0])[1] for r in task["runs"])
    totals = [tuple(v) for t in on["tasks"] for v in t["operators"].values()]
    assert sum(calls for calls, _ in totals) >= loops and any(planned < calls for calls, planned in totals)
    assert "calls ending as planned, by operator: " in printed
    off = run("--loop-limit", "0")
    assert off["config"]["loop_limit"] == 0 and sum(t["loops"] for t in off["tasks"]) == 0
    assert "no loop check" in capsys.readouterr().out
    # cut calls end sooner: the same episodes take fewer steps with the check
    assert sum(t["mean_steps"] for t in on["tasks"]) < sum(t["mean_steps"] for t in off["tasks"])
    with pytest.raises(ConfigError, match="loop_limit"):
        PlannerEvalConfig(loop_limit=1)
    with pytest.raises(ConfigError, match="escape_steps"):
        PlannerEvalConfig(escape_steps=-2)
    cycling = run("--loop-limit", "0", "--cycle-limit", "2", "--escape-steps", "2")
    assert cycling["config"]["cycle_limit"] == 2 and on["config"]["cycle_limit"] == 3  # on by default
    assert sum(t["cycles"] for t in cycling["tasks"]) == sum(r["cycles"] for t in cycling["tasks"] for r in t["runs"])
    assert off["config"]["cycle_limit"] == 3
    assert "the same moves whenever 2+ calls have ended in one planning state" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="cycle_limit"):
        PlannerEvalConfig(cycle_limit=1)


def test_cli_planner_on_a_library_directory_with_fallback_and_sampling(options_run: Path) -> None:
    code = main(
        [
            "eval",
            str(options_run / "options"),
            "--planner",
            "--episodes",
            "1",
            "--option-steps",
            "2",
            "--stochastic",
            "--fallback-scripted",
            "--split",
            "train",
        ]
    )
    assert code == 0
    data = json.loads((options_run / "eval" / "planner-train-stochastic-fallback.json").read_text())
    assert data["deterministic"] is False and data["config"]["fallback_scripted"] is True
    assert [t["task"] for t in data["tasks"]] == list(get_suite("sequences").splits["train"])
    assert sum(t["fallback_calls"] for t in data["tasks"]) > 0  # open, putnext, drop: no option serves them


def test_sampled_options_leave_the_global_torch_rng_alone(options_run: Path) -> None:
    config = PlannerEvalConfig(
        suite="sequences",
        split="test",
        episodes=2,
        library=str(options_run / "options"),
        deterministic=False,
        option_steps=4,
        tasks=TEST_TASKS[:2],
    )
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = evaluate_planner(config)
    assert torch.equal(torch.rand(3), expected)  # sampled actions drew from a seeded fork, not the caller's RNG
    assert evaluate_planner(config).tasks == first.tasks
    assert sum(t.option_calls for t in first.tasks) > 0 and first.skills_label == "learned options (stochastic)"


def test_ensemble_of_a_library_with_itself_acts_as_the_library(options_run: Path) -> None:
    """The mixture of identical options is the option: same episodes, sampled, as the library alone; the ensemble is
    recorded in the JSON and named in the table. A different second library changes the episodes."""
    base = PlannerEvalConfig(
        suite="sequences",
        split="test",
        episodes=2,
        library=str(options_run / "options"),
        deterministic=False,
        option_steps=4,
        tasks=TEST_TASKS[:3],
    )
    alone = evaluate_planner(base)
    doubled = evaluate_planner(replace(base, ensemble=(str(options_run / "options"),)))
    assert doubled.tasks == alone.tasks and sum(t.option_calls for t in alone.tasks) > 0
    assert "ensembles of 2 option libraries (stochastic)" in format_planner_report(doubled)
    other = OptionLibrary()
    for name in ("goto-green-ball", "pickup-blue-key"):
        other.add(name, Option(TINY))
        with torch.no_grad():
            other.get(name).policy[-1].bias[0] = 5.0  # mostly turns left: the mixture is not the base options
    other.save(options_run / "other")
    mixed = evaluate_planner(replace(base, ensemble=(str(options_run / "other"),)))
    assert [r.steps for t in mixed.tasks for r in t.runs] != [r.steps for t in alone.tasks for r in t.runs]


def test_cli_ensemble_writes_its_own_json(options_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "eval",
            str(options_run),
            "--planner",
            "--episodes",
            "1",
            "--option-steps",
            "2",
            "--stochastic",
            "--ensemble",
            str(options_run),
            str(options_run / "options"),
        ]
    )
    assert code == 0
    assert "ensembles of 3 option libraries (stochastic)" in capsys.readouterr().out
    data = json.loads((options_run / "eval" / "planner-test-stochastic-ensemble3.json").read_text())
    assert data["config"]["ensemble"] == [str(options_run / "options")] * 2
    assert not (options_run / "eval" / "planner-test-stochastic.json").exists()  # the single library's stays apart


def _train_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "train-run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"agent": {"kind": "modular"}, "env": {"suite": "sequences"}}))
    return run_dir


def _bare_library(tmp_path: Path) -> Path:
    library = OptionLibrary()
    library.add("goto-green-ball", Option(TINY))
    library.save(tmp_path / "lib")
    return tmp_path / "lib"


@pytest.mark.parametrize(
    ("make_args", "words"),
    [
        (lambda p: [str(p), "--planner"], "holds no option library"),
        (lambda p: [str(_train_run(p)), "--planner"], "is a 'modrl train' run and has no options"),
        (lambda p: [str(p / "missing"), "--planner"], "no such directory"),
        (lambda p: [str(_bare_library(p)), "--planner"], "give --suite NAME"),
        (lambda p: ["--planner", "--scripted", "--suite", "nope"], "unknown suite 'nope'"),
        (lambda p: ["--planner", "--scripted", "--suite", "sequences", "--split", "dev"], "has no split 'dev'"),
        (lambda p: ["--planner", "--scripted", "--suite", "sequences", "--split", "all"], "evaluates one split"),
        (lambda p: ["--planner", "--scripted"], "--scripted needs --suite NAME"),
        (lambda p: [str(p), "--planner", "--scripted", "--suite", "sequences"], "drop RUN_DIR"),
        (
            lambda p: ["--planner", "--scripted", "--suite", "sequences", "--fallback-scripted"],
            "drop --fallback-scripted",
        ),
        (lambda p: ["--planner"], "--planner needs RUN_DIR"),
        (lambda p: [str(p), "--fallback-scripted"], "--fallback-scripted needs --planner"),
        (lambda p: [str(p), "--planner", "--option-steps", "0"], "--option-steps must be >= 1"),
        (lambda p: [str(p), "--planner", "--max-nodes", "0"], "--max-nodes must be >= 1"),
        (lambda p: [str(p), "--max-nodes", "9"], "--max-nodes needs --planner"),
        (lambda p: [str(p), "--planner", "--max-replans", "-1"], "--max-replans must be >= 0"),
        (lambda p: [str(p), "--max-replans", "9"], "--max-replans needs --planner"),
        (lambda p: [str(p), "--planner", "--loop-limit", "1"], "--loop-limit must be 0 (off) or >= 2"),
        (lambda p: [str(p), "--planner", "--escape-steps", "-1"], "--escape-steps must be >= 0"),
        (lambda p: [str(p), "--loop-limit", "3"], "--loop-limit needs --planner"),
        (lambda p: ["--planner", "--scripted", "--suite", "sequences", "--escape-steps", "2"], "drop --escape-steps"),
        (lambda p: [], "give RUN_DIR"),
        (lambda p: [str(p), "--ensemble", str(p)], "--ensemble needs --planner"),
        (lambda p: [str(p), "--cycle-limit", "3"], "--cycle-limit needs --planner"),
        (lambda p: [str(p), "--planner", "--cycle-limit", "1"], "--cycle-limit must be 0 (off) or >= 2"),
        (lambda p: ["--planner", "--scripted", "--suite", "sequences", "--cycle-limit", "3"], "drop --cycle-limit"),
        (lambda p: ["--planner", "--scripted", "--suite", "sequences", "--ensemble", str(p)], "drop --ensemble"),
        (
            lambda p: [str(_bare_library(p)), "--planner", "--suite", "sequences", "--ensemble", str(p / "missing")],
            "no such directory",
        ),
    ],
)
def test_cli_errors_are_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_args: Callable[[Path], list[str]], words: str
) -> None:
    assert main(["eval", *make_args(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modrl: error: ") and err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "eval").exists()


def test_eval_help_lists_the_planner_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "RUN_DIR", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--planner",
        "--scripted",
        "--suite",
        "--split",
        "--episodes",
        "--stochastic",
        "--option-steps",
        "--fallback-scripted",
        "--out",
        "--max-replans",
        "--loop-limit",
        "--escape-steps",
    ):
        assert flag in text


@pytest.mark.parametrize(
    ("extra", "filtered"), [({}, True), ({"skill_aware": False}, False), ({"fallback_scripted": True}, False)]
)
def test_evaluation_plans_over_the_served_skills_without_fallback(
    options_run: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, bool], filtered: bool
) -> None:
    import modrl.agents.planning.episode as planner_episode  # the harness every planner episode runs in

    seen: list[object] = []
    real = planner_episode.execute

    def spy(*args: object, allowed: object = None, **kwargs: object) -> object:
        seen.append(allowed)
        return real(*args, allowed=allowed, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(planner_episode, "execute", spy)
    task = "goto-purple-door_then_putnext-yellow-box-blue-key"  # no option of the library serves either goal
    report = evaluate_planner(
        PlannerEvalConfig(
            suite="sequences",
            split="test",
            episodes=1,
            option_steps=2,
            library=str(options_run / "options"),
            max_replans=1,
            tasks=(task,),
            **extra,
        )
    )
    assert len(seen) == 1 and (seen[0] is not None) == filtered
    if filtered:
        assert getattr(seen[0], "__name__", "") == "serves"  # OptionExecutor.serves: the resolver's verdict
    run = report.tasks[0].runs[0]
    if extra.get("fallback_scripted"):
        assert run.outcome is Outcome.SUCCESS and run.fallback_calls == 2  # the scripted skills ran both steps
    else:
        assert run.outcome is Outcome.REPLAN_LIMIT and run.option_calls == 0  # unserved steps were tried and failed


def test_cli_planner_with_options_from_the_own_view_explores_with_the_scripted_skill(
    options_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(options_run), "--planner", "--episodes", "1", "--option-steps", "2", "--view", "own"]) == 0
    printed = capsys.readouterr().out
    assert "from the agent's own view with learned options (greedy) + scripted explore" in printed
    data = json.loads((options_run / "eval" / "planner-test-own-view.json").read_text())
    assert data["view"] == "own" and data["config"]["view"] == "own"
    assert data["skills_label"] == "learned options (greedy) + scripted explore"
    assert sum(t["option_calls"] for t in data["tasks"]) > 0


def test_eval_config_passes_every_run_setting_to_its_episodes() -> None:
    """``of_run`` then ``run_config`` gives back the run's settings (``weight`` aside: ``of_run`` documents that the
    evaluation runs ``run.algorithm`` at its default weight), each field changed from its default so a dropped or
    mis-mapped one shows."""
    from modrl.agents.planning.episode import PlannerRunConfig

    run = PlannerRunConfig(
        option_steps=7,
        max_nodes=123,
        max_replans=4,
        loop_limit=5,
        escape_steps=2,
        cycle_limit=6,
        deterministic=False,
        fallback=True,
        skill_aware=False,
        view="own",
        algorithm="gbfs",
    )
    # An option library, as sampled actions and the scripted fallback need one.
    evaluation = PlannerEvalConfig.of_run(run, suite="sequences", split="test", library=Path("lib"))
    assert evaluation.run_config == run
