"""Planner evaluation: how often the planner solves the tasks of a suite split.

Every episode resets the task's env with a fixed evaluation seed (``seed_base + k``, disjoint from training seeds:
:mod:`modrl.seeds`), reads the symbolic state, plans to the task's goals over the declared MiniGrid operators (A*), and
executes the plan with monitoring and re-planning (:mod:`modrl.agents.planning.episode`, the harness every planner
episode runs in). Success is the env's own (it ended the episode with a positive reward). The plan's skills are run
either by the scripted skills (:class:`modrl.envs.scripted_skills.ScriptedSkills`, the upper bound) or by the learned
options of an option library (:func:`modrl.agents.planning.skills.learned_skills`); with options, a step no option
serves fails (and the planner re-plans) unless ``fallback_scripted`` lets the scripted skills run it, which the report
counts. Without the fallback, plans use only the skills the library's options serve (:attr:`OptionExecutor.allowed
<modrl.planner.option_executor.OptionExecutor.allowed>`), unless ``skill_aware`` is off.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import gymnasium as gym
import numpy as np

from modrl.agents.planning.episode import PlannerRunConfig, View, play_planner_episode
from modrl.agents.planning.library import load_libraries
from modrl.config import ConfigError, check
from modrl.envs import get_suite
from modrl.options import OptionLibrary
from modrl.planner import ExecutionTrace, Outcome, SearchConfig, SkillStatus
from modrl.planner.search import Algorithm
from modrl.registry import UnknownNameError
from modrl.seeds import EVAL_SEED_BASE
from modrl.text_table import format_row

progress_log = logging.getLogger("modrl.progress")


class SkillSource(Enum):
    """What runs the plan's skills."""

    SCRIPTED = "scripted"
    """:class:`modrl.envs.scripted_skills.ScriptedSkills` (every step; the upper bound of learned skills)."""
    OPTIONS = "options"
    """The learned options of a library (the scripted skills only for unserved steps, if allowed)."""


def default_split(suite: str) -> str:
    """``"test"`` when the suite has a test split, else ``"train"`` (the first split if it has neither).

    Raises:
        modrl.registry.UnknownNameError: No suite is called ``suite``.
    """
    splits = get_suite(suite).splits
    return "test" if "test" in splits else "train" if "train" in splits else next(iter(splits))


#: The settings a :class:`PlannerEvalConfig` passes to each episode's :class:`PlannerRunConfig` (its own names) ...
_SHARED_FIELDS: tuple[str, ...] = (
    "option_steps",
    "max_nodes",
    "max_replans",
    "loop_limit",
    "escape_steps",
    "cycle_limit",
    "deterministic",
    "fallback_scripted",
    "skill_aware",
    "view",
    "algorithm",
)
#: ... and the few that the run config names differently.
_RUN_FIELDS: dict[str, str] = {"fallback_scripted": "fallback"}


