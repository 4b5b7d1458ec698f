"""What a continual run keeps on disk: commits (model checkpoint + rule state) and the record of R (``continual.json``).

A **commit** is a model checkpoint written by :func:`modrl.agents.common.training.save_model_checkpoint` followed by a
small checkpoint of the update rule's state and the run's position (stage, phase, stage start) that names the model
checkpoint's manifest digest. The second write commits the pair: a kill between the two leaves the previous pair
intact (both directories keep at least two checkpoints). Training commits live in ``checkpoints/`` +
``continual_state/``; the commit taken after a stage is consolidated lives in that stage's own directory, so it never
replaces the training checkpoint of the same step.

``continual.json`` is rewritten atomically after every evaluation, so an evaluated row of R is never lost.

:func:`load_continual_policy` rebuilds a run's policy outside the runner with its rule attached and restored, so
what acts is exactly what the run evaluated (freeze_grow's router module mask, PackNet's per-task view).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gymnasium import spaces
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy

from modrl._io import atomic_write_json, sha256_file
from modrl.agents.common.builders import build_policy, model_fingerprint
from modrl.agents.common.model_checkpoint import check_state_dict, save_model_checkpoint
from modrl.agents.common.run_layout import CHECKPOINTS
from modrl.agents.continual.config import ContinualConfig, load_continual_config
from modrl.agents.continual.parts import model_parts
from modrl.checkpoint import MANIFEST, Checkpoint, CheckpointError, list_checkpoints, load_checkpoint, step_dir_name
from modrl.checkpoint import fingerprint as digest
from modrl.checkpoint_writer import save_checkpoint
from modrl.config import to_dict
from modrl.runs import read_run_config
from modrl.safe_load import read_json
from modrl.updates import RuleState, UpdateRule, build_update_rule

log = logging.getLogger(__name__)

STATE_DIR = "continual_state"
STAGES_DIR = "stages"
RECORD = "continual.json"


class Phase(enum.Enum):
    """How far a stage had got when a commit was taken."""

    TRAINING = "training"
    CONSOLIDATED = "consolidated"


@dataclass(frozen=True)
class Commit:
    """A verified resume point: the model checkpoint, the rule state and where the run stood."""

    stage: int
    phase: Phase
    stage_start: int
    model: Checkpoint
    rule: RuleState
    extra: dict[str, Any]

    @property
    def order(self) -> tuple[int, int, int]:
        """Later commits sort higher: stage, then consolidated after training, then step."""
        return self.stage, int(self.phase is Phase.CONSOLIDATED), self.model.step


def continual_fingerprint(config: ContinualConfig, observation_space: spaces.Space, action_space: spaces.Space) -> str:
    """What a continual run's commits belong to: the model (agent, suite, spaces), the task sequence and the rule."""
    model = model_fingerprint(config.experiment(), observation_space, action_space)
    return digest({"model": model, "tasks": list(config.sequence.tasks), "rule": to_dict(config.rule)})


def stage_dir(run_dir: Path, stage: int, task: str) -> Path:
    """``run_dir/stages/<stage>-<task>``."""
    return run_dir / STAGES_DIR / f"{stage:02d}-{task}"


def commit_dirs(run_dir: Path, phase: Phase, stage: int, task: str) -> tuple[Path, Path]:
    """``(model checkpoints dir, state dir)`` of a commit of ``phase``."""
    if phase is Phase.TRAINING:
        return run_dir / CHECKPOINTS, run_dir / STATE_DIR
    base = stage_dir(run_dir, stage, task)
    return base / "checkpoint", base / "state"


