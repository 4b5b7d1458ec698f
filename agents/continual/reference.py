"""The forward-transfer reference: one task learned from scratch with the same budget as its continual stage.

A reference does not depend on the update rule: it is a fresh agent (same seed, env, agent, algo) trained on one task
for ``sequence.steps_per_task`` steps with the stage's env seeding. With ``sequence.reference_dir`` the runs of every
rule share one :class:`ReferenceCache`: the first run trains a reference and stores its AUC under a key of exactly
those inputs (:func:`reference_key`); later runs read it instead of training it again. Entries are small JSON files,
written atomically; a malformed or mismatched entry is ignored with a warning and the reference retrained.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import CallbackList

from modrl._io import atomic_write_json
from modrl.agents.common.builders import build_model, env_options
from modrl.agents.common.callbacks import (
    CheckpointCallback,
    EpisodeStatsCallback,
    MetricsLogCallback,
    ProgressCallback,
    StopRequest,
)
from modrl.agents.continual.config import ContinualConfig
from modrl.agents.continual.parts import stage_env, success_curve
from modrl.config import to_dict
from modrl.continual import area_under_curve
from modrl.envs import get_suite
from modrl.safe_load import loads_json

log = logging.getLogger(__name__)

RESULT = "reference.json"
#: Bumped whenever how a reference is trained changes, so old cache entries stop matching.
REFERENCE_VERSION = 1


def reference_key(config: ContinualConfig, stage: int) -> str:
    """sha256 of what the from-scratch reference of ``config.sequence.tasks[stage]`` depends on (not the rule)."""
    data = to_dict(config)
    payload = {
        "version": REFERENCE_VERSION,
        **{k: data[k] for k in ("seed", "torch_threads", "env", "agent", "algo")},
        "steps": config.sequence.steps_per_task,
        "task": config.sequence.tasks[stage],
        "stage": stage,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


class ReferenceCache:
    """From-scratch reference AUCs shared by continual runs: ``<dir>/<task>-s<seed>-<key[:16]>.json``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, config: ContinualConfig, stage: int) -> Path:
        key = reference_key(config, stage)
        return self.root / f"{config.sequence.tasks[stage]}-s{config.seed}-{key[:16]}.json"

    def get(self, config: ContinualConfig, stage: int) -> float | None:
        """The cached AUC, or ``None`` when there is no valid entry (a bad one is reported and ignored)."""
        path = self.path(config, stage)
        if not path.is_file():
            return None
        try:
            data: Any = loads_json(path.read_bytes(), str(path))
            auc = float(data["auc"])
            valid = data["key"] == reference_key(config, stage) and math.isfinite(auc) and 0.0 <= auc <= 1.0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring reference cache entry %s (%s); training the reference again", path, exc)
            return None
        if not valid:
            log.warning("ignoring reference cache entry %s (other key or AUC outside [0, 1])", path)
            return None
        return auc

    def put(self, config: ContinualConfig, stage: int, auc: float, steps: int) -> Path:
        """Store one reference AUC (atomically); returns the entry's path."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(config, stage)
        atomic_write_json(
            path,
            {
                "key": reference_key(config, stage),
                "task": config.sequence.tasks[stage],
                "stage": stage,
                "seed": config.seed,
                "steps": steps,
                "auc": auc,
                "version": REFERENCE_VERSION,
            },
        )
        return path


def train_reference(
    config: ContinualConfig, stage: int, out_dir: Path, request: StopRequest, *, device: str = "cpu"
) -> float | None:
    """Train ``config.sequence.tasks[stage]`` alone on a fresh agent (same seed, envs and budget as the stage).

    Writes ``out_dir/metrics.jsonl`` and ``out_dir/reference.json`` (``{"task", "steps", "auc"}``) and returns the
    AUC of its training success curve; ``None`` if a stop was requested (a later call trains it again from scratch).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = out_dir / "metrics.jsonl"
    metrics.unlink(missing_ok=True)
    suite = get_suite(config.env.suite)
    name = config.sequence.tasks[stage]
    budget = config.sequence.steps_per_task
    experiment = config.experiment()
    venv = stage_env(
        suite,
        suite.task_index(name),
        n_envs=config.env.n_envs,
        seed=config.seed,
        stage=stage,
        options=env_options(experiment),
        engine=config.env.engine,
    )
    model = build_model(experiment, venv, device=device)
    episodes = EpisodeStatsCallback(suite.task_names)
    # No checkpoints (a reference is short and redone if stopped); the callback only ends learn() on a stop request.
    stopper = CheckpointCallback(lambda: None, every=budget + 1, stop=request)
    callbacks = CallbackList(
        [episodes, MetricsLogCallback(metrics, episodes), ProgressCallback(episodes, total_timesteps=budget), stopper]
    )
    try:
        model.learn(budget, callback=callbacks)
    finally:
        venv.close()
    if request.requested:
        return None
    records = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    steps, values = success_curve(records, name)
    auc = area_under_curve(steps, values, start=0, end=budget)
    atomic_write_json(out_dir / RESULT, {"task": name, "steps": model.num_timesteps, "auc": auc})
    return auc
