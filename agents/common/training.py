"""Train an SB3 agent into a run directory: checkpoints, exact resume, TensorBoard, graceful stop on SIGINT/SIGTERM.

Checkpoints use modrl's own format (:mod:`modrl.checkpoint`: safetensors + JSON + manifest), never SB3's pickled
``.zip``. One holds the policy weights, the optimiser state, the RNG states, the step counters and the resume state
of :mod:`modrl.agents.common.env_state` (envs, SB3's rollout bookkeeping, pending log values, callback state); it is
taken at a rollout boundary, after an update. Resuming restores all of it, so N steps + stop/kill + resume to 2N gives
the same parameters, optimiser state, metrics and TensorBoard scalars as 2N steps in one go (wall-clock fields aside).
:mod:`modrl.agents.common.guards` stops training at the step a NaN/inf or an env failure appears; no checkpoint follows
it.
With a ``pretrain`` section, the policy is first behaviour-cloned on oracle demonstrations
(:mod:`modrl.agents.common.pretrain`), on a fresh start only, before the first RL step and so before the first
checkpoint; every checkpoint records that stage (``meta["pretrain"]``), so a resume never repeats it, and a run stopped
during it restarts it from scratch (same seeds, same weights).
"""

from __future__ import annotations

import enum
import logging
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import KVWriter, Logger, TensorBoardOutputFormat
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from modrl.agents.common.builders import build_model, make_vec_env, model_fingerprint
from modrl.agents.common.callbacks import (
    CheckpointCallback,
    EpisodeStatsCallback,
    MetricsLogCallback,
    ProgressCallback,
    StopRequest,
    SuccessStopCallback,
    TelemetryCallback,
    truncate_metrics,
)
from modrl.agents.common.config import ExperimentConfig
from modrl.agents.common.env_state import StatefulCallback, capture_resume_state, restore_resume_state
from modrl.agents.common.guards import NonFiniteGuard
from modrl.agents.common.model_checkpoint import (
    check_state_dict,
    explain_mismatch,
    find_resume_checkpoint,
    model_identity,
    restore_model_checkpoint,
    save_model_checkpoint,
)
from modrl.agents.common.periodic_eval import PeriodicEvalCallback
from modrl.agents.common.pretrain import PretrainStats, PretrainStopped, pretrain_policy
from modrl.agents.common.run_layout import CHECKPOINTS, EVAL_CURVE, METRICS, TENSORBOARD
from modrl.agents.common.worker_process import check_checkpoint_workers, local_config, shard
from modrl.agents.common.workers import CommandWorkers, MergeWorkerRollouts, WorkerGroup
from modrl.checkpoint import (
    Checkpoint,
)
from modrl.config import to_dict
from modrl.envs import get_suite
from modrl.faults import fault_point
from modrl.runs import RunDirError, read_run_meta
from modrl.telemetry import TelemetryWriter

__all__ = [
    "CHECKPOINTS",
    "METRICS",
    "TENSORBOARD",
    "TrainOutcome",
    "TrainStatus",
    "check_state_dict",
    "explain_mismatch",
    "find_resume_checkpoint",
    "model_identity",
    "restore_model_checkpoint",
    "run_training",
    "save_model_checkpoint",
    "stop_on_signals",
]

log = logging.getLogger(__name__)


class TrainStatus(enum.Enum):
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class TrainOutcome:
    """How a training segment ended. ``checkpoint`` is ``None`` only for a stop during oracle pre-training (nothing
    to resume from: the run starts again); ``pretrain`` is the run's pre-training, done now or recorded in the
    checkpoint resumed from (``None`` without one). ``steps`` counts RL frames only."""

    status: TrainStatus
    steps: int
    checkpoint: Path | None
    resumed_from: int | None
    signal: int | None = None
    pretrain: PretrainStats | None = None


