"""Read a run, sweep or continual directory into typed trial records (files only: YAML, JSON, JSON lines).

A run directory has ``config.yaml``; a sweep directory has ``trials.json`` and one run directory per trial under
``trials/``; a continual run (``modrl continual``) has ``config.yaml`` and ``continual.json``, and a directory of
continual runs (e.g. ``runs/continual/``) is collected as one comparison (:mod:`modrl.report.continual`). Layouts:
see :mod:`modrl.runs`, the evaluation writer in ``modrl.agents.common.evaluation`` and the sweep runner. Nothing here
imports the training stack.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from modrl.report.continual import (
    CONTINUAL_FILE,
    Continual,
    continual_group_labels,
    find_continual_runs,
    is_continual_run,
    read_continual,
)
from modrl.report.files import ReportError, read_json, read_json_object, read_yaml_mapping
from modrl.safe_load import InputError, loads_json
from modrl.sweep.labels import distinguishing_items
from modrl.sweep.store import STATUS_DIR, TRIALS_FILE

logger = logging.getLogger(__name__)

EVAL_DIR = "eval"
METRICS_FILE = "metrics.jsonl"
_EVAL_NAME_RE = re.compile(r"step-(\d+)-(det|stoch)-(\d+)ep\.json")


class TrialStatus(str, Enum):
    """State of a trial: :class:`modrl.runs.RunStatus`'s values (what ``status/<id>.json`` in a sweep and
    ``meta.json`` of a run record), plus ``missing`` for a trial that never recorded one."""

    COMPLETED = "completed"
    FAILED = "failed"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    STOPPED = "stopped"  # ended early by the sweep's scheduler (ASHA, PBT)
    MISSING = "missing"  # no status recorded: the trial never started


class EvalSplit(str, Enum):
    """Which split an evaluated task belongs to; a task without a ``split`` field is a training task."""

    TRAIN = "train"
    TEST = "test"


@dataclass(frozen=True, kw_only=True)
class TaskEval:
    """One task's line of an evaluation file."""

    task: str
    split: EvalSplit
    episodes: int
    success_rate: float
    mean_return: float
    module_usage: tuple[float, ...] | None


@dataclass(frozen=True, kw_only=True)
class EvalResult:
    """One ``eval/step-*.json`` file: the step evaluated, the policy mode and the per-task results."""

    path: Path
    step: int
    deterministic: bool
    episodes: int
    module_names: tuple[str, ...] | None
    tasks: tuple[TaskEval, ...]


@dataclass(frozen=True, kw_only=True)
class Curve:
    """A run's training curve from ``metrics.jsonl`` (one point per rollout); NaN where nothing was measured yet.

    Attributes:
        steps: ``(T,)`` frames.
        success_mean: ``(T,)`` stochastic training success, mean over tasks.
        return_mean: ``(T,)`` training return, mean over tasks.
    """

    steps: tuple[int, ...]
    success_mean: tuple[float, ...]
    return_mean: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class Trial:
    """One seed of one configuration, with whatever its run directory holds so far."""

    id: str
    group: str
    seed: int | None
    status: TrialStatus
    run_dir: Path
    error: str | None = None
    eval: EvalResult | None = None
    curve: Curve | None = None
    continual: Continual | None = None
    meta: dict[str, Any] | None = None

    @property
    def usable(self) -> bool:
        """Whether the trial enters the statistics: completed and evaluated."""
        return self.status is TrialStatus.COMPLETED and self.eval is not None

    @property
    def continual_usable(self) -> bool:
        """Whether the trial enters continual statistics: completed, with a row of R for every task."""
        return self.status is TrialStatus.COMPLETED and self.continual is not None and self.continual.complete


@dataclass(frozen=True, kw_only=True)
class Collection:
    """Everything a report needs from a run or sweep directory; trials in file order (sweep expansion order)."""

    root: Path
    kind: Literal["run", "sweep", "continual"]
    name: str
    trials: tuple[Trial, ...]
    sweep_spec: str | None = None  # the text of sweep.yaml, for the provenance section
    groups: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(dict.fromkeys(t.group for t in self.trials)))

    def trials_of(self, group: str) -> list[Trial]:
        """The trials of ``group``, in order."""
        return [t for t in self.trials if t.group == group]


