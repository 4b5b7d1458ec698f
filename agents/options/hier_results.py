"""What the two hand-written option loops report: option-critic (:func:`modrl.agents.options.critic.run_option_critic`)
and sketch-guided modules (:func:`modrl.agents.options.sketch.run_sketch`). Each result's ``to_dict`` is the
``results.json`` the run writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from modrl.options import StageResult


@dataclass(frozen=True, kw_only=True)
class UpdateRecord:
    """What one update saw and did (``nan`` where nothing was measured).

    Attributes:
        frames: Primitive frames so far. mean_duration: Mean steps of the option calls that ended in this rollout.
        termination_prob: Mean β of the running option over the rollout's steps. success: Training success over
            the last episodes. policy_loss, option_loss, value_loss, termination_loss: Last minibatch's losses.
    """

    frames: int
    mean_duration: float
    termination_prob: float
    success: float
    policy_loss: float
    option_loss: float
    value_loss: float
    termination_loss: float


@dataclass(frozen=True, kw_only=True)
class OptionCriticTaskEval:
    """One task's evaluation: success rate over the episodes, and primitive steps per option call."""

    success: float
    mean_duration: float


@dataclass(frozen=True, kw_only=True)
class OptionCriticResults:
    """What :func:`run_option_critic` measured (``results.json``, see :meth:`to_dict`).

    Attributes:
        frames: Primitive frames trained. final: The last update's record (``None`` without any update).
        stoch: Per task, the evaluation with sampled option choices and actions. det: The same with argmax ones.
    """

    frames: int
    final: UpdateRecord | None
    stoch: dict[str, OptionCriticTaskEval]
    det: dict[str, OptionCriticTaskEval]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form written to ``results.json``: ``frames``, ``final`` (the record's fields or ``None``),
        ``stoch`` / ``det`` (task -> ``success``, ``mean_duration``)."""
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class SketchUpdateRecord:
    """What one update saw and did (``nan`` where nothing was measured).

    Attributes:
        frames: Primitive frames so far. policy_loss, value_loss, entropy: The last minibatch's losses and action
            entropy. success: Training success over the last episodes. stop_prob: Mean STOP probability over the
            rollout's steps where the running module decided. stop_after_event: Share of the rollout's STOP decisions
            taken after the module's subtask was done.
    """

    frames: int
    policy_loss: float
    value_loss: float
    entropy: float
    success: float
    stop_prob: float
    stop_after_event: float


@dataclass(frozen=True, kw_only=True)
class SketchTaskEval:
    """One evaluated task: its split (the training tasks' ``train``, or ``eval_split``) and success rate."""

    split: str
    success: float


@dataclass(frozen=True, kw_only=True)
class SketchResults:
    """What :func:`run_sketch` measured (``results.json``, see :meth:`to_dict`).

    Attributes:
        frames: Primitive frames trained. modules: The modules' names (the saved library's order).
        curriculum: How each curriculum stage (sketch length) ended. final: The last update's record (``None``
            without any update). stoch: Per task, success with sampled STOP decisions and actions. det: The same
            deterministic (argmax actions, STOP above 0.5).
    """

    frames: int
    modules: tuple[str, ...]
    curriculum: tuple[StageResult, ...]
    final: SketchUpdateRecord | None
    stoch: dict[str, SketchTaskEval]
    det: dict[str, SketchTaskEval]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form written to ``results.json``: the fields by name, records as dicts, tuples as lists."""
        return {**asdict(self), "modules": list(self.modules), "curriculum": [asdict(r) for r in self.curriculum]}
