"""Train an SB3 agent into a run directory: checkpoints, resume, TensorBoard, graceful stop on SIGINT/SIGTERM.

Checkpoints use modrl's own format (:mod:`modrl.checkpoint`: safetensors + JSON + manifest), never SB3's pickled
``.zip``. One holds the policy weights, the optimiser state, the RNG states and the step counters; it is taken at a
rollout boundary, after an update. Resuming restores all of that and starts a fresh rollout (the envs are reset, so
a resumed run is not bit-identical to an uninterrupted one; issue 7 covers exact resume).
"""

from __future__ import annotations

import enum
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from torch.utils.tensorboard import SummaryWriter

from modrl.checkpoint import Checkpoint, CheckpointError, latest_checkpoint
from modrl.checkpoint_writer import save_checkpoint
from modrl.envs import get_suite
from modrl.telemetry import TelemetryWriter
from modrl.train_state import (
    capture_rng_state,
    flatten_optimizer_state,
    restore_rng_state,
    unflatten_optimizer_state,
)

from .builders import build_model, make_vec_env, model_fingerprint
from .callbacks import (
    CheckpointCallback,
    EpisodeStatsCallback,
    MetricsLogCallback,
    ProgressCallback,
    StopCallback,
    StopRequest,
    TelemetryCallback,
    truncate_metrics,
)
from .config import ExperimentConfig

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
TENSORBOARD = "tb"


class TrainStatus(enum.Enum):
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class TrainOutcome:
    status: TrainStatus
    steps: int
    checkpoint: Path
    resumed_from: int | None
    signal: int | None = None


def save_model_checkpoint(model: OnPolicyAlgorithm, checkpoints_dir: Path, *, fingerprint: str, keep: int) -> Path:
    """Write the policy, optimiser, RNG states and counters of ``model`` as one atomic checkpoint."""
    opt_tensors, opt_data = flatten_optimizer_state(model.policy.optimizer.state_dict())
    rng_tensors, rng_data = capture_rng_state()
    return save_checkpoint(
        checkpoints_dir,
        step=model.num_timesteps,
        tensors={"policy": model.policy.state_dict(), "optimizer": opt_tensors, "rng": rng_tensors},
        meta={
            "num_timesteps": model.num_timesteps,
            "n_updates": model._n_updates,
            "optimizer": opt_data,
            "rng": rng_data,
        },
        fingerprint=fingerprint,
        keep=keep,
    )


def restore_model_checkpoint(model: OnPolicyAlgorithm, checkpoint: Checkpoint) -> None:
    """Load a verified checkpoint into ``model``; every key and shape is checked before anything is changed."""
    check_state_dict(model.policy.state_dict(), checkpoint.tensors.get("policy", {}), checkpoint.path)
    optimizer_state = unflatten_optimizer_state(checkpoint.tensors.get("optimizer", {}), checkpoint.meta["optimizer"])
    model.policy.load_state_dict(checkpoint.tensors["policy"], strict=True)
    model.policy.optimizer.load_state_dict(optimizer_state)
    model.num_timesteps = int(checkpoint.meta["num_timesteps"])
    model._n_updates = int(checkpoint.meta["n_updates"])
    restore_rng_state(checkpoint.tensors.get("rng", {}), checkpoint.meta["rng"])


def check_state_dict(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``found`` has exactly ``expected``'s keys, shapes and dtypes."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path}: policy architecture differs from the config: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    for key, tensor in expected.items():
        other = found[key]
        if tensor.shape != other.shape or tensor.dtype != other.dtype:
            raise CheckpointError(
                f"{path}: policy tensor {key!r} is {tuple(other.shape)} {other.dtype} in the checkpoint but "
                f"{tuple(tensor.shape)} {tensor.dtype} in the config's architecture"
            )


class _PurgingTensorBoardFormat(TensorBoardOutputFormat):
    """SB3 2.9's TensorBoard writer, reopened with ``purge_step`` so a resumed run drops steps logged after its
    checkpoint instead of showing them twice (SB3's class takes no purge_step)."""

    def __init__(self, folder: str, purge_step: int | None) -> None:
        super().__init__(folder)
        if purge_step is not None:
            self.writer.close()
            self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)


@contextmanager
def _stop_on_signals(request: StopRequest) -> Iterator[None]:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, request)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_training(config: ExperimentConfig, run_dir: Path, *, resume: bool = False) -> TrainOutcome:
    """Train ``config`` in ``run_dir`` (created and described by the caller), resuming its last checkpoint if asked.

    SIGINT/SIGTERM stop collection at the next env step; a checkpoint is then written and the outcome is
    ``INTERRUPTED`` (resumable with ``resume=True``).
    """
    torch.set_num_threads(config.torch_threads)
    venv = make_vec_env(config)
    model = build_model(config, venv)
    fingerprint = model_fingerprint(config, venv.observation_space, venv.action_space)
    checkpoints_dir = run_dir / CHECKPOINTS
    resumed_from = None
    if resume:
        checkpoint = latest_checkpoint(checkpoints_dir, expected_fingerprint=fingerprint)
        if checkpoint is None:
            log.warning("no complete checkpoint in %s: starting from step 0", checkpoints_dir)
        else:
            restore_model_checkpoint(model, checkpoint)
            resumed_from = checkpoint.step
            log.info("resumed from %s (step %d)", checkpoint.path, checkpoint.step)

    def save() -> Path:
        return save_model_checkpoint(
            model, checkpoints_dir, fingerprint=fingerprint, keep=config.train.keep_checkpoints
        )

    if resume:  # drop what a killed segment logged after its last checkpoint (everything, if it had none)
        truncate_metrics(run_dir / METRICS, resumed_from or 0)
    tb_dir = run_dir / TENSORBOARD
    tb_dir.mkdir(exist_ok=True)
    # Events up to and including the checkpoint step were logged before it was taken: keep them, drop later ones.
    purge_step = (resumed_from or 0) + 1 if resume else None
    model.set_logger(Logger(str(tb_dir), [_PurgingTensorBoardFormat(str(tb_dir), purge_step)]))
    writer = TelemetryWriter(tb_dir, purge_step=purge_step)
    total = config.train.total_timesteps
    episodes = EpisodeStatsCallback(get_suite(config.env.suite).task_names)
    request = StopRequest()
    callbacks = CallbackList(
        [
            episodes,
            TelemetryCallback(writer, episodes, total_timesteps=total),
            MetricsLogCallback(run_dir / METRICS, episodes),
            ProgressCallback(episodes, total_timesteps=total),
            CheckpointCallback(save, every=config.train.checkpoint_every),
            StopCallback(request),
        ]
    )
    try:
        with _stop_on_signals(request):
            remaining = total - model.num_timesteps
            if remaining > 0:
                model.learn(remaining, callback=callbacks, reset_num_timesteps=resumed_from is None)
        path = save()
    finally:
        writer.close()
        model.logger.close()
        venv.close()
    status = TrainStatus.INTERRUPTED if request.requested else TrainStatus.COMPLETED
    return TrainOutcome(status, model.num_timesteps, path, resumed_from, request.signal)