@dataclass(frozen=True, kw_only=True)
class PlannerEvalConfig:
    """What a planner evaluation runs.

    Attributes:
        suite: A registered suite. split: One of its splits.
        episodes: Episodes per task; episode ``k`` is seeded ``seed_base + k``.
        library: An option library directory (``RUN_DIR/options`` of ``modrl options train``); ``None``: the
            scripted skills run every step.
        ensemble: More library directories whose options join ``library``'s: each skill acts with the mixture of
            every library's option for it (:func:`modrl.options.ensemble.ensemble_library`).
        deterministic: Greedy option actions (``False``: sampled; options only).
        fallback_scripted: The scripted skills run the steps no option serves (options only).
        option_steps: Step cap of one option call.
        max_replans: Re-plans allowed per episode after the first plan.
        loop_limit: An option call that sees one observation this many times is stuck: it ends, ``escape_steps``
            random moves (turn left / turn right / forward) follow, and the planner re-plans (0: off; see
            :mod:`modrl.planner.option_executor`). Options only.
        cycle_limit: After an option call that ends by its own termination, its step's effects observed, in a
            planning state (base atoms) such calls have now left this many times in the episode, the same escape
            follows (0: off; e.g. a ``drop`` that sets the ball back where it blocks the door, again and again).
            Options only.
        tasks: Evaluate only these tasks of the split (in this order); ``None``: all of them.
        seed_base: Seed of episode 0.
        skill_aware: With options and no fallback, plan only over the skills the options serve (``False``: over
            every declared operator, so steps no option serves fail and trigger re-plans).
        max_nodes: Node expansions per (re-)plan before the search gives up (:class:`modrl.planner.SearchConfig`).
        view: What the planner reads: ``"full"`` (the whole grid, privileged; the default) or ``"own"`` (the map
            of the cells the agent has seen, with exploration: :mod:`modrl.envs.own_view`).
    """

    suite: str = "sequences"
    split: str = "test"
    episodes: int = 10
    library: str | None = None
    ensemble: tuple[str, ...] = ()
    deterministic: bool = True
    fallback_scripted: bool = False
    option_steps: int = 100
    max_replans: int = 20
    loop_limit: int = 3
    escape_steps: int = 3
    cycle_limit: int = 3
    tasks: tuple[str, ...] | None = None
    seed_base: int = EVAL_SEED_BASE
    skill_aware: bool = True
    max_nodes: int = SearchConfig().max_nodes
    view: View = "full"
    algorithm: Algorithm = PlannerRunConfig().algorithm

    def __post_init__(self) -> None:
        check(isinstance(self.episodes, int) and self.episodes >= 1, "episodes", f"must be >= 1, got {self.episodes}")
        self.run_config  # noqa: B018 -- checks the run's values (PlannerRunConfig)
        check(
            isinstance(self.seed_base, int) and self.seed_base >= 0, "seed_base", f"must be >= 0, got {self.seed_base}"
        )
        object.__setattr__(self, "ensemble", tuple(self.ensemble))
        check(
            self.library is not None or not self.ensemble,
            "ensemble",
            "needs an option library to join (without one the scripted skills run every step)",
        )
        check(
            self.library is not None or not self.fallback_scripted,
            "fallback_scripted",
            "needs an option library (without one the scripted skills run every step)",
        )
        check(
            self.library is not None or self.deterministic,
            "deterministic",
            "only options sample actions; the scripted skills are deterministic",
        )
        try:
            suite = get_suite(self.suite)
        except UnknownNameError as exc:
            raise ConfigError(f"suite: {exc}") from None
        check(
            self.split in suite.splits,
            "split",
            f"suite {self.suite!r} has no split {self.split!r}; its splits: {', '.join(suite.splits)}",
        )
        if self.tasks is not None:
            object.__setattr__(self, "tasks", tuple(self.tasks))
            unknown = [name for name in self.tasks if name not in suite.splits[self.split]]
            check(
                bool(self.tasks) and not unknown,
                "tasks",
                f"{unknown[0] if unknown else 'none given'}: pick tasks of {self.suite}/{self.split}",
            )

    @property
    def skills(self) -> SkillSource:
        """Who runs the plan's skills."""
        return SkillSource.SCRIPTED if self.library is None else SkillSource.OPTIONS

    @classmethod
    def of_run(cls, run: PlannerRunConfig, **fields: Any) -> PlannerEvalConfig:
        """The evaluation given by ``fields`` (suite, split, episodes, library, ...) whose episodes run with ``run``
        (with ``run.algorithm`` at its default weight: ``run.weight`` is not read)."""
        shared = {name: getattr(run, _RUN_FIELDS.get(name, name)) for name in _SHARED_FIELDS}
        return cls(**shared, **fields)

    @property
    def run_config(self) -> PlannerRunConfig:
        """What each episode runs with (:class:`~modrl.agents.planning.episode.PlannerRunConfig`)."""
        return PlannerRunConfig(**{_RUN_FIELDS.get(name, name): getattr(self, name) for name in _SHARED_FIELDS})

    @property
    def task_names(self) -> tuple[str, ...]:
        """The tasks evaluated, in order."""
        return self.tasks if self.tasks is not None else get_suite(self.suite).splits[self.split]


