"""Where trials run: local subprocesses, or tasks on a Ray cluster. Both run the same ``modrl train`` command.

A trial is ``python -m modrl.cli.main train BASE --set k=v ... --run-dir DIR`` (or ``train --resume DIR``), with
``OMP_NUM_THREADS=1`` on top of the parent environment, its output appended to the trial's log file. It runs in
its own session (a Ctrl-C on the terminal reaches only the sweep, which forwards one SIGTERM) and, on Linux, gets
SIGTERM when the process that started it dies (``PR_SET_PDEATHSIG``), so a killed sweep leaves no trial running
unsupervised: the trial checkpoints and exits.

Ray: every trial is one ``num_cpus=1`` task that starts the same subprocess and returns its exit code. The trial
writes into the sweep directory, so **every Ray node must see the sweep directory at the same path (a shared
filesystem) and have the same Python environment** (``sys.executable`` and modrl installed). Ray is imported only
when this backend is used (``pip install modrl[ray]``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TRIAL_ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
_PR_SET_PDEATHSIG = 1
_POLL_S = 0.2
_CANCEL_RETRY_S = 5.0  # a Ray trial asked to stop and still running is asked again this often


@dataclass(frozen=True)
class TrialLaunch:
    """Everything needed to start one attempt of a trial.

    Attributes:
        trial_id: The trial's id.
        command: The argv to run.
        log_path: Where stdout and stderr are appended.
        header: A line written to the log before the attempt's output.
    """

    trial_id: str
    command: tuple[str, ...]
    log_path: Path
    header: str


@dataclass(frozen=True)
class TrialExit:
    """How one attempt ended.

    Attributes:
        trial_id: The trial's id.
        returncode: The process exit code (negative: killed by that signal); ``None`` when unknown.
        cancelled: The backend stopped it on request (Ray cancellation).
        error: A backend-level error (e.g. the Ray worker died), if any.
    """

    trial_id: str
    returncode: int | None
    cancelled: bool = False
    error: str | None = None


def trial_command(*, base: Path, overrides: Sequence[str], run_dir: Path, resume: bool) -> tuple[str, ...]:
    """The ``modrl train`` argv of a trial: fresh into ``run_dir``, or ``--resume`` it when it has a config."""
    head = (sys.executable, "-m", "modrl.cli.main", "train")
    if resume:
        return (*head, "--resume", str(run_dir))
    sets = [part for override in overrides for part in ("--set", override)]
    return (*head, str(base), *sets, "--run-dir", str(run_dir))


def spawn_trial(launch: TrialLaunch, *, pass_fds: Sequence[int] = ()) -> subprocess.Popen[bytes]:
    """Start ``launch.command`` in a new session, output appended to its log, SIGTERM'd if its parent dies."""
    launch.log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **TRIAL_ENV}
    with open(launch.log_path, "ab") as out:
        out.write(launch.header.encode("utf-8") + b"\n")
        out.flush()
        return subprocess.Popen(
            launch.command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
            preexec_fn=_child_setup(),
        )