class _GuardedTensorBoardFormat(TensorBoardOutputFormat):
    """SB3 2.9's TensorBoard writer made fail-safe: an ``OSError`` while writing logs one warning and turns it off,
    because training must not die for a log file (checkpoints go on). The ``tensorboard-write`` fault point
    (:mod:`modrl.faults`) sits before each write."""

    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        self.folder = folder
        self.failed = False

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        if self.failed:
            return
        try:
            fault_point("tensorboard-write", path=self.folder)
            super().write(key_values, key_excluded, step)
        except OSError as exc:
            self.failed = True
            log.warning(
                "TensorBoard logging of SB3 scalars disabled: cannot write to %s (%s); training goes on",
                self.folder,
                exc,
            )
            with suppress(Exception):  # the writer is already broken; the warning said so
                self.writer.close()

    def close(self) -> None:
        if self.failed:
            self._is_closed = True
            return
        with suppress(OSError):
            super().close()


def _sb3_logger(tb_dir: Path) -> Logger:
    outputs: list[KVWriter] = []
    try:
        outputs.append(_GuardedTensorBoardFormat(str(tb_dir)))
    except OSError as exc:
        log.warning("TensorBoard logging of SB3 scalars disabled: cannot open %s (%s); training goes on", tb_dir, exc)
    return Logger(str(tb_dir), outputs)


@contextmanager
def stop_on_signals(request: StopRequest) -> Iterator[None]:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, request)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _recorded_checkpoint(run_dir: Path) -> str | None:
    """What ``meta.json`` says of a checkpoint having been written (the checkpoint an interrupted run recorded, or
    the status of a completed one), if it can be read; ``None`` when it says nothing."""
    try:
        meta = read_run_meta(run_dir)
    except RunDirError:
        return None  # a missing or broken meta.json is reported where the status is written
    if isinstance(meta.get("checkpoint"), str):
        return f"checkpoint {meta['checkpoint']}"
    return "status 'completed'" if meta.get("status") == "completed" else None


def run_training(
    config: ExperimentConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    on_start: Callable[[int | None], None] | None = None,
    device: str = "cpu",
) -> TrainOutcome:
    """Train ``config`` in ``run_dir`` (created and described by the caller), resuming its last checkpoint if asked.

    SIGINT/SIGTERM let the current rollout and update finish, checkpoint at the next rollout boundary and end with
    ``INTERRUPTED`` (resumable with ``resume=True``, exactly).

    Args:
        on_start: Called with the step being resumed from (``None`` for a fresh start) once the checkpoint is found
            and checked, before anything is written to ``run_dir``.
        device: The torch device the model trains on (checkpoints hold CPU tensors whatever it is; CUDA's random
            state is not checkpointed, so only CPU resumes are bit-exact).

    Raises:
        CheckpointError: No resumable checkpoint, or a checkpoint write failed (names path and errno).
        FingerprintMismatchError: The run's checkpoints belong to another agent, task set or space.
        modrl.agents.common.guards.NonFiniteError, modrl.agents.common.guards.EnvWorkerError: Training stopped at a
            fault.
    """
    torch.set_num_threads(config.torch_threads)
    if config.train.workers > 1 and device != "cpu":
        raise ValueError(f"train.workers={config.train.workers} trains data-parallel on the CPU, not on {device}")
    group = WorkerGroup(config) if config.train.workers > 1 else None
    closers: list[Callable[[], object]] = []
    try:
        if group is None:
            venv = make_vec_env(config)
        else:  # the workers start up while this process builds its share of the slots (agents/common/workers.py)
            closers.append(group.close)
            group.spawn()
            venv = make_vec_env(local_config(config), slots=shard(config, 0))
        closers.append(venv.close)
        return _train(
            config, run_dir, venv=venv, group=group, resume=resume, on_start=on_start, closers=closers, device=device
        )
    finally:
        for close in reversed(closers):
            try:
                close()
            except Exception as exc:  # keep closing the rest (workers must be reaped); the error is logged
                log.warning("error while closing %s: %r", close, exc)