@dataclass(frozen=True)
class PlannerEpisode:
    """One episode: its seed (``modrl plan SUITE/TASK --seed SEED --execute`` replays it), whether the env was solved,
    re-plans, env steps, how execution ended, skill executions by options and by the scripted fallback, and option
    calls ended as stuck (``loops``, each followed by an escape), escapes after a recurring end state
    (``cycles``), and per operator (``open_box``, ``unlock``, ...) its skill executions and how many of them ended as
    planned (done, every expected effect observed): ``operators[name] = (calls, as_planned)``."""

    seed: int
    success: bool
    replans: int
    steps: int
    outcome: Outcome
    option_calls: int
    fallback_calls: int
    loops: int = 0
    cycles: int = 0
    operators: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the outcome as its value)."""
        return {**asdict(self), "outcome": self.outcome.value}


@dataclass(frozen=True)
class PlannerTaskResult:
    """One task: success rate, mean re-plans and env steps per episode, skill executions (options / scripted
    fallback), stuck option calls (``loops``), cycle escapes (``cycles``) and executions per operator
    (:attr:`PlannerEpisode.operators`), summed over episodes, outcome counts, and the episodes themselves."""

    task: str
    split: str
    episodes: int
    success_rate: float
    mean_replans: float
    mean_steps: float
    option_calls: int
    fallback_calls: int
    loops: int
    outcomes: dict[str, int]
    runs: tuple[PlannerEpisode, ...]
    cycles: int = 0
    operators: dict[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def from_runs(cls, task: str, split: str, runs: tuple[PlannerEpisode, ...]) -> PlannerTaskResult:
        """Aggregate ``runs`` (at least one) of ``task``."""
        return cls(
            task=task,
            split=split,
            episodes=len(runs),
            success_rate=float(np.mean([r.success for r in runs])),
            mean_replans=float(np.mean([r.replans for r in runs])),
            mean_steps=float(np.mean([r.steps for r in runs])),
            option_calls=sum(r.option_calls for r in runs),
            fallback_calls=sum(r.fallback_calls for r in runs),
            loops=sum(r.loops for r in runs),
            outcomes=dict(Counter(r.outcome.value for r in runs)),
            runs=runs,
            cycles=sum(r.cycles for r in runs),
            operators=_sum_operators(r.operators for r in runs),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, the episodes as :meth:`PlannerEpisode.to_dict`."""
        return {**{k: v for k, v in asdict(self).items() if k != "runs"}, "runs": [r.to_dict() for r in self.runs]}


