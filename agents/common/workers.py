"""Data-parallel ``modrl train`` (``train.workers: N``): N processes train one run, each on its share of the env slots.

The main process is the run as with one process (its callbacks log, checkpoint, evaluate and decide when to stop);
it starts ``N - 1`` workers. Rank ``r`` steps slots ``r*n/N .. (r+1)*n/N - 1`` of ``env.n_envs`` (their tasks and
seeds) and computes the gradient of its ``batch_size / N`` samples per minibatch, which
:class:`~modrl.agents.common.data_parallel.GradientAverager` replaces by the mean over the processes before SB3 clips
it and steps the optimizer: all keep the same weights. Every process adds the others' frames on every step, so
budgets, schedules, checkpoints, logs and ``stop_success`` read the step numbers of one process with ``env.n_envs``.

Kept from ``modrl train``: checkpoints hold each worker's envs, SB3 rollout state and RNGs (tensor group
``worker<r>``, ``meta["workers"]``), so a resume with the same ``train.workers`` is bit-identical; the workers'
episodes and routing reach the main process at each rollout's end; stops are decided by the main process at a
rollout boundary and taken by all (workers ignore SIGINT/SIGTERM and die with the main process); a worker's NaN or
env failure ends the run with that error, naming the slot. Not kept: bit-identity with one process (advantages are
normalised per process's share of a minibatch, so are the router's minibatch statistics, and each worker samples
actions from its own RNG stream).

This module is the main process's side; the workers' is :mod:`modrl.agents.common.worker_process`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from modrl.agents.common.callbacks import CheckpointCallback, EpisodeStatsCallback, TelemetryCallback
from modrl.agents.common.config import ExperimentConfig
from modrl.agents.common.data_parallel import GradientAverager, broadcast_parameters
from modrl.agents.common.guards import EnvWorkerError, NonFiniteError
from modrl.agents.common.worker_process import COLLECTIVE_TIMEOUT, WorldFrames, shard, weights_digest, worker_main
from modrl.checkpoint import CheckpointError

log = logging.getLogger(__name__)

#: Seconds a worker may take to build its envs and model, and to exit at the end.
START_TIMEOUT_S = 600.0
EXIT_TIMEOUT_S = 30.0
#: Seconds to wait for a failed worker's report after a collective broke.
REPORT_TIMEOUT_S = 10.0


class WorkerGroup:
    """The main process's side: starts the workers, sends them commands, gathers their rollouts and states."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self.world = config.train.workers
        self._procs: list[Any] = []
        self._messages: Any = None
        self._orders: Any = None
        self._dir: str | None = None
        self._averager: GradientAverager | None = None

    def spawn(self) -> None:
        """Start the workers. They import, build their envs and model, then wait for :meth:`join`: call it first, so
        their start-up (seconds: a fresh interpreter importing torch) overlaps the main process's own set-up."""
        ctx = mp.get_context("spawn")
        self._dir = tempfile.mkdtemp(prefix="modrl-workers-")
        init = f"file://{Path(self._dir) / 'init'}"
        self._messages = ctx.Queue()
        self._orders = ctx.Queue()
        for rank in range(1, self.world):
            proc = ctx.Process(
                target=worker_main,
                args=(rank, init, self.config, self._messages, self._orders),
                name=f"modrl-train-worker-{rank}",
            )
            proc.start()
            self._procs.append(proc)

    def join(self, model: OnPolicyAlgorithm, checkpoint: Path | None) -> None:
        """Wait for the spawned workers, then train together: resuming ``checkpoint``'s worker states, or taking
        ``model``'s weights."""
        self._wait_ready()
        for _ in range(1, self.world):
            self._orders.put(None if checkpoint is None else str(checkpoint))
        init = f"file://{Path(str(self._dir)) / 'init'}"
        dist.init_process_group("gloo", init_method=init, rank=0, world_size=self.world, timeout=COLLECTIVE_TIMEOUT)
        with self.reporting():
            if checkpoint is None:
                broadcast_parameters(model.policy)
            dist.barrier()
        self._averager = GradientAverager(model.policy)

    def _wait_ready(self) -> None:
        ready: set[int] = set()
        waited = 0.0
        while len(ready) < self.world - 1:
            try:
                message = self._messages.get(timeout=0.2)
            except queue.Empty:
                waited += 0.2
                dead = [p for p in self._procs if p.exitcode is not None]
                if dead or waited > START_TIMEOUT_S:
                    raise self._failure() or EnvWorkerError(0, "training workers did not start") from None
                continue
            if message[0] == "error":
                raise self._as_error(message[1], message[2])
            ready.add(message[1])

    def command(self, name: str) -> None:
        """Send ``go``, ``stop``, ``capture`` or ``exit`` to every worker."""
        dist.broadcast_object_list([name], src=0)

    def capture(self) -> list[tuple[dict[str, torch.Tensor], dict[str, Any]]]:
        """Every worker's checkpoint state (its envs, SB3 rollout state and RNGs), in rank order."""
        with self.reporting():
            self.command("capture")
            states: list[Any] = [None] * self.world
            dist.gather_object(None, states, dst=0)
        return list(states[1:])

    def gather_rollouts(self) -> list[dict[str, Any]]:
        """The workers' finished episodes and routing of the rollout that just ended."""
        with self.reporting():
            summaries: list[Any] = [None] * self.world
            dist.gather_object(None, summaries, dst=0)
        return summaries[1:]

    @contextlib.contextmanager
    def reporting(self) -> Iterator[None]:
        """Turn a broken collective into the failed worker's own error (a NaN, an env failure, a crash)."""
        try:
            yield
        except (NonFiniteError, EnvWorkerError, CheckpointError):
            raise  # this process's own fault
        except Exception:
            failure = self._failure()
            if failure is not None:
                raise failure from None
            raise

    def _failure(self) -> BaseException | None:
        """A failed worker's report (waiting up to :data:`REPORT_TIMEOUT_S` for it), or that it died; ``None`` if no
        worker failed."""
        if self._messages is None:
            return None
        waited, dead_since = 0.0, None
        while waited < REPORT_TIMEOUT_S:
            try:
                message = self._messages.get(timeout=0.1)
            except queue.Empty:
                message = None
            if message is not None and message[0] == "error":
                return self._as_error(message[1], message[2])
            waited += 0.1
            dead = [(rank, p.exitcode) for rank, p in enumerate(self._procs, start=1) if p.exitcode is not None]
            if dead:
                dead_since = waited if dead_since is None else dead_since
                if waited - dead_since >= 0.5:  # dead with no report (killed, or exited without Python's cleanup)
                    rank, code = dead[0]
                    return EnvWorkerError(
                        shard(self.config, rank).start, f"training worker {rank} died (exit code {code})"
                    )
        return None

    def _as_error(self, rank: int, error: BaseException) -> BaseException:
        if isinstance(error, (NonFiniteError, EnvWorkerError, CheckpointError)):
            return error
        return EnvWorkerError(shard(self.config, rank).start, f"training worker {rank} failed: {error!r}")

    def finish(self, model: OnPolicyAlgorithm) -> None:
        """Tell the workers training is over, check they end with ``model``'s weights, and wait for them to exit.

        Raises:
            RuntimeError: A worker's weights differ from the main process's (the gradient averaging is broken).
        """
        with self.reporting():
            self.command("exit")
            digests: list[Any] = [None] * self.world
            dist.gather_object(weights_digest(model.policy), digests, dst=0)
        for proc in self._procs:
            proc.join(EXIT_TIMEOUT_S)
        differ = [rank for rank in range(1, self.world) if digests[rank] != digests[0]]
        if differ:
            raise RuntimeError(f"training workers {differ} ended with other weights than the main process (a bug)")

    def close(self) -> None:
        """Stop every worker still running (killed: they ignore SIGINT/SIGTERM) and leave the process group."""
        if self._averager is not None:
            self._averager.remove()
            self._averager = None
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
            proc.join(EXIT_TIMEOUT_S)
        self._procs = []
        if dist.is_initialized():
            dist.destroy_process_group()
        for channel in (self._messages, self._orders):
            if channel is not None:
                channel.close()
        self._messages = self._orders = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


