"""Skill modules (the computation step of the modular forward pass) and the library that holds them."""

from __future__ import annotations

from .base import ACTIVATIONS, SKILLS, SkillModule
from .library import ParamCounts, SkillLibrary, SkillsConfig, build_skill_library
from .lowrank import LowRankSkill
from .mlp import MLPSkill

__all__ = [
    "ACTIVATIONS",
    "SKILLS",
    "LowRankSkill",
    "MLPSkill",
    "ParamCounts",
    "SkillLibrary",
    "SkillModule",
    "SkillsConfig",
    "build_skill_library",
]