def _train(
    config: ExperimentConfig,
    run_dir: Path,
    *,
    venv: Any,
    group: WorkerGroup | None,
    resume: bool,
    on_start: Callable[[int | None], None] | None,
    closers: list[Callable[[], object]],
    device: str,
) -> TrainOutcome:
    model = build_model(config if config.train.workers == 1 else local_config(config), venv, device=device)
    identity = model_identity(config, venv.observation_space, venv.action_space)
    fingerprint = model_fingerprint(config, venv.observation_space, venv.action_space)
    checkpoints_dir = run_dir / CHECKPOINTS
    checkpoint = None
    if resume:
        recorded = _recorded_checkpoint(run_dir)
        checkpoint = find_resume_checkpoint(
            checkpoints_dir, fingerprint=fingerprint, identity=identity, recorded=recorded
        )
    if checkpoint is not None:
        check_state_dict(model.policy.state_dict(), checkpoint.tensors.get("policy", {}), checkpoint.path)
        check_checkpoint_workers(checkpoint, config.train.workers)
    resumed_from = None if checkpoint is None else checkpoint.step
    if on_start is not None:
        on_start(resumed_from)
    if resume:  # drop what a killed segment logged after its last checkpoint (everything, if it had none)
        truncate_metrics(run_dir / METRICS, resumed_from or 0)
        truncate_metrics(run_dir / EVAL_CURVE, resumed_from or 0)
    tb_dir = run_dir / TENSORBOARD
    tb_dir.mkdir(exist_ok=True)
    # Events up to and including the checkpoint step were logged before it was taken: keep them, drop later ones.
    # Exactly one event file of this segment may carry the purge marker, and it must sort before the segment's
    # other file (TensorBoard applies a marker when it reads it, dropping events it already read from other files
    # at or after that step): the telemetry writer's, created first.
    purge_step = (resumed_from or 0) + 1 if resume else None
    if resume:
        _after_earlier_event_files(tb_dir)
    writer = TelemetryWriter(tb_dir, purge_step=purge_step)
    closers.append(writer.close)
    writer.log_config(to_dict(config), step=resumed_from or 0)
    if resume:  # "created first" is not "sorts first" within one second: writer counts sort as text (10 before 9)
        _after_earlier_event_files(tb_dir)
    model.set_logger(_sb3_logger(tb_dir))
    closers.append(model.logger.close)
    total = config.train.total_timesteps
    episodes = EpisodeStatsCallback(get_suite(config.env.suite).task_names)
    request = StopRequest()
    guard = NonFiniteGuard()
    closers.append(guard.remove_hooks)

    def save() -> Path:
        return save_model_checkpoint(
            model,
            checkpoints_dir,
            fingerprint=fingerprint,
            keep=config.train.keep_checkpoints,
            identity=identity,
            resume_state=capture_resume_state(model, stateful),
            pretrain=pretrained,
            workers=() if group is None else group.capture(),
        )

    checkpointer = CheckpointCallback(save, every=config.train.checkpoint_every, stop=request)
    stateful: dict[str, StatefulCallback] = {"episodes": episodes, "checkpoints": checkpointer}
    success_stop = (
        [] if config.train.stop_success is None else [SuccessStopCallback(episodes, config.train.stop_success, request)]
    )
    # Last, after the checkpoint: it only reads the policy, between a rollout and its update.
    periodic_eval = [] if config.train.eval_every == 0 else [PeriodicEvalCallback(config, run_dir, writer)]
    telemetry = TelemetryCallback(writer, episodes, total_timesteps=total, workers=config.train.workers)
    merge = [] if group is None else [MergeWorkerRollouts(group, episodes, telemetry, config.train.workers)]
    command = [] if group is None else [CommandWorkers(group, checkpointer)]
    callbacks = CallbackList(
        [
            *merge,  # first: counts all processes' frames, adds the workers' episodes before anything reads them
            guard,
            episodes,
            telemetry,
            MetricsLogCallback(run_dir / METRICS, episodes),
            ProgressCallback(episodes, total_timesteps=total),
            *success_stop,
            checkpointer,
            *command,  # after the checkpoint: the workers go on or stop with the main process
            *periodic_eval,
        ]
    )
    pretrained: PretrainStats | None = None
    if checkpoint is not None:
        _restore(model, checkpoint, stateful)
        log.info("resumed from %s (step %d)", checkpoint.path, checkpoint.step)
        pretrained = _recorded_pretrain(checkpoint, config)
    with stop_on_signals(request):
        if checkpoint is None and config.pretrain.enabled:
            try:
                pretrained = pretrain_policy(model.policy, config, run_dir, stop=lambda: request.requested)
            except PretrainStopped:
                return TrainOutcome(TrainStatus.INTERRUPTED, 0, None, None, request.signal)
        if group is not None:  # after pre-training: the workers start from the weights it left
            group.join(model, None if checkpoint is None else checkpoint.path)
        remaining = total - model.num_timesteps
        with nullcontext() if group is None else group.reporting():
            if remaining > 0 or (total == 0 and checkpoint is None):  # 0: pre-training only (learn resets the envs)
                model.learn(remaining, callback=callbacks, reset_num_timesteps=checkpoint is None)
    if checkpointer.stopped_at is not None:  # the stop checkpoint is the last consistent state; nothing after it
        steps, path = checkpointer.stopped_at, Path(str(checkpointer.stop_checkpoint))
    else:
        path = save()
        steps = model.num_timesteps
    if group is not None:
        group.finish(model)
    status = TrainStatus.INTERRUPTED if request.requested else TrainStatus.COMPLETED
    return TrainOutcome(status, steps, path, resumed_from, request.signal, pretrained)


