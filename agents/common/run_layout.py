"""The names of what ``modrl train`` writes inside a run directory (beside ``config.yaml`` and ``meta.json``)."""

from __future__ import annotations

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
TENSORBOARD = "tb"
#: ``train.eval_every``'s curve (:mod:`modrl.agents.common.periodic_eval`).
EVAL_CURVE = "eval_curve.jsonl"
