"""A model's checkpoint: write and verified restore of its policy, optimiser, RNG states and counters, the identity a
checkpoint's fingerprint stands for, and the lookup of the checkpoint a resume starts from (used by
:mod:`modrl.agents.common.training`, which re-exports these names, and by the continual store)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from modrl.agents.common.config import ExperimentConfig
from modrl.agents.common.pretrain import PretrainStats
from modrl.checkpoint import (
    Checkpoint,
    CheckpointError,
    FingerprintMismatchError,
    latest_checkpoint,
    list_checkpoints,
)
from modrl.checkpoint_writer import save_checkpoint
from modrl.envs import get_suite
from modrl.train_state import (
    capture_rng_state,
    flatten_optimizer_state,
    restore_rng_state,
    unflatten_optimizer_state,
)

log = logging.getLogger("modrl.agents.common.training")  # the logger these lines were always written to


def save_model_checkpoint(
    model: OnPolicyAlgorithm,
    checkpoints_dir: Path,
    *,
    fingerprint: str,
    keep: int,
    identity: Mapping[str, Any] | None = None,
    resume_state: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None,
    pretrain: PretrainStats | None = None,
    workers: Sequence[tuple[dict[str, torch.Tensor], dict[str, Any]]] = (),
) -> Path:
    """Write the policy, optimiser, RNG states and counters of ``model`` (plus ``resume_state``, the output of
    :func:`modrl.agents.common.env_state.capture_resume_state`, and the oracle pre-training done before RL, if any) as
    one atomic checkpoint. ``workers``: each data-parallel training worker's own state (its envs and RNGs,
    :mod:`modrl.agents.common.workers`), as tensor group ``worker<r>`` and ``meta["workers"][r - 1]``."""
    opt_tensors, opt_data = flatten_optimizer_state(model.policy.optimizer.state_dict())
    rng_tensors, rng_data = capture_rng_state()
    tensors = {"policy": model.policy.state_dict(), "optimizer": opt_tensors, "rng": rng_tensors}
    meta: dict[str, Any] = {
        "num_timesteps": model.num_timesteps,
        "n_updates": model._n_updates,
        "optimizer": opt_data,
        "rng": rng_data,
    }
    if resume_state is not None:
        tensors["resume"], meta["resume"] = resume_state
    if pretrain is not None:
        meta["pretrain"] = pretrain.record()
    if workers:
        meta["workers"] = [worker_meta for _, worker_meta in workers]
        for rank, (worker_tensors, _) in enumerate(workers, start=1):
            tensors[f"worker{rank}"] = worker_tensors
    return save_checkpoint(
        checkpoints_dir,
        step=model.num_timesteps,
        tensors=tensors,
        meta=meta,
        fingerprint=fingerprint,
        keep=keep,
        identity=identity,
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


def model_identity(config: ExperimentConfig, observation_space: spaces.Space, action_space: spaces.Space) -> dict:
    """What a checkpoint's fingerprint stands for, readable (recorded in its manifest for mismatch messages)."""
    suite = get_suite(config.env.suite)
    return {
        "agent": f"{config.agent.kind} ({config.agent.algo})",
        "suite": f"{suite.name} v{suite.version} ({suite.num_tasks} tasks)",
        "observation_space": repr(observation_space),
        "action_space": repr(action_space),
    }


def explain_mismatch(exc: FingerprintMismatchError, expected: Mapping[str, Any]) -> FingerprintMismatchError:
    """``exc`` with what differs appended: ``key: expected X, found Y`` for each entry of :func:`model_identity`."""
    found = exc.found_identity or {}
    differences = [
        f"{key}: expected {value}, found {found.get(key, '(not recorded)')}"
        for key, value in expected.items()
        if found.get(key) != value
    ]
    if differences:
        detail = "; ".join(differences)
    elif found:
        detail = "agent kind, suite and spaces match, so the agent's settings (the config's agent section) differ"
    else:
        detail = "(the checkpoint records no details)"
    return FingerprintMismatchError(f"{exc}: {detail}", path=exc.path, found_identity=exc.found_identity)


def find_resume_checkpoint(
    checkpoints_dir: Path, *, fingerprint: str, identity: Mapping[str, Any], recorded: str | None = None
) -> Checkpoint | None:
    """The newest verified checkpoint to resume from; ``None`` only when there is no checkpoint at all.

    No checkpoint at all is what a run stopped before its first one leaves: that restarts from step 0 with a
    warning (it loses only those first steps). But when the run's ``meta.json`` records a checkpoint
    (``recorded``: an interrupted or completed run), an empty or missing ``checkpoints/`` means they were removed,
    and restarting would overwrite the run's metrics and TensorBoard history: that is refused.

    Raises:
        FingerprintMismatchError: A checkpoint of another agent/task/space (naming what differs).
        CheckpointError: Checkpoints exist but none verifies, or none exists while ``recorded`` names one (a run is
            never silently restarted from step 0).
    """
    try:
        checkpoint = latest_checkpoint(checkpoints_dir, expected_fingerprint=fingerprint)
    except FingerprintMismatchError as exc:
        raise explain_mismatch(exc, identity) from None
    if checkpoint is None and list_checkpoints(checkpoints_dir):
        raise CheckpointError(
            f"no checkpoint in {checkpoints_dir} verifies (see the warnings above); refusing to restart the run "
            "from step 0 over its history"
        )
    if checkpoint is None and recorded is not None:
        raise CheckpointError(
            f"{checkpoints_dir} holds no checkpoint, but meta.json records {recorded}: its checkpoints were removed; "
            "restore them, or start a new run from its config.yaml (refusing to restart from step 0 over its history)"
        )
    if checkpoint is None:
        log.warning(
            "no checkpoint in %s (the run stopped before its first one): training starts again from step 0",
            checkpoints_dir,
        )
    return checkpoint
