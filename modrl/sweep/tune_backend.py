"""``backend: tune``: a sweep's trials run through Ray Tune's ``Tuner``, with ASHA or PBT deciding which go on.

Each trial is the same ``modrl train`` process the other backends start (:func:`~modrl.sweep.backends.trial_command`),
owned by one Tune class trainable (:class:`ModrlTrial`, one CPU). Its ``step()`` reports the next row of the trial's
``metrics.jsonl`` (one per rollout: ``step`` = frames so far, the schedulers' time axis, ``success_mean``,
``return_mean``), so the schedulers act on what modrl's own training callbacks measure. A trial the scheduler stops
gets SIGTERM and checkpoints (its run says ``interrupted``; the sweep records it ``stopped``). For PBT,
``save_checkpoint`` copies the trial's newest committed modrl checkpoint and ``load_checkpoint`` puts a better trial's
copy in its place: the trial resumes from it (``modrl train --resume --allow-config-change``) with the perturbed
``algo.*`` values, which its ``meta.json`` records as a config change.

Everything lands in the sweep directory as with the other backends (``status/``, ``logs/``, ``trials/<id>/``), so
``modrl report`` reads it; Tune's own files go to ``tune/`` and are never read back (a resumed sweep runs what is left
with a fresh Tuner, so ASHA then ranks only the trials still to run). ray is imported only here, when the backend is
used (``pip install modrl[ray]`` brings ``ray[tune]``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from modrl._io import utc_now_iso
from modrl.runs import CONFIG_FILE

from .backends import TrialLaunch, describe_exit, env_summary, spawn_trial, trial_command
from .progress import SweepProgress, SweepResult
from .scheduling import MAX_FRAMES, TIME_ATTR, SchedulerSpec
from .search import Domain
from .signals import SignalTrap
from .spec import TrialSpec, format_override
from .store import SweepDir, TrialRecord, TrialStatus, resume_sweep_dir, write_status

log = logging.getLogger(__name__)

TUNE_DIR = "tune"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
MANIFEST = "manifest.json"
SOURCE = "source.json"
POLL_S = 0.2
STOP_GRACE_S = 60.0
TAIL_CHARS = 2000
_REPORTED = ("success_mean", "return_mean", "fps", "wall_s")


def import_tune() -> Any:
    """``ray.tune``, or ImportError saying how to install it."""
    try:
        from ray import tune
    except ImportError as exc:
        raise ImportError(f"the tune backend needs `pip install modrl[ray]`, which brings ray[tune] ({exc})") from exc
    return tune


def run_tune_sweep(
    state: SweepDir,
    todo: Sequence[TrialSpec],
    *,
    slots: int | None,
    ray_address: str | None = None,
    on_progress: Callable[[SweepProgress], None] | None = None,
) -> SweepResult:
    """Run ``todo`` (trials of ``state`` not yet done) with a Tuner and the sweep's scheduler; see the module doc.

    SIGINT/SIGTERM (trapped once Ray is up, in place of Ray's and Tune's own handlers, so both act as with the other
    backends) stop every trial (SIGTERM: it checkpoints) and end the run; its trials are recorded ``interrupted`` and
    the result carries the signal.
    """
    # modrl writes its own logs, metrics and TensorBoard: no Tune result files, tables or end-of-run analysis.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    tune = import_tune()
    import ray

    owns_ray = not ray.is_initialized()
    if owns_ray:
        options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False)
        if not ray_address:
            options["num_cpus"] = slots or os.cpu_count() or 1
        ray.init(address=ray_address or None, **options)
    trap = SignalTrap()
    try:
        trap.__enter__()
        watcher = _Watcher(state, todo, on_progress)
        _STOP_REQUESTS[str(state.path)] = lambda: trap.count
        ids = [trial.id for trial in todo]
        (state.path / TUNE_DIR).mkdir(exist_ok=True)
        space: dict[str, Any] = {"trial_id": tune.grid_search(ids), "trial_order": ids, "sweep_dir": str(state.path)}
        values = {trial.id: trial.group for trial in todo}
        for key in _mutable(state):
            space[key] = tune.sample_from(lambda spec, key=key: values[spec.config["trial_id"]][key])
        tuner = tune.Tuner(
            tune.with_resources(trial_class(), {"cpu": 1}),
            param_space=space,
            tune_config=tune.TuneConfig(
                scheduler=_scheduler(tune, state.scheduler, state.search),
                max_concurrent_trials=slots,
                reuse_actors=False,
            ),
            run_config=tune.RunConfig(
                name=TUNE_DIR,
                storage_path=str(state.path),
                verbose=0,
                callbacks=[watcher.callback(tune)],
                stop=_stopper(tune, str(state.path)),
            ),
        )
        tuner.fit()
    finally:
        trap.__exit__()
        _STOP_REQUESTS.pop(str(state.path), None)
        if owns_ray:
            ray.shutdown()
    return replace(watcher.finish(), signal=trap.signal)


#: Sweep directory -> its stop request; looked up by name, as Tune saves (pickles) its stopper with the run's state.
_STOP_REQUESTS: dict[str, Callable[[], int]] = {}


def _stopper(tune: Any, key: str) -> Any:
    """A Tune ``Stopper`` ending the whole run once ``_STOP_REQUESTS[key]()`` is non-zero."""

    from ray.tune.stopper import Stopper

    class _OnRequest(Stopper):
        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            request = _STOP_REQUESTS.get(key)
            return bool(request and request())

    return _OnRequest()


def sweep_trial(tune_trial_id: str, config: dict[str, Any]) -> str:
    """The sweep's trial id of a Tune trial.

    Not ``config["trial_id"]``: PBT copies a better trial's whole config into a worse one, that key included. Tune's
    ``BasicVariantGenerator`` numbers its trials in grid order (``<prefix>_00003``: the fourth value of the
    ``trial_id`` grid, ``config["trial_order"][3]``), which no exploit changes.
    """
    return str(config["trial_order"][int(tune_trial_id.rsplit("_", 1)[-1])])


def _mutable(state: SweepDir) -> list[str]:
    """The keys PBT perturbs (the sampled search keys); none for other schedulers."""
    if state.scheduler is None or state.scheduler.kind != "pbt":
        return []
    return [key for key, domain in state.search.items() if domain.sampled]


def _scheduler(tune: Any, spec: SchedulerSpec | None, search: dict[str, Domain] | Any) -> Any:
    """Tune's ASHA or PBT for ``spec`` (``None``: Tune's FIFO, every trial runs its budget)."""
    if spec is None:
        return None
    from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining

    if spec.kind == "asha":
        return ASHAScheduler(
            time_attr=TIME_ATTR,
            metric=spec.metric,
            mode=spec.mode,
            grace_period=spec.grace_steps,
            reduction_factor=spec.reduction_factor,
            max_t=spec.max_steps or MAX_FRAMES,
        )
    spaces = {"choice": tune.choice, "uniform": tune.uniform, "loguniform": tune.loguniform}
    mutations = {
        key: (spaces[d.kind](list(d.values)) if d.kind == "choice" else spaces[d.kind](*d.values))
        for key, d in search.items()
        if d.sampled
    }
    return PopulationBasedTraining(
        time_attr=TIME_ATTR,
        metric=spec.metric,
        mode=spec.mode,
        perturbation_interval=spec.interval_steps,
        hyperparam_mutations=mutations,
    )


class _Watcher:
    """Driver-side book-keeping: progress lines, and which trials ended early (recorded once Tune is done)."""

    def __init__(self, state: SweepDir, todo: Sequence[TrialSpec], on_progress: Any) -> None:
        self.state = state
        self.todo = list(todo)
        self.on_progress = on_progress
        self.lines: dict[str, str] = {}
        self.stopped: dict[str, int] = {}
        self.skipped = len(state.trials) - len(todo)

    def callback(self, tune: Any) -> Any:
        watcher = self

        class _Callback(tune.Callback):
            def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
                watcher.result(sweep_trial(trial.trial_id, trial.config), result)

            def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                last = trial.last_result or {}
                if not last.get("done_training"):
                    watcher.stopped[sweep_trial(trial.trial_id, trial.config)] = int(last.get(TIME_ATTR, 0))

        return _Callback()

    def result(self, trial_id: str, result: dict[str, Any]) -> None:
        metric = " ".join(f"{k} {result[k]:.3f}" for k in ("success_mean", "return_mean") if k in result)
        self.lines[trial_id] = f"{trial_id}: step {result.get(TIME_ATTR)} {metric}".rstrip()
        if self.on_progress is not None:
            records = [self.state.status(t.id) for t in self.todo]
            done = sum(r is not None and r.status is TrialStatus.COMPLETED for r in records)
            running = sum(r is not None and r.status is TrialStatus.RUNNING for r in records)
            failed = sum(r is not None and r.status is TrialStatus.FAILED for r in records)
            lines = tuple(
                self.lines[t.id]
                for t, r in zip(self.todo, records, strict=True)
                if t.id in self.lines and r and r.status is TrialStatus.RUNNING
            )
            self.on_progress(
                SweepProgress(len(self.state.trials), done + self.skipped, running, failed, self.skipped, None, lines)
            )

    def finish(self) -> SweepResult:
        """Record the trials the scheduler ended as ``stopped`` and any still marked running as interrupted."""
        kind = self.state.scheduler.kind if self.state.scheduler else "the scheduler"
        completed, failed, interrupted, stopped, not_started = 0, [], [], [], []
        for trial in self.todo:
            record = self.state.status(trial.id)
            if record is None:
                not_started.append(trial.id)
            elif record.status is TrialStatus.COMPLETED:
                completed += 1
            elif record.status is TrialStatus.FAILED:
                failed.append(trial.id)
            elif trial.id in self.stopped:
                reason = f"stopped early by {kind} at step {self.stopped[trial.id]}"
                write_status(self.state.path, replace(record, status=TrialStatus.STOPPED, error=reason, pid=None))
                stopped.append(trial.id)
            else:
                if record.status is TrialStatus.RUNNING:
                    error = "the Tune run ended while this trial was running; it resumes from its last checkpoint"
                    write_status(
                        self.state.path, replace(record, status=TrialStatus.INTERRUPTED, error=error, pid=None)
                    )
                interrupted.append(trial.id)
        return SweepResult(
            sweep_dir=self.state.path,
            total=len(self.state.trials),
            completed=completed + self.skipped,
            skipped=self.skipped,
            failed=tuple(failed),
            interrupted=tuple(interrupted),
            not_started=tuple(not_started),
            signal=None,
            stopped=tuple(stopped),
        )


@functools.cache
def trial_class() -> type:
    """:class:`ModrlTrial`'s Tune form: the trainable class, built on first use so this module imports no ray."""
    tune = import_tune()
    return type("ModrlTrial", (_TrialLogic, tune.Trainable), {"__module__": __name__})


