"""The forward-transfer reference: one task learned from scratch with the same budget as its continual stage."""

from __future__ import annotations

import json
from pathlib import Path

from stable_baselines3.common.callbacks import CallbackList

from modrl._io import atomic_write_json
from modrl.continual import area_under_curve
from modrl.envs import get_suite

from .builders import build_model, env_options
from .callbacks import CheckpointCallback, EpisodeStatsCallback, MetricsLogCallback, ProgressCallback, StopRequest
from .continual_config import ContinualConfig
from .continual_parts import stage_env, success_curve

RESULT = "reference.json"


def train_reference(config: ContinualConfig, stage: int, out_dir: Path, request: StopRequest) -> float | None:
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
    venv = stage_env(suite, suite.task_index(name), n_envs=config.env.n_envs, seed=config.seed, stage=stage,
                     options=env_options(experiment))  # fmt: skip
    model = build_model(experiment, venv)
    episodes = EpisodeStatsCallback(suite.task_names)
    # No checkpoints (a reference is short and redone if stopped); the callback only ends learn() on a stop request.
    stopper = CheckpointCallback(lambda: None, every=budget + 1, stop=request)
    callbacks = CallbackList([episodes, MetricsLogCallback(metrics, episodes),
                              ProgressCallback(episodes, total_timesteps=budget), stopper])  # fmt: skip
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