def _recorded_pretrain(checkpoint: Checkpoint, config: ExperimentConfig) -> PretrainStats | None:
    """The pre-training ``checkpoint`` records (a resume never repeats it); a ``pretrain`` section that the run did
    not have when it started (``--allow-config-change``) is not run now, which is logged."""
    record = checkpoint.meta.get("pretrain")
    if record is None:
        if config.pretrain.enabled:
            log.warning(
                "%s records no oracle pre-training: it runs only on a fresh start, not on resume", checkpoint.path
            )
        return None
    return PretrainStats.from_record(record)


def _after_earlier_event_files(tb_dir: Path) -> None:
    """Wait, if needed, until this segment's event files will sort after every earlier one.

    TensorBoard reads a directory's event files in name order, ``events.out.tfevents.<second>.<host>.<pid>.<n>``.
    A resume started in the same second as the earlier segment's writers (e.g. in the same process) would be ordered
    by the writer count ``<n>``, which sorts as text (10 before 9): the resumed file could be read first, and the
    earlier segment's older steps read after it then make TensorBoard drop the resumed steps. Waiting for the next
    second (at most one) makes the ``<second>`` field decide.
    """
    seconds = [
        int(parts[3])
        for path in tb_dir.glob("events.out.tfevents.*")
        if len(parts := path.name.split(".")) > 3 and parts[3].isdigit()
    ]
    if seconds and max(seconds) >= int(time.time()):
        time.sleep(max(seconds) + 1 - time.time() + 0.01)


def _restore(model: OnPolicyAlgorithm, checkpoint: Checkpoint, stateful: Mapping[str, StatefulCallback]) -> None:
    """Envs, SB3 bookkeeping and callbacks first (they never touch the global RNGs), weights and RNGs last."""
    if "resume" in checkpoint.meta:
        restore_resume_state(model, checkpoint.tensors.get("resume", {}), checkpoint.meta["resume"], stateful)
    else:
        log.warning(
            "checkpoint %s holds no env state (an older format): the envs are reset, so this resume is not exact",
            checkpoint.path,
        )
    restore_model_checkpoint(model, checkpoint)
