"""Run the trials of a sweep directory: resumable, one failure never stops the others, clean on SIGINT/SIGTERM.

:func:`run_sweep` runs every trial whose status is not ``completed``. A trial whose run directory already has a
``config.yaml`` is resumed from its last checkpoint (``modrl train --resume``); otherwise it starts fresh (a
leftover directory without a config is moved aside to ``trials/<id>.stale-N``, never deleted). Each state change
is recorded atomically in ``status/<id>.json`` as it happens, so a sweep killed at any moment loses at most the
trials' work since their last checkpoint. SIGINT/SIGTERM to the sweep forward one SIGTERM to the running trials
(they checkpoint and exit), wait for them, record them ``interrupted`` and return; a second signal, or
``stop_grace_s`` without an exit, kills them.
"""

from __future__ import annotations

import itertools
import logging
import os
import shlex
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from modrl._io import utc_now_iso
from modrl.config import ConfigError, load_yaml
from modrl.runs import CONFIG_FILE, RunDirError, RunStatus, read_run_meta

from .backends import TrialBackend, TrialExit, TrialLaunch, describe_exit, env_summary, make_backend, trial_command
from .progress import SweepProgress, SweepResult, estimate_eta, last_progress
from .signals import SignalTrap
from .spec import BACKENDS, TrialSpec
from .store import (
    BASE_FILE,
    SweepDir,
    SweepError,
    TrialRecord,
    TrialStatus,
    resume_sweep_dir,
    sweep_lock,
    write_status,
)

log = logging.getLogger(__name__)

POLL_S = 0.25
PROGRESS_EVERY_S = 1.0
ERROR_TAIL_CHARS = 4000
#: How much of a running trial's log is read for its latest progress line.
RECENT_OUTPUT_BYTES = 4096
_STOP_CODES = {128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT}