def run_trial_process(launch: TrialLaunch) -> int:
    """Run one trial to the end and return its exit code (the body of a Ray task).

    A Ray cancellation (an interrupt of this task's main thread) is forwarded to the trial as SIGTERM; the task waits
    for the trial to checkpoint and exit before raising ``KeyboardInterrupt``. In the main thread the interrupt only
    records the request, so one that lands while the trial is being started still reaches it.
    """
    # Ray delivers the cancellation like a SIGINT, which does nothing where SIGINT is ignored (a Ray started from
    # a background job inherits that): give this task its own handler while it runs. A raising handler would leave
    # a trial running when the interrupt lands between its start and the wait (seen under load).
    requested = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda *_: requested.set())
    try:
        process = spawn_trial(launch)
        try:
            while process.poll() is None and not requested.is_set():
                time.sleep(_POLL_S)
        except BaseException:  # an interrupt outside the main thread
            _terminate_and_wait(process)
            raise
        if requested.is_set():
            _terminate_and_wait(process)
            raise KeyboardInterrupt
        return process.returncode
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _terminate_and_wait(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a trial that still runs (it checkpoints and exits) and reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.wait()


class TrialBackend(ABC):
    """Runs up to ``slots`` trials at once; the runner starts, waits for and stops them through this interface."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.slots = slots
        self._running: set[str] = set()

    @property
    def running(self) -> frozenset[str]:
        """Ids of the trials running now."""
        return frozenset(self._running)

    def start(self, launch: TrialLaunch) -> int | None:
        """Start an attempt; returns the trial's pid where known. Raises OSError if it cannot be started."""
        if launch.trial_id in self._running:
            raise ValueError(f"trial {launch.trial_id} is already running")
        if len(self._running) >= self.slots:
            raise ValueError(f"all {self.slots} slots are busy")
        pid = self._start(launch)
        self._running.add(launch.trial_id)
        return pid

    def wait(self, timeout: float) -> list[TrialExit]:
        """Attempts that ended, waiting up to ``timeout`` seconds for the first one."""
        exits = self._wait(timeout) if self._running else []
        for item in exits:
            self._running.discard(item.trial_id)
        return exits

    def stop(self, trial_ids: Sequence[str] | None = None, *, force: bool = False) -> None:
        """Ask trials (all running ones by default) to stop: SIGTERM (they checkpoint), or kill with ``force``."""
        ids = [i for i in (self._running if trial_ids is None else trial_ids) if i in self._running]
        if ids:
            self._stop(ids, force)

    def close(self) -> None:
        """Kill and reap whatever still runs and release the backend's resources."""
        self.stop(force=True)
        while self._running:
            self.wait(_POLL_S)

    @abstractmethod
    def _start(self, launch: TrialLaunch) -> int | None: ...

    @abstractmethod
    def _wait(self, timeout: float) -> list[TrialExit]: ...

    @abstractmethod
    def _stop(self, trial_ids: Sequence[str], force: bool) -> None: ...


class LocalBackend(TrialBackend):
    """Trials as subprocesses of this process, polled; they inherit ``keep_fds`` (the sweep lock)."""

    def __init__(self, slots: int, *, keep_fds: Sequence[int] = ()) -> None:
        super().__init__(slots)
        self._keep_fds = tuple(keep_fds)
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def _start(self, launch: TrialLaunch) -> int | None:
        process = spawn_trial(launch, pass_fds=self._keep_fds)
        self._processes[launch.trial_id] = process
        return process.pid

    def _wait(self, timeout: float) -> list[TrialExit]:
        deadline = time.monotonic() + timeout
        while True:
            done = [(i, p.returncode) for i, p in self._processes.items() if p.poll() is not None]
            if done or time.monotonic() >= deadline:
                break
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        for trial_id, _ in done:
            del self._processes[trial_id]
        return [TrialExit(trial_id, code) for trial_id, code in done]

    def _stop(self, trial_ids: Sequence[str], force: bool) -> None:
        for trial_id in trial_ids:
            process = self._processes[trial_id]
            if process.poll() is not None:
                continue
            try:
                if force:  # the whole session: the trial and any env workers it started
                    os.killpg(process.pid, signal.SIGKILL)
                else:  # only the trainer, which stops its env workers itself after checkpointing
                    process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass


class RayBackend(TrialBackend):
    """Trials as ``num_cpus=1`` Ray tasks; a local Ray instance is started (and shut down) unless one is running.

    Args:
        slots: Trials in flight at once; ``None`` is the cluster's CPU count.
        address: Ray cluster address; ``None`` starts a local instance with ``slots`` CPUs (or uses ``RAY_ADDRESS``).
    """

    def __init__(self, slots: int | None, *, address: str | None = None) -> None:
        ray = import_ray()
        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False)
            if not address:
                options["num_cpus"] = slots or os.cpu_count() or 1
            ray.init(address=address or None, **options)
        if slots is None:
            slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        super().__init__(slots)
        self._task = ray.remote(num_cpus=1, max_retries=0)(run_trial_process)
        self._refs: dict[str, Any] = {}
        self._cancelled: dict[str, tuple[bool, float]] = {}  # trial -> (force, when last asked)

    def _start(self, launch: TrialLaunch) -> int | None:
        self._refs[launch.trial_id] = self._task.remote(launch)
        return None

    def _wait(self, timeout: float) -> list[TrialExit]:
        ray = self._ray
        now = time.monotonic()
        for trial_id, (force, asked) in list(self._cancelled.items()):
            if now - asked >= _CANCEL_RETRY_S:  # Ray drops a cancellation now and then (seen under load): ask again
                self._cancel(trial_id, force)
        ids = {ref: trial_id for trial_id, ref in self._refs.items()}
        ready, _ = ray.wait(list(ids), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(list(ids), num_returns=len(ids), timeout=0)
        exits = []
        for ref in ready:
            trial_id = ids[ref]
            del self._refs[trial_id]
            self._cancelled.pop(trial_id, None)
            try:
                exits.append(TrialExit(trial_id, int(ray.get(ref))))
            except ray.exceptions.TaskCancelledError:
                exits.append(TrialExit(trial_id, None, cancelled=True))
            except ray.exceptions.RayError as exc:
                exits.append(TrialExit(trial_id, None, error=f"{type(exc).__name__}: {exc}"))
        return exits

    def _stop(self, trial_ids: Sequence[str], force: bool) -> None:
        for trial_id in trial_ids:
            self._cancel(trial_id, force or self._cancelled.get(trial_id, (False, 0.0))[0])

    def _cancel(self, trial_id: str, force: bool) -> None:
        self._cancelled[trial_id] = (force, time.monotonic())
        self._ray.cancel(self._refs[trial_id], force=force)

    def close(self) -> None:
        """Cancel what still runs and shut the local Ray instance down if this backend started it."""
        try:
            super().close()
        finally:
            if self._owns_ray:
                self._ray.shutdown()


def import_ray() -> Any:
    """The ``ray`` module, or ImportError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"the ray backend needs `pip install modrl[ray]` ({exc})") from exc
    return ray


def make_backend(
    name: str, *, slots: int | None, ray_address: str | None = None, keep_fds: Sequence[int] = ()
) -> TrialBackend:
    """The backend called ``name`` (``"local"`` or ``"ray"``); local slots default to the CPU count."""
    if name == "local":
        return LocalBackend(slots or os.cpu_count() or 1, keep_fds=keep_fds)
    if name == "ray":
        return RayBackend(slots, address=ray_address)
    raise ValueError(f"unknown sweep backend {name!r}; allowed: local, ray")


def _child_setup() -> Callable[[], None]:
    """A ``preexec_fn``: unblock signals, default SIGINT/SIGTERM, and (Linux) SIGTERM when the parent dies.

    The starting process may block or ignore signals (a Ray worker blocks SIGINT, a background job ignores it) and
    a child inherits both. libc is resolved here, in the parent, so the child makes only a few system calls between
    fork and exec. If the parent is already gone by then, the child exits at once.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform.startswith("linux") else None
    parent = os.getpid()

    def child_setup() -> None:
        # Start the trial with default signal handling, whatever the starting process blocked or ignored.
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:
                os._exit(1)

    return child_setup


def describe_exit(code: int | None) -> str:
    """``"exit 2"`` / ``"killed by SIGKILL"`` / ``"no exit code"``."""
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def env_summary(env: Mapping[str, str] = TRIAL_ENV) -> str:
    """``OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1``: the variables set for trials, for log headers."""
    return " ".join(f"{key}={value}" for key, value in env.items())