def collect(path: Path | str) -> Collection:
    """Read a sweep directory (has ``trials.json``), a run directory (has ``config.yaml``; a continual run also has
    ``continual.json``) or a directory holding continual runs (up to two levels down, e.g. ``runs/continual/``).

    Raises:
        ReportError: None of these, or an unreadable file.
    """
    root = Path(path)
    if (root / TRIALS_FILE).is_file():
        return _collect_sweep(root)
    if is_continual_run(root):
        return _collect_continual(root, [root])
    if (root / "config.yaml").is_file():
        config = read_yaml_mapping(root / "config.yaml")
        name = str(config.get("name") or root.name)
        return Collection(root=root, kind="run", name=name, trials=(_read_run(root, id=root.name, group=name),))
    runs = find_continual_runs(root) if root.is_dir() else []
    if runs:
        return _collect_continual(root, runs)
    raise ReportError(
        f"{root}: neither a run directory (config.yaml), a sweep directory (trials.json) nor a directory holding "
        "continual runs (config.yaml + continual.json)"
    )


def _read_run(run_dir: Path, *, id: str, group: str) -> Trial:
    """A stand-alone run directory as one trial: status, seed and error from its ``meta.json``."""
    meta = read_json_object(run_dir / "meta.json") if (run_dir / "meta.json").is_file() else None
    status = _status(meta.get("status") if meta else None, run_dir / "meta.json")
    seed = meta.get("seed") if meta else read_yaml_mapping(run_dir / "config.yaml").get("seed")
    error = str(meta["error"]) if meta and meta.get("error") else None
    return _read_trial(run_dir, id=id, group=group, seed=seed, status=status, error=error, meta=meta)


def _collect_continual(root: Path, runs: list[Path]) -> Collection:
    """Continual runs, one trial each, grouped by rule (:func:`~modrl.report.continual.continual_group_labels`)."""
    described = []
    for run_dir in runs:
        config = read_yaml_mapping(run_dir / "config.yaml")
        record = read_continual(run_dir / CONTINUAL_FILE)
        assert record is not None  # is_continual_run checked the file
        rule = config.get("rule")
        rule = dict(rule) if isinstance(rule, dict) else dict(record.rule)
        described.append((str(config.get("name") or run_dir.name), record.tasks, rule))
    labels = continual_group_labels(described)
    trials = []
    for run_dir, label in zip(runs, labels, strict=True):
        run_id = run_dir.name if run_dir == root else run_dir.relative_to(root).as_posix()
        trials.append(_read_run(run_dir, id=run_id, group=label))
    name = described[0][0] if len(runs) == 1 else root.name
    return Collection(root=root, kind="continual", name=name, trials=tuple(trials))


def _collect_sweep(root: Path) -> Collection:
    entries = read_json(root / TRIALS_FILE)
    if not isinstance(entries, list):
        raise ReportError(f"{root / TRIALS_FILE}: expected a list of trials")
    spec_path = root / "sweep.yaml"
    spec_text = spec_path.read_text(encoding="utf-8") if spec_path.is_file() else None
    name = str(read_yaml_mapping(spec_path).get("name") or root.name) if spec_text is not None else root.name
    try:
        groups = [entry.get("group") or {} for entry in entries]
        labels = [group_label(named) for named in distinguishing_items(groups)]
    except (TypeError, AttributeError):
        raise ReportError(f"{root / TRIALS_FILE}: malformed entries (each needs a mapping 'group')") from None
    trials = []
    for entry, label in zip(entries, labels, strict=True):
        try:
            trial_id, seed = str(entry["id"]), entry.get("seed")
            run_dir = root / entry.get("run_dir", f"trials/{trial_id}")
        except (KeyError, TypeError, AttributeError):
            raise ReportError(f"{root / TRIALS_FILE}: malformed entry {entry!r}") from None
        status_path = root / STATUS_DIR / f"{trial_id}.json"
        state = read_json_object(status_path) if status_path.is_file() else {}
        status = _status(state.get("status"), status_path)
        meta = read_json_object(run_dir / "meta.json") if (run_dir / "meta.json").is_file() else None
        error = state.get("error") or (meta.get("error") if meta else None)
        trial = _read_trial(
            run_dir,
            id=trial_id,
            group=label or name,
            seed=seed,
            status=status,
            error=str(error) if error else None,
            meta=meta,
        )
        trials.append(trial)
    return Collection(root=root, kind="sweep", name=name, trials=tuple(trials), sweep_spec=spec_text)