def run_sweep(
    sweep_dir: Path,
    *,
    backend: str | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    on_progress: Callable[[SweepProgress], None] | None = None,
    trial_timeout: float | None = None,
    stop_grace_s: float = 120.0,
    lock_wait_s: float = 60.0,
) -> SweepResult:
    """Run (or continue) every trial of ``sweep_dir`` that has not completed.

    Args:
        sweep_dir: A directory made by :func:`~modrl.sweep.store.create_sweep_dir`.
        backend: ``"local"`` or ``"ray"``; ``None`` uses the spec's.
        workers: Trials at once; ``None`` uses the spec's, else one per CPU core (local) or the Ray cluster's CPUs.
        ray_address: Ray cluster to connect to; ``None`` starts a local Ray instance (ray backend only).
        on_progress: Called with a :class:`SweepProgress` on every change and about once a second.
        trial_timeout: Seconds an attempt may run before it is stopped (SIGTERM, then killed) and failed.
        stop_grace_s: After SIGTERM (signal or timeout), seconds to wait for a trial to exit before killing it.
        lock_wait_s: How long to wait for another process (or trials a killed sweep left) to release the directory.

    Returns:
        Counts and ids; the process that called this should exit non-zero unless ``result.ok``.

    Raises:
        SweepError: Not a sweep directory, or still in use after ``lock_wait_s``.
        ImportError: ``backend="ray"`` without ray installed.
    """
    state = resume_sweep_dir(sweep_dir)
    name = backend or state.backend
    if name not in BACKENDS:
        raise ValueError(f"unknown sweep backend {name!r}; allowed: {', '.join(BACKENDS)}")
    if state.scheduler is not None and name != "tune":
        raise SweepError(f"{state.path}: its {state.scheduler.kind} scheduler runs only with the tune backend")
    if trial_timeout is not None and trial_timeout <= 0:
        raise ValueError(f"trial_timeout must be > 0 seconds, got {trial_timeout}")
    with sweep_lock(state.path, wait_s=lock_wait_s) as lock_fd:
        _reconcile(state)
        todo = [trial for trial in state.trials if not _is_done(state.status(trial.id))]
        loop = _SweepLoop(state, todo, on_progress=on_progress, trial_timeout=trial_timeout, grace=stop_grace_s)
        if not todo:
            log.info("sweep %s: all %d trials already completed", state.path, len(state.trials))
            return loop.result(None)
        slots = workers or state.workers
        processes = processes_per_trial(state.path, todo)
        if slots is None and not (name in ("ray", "tune") and ray_address):
            slots = max(1, (os.cpu_count() or 1) // processes)  # a trial with train.workers: N takes N cores
        elif slots is not None and slots * processes > (os.cpu_count() or 1) and name == "local":
            log.warning(
                "%d trials at a time x train.workers=%d processes each is more than this machine's %d cores: "
                "they slow each other down (use --workers %d)",
                slots,
                processes,
                os.cpu_count() or 1,
                max(1, (os.cpu_count() or 1) // processes),
            )
        if name == "tune":
            from .tune_backend import run_tune_sweep

            slots = None if slots is None else min(slots, len(todo))
            return run_tune_sweep(state, todo, slots=slots, ray_address=ray_address, on_progress=on_progress)
        runner = make_backend(
            name, slots=None if slots is None else min(slots, len(todo)), ray_address=ray_address, keep_fds=[lock_fd]
        )
        trap = SignalTrap()
        finished = False
        try:
            with trap:
                loop.run(runner, trap)
            finished = True
        finally:
            if not finished:
                _shutdown(runner, stop_grace_s)
            runner.close()
        return loop.result(trap.signal)


def processes_per_trial(sweep_dir: Path, trials: Sequence[TrialSpec]) -> int:
    """The most processes a trial of ``trials`` trains on: ``train.workers`` of the sweep's base config, overridden
    by a trial's ``train.workers=N`` (1 when neither says, or the value is not a positive integer)."""

    def count(value: object) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1

    try:
        train = load_yaml(sweep_dir / BASE_FILE).get("train") or {}
        base = count(train.get("workers", 1)) if isinstance(train, Mapping) else 1
    except (ConfigError, OSError, AttributeError):
        base = 1  # the base config was validated before the sweep started; nothing here is worth failing for
    most = 1
    for trial in trials:
        value = base
        for override in trial.overrides:
            key, _, text = override.partition("=")
            if key == "train.workers":
                value = count(int(text)) if text.strip().isdigit() else 1
        most = max(most, value)
    return most


@dataclass
class _Attempt:
    trial: TrialSpec
    record: TrialRecord
    started: float
    log_offset: int
    timed_out_at: float | None = None


class _SweepLoop:
    """Book-keeping of one :func:`run_sweep` call: start trials into free slots, record how they end."""

    def __init__(
        self,
        state: SweepDir,
        todo: Sequence[TrialSpec],
        *,
        on_progress: Callable[[SweepProgress], None] | None,
        trial_timeout: float | None,
        grace: float,
    ) -> None:
        self.state = state
        self.pending = deque(todo)
        self.running: dict[str, _Attempt] = {}
        self.skipped = len(state.trials) - len(todo)
        self.completed = self.skipped
        self.failed_ids: list[str] = []
        self.interrupted_ids: list[str] = []
        self.durations: list[float] = []
        self.on_progress = on_progress
        self.trial_timeout = trial_timeout
        self.grace = grace
        self.stopping = False
        self.forced = False
        self.stop_deadline = 0.0
        self.last_progress = -1.0
        self.slots = 1

    def run(self, backend: TrialBackend, trap: SignalTrap) -> None:
        self.slots = backend.slots
        self._progress(force=True)
        while self.pending or self.running:
            self._handle_stop(backend, trap)
            while not self.stopping and self.pending and len(self.running) < backend.slots:
                self._start(backend, self.pending.popleft())
            if not self.running:
                break
            for item in backend.wait(POLL_S):
                self._finish(item)
            self._check_timeouts(backend)
            self._progress()
        self._progress(force=True)

    def result(self, stopped_by: int | None) -> SweepResult:
        return SweepResult(
            sweep_dir=self.state.path,
            total=len(self.state.trials),
            completed=self.completed,
            skipped=self.skipped,
            failed=tuple(self.failed_ids),
            interrupted=tuple(self.interrupted_ids),
            not_started=tuple(trial.id for trial in self.pending),
            signal=stopped_by,
        )

    def _start(self, backend: TrialBackend, trial: TrialSpec) -> None:
        state = self.state
        trial_dir = state.trial_dir(trial)
        resume = (trial_dir / CONFIG_FILE).is_file()
        if not resume and trial_dir.exists():
            _move_aside(trial_dir)
        previous = state.status(trial.id)
        attempts = (previous.attempts if previous else 0) + 1
        command = trial_command(base=state.base_config, overrides=trial.overrides, run_dir=trial_dir, resume=resume)
        log_path = state.log_path(trial)
        offset = log_path.stat().st_size if log_path.exists() else 0
        header = f"=== {utc_now_iso()} attempt {attempts} ({'resume' if resume else 'fresh'}): {env_summary()} "
        record = TrialRecord(trial.id, TrialStatus.RUNNING, None, None, attempts, utc_now_iso(), None, None)
        try:
            pid = backend.start(TrialLaunch(trial.id, command, log_path, header + shlex.join(command)))
        except OSError as exc:
            log.error("trial %s could not be started: %s", trial.id, exc)
            self._record(replace(record, status=TrialStatus.FAILED, error=f"cannot start: {exc}"), 0.0)
            return
        record = replace(record, pid=pid)
        write_status(state.path, record)
        self.running[trial.id] = _Attempt(trial, record, time.monotonic(), offset)
        log.info("trial %s started (attempt %d, %s)", trial.id, attempts, "resumed" if resume else "fresh")
        self.last_progress = -1.0

    def _finish(self, item: TrialExit) -> None:
        attempt = self.running.pop(item.trial_id)
        seconds = time.monotonic() - attempt.started
        code = item.returncode
        base = replace(attempt.record, returncode=code, pid=None)
        if code == 0 and not item.cancelled:
            record = replace(base, status=TrialStatus.COMPLETED)
        elif attempt.timed_out_at is not None:
            error = f"timed out after {self.trial_timeout:.0f}s ({describe_exit(code)})\n{self._tail(attempt)}"
            record = replace(base, status=TrialStatus.FAILED, error=error)
        elif self.stopping or item.cancelled or code in _STOP_CODES:
            who = "the sweep" if self.stopping else "a signal from outside the sweep"
            record = replace(base, status=TrialStatus.INTERRUPTED, error=f"stopped by {who} ({describe_exit(code)})")
        else:
            prefix = f"{item.error}\n" if item.error else ""
            error = f"{prefix}{describe_exit(code)}; output ends with:\n{self._tail(attempt)}"
            record = replace(base, status=TrialStatus.FAILED, error=error)
        self._record(record, seconds)

    def _record(self, record: TrialRecord, seconds: float) -> None:
        record = replace(record, finished=utc_now_iso(), seconds=round(seconds, 2))
        write_status(self.state.path, record)
        if record.status is TrialStatus.COMPLETED:
            self.completed += 1
            self.durations.append(seconds)
            log.info("trial %s completed in %.0fs", record.id, seconds)
        elif record.status is TrialStatus.FAILED:
            self.failed_ids.append(record.id)
            self.durations.append(seconds)
            lines = [line for line in (record.error or "").splitlines() if line.strip()]
            # The first line says how it ended; the last is usually the exception that ended it.
            summary = lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1].strip()}"
            log.error("trial %s failed: %s", record.id, summary or "no output")
        else:
            self.interrupted_ids.append(record.id)
            log.warning("trial %s interrupted; it resumes from its last checkpoint next time", record.id)
        self.last_progress = -1.0

    def _handle_stop(self, backend: TrialBackend, trap: SignalTrap) -> None:
        now = time.monotonic()
        if trap.count and not self.stopping:
            self.stopping, self.stop_deadline = True, now + self.grace
            log.warning(
                "received %s: stopping %d running trial(s) (they checkpoint); %d not started",
                signal.Signals(trap.signal or signal.SIGTERM).name,
                len(self.running),
                len(self.pending),
            )
            backend.stop()
        if self.stopping and not self.forced and self.running and (trap.count >= 2 or now > self.stop_deadline):
            log.warning("killing %d trial(s) that did not stop in time", len(self.running))
            backend.stop(force=True)
            self.forced = True

    def _check_timeouts(self, backend: TrialBackend) -> None:
        if self.trial_timeout is None:
            return
        now = time.monotonic()
        for trial_id, attempt in self.running.items():
            if attempt.timed_out_at is None and now - attempt.started > self.trial_timeout:
                log.warning("trial %s exceeded its %.0fs timeout: stopping it", trial_id, self.trial_timeout)
                attempt.timed_out_at = now
                backend.stop([trial_id])
            elif attempt.timed_out_at is not None and now - attempt.timed_out_at > self.grace:
                backend.stop([trial_id], force=True)

    def _tail(self, attempt: _Attempt) -> str:
        """The end of this attempt's output (from the log, after its header)."""
        try:
            with open(self.state.log_path(attempt.trial), "rb") as fh:
                fh.seek(attempt.log_offset)
                text = fh.read().decode("utf-8", errors="replace")
        except OSError as exc:
            return f"(log unreadable: {exc})"
        text = text.split("\n", 1)[1] if "\n" in text else ""  # drop the attempt header
        if len(text) > ERROR_TAIL_CHARS:
            text = text[-ERROR_TAIL_CHARS:].split("\n", 1)[-1]
        return text.rstrip()

    def _progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_progress is None or not (
            force or self.last_progress < 0 or now - self.last_progress >= PROGRESS_EVERY_S
        ):
            return
        self.last_progress = now
        inside = {trial_id: last_progress(self._recent_output(a)) for trial_id, a in self.running.items()}
        self.on_progress(
            SweepProgress(
                total=len(self.state.trials),
                done=self.completed,
                running=len(self.running),
                failed=len(self.failed_ids),
                skipped=self.skipped,
                eta_s=self._eta(now, inside),
                trial_lines=tuple(f"{trial_id}: {found[1]}" for trial_id, found in inside.items() if found),
            )
        )

    def _recent_output(self, attempt: _Attempt) -> str:
        """The last few KB of a running attempt's log (where its latest progress line is)."""
        try:
            with open(self.state.log_path(attempt.trial), "rb") as fh:
                size = fh.seek(0, 2)
                fh.seek(max(attempt.log_offset, size - RECENT_OUTPUT_BYTES))
                return fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _eta(self, now: float, inside: Mapping[str, tuple[float, str] | None] | None = None) -> float | None:
        if self.stopping:
            return 0.0 if self.durations or inside else None
        running: list[tuple[float, float | None]] = []
        for trial_id, attempt in self.running.items():
            progress = (inside or {}).get(trial_id)
            running.append((now - attempt.started, None if progress is None else progress[0]))
        return estimate_eta(self.durations, running, len(self.pending), self.slots)


