"""The worker side of data-parallel ``modrl train`` (``train.workers: N``, :mod:`modrl.agents.common.workers`), and
what both sides share: each process's share of the config and of the env slots, the frame count of the whole run,
the weights digest compared at the end.

A worker (:func:`worker_main`, started by :meth:`~modrl.agents.common.workers.WorkerGroup.spawn`) builds its envs and
model, reports ready, waits for the main process's join (the checkpoint to resume, if any), then trains its share:
it obeys the main process's ``go`` / ``stop`` / ``capture`` / ``exit`` at each rollout's start and reports its episodes
and routing at each rollout's end.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.utils import configure_logger, set_random_seed

from modrl.agents.common.config import ExperimentConfig
from modrl.agents.common.data_parallel import GradientAverager, broadcast_parameters
from modrl.agents.common.guards import EnvWorkerError, NonFiniteError, NonFiniteGuard
from modrl.agents.common.policies import ModularActorCriticPolicy
from modrl.checkpoint import Checkpoint, CheckpointError

#: How long a process waits at a collective (a rollout's end, a checkpoint) for the others. A dead peer is noticed at
#: once (its sockets close); this bounds a hung one, and must cover the main process's periodic evaluation.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


def local_config(config: ExperimentConfig) -> ExperimentConfig:
    """One process's share of ``config``: ``env.n_envs`` and ``algo.batch_size`` divided by ``train.workers``."""
    world = config.train.workers
    return replace(
        config,
        env=replace(config.env, n_envs=config.env.n_envs // world),
        algo=replace(config.algo, batch_size=config.algo.batch_size // world),
    )


def shard(config: ExperimentConfig, rank: int) -> range:
    """The env slots process ``rank`` steps."""
    per = config.env.n_envs // config.train.workers
    return range(rank * per, (rank + 1) * per)


def check_checkpoint_workers(checkpoint: Checkpoint, workers: int) -> None:
    """Refuse to resume ``checkpoint`` with a different number of training processes than wrote it.

    Raises:
        CheckpointError: Naming both numbers.
    """
    states = checkpoint.meta.get("workers", [])
    written = len(states) + 1 if isinstance(states, list) else None
    if written != workers or any(f"worker{r}" not in checkpoint.tensors for r in range(1, workers)):
        raise CheckpointError(
            f"{checkpoint.path} was written by a run with train.workers={written}, this config has "
            f"train.workers={workers}: resume with the same number of workers"
        )


def weights_digest(module: torch.nn.Module) -> str:
    """A SHA-256 of ``module``'s parameters and buffers (equal weights, equal digests)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class WorldFrames(BaseCallback):
    """First callback of every process: counts the other processes' frames of each step, so ``num_timesteps`` is the
    run's (all processes') frame count in every process and every later callback."""

    def __init__(self, workers: int) -> None:
        super().__init__()
        self.workers = workers

    def _on_step(self) -> bool:
        self.model.num_timesteps += (self.workers - 1) * self.model.n_envs
        return True


def worker_main(rank: int, init: str, config: ExperimentConfig, messages: Any, orders: Any) -> None:
    _die_with_parent()
    messages.cancel_join_thread()  # exiting must not wait on a main process that is gone
    for sig in (signal.SIGINT, signal.SIGTERM):  # the main process decides when to stop
        signal.signal(sig, signal.SIG_IGN)
    worker = None
    try:
        torch.set_num_threads(config.torch_threads)
        worker = _Worker(rank, config)
        messages.put(("ready", rank))
        checkpoint = orders.get()  # the main process's join(): after its own set-up (and any pre-training)
        dist.init_process_group(
            "gloo", init_method=init, rank=rank, world_size=config.train.workers, timeout=COLLECTIVE_TIMEOUT
        )
        worker.run(None if checkpoint is None else Path(checkpoint))
    except BaseException as exc:
        messages.put(("error", rank, _portable(exc)))
        sys.exit(1)
    finally:
        if worker is not None:
            worker.close()
        if dist.is_initialized():
            dist.destroy_process_group()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` as the main process can receive it: modrl's run errors as they are (they pickle), others as text."""
    if isinstance(exc, (NonFiniteError, EnvWorkerError, CheckpointError)):
        return exc
    return RuntimeError(f"{type(exc).__name__}: {exc}")


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the main process dies (a kill -9 leaves no orphan holding a CPU)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Worker:
    """One worker process: its envs and model, following the main process's commands."""

    def __init__(self, rank: int, config: ExperimentConfig) -> None:
        from modrl.agents.common.builders import build_model, make_vec_env

        self.rank = rank
        self.config = config
        local = local_config(config)
        self.slots = shard(config, rank)
        self.venv = make_vec_env(local, slots=self.slots)
        self.model = build_model(local, self.venv)
        self.model.set_logger(configure_logger(0, None, "", False))
        # The weights come from the main process; the action sampling must not repeat its random numbers.
        set_random_seed(int(np.random.SeedSequence([config.seed, rank]).generate_state(1)[0]))

    def run(self, checkpoint: Path | None) -> None:
        model = self.model
        if checkpoint is None:
            broadcast_parameters(model.policy)
        else:
            self._restore(checkpoint)
        dist.barrier()
        GradientAverager(model.policy)
        remaining = self.config.train.total_timesteps - model.num_timesteps
        if remaining > 0:
            callbacks = CallbackList(
                [WorldFrames(self.config.train.workers), NonFiniteGuard(env_offset=self.slots.start), _Follow(self)]
            )
            model.learn(remaining, callback=callbacks, reset_num_timesteps=checkpoint is None)
        while (command := self.receive()) != "exit":
            if command == "capture":
                self.send_state()
        dist.gather_object(weights_digest(model.policy), None, dst=0)

    def _restore(self, path: Path) -> None:
        from modrl.agents.common.env_state import restore_resume_state
        from modrl.agents.common.model_checkpoint import restore_model_checkpoint
        from modrl.checkpoint import load_checkpoint
        from modrl.train_state import restore_rng_state

        checkpoint = load_checkpoint(path)
        check_checkpoint_workers(checkpoint, self.config.train.workers)
        restore_model_checkpoint(self.model, checkpoint)  # weights, optimizer and counters (and rank 0's RNGs)
        try:
            tensors = checkpoint.tensors[f"worker{self.rank}"]
            state = checkpoint.meta["workers"][self.rank - 1]
            resume, rng = state["resume"], state["rng"]
        except (KeyError, IndexError, TypeError) as exc:
            raise CheckpointError(f"{path}: training worker {self.rank}'s state is malformed: {exc!r}") from None
        restore_resume_state(self.model, tensors, resume, {})
        restore_rng_state({k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}, rng)

    def receive(self) -> str:
        command: list[Any] = [None]
        dist.broadcast_object_list(command, src=0)
        return str(command[0])

    def send_state(self) -> None:
        from modrl.agents.common.env_state import capture_resume_state
        from modrl.train_state import capture_rng_state

        tensors, data = capture_resume_state(self.model, {})
        rng_tensors, rng_data = capture_rng_state()
        tensors.update({f"rng.{key}": value for key, value in rng_tensors.items()})
        dist.gather_object((tensors, {"resume": data, "rng": rng_data}), None, dst=0)

    def close(self) -> None:
        self.venv.close()


class _Follow(BaseCallback):
    """A worker's callback: obeys the main process at each rollout's start and reports its episodes and routing at
    each rollout's end."""

    def __init__(self, worker: _Worker) -> None:
        super().__init__()
        self.worker = worker
        self.stopping = False
        self._episodes: list[dict[str, Any]] = []
        self._routing: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _on_rollout_start(self) -> None:
        policy = self.model.policy
        if isinstance(policy, ModularActorCriticPolicy):  # as TelemetryCallback does in the main process
            total = self.worker.config.train.total_timesteps
            policy.modular.network.router.set_progress(min(1.0, self.model.num_timesteps / total))
        while (command := self.worker.receive()) == "capture":
            self.worker.send_state()
        self.stopping = command == "stop"

    def _on_step(self) -> bool:
        for index in np.flatnonzero(self.locals["dones"]):
            info = self.locals["infos"][index]
            self._episodes.append({k: info[k] for k in ("task", "is_success", "episode") if k in info})
        policy = self.model.policy
        if isinstance(policy, ModularActorCriticPolicy):
            modular = policy.modular
            if modular.last_weights is not None and modular.last_task_ids is not None:
                self._routing.append((modular.last_weights, modular.last_task_ids))
        return not self.stopping

    def _on_rollout_end(self) -> None:
        routing = None
        if self._routing:
            routing = (torch.cat([w for w, _ in self._routing]), torch.cat([t for _, t in self._routing]))
        dist.gather_object({"episodes": self._episodes, "routing": routing}, None, dst=0)
        self._episodes, self._routing = [], []