def group_label(group: dict[str, Any]) -> str:
    """``{"agent.kind": "modular", "algo.n_steps": 64}`` -> ``"agent.kind=modular, algo.n_steps=64"``."""
    parts = []
    for key, value in group.items():
        text = value if isinstance(value, str) else json.dumps(value)
        parts.append(f"{key}={text}")
    return ", ".join(parts)


def _read_trial(
    run_dir: Path,
    *,
    id: str,
    group: str,
    seed: Any,
    status: TrialStatus,
    error: str | None,
    meta: dict[str, Any] | None,
) -> Trial:
    return Trial(
        id=id,
        group=group,
        seed=int(seed) if isinstance(seed, int) else None,
        status=status,
        run_dir=run_dir,
        error=error,
        eval=latest_eval(run_dir),
        curve=read_curve(run_dir / METRICS_FILE),
        continual=read_continual(run_dir / CONTINUAL_FILE),
        meta=meta,
    )


def _status(value: Any, path: Path) -> TrialStatus:
    if value is None:
        return TrialStatus.MISSING
    try:
        return TrialStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in TrialStatus)
        raise ReportError(f"{path}: unknown status {value!r} (expected one of {allowed})") from None


def latest_eval(run_dir: Path) -> EvalResult | None:
    """The run's evaluation with the highest step; at that step deterministic before stochastic, then most episodes.

    Files are chosen by name (``step-{step:012d}-{det|stoch}-{episodes}ep.json``); names that do not match (e.g.
    temporary files) are ignored. ``None`` when the run has no evaluation.
    """
    candidates = []
    for path in (run_dir / EVAL_DIR).glob("step-*.json"):
        match = _EVAL_NAME_RE.fullmatch(path.name)
        if match:
            candidates.append(((int(match[1]), match[2] == "det", int(match[3])), path))
    if not candidates:
        return None
    (step, deterministic, episodes), path = max(candidates)
    data = read_json_object(path)
    try:
        tasks = tuple(_task_eval(item) for item in data["tasks"])
        names = data.get("module_names")
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{path}: malformed evaluation file ({exc!r})") from None
    return EvalResult(
        path=path,
        step=step,
        deterministic=deterministic,
        episodes=episodes,
        module_names=tuple(map(str, names)) if names is not None else None,
        tasks=tasks,
    )


def _task_eval(item: dict[str, Any]) -> TaskEval:
    usage = item.get("module_usage")
    return TaskEval(
        task=str(item["task"]),
        split=EvalSplit(item.get("split") or EvalSplit.TRAIN.value),
        episodes=int(item["episodes"]),
        success_rate=float(item["success_rate"]),
        mean_return=float(item["mean_return"]),
        module_usage=tuple(float(u) for u in usage) if usage is not None else None,
    )


def read_curve(path: Path) -> Curve | None:
    """The training curve in ``metrics.jsonl``; ``None`` if the file is missing or empty.

    A last line that is not valid JSON (a write cut short by a kill) is skipped with a warning; an invalid line
    before the last raises ReportError.
    """
    if not path.is_file():
        return None
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(loads_json(line, f"{path}:{number}"))
        except InputError as exc:
            if number < len(lines):
                raise ReportError(str(exc)) from None
            logger.warning("%s:%d: skipping a truncated last line", path, number)
    if not rows:
        return None

    def number_or_nan(value: Any) -> float:
        return float(value) if value is not None else math.nan

    try:
        return Curve(
            steps=tuple(int(r["step"]) for r in rows),
            success_mean=tuple(number_or_nan(r.get("success_mean")) for r in rows),
            return_mean=tuple(number_or_nan(r.get("return_mean")) for r in rows),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{path}: malformed metrics line ({exc!r})") from None