def _reconcile(state: SweepDir) -> None:
    """Fix records a dead sweep process left ``running`` (we hold the lock, so nothing of ours runs them).

    A trial whose run finished meanwhile (its ``meta.json`` says completed) is recorded completed, so it is not
    run again; the others are recorded interrupted and resumed.
    """
    for trial in state.trials:
        record = state.status(trial.id)
        if record is None or record.status is not TrialStatus.RUNNING:
            continue
        try:
            meta = read_run_meta(state.trial_dir(trial))
        except RunDirError:
            meta = {}
        if meta.get("status") == RunStatus.COMPLETED.value:
            log.info("trial %s completed while no sweep was watching it: recorded as completed", trial.id)
            fixed = replace(record, status=TrialStatus.COMPLETED, returncode=0, finished=meta.get("status_time"))
        else:
            error = "the sweep process ended while this trial was running; it resumes from its last checkpoint"
            fixed = replace(record, status=TrialStatus.INTERRUPTED, error=error, finished=utc_now_iso())
        write_status(state.path, replace(fixed, pid=None))


def _is_done(record: TrialRecord | None) -> bool:
    """Completed, or ended early by a scheduler (its decision stands: a resumed sweep does not run it again)."""
    return record is not None and record.status in (TrialStatus.COMPLETED, TrialStatus.STOPPED)


def _move_aside(trial_dir: Path) -> Path:
    """Rename a leftover run directory without a config to ``<name>.stale-N`` (the first free N)."""
    for index in itertools.count(1):
        target = trial_dir.with_name(f"{trial_dir.name}.stale-{index}")
        if not target.exists():
            os.rename(trial_dir, target)
            log.warning(
                "%s has no %s (a start that never got going): moved aside to %s", trial_dir, CONFIG_FILE, target
            )
            return target
    raise AssertionError("unreachable")


def _shutdown(backend: TrialBackend, grace: float) -> None:
    """On an error in the loop: SIGTERM the running trials and give them ``grace`` seconds before the kill."""
    backend.stop()
    deadline = time.monotonic() + grace
    while backend.running and time.monotonic() < deadline:
        backend.wait(POLL_S)
