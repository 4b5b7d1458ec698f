"""``backend: tune``: search spaces in sweep files, and trials run through Ray Tune's Tuner (ASHA, PBT).

The Tune tests share one local Ray instance (2 CPUs, no dashboard) and run tiny ``modrl train`` trials (256-640
frames, one evaluation episode per task).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from modrl.cli.main import main
from modrl.config import ConfigError
from modrl.sweep import TrialStatus, create_sweep_dir, expand, load_sweep_spec, read_status, run_sweep
from modrl.sweep.progress import format_duration
from modrl.sweep.store import TrialRecord, resume_sweep_dir, write_status
from tests.conftest import TINY

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="trials are reaped with Linux signals")


def write_sweep(tmp_path: Path, budget: int = 256, **spec: Any) -> Path:
    base = {**TINY, "train": {**TINY["train"], "total_timesteps": budget, "eval_episodes": 1}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "tune", "base": "base.yaml", "seeds": [0], **spec}))
    return path


SEARCH = {
    "algo": {"learning_rate": {"loguniform": [1.0e-4, 1.0e-2]}},
    "algo.ent_coef": {"uniform": [0.0, 0.05]},
    "agent.router.kind": {"choice": ["soft", "topk"]},
    "agent.kind": {"grid": ["modular", "monolithic"]},
}


def test_search_spaces_expand_into_reproducible_trials(tmp_path: Path) -> None:
    spec = load_sweep_spec(write_sweep(tmp_path, search=SEARCH, samples=3, seeds=[0, 1]))
    trials = expand(spec)
    assert len(trials) == 2 * 3 * 2  # grid values x samples x seeds
    for trial in trials:
        group = trial.group
        assert 1e-4 <= group["algo.learning_rate"] <= 1e-2 and 0.0 <= group["algo.ent_coef"] <= 0.05
        assert group["agent.router.kind"] in ("soft", "topk") and group["agent.kind"] in ("modular", "monolithic")
        assert f"seed={trial.seed}" in trial.overrides and f"algo.ent_coef={group['algo.ent_coef']}" in trial.overrides
    by_seed = [t.group for t in trials if t.seed == 0]
    assert by_seed == [t.group for t in trials if t.seed == 1]  # seeds repeat a point
    assert len({t["algo.learning_rate"] for t in by_seed}) == 6  # every grid point x sample draws afresh
    assert [t.to_dict() for t in expand(load_sweep_spec(tmp_path / "sweep.yaml"))] == [t.to_dict() for t in trials]
    other = expand(load_sweep_spec(tmp_path / "sweep.yaml", ["search_seed=1"]))
    assert [t.group for t in other] != [t.group for t in trials]
    # log-uniform: the draws spread over decades, not crowd at the top as a uniform draw would
    many = expand(load_sweep_spec(tmp_path / "sweep.yaml", ["samples=200", "seeds=[0]"]))
    below = sum(t.group["algo.learning_rate"] < 1e-3 for t in many)
    assert 0.35 < below / len(many) < 0.65


def test_a_sweep_without_search_keeps_its_trial_ids(tmp_path: Path) -> None:
    spec = load_sweep_spec(write_sweep(tmp_path, grid={"agent.kind": ["modular", "monolithic"]}, seeds=[0, 1]))
    assert [t.id for t in expand(spec)] == [
        "t000-agent.kind=modular-seed=0",
        "t001-agent.kind=modular-seed=1",
        "t002-agent.kind=monolithic-seed=0",
        "t003-agent.kind=monolithic-seed=1",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"search": {"algo.gamma": {"normal": [0, 1]}}}, "search.algo.gamma: unknown search space 'normal'"),
        ({"search": {"algo.gamma": {"uniform": [1, 0]}}}, "search.algo.gamma.uniform: low must be below high"),
        ({"search": {"algo.gamma": {"uniform": [0, "x"]}}}, "search.algo.gamma.uniform: expected [low, high]"),
        ({"search": {"algo.gamma": {"loguniform": [0, 1]}}}, "search.algo.gamma.loguniform: bounds must be > 0"),
        ({"search": {"algo.gamma": {"choice": []}}}, "search.algo.gamma.choice: needs at least one value"),
        ({"search": {"algo.gamma": 0.9}}, "search.algo.gamma: expected one of {grid, choice, uniform, loguniform}"),
        ({"search": {"seed": {"choice": [1, 2]}}}, "search.seed: sweep seeds with the 'seeds' key"),
        ({"samples": 2}, "samples: repeats would be identical"),
        ({"scheduler": {"kind": "asha"}}, "scheduler: asha needs backend: tune"),
        ({"backend": "tune", "scheduler": {"kind": "hyperband"}}, "scheduler.kind: 'hyperband' is not allowed"),
        ({"backend": "tune", "scheduler": {"kind": "asha", "grace": 1}}, "unknown key 'scheduler.grace'"),
        (
            {"backend": "tune", "scheduler": {"kind": "pbt"}, "search": {"agent.latent_dim": {"choice": [8, 16]}}},
            "search.agent.latent_dim: pbt changes sampled keys while a trial trains, which only algo.*",
        ),
    ],
)
def test_bad_search_spaces_and_schedulers_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], message: str
) -> None:
    path = write_sweep(tmp_path, **change)
    with pytest.raises(ConfigError, match="sweep spec"):
        load_sweep_spec(path)
    assert main(["sweep", str(path), "--runs-root", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("modrl: error: sweep spec ") and message in err, err
    assert not (tmp_path / "runs").exists()


def test_the_core_imports_ray_only_when_a_ray_backend_runs(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, search=SEARCH, samples=2, backend="tune", scheduler={"kind": "asha"})
    code = (
        "import sys\nfrom pathlib import Path\nimport modrl.cli.main, modrl.sweep\n"
        "import modrl.sweep.tune_backend, modrl.sweep.tune_trial\n"
        "from modrl.sweep import expand, load_sweep_spec\n"
        f"expand(load_sweep_spec(Path({str(path)!r})))\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _statuses(sweep_dir: Path) -> dict[str, TrialStatus]:
    trials = json.loads((sweep_dir / "trials.json").read_text())
    return {t["id"]: read_status(sweep_dir, t["id"]).status for t in trials}  # type: ignore[union-attr]


def test_a_tune_grid_fills_the_sweep_directory_that_modrl_report_reads(tmp_path: Path, local_ray: None) -> None:
    spec = load_sweep_spec(write_sweep(tmp_path, backend="tune", search={"algo.n_epochs": {"grid": [1, 2]}}))
    sweep_dir = create_sweep_dir(spec, root=tmp_path, explicit=tmp_path / "sweep")
    seen: list[Any] = []
    result = run_sweep(sweep_dir, workers=2, on_progress=seen.append)
    assert (result.completed, result.failed, result.stopped, result.ok) == (2, (), (), True)
    assert set(_statuses(sweep_dir).values()) == {TrialStatus.COMPLETED}
    assert seen and all(p.eta_s is not None and math.isfinite(p.eta_s) for p in seen)  # every result says how long
    for trial_dir in sorted((sweep_dir / "trials").iterdir()):
        meta = json.loads((trial_dir / "meta.json").read_text())
        assert meta["status"] == "completed" and meta["device"] == "cpu"
        rows = [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]
        assert rows[-1]["step"] == 256 and list((trial_dir / "eval").glob("step-000000000256-det-1ep.json"))
    assert main(["report", str(sweep_dir), "--episodes", "0"]) == 0
    report = (sweep_dir / "report" / "report.md").read_text()
    assert "| algo.n_epochs=1 | 1 |" in report and "| algo.n_epochs=2 | 1 |" in report
    again = run_sweep(sweep_dir)  # everything done: nothing runs, Ray is not even needed
    assert (again.completed, again.skipped) == (2, 2)


@pytest.mark.slow
def test_asha_stops_the_trial_that_lags_at_a_rung(tmp_path: Path, local_ray: None) -> None:
    """One trial at a time (deterministic): t000 sets every rung's bar; t001, whose 2-step episodes score less, is
    stopped at the first rung where it falls below (same seeds, same result: step 256 on this machine)."""
    path = write_sweep(
        tmp_path,
        budget=640,
        backend="tune",
        grid={"env.max_episode_steps": [20, 2]},
        scheduler={"kind": "asha", "metric": "return_mean", "grace_steps": 128, "reduction_factor": 2},
    )
    assert main(["sweep", str(path), "--sweep-dir", str(tmp_path / "sweep"), "--workers", "1"]) == 0
    sweep_dir = tmp_path / "sweep"
    first, second = "t000-env.max_episode_steps=20-seed=0", "t001-env.max_episode_steps=2-seed=0"
    assert _statuses(sweep_dir) == {first: TrialStatus.COMPLETED, second: TrialStatus.STOPPED}
    record = read_status(sweep_dir, second)
    assert record is not None and record.error is not None and record.error.startswith("stopped early by asha")
    stopped_at = int(record.error.rsplit(" ", 1)[-1])
    assert 128 <= stopped_at < 640
    # The stopped trial got SIGTERM: its run checkpointed and says so; its learning curve ends there. (How many steps
    # it ran past ASHA's decision before the signal landed depends on the machine's load: on a busy machine this
    # tiny run can reach its last rollout first, so the early part asserted is the decision, stopped_at.)
    meta = json.loads((sweep_dir / "trials" / second / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["checkpoint"].endswith(f"{meta['step']:012d}")
    rows = [json.loads(line) for line in (sweep_dir / "trials" / second / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] <= meta["step"] <= 640
    bar = [json.loads(line) for line in (sweep_dir / "trials" / first / "metrics.jsonl").read_text().splitlines()]
    at = lambda rs: next(r["return_mean"] for r in rs if r["step"] >= stopped_at)  # noqa: E731
    assert at(rows) < at(bar)  # what ASHA compared: the lagging trial's metric at that rung
    assert main(["report", str(sweep_dir), "--episodes", "0"]) == 0
    report = (sweep_dir / "report" / "report.md").read_text()
    assert f"| {second} | env.max_episode_steps=2 | 0 | stopped |" in report
    assert run_sweep(sweep_dir).stopped == ()  # a resumed sweep does not run a stopped trial again


def test_the_tune_progress_line_has_an_eta_once_a_trial_has_reported(tmp_path: Path) -> None:
    """The driver's progress without Ray: a running trial that reports step 64 of its 256 frames (its run's
    ``config.yaml``) puts a finite ETA in the line, where it said ``eta ?`` before; 30 s in, that is 90 s more for it
    and 120 s for each of the 2 not started, on 1 slot."""
    from modrl.sweep.tune_backend import _Watcher

    spec = load_sweep_spec(write_sweep(tmp_path, backend="tune", grid={"algo.ent_coef": [0.0, 0.01, 0.02]}))
    sweep_dir = create_sweep_dir(spec, root=tmp_path, explicit=tmp_path / "sweep")
    state = resume_sweep_dir(sweep_dir)
    first = state.trials[0]
    seen: list[Any] = []
    watcher = _Watcher(state, state.trials, seen.append, slots=1)
    started = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=30)
    record = TrialRecord(first.id, TrialStatus.RUNNING, None, None, 1, started.isoformat(), None, None)
    write_status(sweep_dir, record)
    watcher.result(first.id, {"step": 64, "success_mean": 0.5})  # its run has not written config.yaml yet
    assert seen[-1].eta_s is None and seen[-1].line().endswith("eta ?")
    run_dir = state.trial_dir(first)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"train": {"total_timesteps": 256}}))
    watcher.result(first.id, {"step": 64, "success_mean": 0.5})
    progress = seen[-1]
    assert progress.eta_s is not None and math.isfinite(progress.eta_s)
    assert progress.line() == f"trials 0/3 done | 1 running | 0 failed | eta {format_duration(progress.eta_s)}"
    assert progress.trial_lines == (f"{first.id}: step 64/256 success_mean 0.500",)
    records = [state.status(t.id) for t in state.trials]
    assert watcher.eta(records, started.timestamp() + 30) == pytest.approx(90 + 2 * 120)
    write_status(sweep_dir, replace(record, status=TrialStatus.COMPLETED, returncode=0, seconds=100.0))
    watcher.result(state.trials[1].id, {"step": 8})  # once one completed: its wall time, 100 s per trial left
    assert seen[-1].done == 1 and seen[-1].eta_s == pytest.approx(2 * 100)


@pytest.mark.slow
def test_pbt_exploit_resumes_a_trial_from_a_better_trials_checkpoint(tmp_path: Path) -> None:
    """The PBT mechanism without Tune's timing: trial B, stopped, takes trial A's checkpoint and a perturbed
    learning rate, and resumes from A's step with the new rate recorded as a config change."""
    from modrl.sweep.tune_trial import _TrialLogic

    search = {"algo.learning_rate": {"loguniform": [1.0e-4, 1.0e-2]}}
    path = write_sweep(tmp_path, budget=384, backend="tune", search=search, samples=2, scheduler={"kind": "pbt"})
    spec = load_sweep_spec(path)
    sweep_dir = create_sweep_dir(spec, root=tmp_path, explicit=tmp_path / "sweep")
    order = [t.id for t in expand(spec)]

    def trial(index: int, rate: float) -> _TrialLogic:
        logic = type("Trial", (_TrialLogic,), {"trial_id": f"x_{index:05d}"})()
        logic.config = {"trial_order": order, "sweep_dir": str(sweep_dir), "algo.learning_rate": rate}
        logic.setup(logic.config)
        return logic

    donor = trial(0, 1e-3)
    while "done" not in (last := donor.step()):
        pass
    assert last["step"] == 384 and read_status(sweep_dir, order[0]).status is TrialStatus.COMPLETED  # type: ignore[union-attr]
    saved = tmp_path / "tune-checkpoint"
    saved.mkdir()
    donor.save_checkpoint(str(saved))
    assert [p.name for p in saved.glob("step-*")] == ["step-000000000384"]

    worse = trial(1, 2e-4)
    first = worse.step()
    assert first["step"] > 0
    worse.cleanup()  # PBT pauses it: SIGTERM, it checkpoints
    exploiting = trial(1, 1.2e-3)  # a new actor, with the donor's perturbed rate
    exploiting.load_checkpoint(str(saved))
    while "done" not in (last := exploiting.step()):
        pass
    run = sweep_dir / "trials" / order[1]
    log = (sweep_dir / "logs" / f"{order[1]}.log").read_text()
    assert f"resumed from {run / 'checkpoints' / 'step-000000000384'}" in log and "--allow-config-change" in log
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "completed"
    change = meta["config_changes"][-1]["changes"]["algo.learning_rate"]
    assert change[1] == 1.2e-3 and not math.isclose(change[0], change[1])
    own = trial(1, 1.2e-3)
    own.load_checkpoint(str(_copy_of_own(own, tmp_path)))  # resuming its own pause changes nothing
    assert (run / "checkpoints" / "step-000000000384").is_dir()


