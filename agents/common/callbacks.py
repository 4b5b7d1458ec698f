"""SB3 callbacks: per-task episode stats, routing telemetry, progress lines, checkpoints and graceful stops.

Each callback does one job; ``modrl.agents.common.training`` combines them in a ``CallbackList``. They only read what
SB3 hands every callback (``self.locals["dones"]``, ``self.locals["infos"]``) and what the modular policy records
after its forward pass (``last_weights`` / ``last_task_ids``), so nothing here changes how SB3 trains.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from modrl._io import atomic_write_text
from modrl.agents.common.policies import ModularActorCriticPolicy
from modrl.faults import fault_point
from modrl.safe_load import InputError, loads_json
from modrl.telemetry import RoutingStats, TelemetryWriter

log = logging.getLogger(__name__)
progress_log = logging.getLogger("modrl.progress")


class EpisodeStatsCallback(BaseCallback):
    """Keeps the last ``window`` episodes' success and return per task.

    The task of a finished episode is read from ``info["task"]`` (set on every step by
    :class:`modrl.envs.SuccessInfo`), so it holds whether an env slot runs one task or samples a task per episode;
    an env that names no task counts its episodes for ``default_task`` (e.g. a skill's calling-state episodes).
    """

    def __init__(self, task_names: Sequence[str], *, window: int = 100, default_task: str | None = None) -> None:
        super().__init__()
        self.task_names = tuple(task_names)
        self.default_task = default_task
        self._index = {name: i for i, name in enumerate(self.task_names)}
        self.successes = [deque[float](maxlen=window) for _ in task_names]
        self.returns = [deque[float](maxlen=window) for _ in task_names]
        self.episodes = 0

    def _on_step(self) -> bool:
        dones = self.locals["dones"]
        for env_index in np.flatnonzero(dones):
            self.record(self.locals["infos"][env_index])
        return True

    def record(self, info: Mapping[str, Any]) -> None:
        """Count one finished episode from its last ``info`` (``task``, ``is_success``, Monitor's ``episode``)."""
        task = self._index[info["task"] if self.default_task is None else info.get("task", self.default_task)]
        self.successes[task].append(float(bool(info.get("is_success", False))))
        if "episode" in info:
            self.returns[task].append(float(info["episode"]["r"]))
        self.episodes += 1

    def success_rates(self) -> dict[str, float]:
        """Success rate per task over the window (tasks without a finished episode yet are left out)."""
        return {name: float(np.mean(s)) for name, s in zip(self.task_names, self.successes, strict=True) if s}

    def mean_return(self) -> float | None:
        values = [r for task_returns in self.returns for r in task_returns]
        return float(np.mean(values)) if values else None

    def state_dict(self) -> dict[str, Any]:
        """The windows and the episode count, JSON-able (for exact resume)."""
        return {
            "tasks": list(self.task_names),
            "successes": [list(s) for s in self.successes],
            "returns": [list(r) for r in self.returns],
            "episodes": self.episodes,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; the task list must match.

        Raises:
            ValueError: Different tasks.
        """
        if list(state["tasks"]) != list(self.task_names):
            raise ValueError(f"episode stats are for tasks {state['tasks']}, not {list(self.task_names)}")
        for window, values in zip(self.successes, state["successes"], strict=True):
            window.clear()
            window.extend(float(v) for v in values)
        for window, values in zip(self.returns, state["returns"], strict=True):
            window.clear()
            window.extend(float(v) for v in values)
        self.episodes = int(state["episodes"])


class TelemetryCallback(BaseCallback):
    """Writes modrl's TensorBoard telemetry once per rollout (README, "TensorBoard telemetry").

    Routing statistics are accumulated on every env step from the policy's recorded routing; per-task success
    comes from :class:`EpisodeStatsCallback`. Also tells the router how far training is (temperature schedules).

    The per-task routing scalars (``modrl/task/...``; T x (K + 2) of them, ~25 ms for 48 tasks x 4 modules) are
    written on the first rollout, on every rollout that crosses a multiple of ``task_every`` frames, and on the last
    one; everything else on every rollout. The choice depends on the step alone, so a resumed run writes the same
    scalars at the same steps as a run in one go.
    """

    def __init__(
        self,
        writer: TelemetryWriter,
        episodes: EpisodeStatsCallback,
        *,
        total_timesteps: int,
        task_every: int = 10_000,
        workers: int = 1,
    ) -> None:
        super().__init__()
        if task_every < 1:
            raise ValueError(f"task_every must be >= 1 frame, got {task_every}")
        self.writer = writer
        self.episodes = episodes
        self.total_timesteps = total_timesteps
        self.task_every = task_every
        self.workers = workers  # processes training the run together; this one steps 1/workers of the frames
        self.stats: RoutingStats | None = None
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _init_callback(self) -> None:
        policy = self.model.policy
        if isinstance(policy, ModularActorCriticPolicy):
            self.stats = RoutingStats(policy.modular.network.library.names, self.episodes.task_names)

    def _on_rollout_start(self) -> None:
        policy = self.model.policy
        if isinstance(policy, ModularActorCriticPolicy):
            policy.modular.network.router.set_progress(min(1.0, self.num_timesteps / self.total_timesteps))

    def _on_step(self) -> bool:
        # Keep this cheap: it runs every env step. Batches are folded into the statistics at the rollout's end.
        policy = self.model.policy
        if self.stats is not None and isinstance(policy, ModularActorCriticPolicy):
            modular = policy.modular
            if modular.last_weights is not None and modular.last_task_ids is not None:
                self._pending.append((modular.last_weights, modular.last_task_ids))
        return True

    def add_routing(self, weights: torch.Tensor, task_ids: torch.Tensor) -> None:
        """Count routing recorded elsewhere in this rollout (a data-parallel training worker's slots)."""
        if self.stats is not None:
            self._pending.append((weights, task_ids))

    def _on_rollout_end(self) -> None:
        step = self.num_timesteps
        if self.stats is not None and self._pending:
            self.stats.update(torch.cat([w for w, _ in self._pending]), torch.cat([t for _, t in self._pending]))
            self._pending.clear()
        if self.stats is not None:
            summary = self.stats.summary()
            if summary is not None:
                self.writer.log_routing(
                    summary, step, weights_sample=self.stats.weights_sample(), per_task=self._per_task_due(step)
                )
            policy = self.model.policy
            assert isinstance(policy, ModularActorCriticPolicy)
            self.writer.log_scalar("modrl/router/aux_loss", float(policy.modular.last_aux_loss), step)
            self.stats.reset()
        self.writer.log_success(self.episodes.success_rates(), step)
        trainable = sum(p.numel() for p in self.model.policy.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.model.policy.parameters() if not p.requires_grad)
        self.writer.log_param_counts(trainable=trainable, frozen=frozen, step=step)
        self.writer.flush()

    def _per_task_due(self, step: int) -> bool:
        rollout = int(getattr(self.model, "n_steps", 1)) * int(self.model.n_envs) * self.workers
        previous = step - rollout
        return previous <= 0 or step >= self.total_timesteps or step // self.task_every != previous // self.task_every

    def _on_training_end(self) -> None:
        self.writer.flush()


class MetricsLogCallback(BaseCallback):
    """Appends one JSON line per rollout to ``path`` (``run_dir/metrics.jsonl``): the learning curve reports read.

    Fields: ``step``, ``wall_s`` (training seconds, summed over resumed segments), ``fps``, ``success``
    ``{task: rate}`` over the recent episode window, ``success_mean`` (mean over tasks, null before any episode
    ends) and ``return_mean``. Each line is flushed as written; :func:`truncate_metrics` drops lines past a
    checkpoint before a resume so no step appears twice.
    """

    def __init__(self, path: Path, episodes: EpisodeStatsCallback) -> None:
        super().__init__()
        self.path = path
        self.episodes = episodes
        self._wall_offset = 0.0
        self._start = 0.0
        self._last_time = 0.0
        self._last_step = 0

    def _on_training_start(self) -> None:
        self._wall_offset = _last_wall_time(self.path)
        self._start = self._last_time = time.monotonic()
        self._last_step = self.num_timesteps

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        now = time.monotonic()
        success = self.episodes.success_rates()
        record = {
            "step": self.num_timesteps,
            "wall_s": round(self._wall_offset + now - self._start, 3),
            "fps": round((self.num_timesteps - self._last_step) / max(now - self._last_time, 1e-9), 1),
            "success": success,
            "success_mean": float(np.mean(list(success.values()))) if success else None,
            "return_mean": self.episodes.mean_return(),
        }
        self._last_time, self._last_step = now, self.num_timesteps
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
        fault_point("rollout-end")


def _last_wall_time(path: Path) -> float:
    if not path.exists():
        return 0.0
    lines = path.read_text(encoding="utf-8").splitlines()
    return float(json.loads(lines[-1])["wall_s"]) if lines else 0.0


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only the lines of ``metrics.jsonl`` up to ``step`` (inclusive); a torn last line is dropped too."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = loads_json(line, str(path))
        except InputError:
            break  # a line cut by a kill (or not ours): nothing after it can be trusted either
        if record["step"] > step:
            break
        kept.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in kept))


class ProgressCallback(BaseCallback):
    """Logs a progress line (``modrl.progress`` logger) at most every ``every_s`` seconds, at rollout ends."""

    def __init__(self, episodes: EpisodeStatsCallback, *, total_timesteps: int, every_s: float = 10.0) -> None:
        super().__init__()
        self.episodes = episodes
        self.total_timesteps = total_timesteps
        self.every_s = every_s
        self._start_time = 0.0
        self._start_step = 0
        self._last_log = 0.0
        self._last_step = -1

    def _on_training_start(self) -> None:
        self._start_time = self._last_log = time.monotonic()
        self._start_step = self.num_timesteps

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        now = time.monotonic()
        if now - self._last_log >= self.every_s:
            self._last_log = now
            self._log(now)

    def _on_training_end(self) -> None:
        if self.num_timesteps != self._last_step:  # the last rollout's line, unless it was just printed
            self._log(time.monotonic())

    def _log(self, now: float) -> None:
        self._last_step = self.num_timesteps
        line = self.line(now)
        over = self.num_timesteps - self.total_timesteps
        if over > 0:  # SB3 collects whole rollouts, so the last one may end past the budget
            line += f" | {over} steps past the budget (whole rollouts)"
        progress_log.info(line)

    def line(self, now: float) -> str:
        """One progress line: percentage, steps, frames/s, ETA, mean return and success per task."""
        done = self.num_timesteps
        fps = (done - self._start_step) / max(now - self._start_time, 1e-9)
        eta = max(self.total_timesteps - done, 0) / fps if fps > 0 else float("inf")
        mean_return = self.episodes.mean_return()
        success = _success_summary(self.episodes.success_rates())
        return (
            f"[{100 * min(done / max(self.total_timesteps, 1), 1):5.1f}%] step {done}/{self.total_timesteps} | "
            f"{fps:.0f} fps | eta {_duration(eta)} | return {'-' if mean_return is None else f'{mean_return:.2f}'} | "
            f"success: {success or '-'}"
        )


#: Above this many tasks the progress line summarises success (mean, worst, best) instead of listing every task.
MAX_TASKS_LISTED = 8


def _success_summary(rates: dict[str, float]) -> str:
    """``"task 0.50 ..."`` for a few tasks; ``"mean 0.41 over 36 tasks (worst t 0.00, best u 0.90)"`` for many."""
    if len(rates) <= MAX_TASKS_LISTED:
        return " ".join(f"{k} {v:.2f}" for k, v in rates.items())
    worst, best = min(rates, key=rates.__getitem__), max(rates, key=rates.__getitem__)
    mean = sum(rates.values()) / len(rates)
    return f"mean {mean:.2f} over {len(rates)} tasks (worst {worst} {rates[worst]:.2f}, best {best} {rates[best]:.2f})"


class StopRequest:
    """Set by a signal handler (or by :class:`SuccessStopCallback`, ``goal_reached``); :class:`CheckpointCallback`
    then stops ``learn`` at the next rollout boundary."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.goal_reached = False

    def __call__(self, signum: int, frame: object) -> None:
        self.signal = signum

    @property
    def requested(self) -> bool:
        return self.signal is not None


class SuccessStopCallback(BaseCallback):
    """``train.stop_success``: ends training once the sampled training success has reached ``threshold``.

    Checked at every rollout's end on :class:`EpisodeStatsCallback`'s windows (the last 100 episodes per task): the
    mean over tasks of the success rates must be ``>= threshold`` with at least ``min_episodes`` finished episodes of
    every task. It then sets ``stop.goal_reached``, and :class:`CheckpointCallback` ends training with a checkpoint at
    the next rollout start (after that rollout's update), like a stop on a signal but with the run completed. The
    decision reads only the (checkpointed) windows, so a resumed run stops at the same step as a run in one go.
    """

    def __init__(
        self, episodes: EpisodeStatsCallback, threshold: float, stop: StopRequest, *, min_episodes: int = 20
    ) -> None:
        super().__init__()
        self.episodes = episodes
        self.threshold = threshold
        self.stop = stop
        self.min_episodes = min_episodes
        self.reached_at: int | None = None

    def reached(self) -> bool:
        """Every task has ``min_episodes`` in its window and the mean success rate is at least the threshold."""
        if any(len(window) < self.min_episodes for window in self.episodes.successes):
            return False
        rates = self.episodes.success_rates()
        return sum(rates.values()) / len(rates) >= self.threshold

    def _check(self) -> None:
        if self.reached_at is None and self.reached():
            self.reached_at = self.num_timesteps
            self.stop.goal_reached = True
            log.info(
                "sampled training success reached train.stop_success=%g at step %d: stopping",
                self.threshold,
                self.num_timesteps,
            )

    def _on_training_start(self) -> None:
        self._check()  # a resumed run that had already reached it stops at once

    def _on_rollout_end(self) -> None:
        self._check()

    def _on_step(self) -> bool:
        return True


class CheckpointCallback(BaseCallback):
    """Calls ``save`` at the start of a rollout once ``every`` steps have passed since the last periodic checkpoint,
    and stops training there once ``stop`` is requested.

    A rollout start is the one consistent point (the last update is applied, no partial rollout is pending), so a
    stop requested mid-rollout lets the rollout and its update finish, checkpoints at the next rollout start
    (``stopped_at``) and only then ends ``learn`` (SB3 can only stop from ``on_step``, so one env step is taken
    after the checkpoint and discarded). Resuming from that checkpoint is exact (:mod:`modrl.agents.common.env_state`).
    """

    def __init__(self, save: Callable[[], object], *, every: int, stop: StopRequest | None = None) -> None:
        super().__init__()
        self.save = save
        self.every = every
        self.stop = stop if stop is not None else StopRequest()
        self.stopped_at: int | None = None
        self.stop_checkpoint: object = None
        self._last: int | None = None

    def _on_training_start(self) -> None:
        if self._last is None:
            self._last = self.num_timesteps

    def _on_rollout_start(self) -> None:
        assert self._last is not None
        if self.stop.requested or self.stop.goal_reached:
            self.stop_checkpoint = self.save()
            self.stopped_at = self.num_timesteps
        elif self.num_timesteps - self._last >= self.every:
            self._last = self.num_timesteps  # before saving: the checkpoint records itself as the last one
            self.save()

    def _on_step(self) -> bool:
        return self.stopped_at is None

    def state_dict(self) -> dict[str, Any]:
        """When the last periodic checkpoint was taken (so a resumed run checkpoints at the same steps)."""
        return {"last": self._last}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._last = None if state["last"] is None else int(state["last"])


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
