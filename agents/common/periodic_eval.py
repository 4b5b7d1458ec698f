"""Evaluation during training (``train.eval_every``): every split of the suite, held-out tasks included, every N frames.

SB3's ``EvalCallback`` evaluates one env; a compositional-generalisation run needs the success of every train and
held-out task as training goes on (does held-out success peak before training success does?), scored the way the
final evaluation scores it. So this callback runs :func:`~modrl.agents.common.evaluation.evaluate_policy` (fixed
evaluation seeds, its own envs) and appends one line per evaluation to ``RUN/eval_curve.jsonl``::

    {"step": 500224, "deterministic": false, "episodes": 10, "splits": {"train": {"success": 0.93, "return": 0.81},
     "test": {...}}, "tasks": {"goto-red-ball": 1.0, ...}, "wall_s": 41.2}

and writes ``eval/success_<split>`` and ``eval/return_<split>`` to TensorBoard at that step.

It changes nothing in training: the evaluation runs on its own envs and seeds, a sampled evaluation draws from a
forked torch generator (:func:`~modrl.agents.common.evaluation.run_episode`), and whether it runs depends on the frame
count alone, so a run resumed from a checkpoint evaluates at the same steps with the same results as one run in one
go (what a killed segment wrote after its checkpoint is dropped on resume, as for ``metrics.jsonl``; tested).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy

from modrl.agents.common.config import ExperimentConfig
from modrl.agents.common.evaluation import EvalReport, evaluate_policy
from modrl.agents.common.run_layout import EVAL_CURVE
from modrl.telemetry import TelemetryWriter

progress_log = logging.getLogger("modrl.progress")


class PeriodicEvalCallback(BaseCallback):
    """At the first rollout end past each multiple of ``config.train.eval_every`` frames, evaluate every split.

    Args:
        config: The run's config (suite, env options, ``train.eval_every*``).
        run_dir: Where ``eval_curve.jsonl`` goes.
        writer: The run's TensorBoard writer.
    """

    def __init__(self, config: ExperimentConfig, run_dir: Path, writer: TelemetryWriter) -> None:
        super().__init__()
        if config.train.eval_every < 1:
            raise ValueError(
                f"train.eval_every must be >= 1 frame for a periodic evaluation, got {config.train.eval_every}"
            )
        self.config = config
        self.path = Path(run_dir) / EVAL_CURVE
        self.writer = writer
        self._mark = 0

    def _init_callback(self) -> None:
        # A fresh run starts at 0; a resumed one at its checkpoint's step, past whose multiples it already evaluated.
        self._mark = self.model.num_timesteps // self.config.train.eval_every

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        step = self.model.num_timesteps
        mark = step // self.config.train.eval_every
        if mark <= self._mark:
            return
        self._mark = mark
        started = time.monotonic()
        train = self.config.train
        policy = self.model.policy
        assert isinstance(policy, ActorCriticPolicy)  # modrl trains on-policy actor-critics only
        report = evaluate_policy(
            policy,
            self.config,
            episodes=train.eval_every_episodes,
            deterministic=not train.eval_every_stochastic,
            step=step,
            progress=False,
        )
        record = curve_record(report, wall_s=time.monotonic() - started)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        for split, values in record["splits"].items():
            self.writer.log_scalar(f"eval/success_{split}", values["success"], step)
            self.writer.log_scalar(f"eval/return_{split}", values["return"], step)
        cells = " | ".join(f"{split} {values['success']:.2f}" for split, values in record["splits"].items())
        mode = "greedy" if report.deterministic else "sampled"
        progress_log.info(
            "[eval @ %d] success %s (%d %s episodes per task, %.0fs)",
            step,
            cells,
            train.eval_every_episodes,
            mode,
            record["wall_s"],
        )


def curve_record(report: EvalReport, *, wall_s: float) -> dict[str, Any]:
    """One ``eval_curve.jsonl`` line: mean success and return per split, success per task."""
    splits: dict[str, dict[str, float]] = {}
    for split in dict.fromkeys(t.split for t in report.tasks):
        rows = [t for t in report.tasks if t.split == split]
        splits[split] = {
            "success": float(np.mean([t.success_rate for t in rows])),
            "return": float(np.mean([t.mean_return for t in rows])),
        }
    return {
        "step": report.step,
        "deterministic": report.deterministic,
        "episodes": report.tasks[0].episodes if report.tasks else 0,
        "splits": splits,
        "tasks": {t.task: t.success_rate for t in report.tasks},
        "wall_s": round(wall_s, 3),
    }
