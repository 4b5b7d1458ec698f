"""What :func:`modrl.agents.options.skill_cloning.train_skill_library` reports per skill, and its ``results.md``
table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modrl.agents.planning.recording import SkillRecording


@dataclass(frozen=True, kw_only=True)
class SkillCloneResult:
    """How one skill option was learned: recorded calls and pairs, demo accuracy before/after cloning on the cloned
    calls (with DAgger's states, after its last round) and on the held-out calls after the first cloning (``None``
    without any), DAgger's labelled states and the option's success in each round's episodes (before that round's
    cloning), the states planner DAgger labelled for it, PPO fine-tuning frames, success in calling states of the
    train envs and of the suite's test envs (sampled / greedy; ``None`` when not evaluated or never called there), wall
    seconds. The cloning accuracies are ``None`` for an option learned by PPO alone (``demonstrations: false``)."""

    skill: str
    calls: int
    pairs: int
    accuracy_before: float | None
    accuracy: float | None
    validation_accuracy: float | None
    dagger_pairs: int = 0
    dagger_success: tuple[float, ...] = ()
    planner_dagger_pairs: int = 0
    finetune_frames: int = 0
    train_success: tuple[float, float] | None = None
    test_success: tuple[float, float] | None = None
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class PlannerDaggerRound:
    """One round of DAgger over planner episodes (``results.json`` ``planner_dagger[i]``, by :func:`dataclasses.
    asdict`).

    Attributes:
        round: The round's number, from 1. train_success: Share of the round's train episodes the planner solved
            with the options (before this round's re-cloning). episodes: Train episodes run. pairs: Labelled states
            added per skill (skills without any left out).
    """

    round: int
    train_success: float
    episodes: int
    pairs: dict[str, int]


def _accuracy(result: SkillCloneResult) -> str:
    """Cloning accuracy ``before -> after``, ``- (not cloned)`` for an option learned by PPO alone."""
    if result.accuracy_before is None or result.accuracy is None:
        return "- (not cloned)"
    return f"{result.accuracy_before:.2f} -> {result.accuracy:.2f}"


def fmt_rate(value: float | None) -> str:
    """A rate with two decimals, ``-`` when there is none."""
    return "-" if value is None else f"{value:.2f}"


def fmt_pair(value: tuple[float, float] | None) -> str:
    """A (sampled, greedy) pair of rates as ``a / b``, ``-`` when there is none."""
    return "-" if value is None else f"{value[0]:.2f} / {value[1]:.2f}"


def format_skill_results(
    recording: SkillRecording, results: Sequence[SkillCloneResult], planner_rounds: Sequence[PlannerDaggerRound] = ()
) -> str:
    """The per-skill table (calls, pairs, cloning accuracy, held-out accuracy, DAgger) under a line on the recording,
    and a line per planner DAgger round."""
    lines = [
        f"recorded {recording.episodes} planner episodes ({recording.solved} solved, {recording.frames} frames)"
        if recording.episodes
        else "no demonstrations: every option learned by PPO alone in calling-state episodes"
    ]
    lines += [
        f"planner DAgger round {r.round}: the planner with the options solved {r.train_success:.2f} of "
        f"{r.episodes} train episodes; labelled states added: "
        + (", ".join(f"{k} {v}" for k, v in r.pairs.items()) or "none")
        for r in planner_rounds
    ]
    lines += [
        "",
        "| skill | calls | pairs | cloning accuracy before -> after | held-out calls accuracy | "
        "DAgger pairs | DAgger rounds' on-policy success | planner DAgger pairs | PPO frames | "
        "calling-state success, train envs (sampled / greedy) | test envs (sampled / greedy) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rounds = " ".join(f"{v:.2f}" for v in r.dagger_success) or "-"
        lines.append(
            f"| {r.skill} | {r.calls} | {r.pairs} | {_accuracy(r)} | "
            f"{fmt_rate(r.validation_accuracy)} | {r.dagger_pairs} | {rounds} | {r.planner_dagger_pairs} | "
            f"{r.finetune_frames} | {fmt_pair(r.train_success)} | {fmt_pair(r.test_success)} |"
        )
    return "\n".join(lines)
