"""Deterministic fault injection for tests: named points in the code where a test can make a fault happen.

Library code calls :func:`fault_point` at a few places where real faults hurt (between a checkpoint's tensors and
its manifest, after a commit, at a rollout's end, in an env step, in a TensorBoard write). Normally that is one
dictionary lookup and nothing happens. A test sets the environment variable ``MODRL_FAULT`` (inherited by a
``modrl train`` subprocess and by vector-env workers) to make a point misbehave on its n-th hit::

    MODRL_FAULT="<point>[#<index>][:<nth>[:<action>]]"[,...]

``index`` restricts the fault to one env slot (points that pass ``index``, e.g. ``env-step#1``); ``nth`` counts hits
in this process from 1 (default 1); ``action`` is one of :data:`ACTIONS` (default ``kill``). Each spec fires once.
This is a test hook, not configuration: nothing in a run's behaviour depends on it unless it is set.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from collections import Counter
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

FAULT_ENV = "MODRL_FAULT"

#: The named points and where they are.
POINTS: dict[str, str] = {
    "checkpoint-after-tensors": "save_checkpoint: member files written to the temporary directory, no manifest yet",
    "checkpoint-saved": "save_checkpoint: the new checkpoint is committed and old ones pruned",
    "rollout-end": "training: a rollout ended and its metrics line is written",
    "env-step": "an env slot's step (index = env slot)",
    "tensorboard-write": "SB3's TensorBoard output, before a write",
    "pretrain-epoch": "oracle pre-training: a behaviour-cloning epoch ended and its scalars are written",
}

Action = Literal["kill", "term", "enospc", "raise", "exit"]
#: ``kill``/``term``: SIGKILL/SIGTERM this process; ``enospc``: raise ``OSError(ENOSPC)``; ``raise``:
#: raise :class:`InjectedFault`; ``exit``: ``os._exit(70)`` (a process dying without Python's cleanup).
ACTIONS: tuple[Action, ...] = ("kill", "term", "enospc", "raise", "exit")
EXIT_CODE = 70


class InjectedFault(RuntimeError):
    """The ``raise`` action of a fault point."""


@dataclass(frozen=True)
class FaultSpec:
    """One parsed ``MODRL_FAULT`` entry."""

    point: str
    index: int | None
    nth: int
    action: Action


def parse_faults(text: str) -> list[FaultSpec]:
    """Parse a ``MODRL_FAULT`` value.

    Raises:
        ValueError: Unknown point or action, or a malformed number (the message lists the valid ones).
    """
    specs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        head, *rest = item.split(":")
        if len(rest) > 2:
            raise ValueError(f"{FAULT_ENV}: {item!r} must look like point[#index][:nth[:action]]")
        point, _, index_text = head.partition("#")
        if point not in POINTS:
            raise ValueError(f"{FAULT_ENV}: unknown point {point!r}; points: {', '.join(POINTS)}")
        action = rest[1] if len(rest) > 1 else "kill"
        if action not in ACTIONS:
            raise ValueError(f"{FAULT_ENV}: unknown action {action!r}; actions: {', '.join(ACTIONS)}")
        try:
            index = int(index_text) if index_text else None
            nth = int(rest[0]) if rest else 1
        except ValueError:
            raise ValueError(f"{FAULT_ENV}: {item!r}: index and nth must be integers") from None
        if nth < 1:
            raise ValueError(f"{FAULT_ENV}: {item!r}: nth must be >= 1")
        specs.append(FaultSpec(point, index, nth, action))
    return specs


_hits: Counter[tuple[str, int | None]] = Counter()


def reset_fault_counters() -> None:
    """Forget the hit counts (for in-process tests that run several trainings)."""
    _hits.clear()


def faults_armed() -> bool:
    """Whether ``MODRL_FAULT`` names any fault (a per-step loop checks this once instead of each slot's point)."""
    return bool(os.environ.get(FAULT_ENV))


def fault_point(point: str, *, index: int | None = None, path: str | os.PathLike[str] | None = None) -> None:
    """A named fault point; does nothing unless ``MODRL_FAULT`` names it (see the module docstring).

    Args:
        point: One of :data:`POINTS`.
        index: The env slot, for per-slot points.
        path: The file being written, named in an injected ``OSError``.

    Raises:
        OSError: Action ``enospc``.
        InjectedFault: Action ``raise``.
    """
    text = os.environ.get(FAULT_ENV)
    if not text:
        return
    _hits[(point, index)] += 1
    for spec in parse_faults(text):
        if spec.point != point or (spec.index is not None and spec.index != index):
            continue
        count = _hits[(point, index)]
        if count == spec.nth:
            _fire(spec, path)


def _fire(spec: FaultSpec, path: str | os.PathLike[str] | None) -> None:
    where = f"{spec.point}{'' if spec.index is None else f'#{spec.index}'} hit {spec.nth}"
    logger.warning("injected fault (%s): %s", spec.action, where)
    if spec.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif spec.action == "term":
        os.kill(os.getpid(), signal.SIGTERM)
    elif spec.action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), None if path is None else os.fspath(path))
    elif spec.action == "raise":
        raise InjectedFault(f"injected fault at {where}")
    else:
        os._exit(EXIT_CODE)
