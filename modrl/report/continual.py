"""Continual runs in reports: ``continual.json`` as typed records, and finding and grouping ``modrl continual`` runs.

A continual run directory (made by ``modrl continual``) holds ``config.yaml`` (the continual config, with a
``rule`` section), ``meta.json`` and ``continual.json``: ``{"tasks", "R", "R_initial", "rule", "stages",
"reference_auc", ...}`` with one row of ``R`` per evaluated stage (fewer rows than tasks while the run is in
progress). Metrics are recomputed here from ``R`` and the stages' AUCs with :mod:`modrl.continual`, so the report
never depends on a summary the run may not have written yet.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modrl.continual import ContinualMetrics, continual_metrics
from modrl.report.files import ReportError, read_json_object

CONTINUAL_FILE = "continual.json"
CONFIG_FILE = "config.yaml"
#: How deep below a directory ``modrl report`` looks for continual runs (``runs/continual/<run>`` is depth 1).
SEARCH_DEPTH = 2


@dataclass(frozen=True, kw_only=True)
class ContinualStage:
    """One stage of a continual run (``continual.json`` ``stages[i]``); ``None`` where the record lacks a value.

    Attributes:
        task: The task trained at this stage.
        start_step: Environment steps at the stage's start.
        end_step: Environment steps at its end.
        trainable: Parameter elements the stage could change.
        frozen: Parameter elements held fixed during the stage.
        active: Elements used by some task after the stage.
        added: ``active`` minus the previous stage's ``active`` (stage 0: all its active elements).
        auc: Normalised area under the task's training success curve during the stage.
        rule_phase: The rule's phase at the stage's end (freeze_grow: grown / assimilated / ...).
    """

    task: str
    start_step: int | None = None
    end_step: int | None = None
    trainable: int | None = None
    frozen: int | None = None
    active: int | None = None
    added: int | None = None
    auc: float | None = None
    rule_phase: str | None = None


@dataclass(frozen=True, kw_only=True)
class Continual:
    """``continual.json``: ``R[i][j]`` is the score on task ``j`` after training on task ``i``.

    Attributes:
        tasks: ``N`` task names in training order.
        matrix: The evaluated rows of ``R`` so far, each ``N`` long (``N`` rows once the run is complete).
        initial: Scores of the untrained agent, or ``None``.
        rule: The update-rule config (``{"kind": ..., ...}``); empty if not recorded.
        stages: Per-stage facts, one per evaluated row.
        reference_auc: Task -> AUC of the same task learned from scratch (for forward transfer).
    """

    tasks: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]
    initial: tuple[float, ...] | None = None
    rule: Mapping[str, Any] = field(default_factory=dict)
    stages: tuple[ContinualStage, ...] = ()
    reference_auc: Mapping[str, float] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every task has its row of ``R``."""
        return len(self.matrix) == len(self.tasks)

    @property
    def rule_kind(self) -> str | None:
        """``rule.kind`` of the run, if recorded."""
        kind = self.rule.get("kind")
        return str(kind) if kind is not None else None

    def metrics(self) -> ContinualMetrics | None:
        """Forgetting, backward and forward transfer (:func:`modrl.continual.continual_metrics`) of a complete run.

        Forward transfer is included when every stage has an AUC and every task a reference AUC; ``None`` for a run
        still in progress.
        """
        if not self.complete:
            return None
        aucs = [s.auc for s in self.stages]
        reference = [self.reference_auc.get(t) for t in self.tasks]
        with_ft = len(aucs) == len(self.tasks) and None not in aucs and None not in reference
        return continual_metrics(
            self.matrix,
            auc=[float(a) for a in aucs if a is not None] if with_ft else None,
            auc_reference=[float(r) for r in reference if r is not None] if with_ft else None,
        )

    @property
    def params_added(self) -> int | None:
        """Parameter elements added after the first task (sum of ``added`` over stages 2..N); ``None`` if unknown."""
        added = [s.added for s in self.stages[1:]]
        if len(self.stages) != len(self.tasks) or None in added:
            return None
        return sum(a for a in added if a is not None)


