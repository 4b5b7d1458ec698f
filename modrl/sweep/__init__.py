"""Sweeps: a grid (and Tune-style search spaces) over experiment-config keys times seeds, each trial a ``modrl train``
subprocess.

Typical use (what ``modrl sweep`` does)::

    spec = load_sweep_spec(Path("sweep.yaml"))
    trials = expand(spec)
    validate_trials(trials, validate=my_config_builder, base=spec.base)   # before anything is created
    sweep_dir = create_sweep_dir(spec, root=Path("sweeps"), explicit=None)
    result = run_sweep(sweep_dir, on_progress=lambda p: log.info(p.line()))

``run_sweep(sweep_dir)`` again (``modrl sweep --resume DIR``) skips completed trials and resumes the others from
their checkpoints. This package never imports ``modrl.agents`` or ``modrl.envs``: trials run as subprocesses and
config validation is injected by the caller. The Ray backend needs ``pip install modrl[ray]`` and a filesystem
that every Ray node sees at the same path (see :mod:`modrl.sweep.backends`); the Tune backend (ASHA, PBT) is
:mod:`modrl.sweep.tune_backend`, search spaces :mod:`modrl.sweep.search`, schedulers :mod:`modrl.sweep.scheduling`.
ray is imported only when one of those backends runs.
"""

from __future__ import annotations

from .backends import LocalBackend, RayBackend, TrialBackend, TrialExit, TrialLaunch, trial_command
from .progress import SweepProgress, SweepResult
from .runner import run_sweep
from .spec import SweepSpec, TrialSpec, expand, format_override, load_sweep_spec, spec_to_dict, validate_trials
from .store import (
    SweepDir,
    SweepError,
    TrialRecord,
    TrialStatus,
    create_sweep_dir,
    open_sweep_dir,
    read_status,
    resume_sweep_dir,
)

__all__ = [
    "LocalBackend",
    "RayBackend",
    "SweepDir",
    "SweepError",
    "SweepProgress",
    "SweepResult",
    "SweepSpec",
    "TrialBackend",
    "TrialExit",
    "TrialLaunch",
    "TrialRecord",
    "TrialSpec",
    "TrialStatus",
    "create_sweep_dir",
    "expand",
    "format_override",
    "load_sweep_spec",
    "open_sweep_dir",
    "read_status",
    "resume_sweep_dir",
    "run_sweep",
    "spec_to_dict",
    "trial_command",
    "validate_trials",
]
