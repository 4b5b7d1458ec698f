"""One trial of a ``backend: tune`` sweep: its ``modrl train`` process behind Ray Tune's class-trainable hooks.

:func:`trial_class` builds the Tune trainable (``tune.Trainable`` + :class:`_TrialLogic`) on first use, so importing
this module imports no ray. See :mod:`modrl.sweep.tune_backend` for the whole picture.
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
from dataclasses import replace
from pathlib import Path
from typing import Any

from modrl._io import utc_now_iso
from modrl.runs import CONFIG_FILE

from .backends import TrialLaunch, describe_exit, env_summary, spawn_trial, trial_command
from .scheduling import TIME_ATTR
from .spec import format_override
from .store import SweepDir, TrialRecord, TrialStatus, resume_sweep_dir, write_status

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
#: A committed checkpoint has this file (:data:`modrl.checkpoint.MANIFEST`, not imported: it would load torch).
MANIFEST = "manifest.json"
SOURCE = "source.json"
POLL_S = 0.2
STOP_GRACE_S = 60.0
TAIL_CHARS = 2000
#: The metrics.jsonl fields reported to Tune (beside ``step``, the time axis).
REPORTED = ("success_mean", "return_mean", "fps", "wall_s")


def import_tune() -> Any:
    """``ray.tune``, or ImportError saying how to install it."""
    try:
        from ray import tune
    except ImportError as exc:
        raise ImportError(f"the tune backend needs `pip install modrl[ray]`, which brings ray[tune] ({exc})") from exc
    return tune


def sweep_trial(tune_trial_id: str, config: dict[str, Any]) -> str:
    """The sweep's trial id of a Tune trial.

    Not ``config["trial_id"]``: PBT copies a better trial's whole config into a worse one, that key included. Tune's
    ``BasicVariantGenerator`` numbers its trials in grid order (``<prefix>_00003``: the fourth value of the
    ``trial_id`` grid, ``config["trial_order"][3]``), which no exploit changes.
    """
    return str(config["trial_order"][int(tune_trial_id.rsplit("_", 1)[-1])])


def mutable_keys(state: SweepDir) -> list[str]:
    """The keys PBT perturbs (the sampled search keys); none for other schedulers."""
    if state.scheduler is None or state.scheduler.kind != "pbt":
        return []
    return [key for key, domain in state.search.items() if domain.sampled]


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
                self.latest.update({k: row[k] for k in REPORTED if row.get(k) is not None})
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
        for key in mutable_keys(self.sweep):  # PBT's current values of the keys it perturbs
            overrides = [o for o in overrides if o.split("=", 1)[0] != key] + [format_override(key, self.config[key])]
        resume = (self.run_dir / CONFIG_FILE).is_file()
        command = trial_command(base=self.sweep.base_config, overrides=overrides, run_dir=self.run_dir, resume=resume)
        if resume and mutable_keys(self.sweep):
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
                self.latest.update({k: row[k] for k in REPORTED if row.get(k) is not None})

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