@dataclass(frozen=True)
class PlannerEvalReport:
    """A planner evaluation: what ran (``config``) and one :class:`PlannerTaskResult` per task."""

    config: PlannerEvalConfig
    tasks: tuple[PlannerTaskResult, ...]

    @property
    def mean_success(self) -> float:
        """Success over every episode of every task."""
        return float(np.mean([r.success for task in self.tasks for r in task.runs]))

    @property
    def skills_label(self) -> str:
        """``"scripted skills"``, or ``"learned options (greedy|stochastic)"`` / ``"ensembles of K option libraries
        (greedy|stochastic)"`` (``+ scripted fallback``; own view without it: ``+ scripted explore``)."""
        if self.config.skills is SkillSource.SCRIPTED:
            return "scripted skills"
        if self.config.view == "own" and not self.config.fallback_scripted:
            return self._options_label() + " + scripted explore"
        return self._options_label()

    def _options_label(self) -> str:
        what = (
            f"ensembles of {1 + len(self.config.ensemble)} option libraries"
            if self.config.ensemble
            else "learned options"
        )
        label = f"{what} ({'greedy' if self.config.deterministic else 'stochastic'})"
        return label + (" + scripted fallback" if self.config.fallback_scripted else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: suite, split, skills, greedy or sampled, mean success, the config, one entry per task."""
        config = {**asdict(self.config), "tasks": list(self.config.task_names)}
        return {
            "suite": self.config.suite,
            "split": self.config.split,
            "skills": self.config.skills.value,
            "skills_label": self.skills_label,
            "view": self.config.view,
            "deterministic": self.config.deterministic,
            "mean_success": self.mean_success,
            "config": config,
            "tasks": [t.to_dict() for t in self.tasks],
        }


def _sum_operators(parts: Iterable[dict[str, tuple[int, int]]]) -> dict[str, tuple[int, int]]:
    total: dict[str, tuple[int, int]] = {}
    for part in parts:
        for name, (calls, planned) in part.items():
            before = total.get(name, (0, 0))
            total[name] = (before[0] + calls, before[1] + planned)
    return dict(sorted(total.items()))


def operator_outcomes(trace: ExecutionTrace) -> dict[str, tuple[int, int]]:
    """Per operator (the ground operator's name up to its arguments), the skill executions of ``trace`` and how many
    ended done with every expected effect observed."""
    return _sum_operators(
        {step.operator.split("(")[0]: (1, int(step.status is SkillStatus.DONE and not step.mismatches))}
        for step in trace.steps
    )


def run_planner_episode(
    env_id: str, env_kwargs: dict[str, Any], seed: int, config: PlannerEvalConfig, library: OptionLibrary | None
) -> PlannerEpisode:
    """Plan and execute one episode of the env ``env_id`` reset with ``seed`` (see the module docstring;
    :func:`~modrl.agents.planning.episode.play_planner_episode`)."""
    run = play_planner_episode(gym.make(env_id, **env_kwargs), seed=seed, config=config.run_config, library=library)
    assert run.trace is not None
    usage, loops, cycles = ({"option": 0, "fallback": 0}, 0, 0)
    if run.options is not None:
        usage, loops, cycles = run.options.usage, run.options.loops, run.options.cycles
    return PlannerEpisode(
        seed=seed,
        success=bool(run.runner.episode_success),
        replans=run.trace.replans,
        steps=run.trace.total_steps + run.look_steps,
        outcome=run.trace.outcome,
        option_calls=usage["option"],
        fallback_calls=usage["fallback"],
        loops=loops,
        cycles=cycles,
        operators=operator_outcomes(run.trace),
    )


def evaluate_planner(
    config: PlannerEvalConfig, on_task: Callable[[PlannerTaskResult], None] | None = None
) -> PlannerEvalReport:
    """Evaluate the planner on every task of ``config.task_names``; a progress line per task as it finishes goes to
    the ``modrl.progress`` logger (and the result to ``on_task``). The caller's torch RNG state is left as it was.

    Raises:
        ValueError: ``config.library`` is not a loadable option library.
    """
    library = None if config.library is None else load_libraries(config.library, config.ensemble)
    suite = get_suite(config.suite)
    names = config.task_names
    results = []
    for i, name in enumerate(names):
        spec = suite.tasks[suite.task_index(name)]
        runs = tuple(
            run_planner_episode(spec.env_id, dict(spec.kwargs), config.seed_base + k, config, library)
            for k in range(config.episodes)
        )
        result = PlannerTaskResult.from_runs(name, config.split, runs)
        results.append(result)
        progress_log.info(
            "[planner] %d/%d %s: success %.2f, re-plans %.1f, steps %.1f",
            i + 1,
            len(names),
            name,
            result.success_rate,
            result.mean_replans,
            result.mean_steps,
        )
        if on_task is not None:
            on_task(result)
    return PlannerEvalReport(config=config, tasks=tuple(results))


def format_planner_report(report: PlannerEvalReport) -> str:
    """A plain-text table: one row per task (episodes, success, mean re-plans, mean steps, and with options the
    skill executions by options and by the scripted fallback, the stuck option calls and the cycle escapes), then the
    mean success."""
    config = report.config
    options = config.skills is SkillSource.OPTIONS
    header = [
        "task",
        "episodes",
        "success",
        "re-plans",
        "steps",
        *(["options", "scripted", "stuck", "cycles"] if options else []),
    ]
    rows = [header]
    for r in report.tasks:
        calls = [str(r.option_calls), str(r.fallback_calls), str(r.loops), str(r.cycles)] if options else []
        rows.append(
            [r.task, str(r.episodes), f"{r.success_rate:.2f}", f"{r.mean_replans:.1f}", f"{r.mean_steps:.1f}", *calls]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [format_row(row, widths) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    limits = [f"seeds {config.seed_base}+k", f"at most {config.max_replans} re-plans"]
    if options:
        limits += [
            f"option calls capped at {config.option_steps} steps",
            f"stuck after an observation recurs {config.loop_limit} times, then {config.escape_steps} random moves"
            if config.loop_limit
            else "no loop check",
        ]
        if config.cycle_limit:
            limits.append(f"the same moves whenever {config.cycle_limit}+ calls have ended in one planning state")
    view = "the full grid" if config.view == "full" else "the agent's own view"
    title = (
        f"planner evaluation on {config.suite}/{config.split} from {view} with {report.skills_label} "
        f"({', '.join(limits)})"
    )
    lines.append(
        f"{config.suite}/{config.split}: mean success {report.mean_success:.3f} over {len(report.tasks)} "
        f"task(s) x {config.episodes} episode(s)"
    )
    if options:
        total = sum(r.option_calls for r in report.tasks), sum(r.fallback_calls for r in report.tasks)
        lines.append(
            f"skills run by learned options: {total[0]}, by scripted skills: {total[1]}; "
            f"stuck option calls: {sum(r.loops for r in report.tasks)}; "
            f"cycle escapes: {sum(r.cycles for r in report.tasks)}"
        )
        lines.append("calls ending as planned, by operator: " + _operator_summary(report))
    return "\n".join([title, *lines])


def _operator_summary(report: PlannerEvalReport) -> str:
    total = _sum_operators(task.operators for task in report.tasks)
    return ", ".join(f"{name} {planned}/{calls}" for name, (calls, planned) in total.items()) or "none"
