"""Reports for run and sweep directories: tables with IQM and bootstrap intervals across seeds, figures, provenance.

``build_report(path)`` reads a run directory (``config.yaml``) or a sweep directory (``trials.json``) and writes
``report.md`` with PNG figures next to it. matplotlib is imported only when figures are drawn
(:mod:`modrl.report.plots`), so importing this package stays light.
"""

from __future__ import annotations

from modrl.report.build import REPORT_FILE, build_report
from modrl.report.collect import (
    Collection,
    Continual,
    Curve,
    EvalResult,
    ReportError,
    Split,
    TaskEval,
    Trial,
    TrialStatus,
    collect,
)

__all__ = [
    "REPORT_FILE",
    "Collection",
    "Continual",
    "Curve",
    "EvalResult",
    "ReportError",
    "Split",
    "TaskEval",
    "Trial",
    "TrialStatus",
    "build_report",
    "collect",
]