class MergeWorkerRollouts(WorldFrames):
    """The main process's first callback: also adds the workers' episodes and routing at each rollout's end (before
    the callbacks that read them)."""

    def __init__(
        self, group: WorkerGroup, episodes: EpisodeStatsCallback, telemetry: TelemetryCallback, workers: int
    ) -> None:
        super().__init__(workers)
        self.group = group
        self.episodes = episodes
        self.telemetry = telemetry

    def _on_rollout_end(self) -> None:
        for summary in self.group.gather_rollouts():
            for info in summary["episodes"]:
                self.episodes.record(info)
                if "episode" in info:
                    self.model.ep_info_buffer.extend([info["episode"]])  # type: ignore[union-attr]
                if "is_success" in info:
                    self.model.ep_success_buffer.extend([info["is_success"]])  # type: ignore[union-attr]
            if summary["routing"] is not None:
                self.telemetry.add_routing(*summary["routing"])


class CommandWorkers(BaseCallback):
    """After :class:`CheckpointCallback` in the main process: tells the workers, at each rollout's start, to go on or
    to stop (the checkpoint callback has just checkpointed and stopped)."""

    def __init__(self, group: WorkerGroup, checkpointer: CheckpointCallback) -> None:
        super().__init__()
        self.group = group
        self.checkpointer = checkpointer

    def _on_rollout_start(self) -> None:
        with self.group.reporting():
            self.group.command("go" if self.checkpointer.stopped_at is None else "stop")

    def _on_step(self) -> bool:
        return True
