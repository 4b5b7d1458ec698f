"""Continual training: one SB3 agent, tasks one after another, a local-update rule, R after every stage.

Stage ``i`` trains ``sequence.tasks[i]`` for ``sequence.steps_per_task`` steps on the same model (the rule decides
what may change), then every task of the sequence is evaluated deterministically on fixed seeds (the same for every
stage, disjoint from training seeds), which fills row ``i`` of R. The optimiser state is reset at every stage start,
for every rule alike (stale Adam moments would otherwise move what the new stage does not train).

Run directory: ``continual.json`` (R, metrics, per-stage facts; :mod:`modrl.agents.continual.store`), ``R.md``,
``R.png`` (at the end), ``stages/<i>-<task>/metrics.jsonl`` (learning curve of the stage), commits in
``checkpoints/`` + ``continual_state/`` and ``stages/*/``, ``reference/<task>.json`` (from-scratch AUCs),
``tb/`` (TensorBoard: per-rollout telemetry, ``modrl/continual/*`` scalars and the R heatmap image).
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import CallbackList
from torch.utils.tensorboard import SummaryWriter

from modrl.agents.common.builders import build_model, env_options
from modrl.agents.common.callbacks import (
    CheckpointCallback,
    EpisodeStatsCallback,
    MetricsLogCallback,
    ProgressCallback,
    StopRequest,
    TelemetryCallback,
    truncate_metrics,
)
from modrl.agents.common.evaluation import run_episode, task_result
from modrl.agents.common.policies import ModularActorCriticPolicy
from modrl.agents.common.training import TENSORBOARD, restore_model_checkpoint, stop_on_signals
from modrl.agents.continual.config import ContinualConfig
from modrl.agents.continual.parts import (
    RuleProgressCallback,
    model_parts,
    sample_log_likelihoods,
    stage_env,
    success_curve,
)
from modrl.agents.continual.store import (
    Commit,
    ContinualRecord,
    Phase,
    commit_dirs,
    continual_fingerprint,
    latest_commit,
    save_commit,
    stage_dir,
)
from modrl.config import to_dict
from modrl.continual import area_under_curve, continual_metrics, format_r_table
from modrl.envs import get_suite, make_suite_env
from modrl.report.plots import figure_rgb, plot_r_matrix, r_matrix_figure
from modrl.seeds import EVAL_SEED_BASE
from modrl.telemetry import TelemetryWriter
from modrl.updates import ConsolidationData, UpdateRule, attach_penalty, build_update_rule

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
REFERENCE_DIR = "reference"


class ContinualStatus(enum.Enum):
    """How :func:`run_continual` ended: every stage done, or stopped by a signal (resumable)."""

    COMPLETED = "completed"
    INTERRUPTED = "interrupted"


class _Entry(enum.Enum):
    """How a stage is entered: from its start, from a mid-stage checkpoint, or only to evaluate it."""

    BEGIN = "begin"
    CONTINUE = "continue"
    EVALUATE = "evaluate"


@dataclass(frozen=True)
class ContinualOutcome:
    """What :func:`run_continual` did.

    Attributes:
        status: How it ended. stages_done: Stages trained and evaluated so far. steps: Environment steps so far.
        resumed_from: The stage a resumed run continued at (``None``: a fresh run). signal: The signal that
            interrupted it, if any.
    """

    status: ContinualStatus
    stages_done: int
    steps: int
    resumed_from: int | None
    signal: int | None = None


def run_continual(
    config: ContinualConfig, run_dir: Path, *, resume: bool = False, device: str = "cpu"
) -> ContinualOutcome:
    """Run (or, with ``resume``, continue) the continual run ``config`` in ``run_dir`` (created by the caller), its
    models on ``device``."""
    torch.set_num_threads(config.torch_threads)
    runner = _Runner(config, Path(run_dir), device=device)
    try:
        return runner.run(resume)
    finally:
        runner.close()


class _Runner:
    def __init__(self, config: ContinualConfig, run_dir: Path, *, device: str = "cpu") -> None:
        self.config = config
        self.device = device
        self.run_dir = run_dir
        self.suite = get_suite(config.env.suite)
        self.names = list(config.sequence.tasks)
        self.task_ids = [self.suite.task_index(name) for name in self.names]
        self.experiment = config.experiment()
        self.env_options = env_options(self.experiment)
        venv = self._env(0)
        self.model = build_model(self.experiment, venv, device=device)
        self.fingerprint = continual_fingerprint(config, venv.observation_space, venv.action_space)
        self.rule: UpdateRule = build_update_rule(config.rule)
        self.rule.attach(model_parts(self.model.policy))
        self.penalty_hook = attach_penalty(self.model.policy.action_net, self.rule)
        self.record = ContinualRecord.load(run_dir, tasks=self.names, rule=to_dict(config.rule))
        self.request = StopRequest()
        self.stage_start = 0
        self.pending_params: dict[str, int] | None = None
        self.writer: TelemetryWriter | None = None

    def _env(self, stage: int) -> Any:
        c = self.config
        return stage_env(
            self.suite,
            self.task_ids[stage],
            n_envs=c.env.n_envs,
            seed=c.seed,
            stage=stage,
            options=self.env_options,
            engine=c.env.engine,
        )

    def close(self) -> None:
        self.penalty_hook.remove()
        if self.writer is not None:
            self.writer.close()
        if self.model.env is not None:
            self.model.env.close()

    # ---- the sequence -----------------------------------------------------------------------------------------
    def run(self, resume: bool) -> ContinualOutcome:
        commit = latest_commit(self.run_dir, self.names, self.fingerprint) if resume else None
        first, entry = self._restore(commit)
        resumed_from = commit.model.step if commit is not None else None
        purge = (resumed_from or 0) + 1 if resume else None  # drop events logged after the commit resumed from
        self.writer = TelemetryWriter(self.run_dir / TENSORBOARD, purge_step=purge)
        if self.record.initial is None:
            self.record.initial = self._evaluate()
            self.record.save(self.run_dir)
        with stop_on_signals(self.request):
            for stage in range(first, len(self.names)):
                if not self._stage(stage, entry if stage == first else _Entry.BEGIN):
                    return self._outcome(ContinualStatus.INTERRUPTED, resumed_from)
            if self.config.sequence.reference == "scratch" and not self._references():
                return self._outcome(ContinualStatus.INTERRUPTED, resumed_from)
        self._finish()
        return self._outcome(ContinualStatus.COMPLETED, resumed_from)

    def _outcome(self, status: ContinualStatus, resumed_from: int | None) -> ContinualOutcome:
        return ContinualOutcome(
            status, len(self.record.rows), self.model.num_timesteps, resumed_from, self.request.signal
        )

    def _restore(self, commit: Commit | None) -> tuple[int, _Entry]:
        rows = len(self.record.rows)
        if commit is None:
            if rows:
                raise RuntimeError(f"{self.run_dir}: R has {rows} evaluated row(s) but no checkpoint to continue from")
            return 0, _Entry.BEGIN
        evaluated = commit.stage + (1 if commit.phase is Phase.CONSOLIDATED else 0)
        if rows > evaluated:
            raise RuntimeError(
                f"{self.run_dir}: R has {rows} rows but the newest checkpoint is of stage {commit.stage}"
            )
        restore_model_checkpoint(self.model, commit.model)
        self.rule.load_state_dict(commit.rule)
        self.stage_start = commit.stage_start
        self.pending_params = commit.extra.get("params")
        log.info("resuming at stage %d (%s), step %d", commit.stage, commit.phase.value, commit.model.step)
        if commit.phase is Phase.TRAINING:
            return commit.stage, _Entry.CONTINUE
        if rows > commit.stage:
            return commit.stage + 1, _Entry.BEGIN
        return commit.stage, _Entry.EVALUATE

    def _stage(self, stage: int, entry: _Entry) -> bool:
        """Train, consolidate and evaluate one stage; ``False`` if a stop was requested."""
        task, name = self.task_ids[stage], self.names[stage]
        if entry is _Entry.BEGIN:
            self.stage_start = self.model.num_timesteps
            self.rule.begin_stage(stage, task)
            self.model.policy.optimizer.state.clear()
        if entry is not _Entry.EVALUATE:
            if not self._train(stage, resumed=entry is _Entry.CONTINUE):
                return False
            self._commit(stage, Phase.TRAINING)
            self.pending_params = self._param_counts()
            log.info(
                "[continual] stage %d/%d (%s): consolidating with rule %s",
                stage + 1,
                len(self.names),
                name,
                self.config.rule.kind,
            )
            seed = self.config.seed + 7919 * (stage + 1)
            data = ConsolidationData(
                lambda n: sample_log_likelihoods(
                    self.model.policy, self.suite, task, n=n, seed=seed, options=self.env_options
                )
            )
            self.rule.end_stage(data)
            self._commit(stage, Phase.CONSOLIDATED, extra={"params": self.pending_params})
        self._record_row(stage)
        return True

    def _commit(self, stage: int, phase: Phase, extra: dict[str, Any] | None = None) -> Path:
        return save_commit(
            self.model,
            self.rule,
            commit_dirs(self.run_dir, phase, stage, self.names[stage]),
            fingerprint=self.fingerprint,
            keep=self.config.sequence.keep_checkpoints,
            stage=stage,
            phase=phase,
            stage_start=self.stage_start,
            extra=extra,
        )

    def _param_counts(self) -> dict[str, int]:
        counts = self.rule.parameter_counts()
        previous = self.record.stages[-1]["params"]["active"] if self.record.stages else 0
        return {
            "trainable": counts.trainable,
            "frozen": counts.frozen,
            "active": counts.active,
            "added": counts.active - previous,
        }

    # ---- training ---------------------------------------------------------------------------------------------
    def _train(self, stage: int, *, resumed: bool) -> bool:
        budget = self.config.sequence.steps_per_task
        end = self.stage_start + budget
        name = self.names[stage]
        directory = stage_dir(self.run_dir, stage, name)
        directory.mkdir(parents=True, exist_ok=True)
        truncate_metrics(directory / METRICS, self.model.num_timesteps)
        previous = self.model.env
        self.model.set_env(self._env(stage))
        if previous is not None:
            previous.close()
        episodes = EpisodeStatsCallback(self.suite.task_names)
        progress = RuleProgressCallback(self.rule, episodes, task=name, start=self.stage_start, budget=budget)
        assert self.writer is not None
        # Periodic commits at rollout starts; a stop request commits there too and ends learn().
        checkpointer = CheckpointCallback(
            lambda: self._commit(stage, Phase.TRAINING), every=self.config.sequence.checkpoint_every, stop=self.request
        )
        callbacks = CallbackList(
            [
                episodes,
                TelemetryCallback(self.writer, episodes, total_timesteps=budget * len(self.names)),
                MetricsLogCallback(directory / METRICS, episodes),
                ProgressCallback(episodes, total_timesteps=end),
                progress,
                checkpointer,
            ]
        )
        remaining = end - self.model.num_timesteps
        log.info(
            "[continual] stage %d/%d (%s, index %d): %s at step %d, %d frames to go in this stage",
            stage + 1,
            len(self.names),
            name,
            stage,
            "continuing" if resumed else "training",
            self.model.num_timesteps,
            max(0, remaining),
        )
        if remaining > 0:
            self.model.learn(remaining, callback=callbacks, reset_num_timesteps=False)
        if checkpointer.stopped_at is not None:  # committed at the rollout start where it stopped
            return False
        if self.request.requested:  # asked to stop after the stage's last rollout began
            self._commit(stage, Phase.TRAINING)
            return False
        if remaining > 0:
            self.rule.after_update(progress.progress())  # the stage's last update
        return True

    # ---- evaluation -------------------------------------------------------------------------------------------
    def _evaluate(self) -> dict[str, list[float]]:
        """Every task of the sequence, deterministic, seeds ``EVAL_SEED_BASE + k``, acting as the rule says."""
        policy = self.model.policy
        modular = policy.modular if isinstance(policy, ModularActorCriticPolicy) else None
        policy.set_training_mode(False)
        out: dict[str, list[float]] = {"success": [], "return": [], "length": []}
        for task, name in zip(self.task_ids, self.names, strict=True):
            env = make_suite_env(self.suite, task, **self.env_options)
            with self.rule.acting_as(task):
                data = [
                    run_episode(env, policy, modular, EVAL_SEED_BASE + k, True)
                    for k in range(self.config.sequence.eval_episodes)
                ]
            env.close()
            result = task_result(name, "train", data)
            out["success"].append(result.success_rate)
            out["return"].append(result.mean_return)
            out["length"].append(result.mean_length)
        return out

    def _record_row(self, stage: int) -> None:
        row = self._evaluate()
        name = self.names[stage]
        records = _read_metrics(stage_dir(self.run_dir, stage, name) / METRICS)
        steps, values = success_curve(records, name)
        budget = self.config.sequence.steps_per_task
        rule_meta = self.rule.state_dict().meta
        self.record.rows.append(row)
        self.record.stages.append(
            {
                "task": name,
                "start_step": self.stage_start,
                "end_step": self.model.num_timesteps,
                "params": self.pending_params,
                "auc": area_under_curve(steps, values, start=self.stage_start, end=self.stage_start + budget),
                "rule_phase": rule_meta.get("phase"),
            }
        )
        self.record.save(self.run_dir)
        (self.run_dir / "R.md").write_text(_table(self.record) + "\n", encoding="utf-8")
        log.info("after stage %d (%s):\n%s", stage, name, _table(self.record))
        self._log_row(stage, row)

    def _log_row(self, stage: int, row: dict[str, list[float]]) -> None:
        assert self.writer is not None
        step = self.model.num_timesteps
        for name, value in zip(self.names, row["success"], strict=True):
            self.writer.log_scalar(f"modrl/continual/success/{name}", value, step)
        self.writer.log_scalar("modrl/continual/stage", stage, step)
        self.writer.flush()
        matrix = np.asarray(self.record.matrix, dtype=np.float64)[: len(self.record.rows)]
        title = f"R after stage {stage} ({self.names[stage]}): success per task"
        image = SummaryWriter(str(self.run_dir / TENSORBOARD))
        image.add_image(
            "modrl/continual/R", figure_rgb(r_matrix_figure(matrix, self.names, title=title)), stage, dataformats="HWC"
        )
        image.close()

    # ---- reference and summary --------------------------------------------------------------------------------
    def _references(self) -> bool:
        """Train every task alone from scratch (same seed and budget) for forward transfer; ``False`` if stopped."""
        from modrl.agents.continual.reference import ReferenceCache, train_reference

        directory = self.config.sequence.reference_dir
        cache = ReferenceCache(directory) if directory is not None else None
        for stage, name in enumerate(self.names):
            if name in self.record.reference_auc:
                continue
            auc = cache.get(self.config, stage) if cache is not None else None
            if auc is not None:
                log.info("reference of %s (stage %d) from the cache %s: AUC %.3f", name, stage, directory, auc)
            else:
                auc = train_reference(
                    self.config, stage, self.run_dir / REFERENCE_DIR / name, self.request, device=self.device
                )
                if auc is None:
                    return False
                if cache is not None:
                    cache.put(self.config, stage, auc, self.config.sequence.steps_per_task)
            self.record.reference_auc[name] = auc
            self.record.save(self.run_dir)
        return True

    def _finish(self) -> None:
        auc = [s["auc"] for s in self.record.stages]
        reference = [self.record.reference_auc[n] for n in self.names] if self.record.reference_auc else None
        metrics = continual_metrics(self.record.matrix, auc=auc, auc_reference=reference)
        self.record.metrics = metrics.to_dict()
        self.record.save(self.run_dir)
        plot_r_matrix(
            self.record.matrix,
            self.names,
            self.run_dir / "R.png",
            title=f"R ({self.config.rule.kind}, seed {self.config.seed})",
        )
        assert self.writer is not None
        for key in ("average_forgetting", "backward_transfer", "forward_transfer", "average_success"):
            value = self.record.metrics.get(key)
            if value is not None:
                self.writer.log_scalar(f"modrl/continual/{key}", value, self.model.num_timesteps)


def _read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _table(record: ContinualRecord) -> str:
    initial = record.initial["success"] if record.initial else None
    return format_r_table(record.matrix, record.tasks, initial=initial)
