"""Plans and re-plans as TensorBoard text, and a per-episode timeline image of which skill (option) ran when.

:func:`log_trace` writes both through any SummaryWriter-like object (``add_text`` and ``add_image``), e.g.
``torch.utils.tensorboard.SummaryWriter``. Tags: ``<prefix>/plans`` (Markdown: outcome, every plan with the reason it
was made, every step) and ``<prefix>/timeline`` (:func:`timeline_figure`: a labelled chart, one row per skill, time in
primitive steps left to right, green = done, red = failed, orange = timed out, dashed lines at re-plans).
:func:`timeline_image` is the same picture as a compact unlabelled pixel array.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from modrl.config import check
from modrl.planner.monitor import ExecutionTrace, SkillStatus

_STATUS_RGB = {
    SkillStatus.DONE: (70, 170, 90),
    SkillStatus.FAILED: (210, 60, 60),
    SkillStatus.TIMEOUT: (235, 150, 40),
}
_BACKGROUND = (30, 30, 36)
_GRID = (55, 55, 64)
_TICK = (255, 255, 255)


class TextImageWriter(Protocol):
    """What :func:`log_trace` needs of a writer (``SummaryWriter`` has both)."""

    def add_text(self, tag: str, text_string: str, global_step: int | None = ...) -> Any:
        """Write Markdown text."""
        ...

    def add_image(self, tag: str, img_tensor: Any, global_step: int | None = ..., *, dataformats: str = ...) -> Any:
        """Write an image."""
        ...


def plan_text(trace: ExecutionTrace) -> str:
    """The trace as Markdown: outcome line, goals, each plan (reason and steps), each executed step."""
    lines = [
        f"**outcome**: {trace.outcome.value} · goals reached {trace.stage}/{len(trace.goals)} · "
        f"{trace.replans} re-plan(s) · {len(trace.steps)} skill(s) · {trace.total_steps} primitive step(s)",
        "",
        "**goals**: " + " ; then ".join(f"`{g}`" for g in trace.goals),
        "",
    ]
    for i, record in enumerate(trace.plans):
        head = "plan 0" if i == 0 else f"re-plan {i}"
        body = " → ".join(f"`{s}`" for s in record.steps) if record.steps else f"*{record.no_plan or 'empty plan'}*"
        lines.append(f"- **{head}** (after {record.after_skills} skill(s); {record.reason}): {body}")
    if trace.steps:
        lines += ["", "| # | plan | skill | status | start | steps | unexpected |", "|---|---|---|---|---|---|---|"]
        for i, step in enumerate(trace.steps):
            unexpected = "; ".join(step.mismatches) or "-"
            lines.append(
                f"| {i} | {step.plan} | `{step.skill}` | {step.status.value} | {step.start} | {step.steps} "
                f"| {unexpected} |"
            )
    return "\n".join(lines)


def timeline_image(trace: ExecutionTrace, *, row: int = 12, max_width: int = 1024) -> np.ndarray:
    """Which skill ran when, as an image.

    Args:
        trace: An execution trace.
        row: Pixel height of one skill's row.
        max_width: Widest image; long episodes are scaled down to fit.

    Returns:
        ``(R * row, W, 3) uint8`` (HWC), R = distinct skills (at least 1), one column block per primitive step (a
        skill that took no step still gets one column).
    """
    check(isinstance(row, int) and row >= 2, "row", f"must be an integer >= 2, got {row!r}")
    check(isinstance(max_width, int) and max_width >= 16, "max_width", f"must be an integer >= 16, got {max_width!r}")
    skills = list(dict.fromkeys(s.skill for s in trace.steps)) or ["(no skill)"]
    total = sum(max(s.steps, 1) for s in trace.steps) or 1
    scale = max(1, min(8, max_width // total))
    image = np.empty((len(skills) * row, total * scale, 3), dtype=np.uint8)
    image[:] = _BACKGROUND
    image[::row] = _GRID
    x = 0
    replan_at = {p.after_skills for p in trace.plans[1:]}
    for i, step in enumerate(trace.steps):
        width = max(step.steps, 1) * scale
        top = skills.index(step.skill) * row
        image[top + 1 : top + row - 1, x : x + width] = _STATUS_RGB[step.status]
        if i + 1 in replan_at:
            image[:, min(x + width, image.shape[1] - 1)] = _TICK
        x += width
    return image


_STATUS_COLOURS = {
    SkillStatus.DONE.value: "tab:green",
    SkillStatus.FAILED.value: "tab:red",
    SkillStatus.TIMEOUT.value: "tab:orange",
}


def timeline_figure(trace: ExecutionTrace) -> np.ndarray:
    """Which skill ran when, as a labelled chart ``(H, W, 3) uint8``: skill names on the rows, primitive steps on the
    x axis, bars coloured by how the skill ended (legend), dashed lines at re-plans, the outcome in the title."""
    from modrl.report.plots import Bar, figure_rgb, gantt_figure  # matplotlib: imported when first needed

    bars, marks, x = [], [], 0
    replan_at = {p.after_skills for p in trace.plans[1:]}
    for i, step in enumerate(trace.steps):
        width = max(step.steps, 1)
        bars.append(Bar(str(step.skill), x, width, step.status.value))
        x += width
        if i + 1 in replan_at:
            marks.append(x)
    title = f"{trace.outcome.value}: {len(trace.steps)} skills, {trace.total_steps} steps, {trace.replans} re-plans"
    fig = gantt_figure(bars, colours=_STATUS_COLOURS, title=title, legend_title="skill ended", marks=marks)
    return figure_rgb(fig)


def log_trace(writer: TextImageWriter, trace: ExecutionTrace, step: int, *, prefix: str = "modrl/planner") -> None:
    """Write :func:`plan_text` to ``<prefix>/plans`` and :func:`timeline_figure` to ``<prefix>/timeline``."""
    writer.add_text(f"{prefix}/plans", plan_text(trace), step)
    writer.add_image(f"{prefix}/timeline", timeline_figure(trace), step, dataformats="HWC")
