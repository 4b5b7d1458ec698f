"""Reports for run, sweep and continual directories: tables with IQM and bootstrap intervals across seeds, figures,
provenance.

``build_report(path)`` reads a run directory (``config.yaml``), a sweep directory (``trials.json``), a continual run
(``continual.json``) or a directory of continual runs (one comparison table of the rules) and writes
``report.md`` with PNG figures next to it. matplotlib is imported only when figures are drawn
(:mod:`modrl.report.plots`), so importing this package stays light.
"""

from __future__ import annotations

from modrl.report.build import REPORT_FILE, build_report
from modrl.report.collect import (
    Collection,
    Curve,
    EvalResult,
    EvalSplit,
    TaskEval,
    Trial,
    TrialStatus,
    collect,
)
from modrl.report.continual import Continual, ContinualStage, find_continual_runs
from modrl.report.files import ReportError

__all__ = [
    "REPORT_FILE",
    "Collection",
    "Continual",
    "ContinualStage",
    "Curve",
    "EvalResult",
    "EvalSplit",
    "ReportError",
    "TaskEval",
    "Trial",
    "TrialStatus",
    "build_report",
    "collect",
    "find_continual_runs",
]
