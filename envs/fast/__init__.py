"""A batched, numpy MiniGrid rollout engine, step-for-step identical to MiniGrid (see :mod:`.engine`)."""

from __future__ import annotations

from modrl.envs.fast.engine import BatchedMiniGrid, StepResult
from modrl.envs.fast.errors import EngineUnsupported
from modrl.envs.fast.layout import Layout, generate, unsupported_reason

__all__ = ["BatchedMiniGrid", "EngineUnsupported", "Layout", "StepResult", "generate", "unsupported_reason"]