class _TrialLogic:
    """One trial's ``modrl train`` process behind Tune's class-trainable hooks (mixed into ``tune.Trainable``).

    ``setup`` starts nothing (a PBT restore comes after it); the first ``step`` starts or resumes the process.
    """

    config: dict[str, Any]

    def setup(self, config: dict[str, Any]) -> None:
        self.sweep = resume_sweep_dir(Path(config["sweep_dir"]))
        trial_id = sweep_trial(self.trial_id, config)  # type: ignore[attr-defined]
        self.trial = next(t for t in self.sweep.trials if t.id == trial_id)
        self.run_dir = self.sweep.trial_dir(self.trial)
        self.process: subprocess.Popen[bytes] | None = None
        self.record: TrialRecord | None = None
        self.rows: deque[dict[str, Any]] = deque()
        self.offset = 0
        self.reported = -1
        self.started = 0.0
        self.latest: dict[str, Any] = {}
        self.metric = None if self.sweep.scheduler is None else self.sweep.scheduler.metric

    def step(self) -> dict[str, Any]:
        if self.process is None:
            self._launch()
        assert self.process is not None
        while True:
            self._read_rows()
            if self.rows:
                row = self.rows.popleft()
                self.reported = int(row["step"])
                self.latest.update({k: row[k] for k in _REPORTED if row.get(k) is not None})
                # Tune refuses a result without the scheduler's metric: rows before the first episode ends wait.
                if self.metric is None or self.metric in self.latest:
                    return {TIME_ATTR: self.reported, **self.latest}
                continue
            code = self.process.poll()
            if code is not None:
                self._read_rows()
                if self.rows:
                    continue
                return self._ended(code)
            time.sleep(POLL_S)

    def save_checkpoint(self, checkpoint_dir: str) -> str:
        """A copy of the newest committed modrl checkpoint (none yet: none) and ``source.json`` naming this trial."""
        (Path(checkpoint_dir) / SOURCE).write_text(json.dumps({"trial_id": self.trial.id}), encoding="utf-8")
        for source in sorted((self.run_dir / CHECKPOINTS_DIR).glob("step-*"), reverse=True):
            if not (source / MANIFEST).is_file():
                continue
            try:
                shutil.copytree(source, Path(checkpoint_dir) / source.name)
                break
            except OSError as exc:  # rotated away while copying: take the one before
                log.warning("trial %s: checkpoint %s not copied (%s)", self.trial.id, source, exc)
                shutil.rmtree(Path(checkpoint_dir) / source.name, ignore_errors=True)
        return checkpoint_dir

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        """Make another trial's checkpoint (PBT's exploit) this trial's only one; the next step resumes from it.

        A checkpoint of this trial itself (Tune resuming a paused trial) changes nothing: its run directory holds
        the newest state, checkpointed when it was stopped.
        """
        copies = sorted(Path(checkpoint_dir).glob("step-*"))
        try:
            source = json.loads((Path(checkpoint_dir) / SOURCE).read_text(encoding="utf-8"))["trial_id"]
        except (OSError, ValueError, KeyError, TypeError):
            source = None
        if source == self.trial.id:
            return
        if not copies or not (self.run_dir / CONFIG_FILE).is_file():
            log.warning(
                "trial %s: nothing to restore from %s; it goes on from its own state", self.trial.id, checkpoint_dir
            )
            return
        checkpoints = self.run_dir / CHECKPOINTS_DIR
        shutil.rmtree(checkpoints, ignore_errors=True)
        checkpoints.mkdir()
        shutil.copytree(copies[-1], checkpoints / copies[-1].name)
        log.info("trial %s: continues from %s of %s", self.trial.id, copies[-1].name, source)

    def cleanup(self) -> None:
        """Stop a still-running process (SIGTERM: it checkpoints; killed after a grace). Its status stays
        ``running``: the trial may be resumed (PBT pauses trials), and the driver records how it ended."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _launch(self) -> None:
        overrides = list(self.trial.overrides)
        for key in _mutable(self.sweep):  # PBT's current values of the keys it perturbs
            overrides = [o for o in overrides if o.split("=", 1)[0] != key] + [format_override(key, self.config[key])]
        resume = (self.run_dir / CONFIG_FILE).is_file()
        command = trial_command(base=self.sweep.base_config, overrides=overrides, run_dir=self.run_dir, resume=resume)
        if resume and _mutable(self.sweep):
            sets = [part for override in overrides for part in ("--set", override)]
            command = (*command[:4], str(self.sweep.base_config), *sets, *command[4:], "--allow-config-change")
        log_path = self.sweep.log_path(self.trial)
        previous = self.sweep.status(self.trial.id)
        if previous is not None and previous.pid is not None:
            _wait_gone(previous.pid, STOP_GRACE_S)  # a stopped actor's process may still be checkpointing
        # Rows up to the checkpoint it resumes from were reported before (or belong to the trial it cloned).
        self.reported = _latest_step(self.run_dir / CHECKPOINTS_DIR) if resume else -1
        attempts = (previous.attempts if previous else 0) + 1
        header = f"=== {utc_now_iso()} attempt {attempts} (tune, {'resume' if resume else 'fresh'}): {env_summary()} "
        self.offset, self.rows = 0, deque()
        self.started = time.monotonic()
        self.process = spawn_trial(TrialLaunch(self.trial.id, command, log_path, header + shlex.join(command)))
        self.record = TrialRecord(
            self.trial.id, TrialStatus.RUNNING, None, None, attempts, utc_now_iso(), None, None, self.process.pid
        )
        write_status(self.sweep.path, self.record)

    def _read_rows(self) -> None:
        """Queue the complete rows of ``metrics.jsonl`` written since the last read (a resume may truncate it)."""
        path = self.run_dir / METRICS_FILE
        try:
            with open(path, "rb") as fh:
                if fh.seek(0, 2) < self.offset:
                    self.offset = 0
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not (isinstance(row, dict) and isinstance(row.get("step"), int)):
                continue
            if row["step"] > self.reported:
                self.rows.append(row)
            else:  # reported before: only the latest values are kept (a final result needs the metric)
                self.latest.update({k: row[k] for k in _REPORTED if row.get(k) is not None})

    def _ended(self, code: int) -> dict[str, Any]:
        if code == 0:
            self._write(TrialStatus.COMPLETED, code, None)
            return {TIME_ATTR: max(self.reported, 0), **self.latest, "done_training": True, "done": True}
        tail = _tail(self.sweep.log_path(self.trial))
        self._write(TrialStatus.FAILED, code, f"{describe_exit(code)}; output ends with:\n{tail}")
        raise RuntimeError(f"trial {self.trial.id}: modrl train ended with {describe_exit(code)}")

    def _write(self, status: TrialStatus, code: int | None, error: str | None) -> None:
        assert self.record is not None
        seconds = round(time.monotonic() - self.started, 2)
        self.record = replace(
            self.record, status=status, returncode=code, error=error, finished=utc_now_iso(), seconds=seconds, pid=None
        )
        write_status(self.sweep.path, self.record)


def _latest_step(checkpoints: Path) -> int:
    """The step of the newest committed checkpoint in ``checkpoints`` (-1: none)."""
    steps = [int(p.name.split("-")[-1]) for p in checkpoints.glob("step-*") if (p / MANIFEST).is_file()]
    return max(steps, default=-1)


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait until process ``pid`` has exited (on this machine), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # someone else's process now holds the number
            return
        time.sleep(POLL_S)


def _tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return text[-TAIL_CHARS:].rstrip()
