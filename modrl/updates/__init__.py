"""Local-update rules for continual training: what may change when a new task arrives.

Registered in :data:`UPDATE_RULES`: ``none`` (naive fine-tuning), ``freeze_grow``, ``ewc``, ``l2``, ``packnet``.
"""

from __future__ import annotations

from .base import (
    UPDATE_RULES,
    ConsolidationData,
    ModelParts,
    ParamCounts,
    RuleParamCounts,
    RuleState,
    StageProgress,
    UpdateRule,
    UpdateRuleConfig,
    attach_penalty,
    build_update_rule,
)
from .freeze_grow import FreezeGrow, GrowPhase, router_mask_of
from .guard import ParamGuard
from .packnet import PackNet
from .regularizers import ElasticWeightConsolidation, L2Anchor, NaiveFineTuning

__all__ = [
    "UPDATE_RULES",
    "ConsolidationData",
    "ElasticWeightConsolidation",
    "FreezeGrow",
    "GrowPhase",
    "L2Anchor",
    "ModelParts",
    "NaiveFineTuning",
    "PackNet",
    "ParamCounts",
    "ParamGuard",
    "RuleParamCounts",
    "RuleState",
    "StageProgress",
    "UpdateRule",
    "UpdateRuleConfig",
    "attach_penalty",
    "build_update_rule",
    "router_mask_of",
]
