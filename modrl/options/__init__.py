"""Options: temporally extended skills (policy + termination + initiation set), their library, call-and-return
execution over them, option telemetry and the success-threshold curriculum that trains them one by one.

Core package: torch, numpy and gymnasium only (never stable_baselines3, :mod:`modrl.envs` or :mod:`modrl.agents`).
"""

from __future__ import annotations

from .call_and_return import END_REASONS, CallAndReturn, EndReason, OptionCall, OptionRun, option_inputs, run_option
from .controller import OptionController
from .curriculum import CurriculumConfig, StageResult, SuccessCurriculum
from .encoders import GridEncoder
from .ensemble import OptionEnsemble, ensemble_library
from .library import LIBRARY_DIR, OptionLibrary, read_option
from .option import Option, OptionConfig, OptionOutput, Predicate, everywhere
from .stats import OptionStats, OptionSummary

__all__ = [
    "END_REASONS",
    "LIBRARY_DIR",
    "CallAndReturn",
    "CurriculumConfig",
    "EndReason",
    "GridEncoder",
    "Option",
    "OptionCall",
    "OptionConfig",
    "OptionController",
    "OptionEnsemble",
    "OptionLibrary",
    "OptionOutput",
    "OptionRun",
    "OptionStats",
    "OptionSummary",
    "Predicate",
    "StageResult",
    "SuccessCurriculum",
    "ensemble_library",
    "everywhere",
    "option_inputs",
    "read_option",
    "run_option",
]