def _optional_int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _optional_float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _stage(item: Mapping[str, Any]) -> ContinualStage:
    params = item.get("params") or {}
    return ContinualStage(
        task=str(item["task"]),
        start_step=_optional_int(item.get("start_step")),
        end_step=_optional_int(item.get("end_step")),
        trainable=_optional_int(params.get("trainable")),
        frozen=_optional_int(params.get("frozen")),
        active=_optional_int(params.get("active")),
        added=_optional_int(params.get("added")),
        auc=_optional_float(item.get("auc")),
        rule_phase=str(item["rule_phase"]) if item.get("rule_phase") is not None else None,
    )


def read_continual(path: Path) -> Continual | None:
    """``continual.json`` (at least ``{"tasks": [...], "R": [[...]]}``) or ``None`` if there is none.

    Raises:
        ReportError: Malformed: a row of ``R`` not one value per task, more rows than tasks, non-finite values.
    """
    if not path.is_file():
        return None
    data = read_json_object(path)
    try:
        tasks = tuple(str(t) for t in data["tasks"])
        matrix = tuple(tuple(float(v) for v in row) for row in data["R"])
        initial = data.get("R_initial")
        stages = tuple(_stage(item) for item in data.get("stages") or ())
        reference = {str(k): float(v) for k, v in (data.get("reference_auc") or {}).items()}
        rule = dict(data.get("rule") or {})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportError(f"{path}: malformed continual results ({exc!r})") from None
    if len(matrix) > len(tasks) or any(len(row) != len(tasks) for row in matrix):
        raise ReportError(f"{path}: R must have one column per task ({len(tasks)}) and at most one row per task")
    if not all(math.isfinite(v) for row in matrix for v in row):
        raise ReportError(f"{path}: R must be finite")
    return Continual(
        tasks=tasks,
        matrix=matrix,
        initial=tuple(float(v) for v in initial) if initial is not None else None,
        rule=rule,
        stages=stages,
        reference_auc=reference,
    )


def is_continual_run(path: Path) -> bool:
    """``path`` is a ``modrl continual`` run directory (``config.yaml`` and ``continual.json``)."""
    return (path / CONFIG_FILE).is_file() and (path / CONTINUAL_FILE).is_file()


def find_continual_runs(root: Path, *, depth: int = SEARCH_DEPTH) -> list[Path]:
    """Continual run directories below ``root`` (not ``root`` itself), at most ``depth`` levels down, sorted.

    A run's own subdirectories are not searched; symbolic links are not followed.
    """
    found: list[Path] = []
    level = [root]
    for _ in range(depth):
        below: list[Path] = []
        for directory in level:
            try:
                children = sorted(p for p in directory.iterdir() if p.is_dir() and not p.is_symlink())
            except OSError:
                continue
            for child in children:
                (found if is_continual_run(child) else below).append(child)
        level = below
    return sorted(found)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def continual_group_labels(runs: Sequence[tuple[str, Sequence[str], Mapping[str, Any]]]) -> list[str]:
    """One comparison-table row label per run: its rule kind, made unique only as far as needed.

    Args:
        runs: Per run ``(config name, tasks, rule config)``.

    Returns:
        ``rule.kind`` (e.g. ``"ewc"``); runs of one kind whose rule settings differ get the differing settings
        (``"ewc (strength=10.0)"``); when the runs cover more than one task sequence, the config name comes first
        (``"continual-keys: ewc"``).
    """
    kinds = [str(rule.get("kind", "?")) for _, _, rule in runs]
    varying: dict[str, list[str]] = {}
    for kind in dict.fromkeys(kinds):
        rules = [rule for (_, _, rule), k in zip(runs, kinds, strict=True) if k == kind]
        keys = sorted({key for rule in rules for key in rule if key != "kind"})
        varying[kind] = [key for key in keys if len({_text(rule.get(key)) for rule in rules}) > 1]
    sequences = {(name, tuple(tasks)) for name, tasks, _ in runs}
    labels = []
    for (name, _, rule), kind in zip(runs, kinds, strict=True):
        label = kind
        if varying[kind]:
            label += " (" + ", ".join(f"{key}={_text(rule.get(key))}" for key in varying[kind]) + ")"
        labels.append(f"{name}: {label}" if len(sequences) > 1 else label)
    return labels