def _copy_of_own(logic: Any, tmp_path: Path) -> Path:
    out = tmp_path / "own-checkpoint"
    out.mkdir()
    logic.save_checkpoint(str(out))
    return out


@pytest.mark.slow
def test_sigterm_stops_a_tune_sweep_cleanly_and_resume_finishes_it(tmp_path: Path) -> None:
    """SIGTERM to ``modrl sweep --backend tune`` mid-trial: the trial checkpoints, is recorded interrupted, the sweep
    exits 143 leaving no trial process, and ``--resume`` continues the trial from its checkpoint to the end."""
    import os
    import signal
    import time

    path = write_sweep(tmp_path, budget=4096, backend="tune", grid={"algo.n_epochs": [1]})
    sweep_dir = tmp_path / "sweep"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "modrl.cli.main", "sweep", str(path), "--sweep-dir", str(sweep_dir)]
    sweep = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    trial = "t000-algo.n_epochs=1-seed=0"
    metrics = sweep_dir / "trials" / trial / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.stdout.read() if sweep.stdout else ""
        time.sleep(0.2)
    sweep.send_signal(signal.SIGTERM)
    output, _ = sweep.communicate(timeout=180)
    assert sweep.returncode == 128 + signal.SIGTERM, output
    record = read_status(sweep_dir, trial)
    assert record is not None and record.status is TrialStatus.INTERRUPTED, record
    meta = json.loads((sweep_dir / "trials" / trial / "meta.json").read_text())
    assert meta["status"] == "interrupted" and 0 < meta["step"] < 4096
    assert not _processes_using(sweep_dir), "a trial outlived its sweep"
    resumed = subprocess.run(
        [sys.executable, "-m", "modrl.cli.main", "sweep", "--resume", str(sweep_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert read_status(sweep_dir, trial).status is TrialStatus.COMPLETED  # type: ignore[union-attr]
    log = (sweep_dir / "logs" / f"{trial}.log").read_text()
    assert f"(step {meta['step']})" in log.split("attempt 2 (tune, resume)", 1)[1]  # resumed where it stopped


def _processes_using(directory: Path) -> list[str]:
    """Command lines of live processes that name ``directory`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(directory) in cmdline and "pytest" not in cmdline:
            found.append(cmdline)
    return found