def save_commit(
    model: OnPolicyAlgorithm,
    rule: UpdateRule,
    dirs: tuple[Path, Path],
    *,
    fingerprint: str,
    keep: int,
    stage: int,
    phase: Phase,
    stage_start: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the model checkpoint, then the rule state that commits it; returns the model checkpoint."""
    model_dir, state_dir = dirs
    path = save_model_checkpoint(model, model_dir, fingerprint=fingerprint, keep=keep)
    state = rule.state_dict()
    meta = {
        "stage": stage,
        "phase": phase.value,
        "stage_start": stage_start,
        "rule": state.meta,
        "extra": extra or {},
        "model_manifest_sha256": sha256_file(path / MANIFEST),
    }
    save_checkpoint(
        state_dir,
        step=model.num_timesteps,
        tensors={"rule": state.tensors},
        meta=meta,
        fingerprint=fingerprint,
        keep=keep + 1,
    )
    return path


def _latest_in(dirs: tuple[Path, Path], fingerprint: str) -> Commit | None:
    model_dir, state_dir = dirs
    for state_path in reversed(list_checkpoints(state_dir)):
        try:
            state = load_checkpoint(state_path, expected_fingerprint=fingerprint)
            model_path = model_dir / step_dir_name(state.step)
            if (
                not (model_path / MANIFEST).is_file()
                or sha256_file(model_path / MANIFEST) != state.meta["model_manifest_sha256"]
            ):
                raise CheckpointError(f"{model_path}: missing, or not the model checkpoint this state committed")
            model = load_checkpoint(model_path, expected_fingerprint=fingerprint)
        except Exception as exc:  # any failure to read a commit refuses it; the previous one is tried
            log.warning("skipping commit %s: %s", state_path, exc)
            continue
        meta = state.meta
        rule = RuleState(tensors=dict(state.tensors.get("rule", {})), meta=dict(meta["rule"]))
        return Commit(
            stage=int(meta["stage"]),
            phase=Phase(meta["phase"]),
            stage_start=int(meta["stage_start"]),
            model=model,
            rule=rule,
            extra=dict(meta.get("extra", {})),
        )
    return None


def latest_commit(run_dir: Path, tasks: list[str], fingerprint: str) -> Commit | None:
    """The most advanced verified commit of the run (training or consolidated), or ``None``."""
    candidates = [_latest_in(commit_dirs(run_dir, Phase.TRAINING, 0, ""), fingerprint)]
    for stage, task in enumerate(tasks):
        if stage_dir(run_dir, stage, task).is_dir():
            candidates.append(_latest_in(commit_dirs(run_dir, Phase.CONSOLIDATED, stage, task), fingerprint))
    found = [c for c in candidates if c is not None]
    return max(found, key=lambda c: c.order) if found else None


@dataclass
class ContinualRecord:
    """The contents of ``continual.json``.

    Attributes:
        tasks: Task names in training order.
        rule: The rule config (plain mapping).
        initial: Evaluation of every task before any training (``None`` until done).
        rows: ``rows[i]`` = per-task evaluations after stage ``i`` (``{"success", "return", "length"}`` lists).
        stages: Per-stage facts (task, steps, parameter counts, AUC, rule phase).
        reference_auc: Task name -> AUC of the from-scratch reference (when trained).
        metrics: :class:`modrl.continual.ContinualMetrics` as a mapping, once the run is complete.
    """

    tasks: list[str]
    rule: dict[str, Any]
    initial: dict[str, list[float]] | None = None
    rows: list[dict[str, list[float]]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    reference_auc: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None

    @property
    def matrix(self) -> list[list[float]]:
        """R so far: one row of success rates per evaluated stage."""
        return [row["success"] for row in self.rows]

    def to_json(self) -> dict[str, Any]:
        """The on-disk form: ``{"tasks", "R", ...}`` (what :func:`modrl.report.plots.plot_r_matrix` readers need)."""
        return {
            "tasks": self.tasks,
            "R": self.matrix,
            "complete": len(self.rows) == len(self.tasks),
            "R_initial": self.initial["success"] if self.initial else None,
            "returns": [row["return"] for row in self.rows],
            "rule": self.rule,
            "initial": self.initial,
            "rows": self.rows,
            "stages": self.stages,
            "reference_auc": self.reference_auc,
            "metrics": self.metrics,
        }

    def save(self, run_dir: Path) -> None:
        """Atomically rewrite ``run_dir/continual.json``."""
        atomic_write_json(run_dir / RECORD, self.to_json())

    @classmethod
    def load(cls, run_dir: Path, *, tasks: list[str], rule: dict[str, Any]) -> ContinualRecord:
        """Read ``continual.json`` (a fresh record if absent); refuses one written for other tasks."""
        path = run_dir / RECORD
        if not path.is_file():
            return cls(tasks=list(tasks), rule=dict(rule))
        data = read_json(path)
        if data["tasks"] != list(tasks):
            raise ValueError(f"{path}: recorded tasks {data['tasks']} differ from the config's {list(tasks)}")
        return cls(
            tasks=list(tasks),
            rule=dict(rule),
            initial=data.get("initial"),
            rows=list(data["rows"]),
            stages=list(data["stages"]),
            reference_auc=dict(data.get("reference_auc") or {}),
            metrics=data.get("metrics"),
        )


@dataclass(frozen=True)
class ContinualPolicy:
    """A continual run's policy as it acted at a commit.

    Attributes:
        config: The run's config.
        policy: The policy with the commit's weights, in evaluation mode.
        rule: The update rule attached to ``policy`` with the commit's state (freeze_grow's router mask applied);
            evaluate task ``t`` inside ``rule.acting_as(t)`` when :attr:`UpdateRule.acts_per_task`.
        commit: The commit loaded.
    """

    config: ContinualConfig
    policy: ActorCriticPolicy
    rule: UpdateRule
    commit: Commit


def load_continual_policy(run_dir: Path, *, stage: int | None = None, device: str = "cpu") -> ContinualPolicy:
    """Rebuild a ``modrl continual`` run's policy (on ``device``) and rule from its ``config.yaml`` and a verified
    commit.

    Args:
        run_dir: The continual run directory.
        stage: Load the commit taken when this stage (0-based) was consolidated, i.e. the policy its row of R was
            evaluated with; ``None`` loads the run's most advanced commit.

    Raises:
        FileNotFoundError: No verified commit (of that stage).
        modrl.checkpoint.CheckpointError: The commit's weights do not fit the config's architecture.
        modrl.config.ConfigError: The config is not a valid continual config.
    """
    config = load_continual_config(read_run_config(run_dir))
    tasks = list(config.sequence.tasks)
    policy, observation_space, action_space = build_policy(config.experiment(), device=device)
    key = continual_fingerprint(config, observation_space, action_space)
    if stage is None:
        commit = latest_commit(run_dir, tasks, key)
    elif not 0 <= stage < len(tasks):
        raise ValueError(f"stage must be in [0, {len(tasks)}) for the {len(tasks)} tasks of {run_dir}, got {stage}")
    else:
        commit = _latest_in(commit_dirs(run_dir, Phase.CONSOLIDATED, stage, tasks[stage]), key)
    if commit is None:
        which = "" if stage is None else f" of stage {stage} ({tasks[stage]})"
        raise FileNotFoundError(f"{run_dir}: no complete continual checkpoint{which} to load")
    rule = build_update_rule(config.rule)
    rule.attach(model_parts(policy))
    weights = commit.model.tensors.get("policy", {})
    check_state_dict(policy.state_dict(), weights, commit.model.path)
    policy.load_state_dict(weights, strict=True)
    rule.load_state_dict(commit.rule)  # after the weights: re-applies freezing and the router's module mask
    policy.set_training_mode(False)
    return ContinualPolicy(config=config, policy=policy, rule=rule, commit=commit)
