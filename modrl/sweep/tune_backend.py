"""``backend: tune``: a sweep's trials run through Ray Tune's ``Tuner``, with ASHA or PBT deciding which go on.

Each trial is the same ``modrl train`` process the other backends start (:func:`~modrl.sweep.backends.trial_command`),
owned by one Tune class trainable (:mod:`modrl.sweep.tune_trial`, one CPU). Its ``step()`` reports the next row of
the trial's ``metrics.jsonl`` (one per rollout: ``step`` = frames so far, the schedulers' time axis,
``success_mean``, ``return_mean``), so the schedulers act on what modrl's own training callbacks measure. A trial the
scheduler stops gets SIGTERM and checkpoints (its run says ``interrupted``; the sweep records it ``stopped``). For
PBT, ``save_checkpoint`` copies the trial's newest committed modrl checkpoint and ``load_checkpoint`` puts a better
trial's copy in its place: the trial resumes from it (``modrl train --resume --allow-config-change``) with the perturbed
``algo.*`` values, which its ``meta.json`` records as a config change.

Everything lands in the sweep directory as with the other backends (``status/``, ``logs/``, ``trials/<id>/``), so
``modrl report`` reads it; Tune's own files go to ``tune/`` and are never read back (a resumed sweep runs what is left
with a fresh Tuner, so ASHA then ranks only the trials still to run). ray is imported only here and in
:mod:`~modrl.sweep.tune_trial`, when the backend is used (``pip install modrl[ray]`` brings ``ray[tune]``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import yaml

from modrl.runs import CONFIG_FILE

from .progress import SweepProgress, SweepResult, estimate_eta
from .scheduling import MAX_FRAMES, TIME_ATTR, SchedulerSpec
from .search import Domain
from .signals import SignalTrap
from .spec import TrialSpec
from .store import SweepDir, TrialRecord, TrialStatus, write_status
from .tune_trial import import_tune, mutable_keys, sweep_trial, trial_class

TUNE_DIR = "tune"


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
        parallel = slots or int(ray.cluster_resources().get("CPU", 1))  # each trial takes one CPU
        watcher = _Watcher(state, todo, on_progress, slots=parallel)
        _STOP_REQUESTS[str(state.path)] = lambda: trap.count
        ids = [trial.id for trial in todo]
        (state.path / TUNE_DIR).mkdir(exist_ok=True)
        space: dict[str, Any] = {"trial_id": tune.grid_search(ids), "trial_order": ids, "sweep_dir": str(state.path)}
        values = {trial.id: trial.group for trial in todo}
        for key in mutable_keys(state):
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
    """Driver-side book-keeping: progress lines with an ETA, and which trials ended early (recorded once Tune is
    done).

    The ETA is the local backend's (:func:`~modrl.sweep.progress.estimate_eta`): the mean wall time of the trials this
    run completed, or before one completes, each running trial's elapsed time over the fraction of its frame budget
    (``train.total_timesteps`` of its run's ``config.yaml``; ASHA's ``max_steps`` if lower) its last result reported.
    Trials a scheduler stops early end sooner than that: with ASHA or PBT the ETA is an upper bound.
    """

    def __init__(self, state: SweepDir, todo: Sequence[TrialSpec], on_progress: Any, *, slots: int = 1) -> None:
        self.state = state
        self.todo = list(todo)
        self.on_progress = on_progress
        self.slots = slots
        self.lines: dict[str, str] = {}
        self.steps: dict[str, int] = {}
        self.budgets: dict[str, int] = {}
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
        step = result.get(TIME_ATTR)
        if isinstance(step, int):
            self.steps[trial_id] = step
        budget = next((self._budget(t) for t in self.todo if t.id == trial_id), None)
        of = f"/{budget}" if budget is not None else ""
        self.lines[trial_id] = f"{trial_id}: step {step}{of} {metric}".rstrip()
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
            eta = self.eta(records, time.time())
            self.on_progress(
                SweepProgress(len(self.state.trials), done + self.skipped, running, failed, self.skipped, eta, lines)
            )

    def eta(self, records: Sequence[TrialRecord | None], now: float) -> float | None:
        """Seconds until the run ends (see the class docstring), from the status ``records`` of :attr:`todo` at
        ``now`` (epoch seconds); ``None`` while nothing says yet."""
        durations: list[float] = []
        running: list[tuple[float, float | None]] = []
        pending = 0
        for trial, record in zip(self.todo, records, strict=True):
            if trial.id in self.stopped:
                continue
            if record is None or record.status not in (TrialStatus.COMPLETED, TrialStatus.FAILED, TrialStatus.RUNNING):
                pending += 1
            elif record.status is TrialStatus.COMPLETED and record.seconds is not None:
                durations.append(record.seconds)
            elif record.status is TrialStatus.RUNNING and record.started is not None:
                elapsed = max(0.0, now - datetime.fromisoformat(record.started).timestamp())
                budget, step = self._budget(trial), self.steps.get(trial.id)
                fraction = None if budget is None or step is None else min(step / budget, 1.0)
                running.append((elapsed, fraction))
        return estimate_eta(durations, running, pending, self.slots)

    def _budget(self, trial: TrialSpec) -> int | None:
        """The frames ``trial`` trains for: its run's ``train.total_timesteps`` (ASHA's ``max_steps`` if lower);
        ``None`` before its run wrote its config."""
        if trial.id not in self.budgets:
            try:
                config = yaml.safe_load((self.state.trial_dir(trial) / CONFIG_FILE).read_text(encoding="utf-8"))
                total = int(config["train"]["total_timesteps"])
            except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
                return None
            scheduler = self.state.scheduler
            if scheduler is not None and scheduler.kind == "asha" and scheduler.max_steps:
                total = min(total, scheduler.max_steps)
            if total <= 0:
                return None
            self.budgets[trial.id] = total
        return self.budgets[trial.id]

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
