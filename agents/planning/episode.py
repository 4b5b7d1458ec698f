"""One planner episode, the same for every caller: ``modrl plan``, planner evaluation
(:mod:`modrl.agents.planning.evaluation`), planner DAgger (:mod:`modrl.agents.planning.dagger`), the skill recordings
(:mod:`modrl.agents.planning.recording`) and the experiments under ``experiments/planner``.

:class:`PlannerRunConfig` holds what such an episode is run with (search bound, re-plans, the option-call limits and
the stuck / cycle escapes, greedy or sampled options, the scripted fallback) and is the one place those values are
checked. :func:`start_planner_episode` wraps an env for an option library (:func:`.skills.wrap_for_library`),
resets it with the episode's seed and builds the skill executor: the scripted skills without a library, else the
library's options (:func:`.skills.learned_skills`, seeded with the same seed).
:meth:`PlannerRun.execute` reads the env's goals (:func:`modrl.envs.goals.goals_for_env`) and plans and executes
them over the declared operators (:func:`modrl.planner.execute`); :func:`play_planner_episode` does all of it and
closes the env. Sampled option actions draw from torch's global RNG, so execution runs in a fork of it seeded with the
episode's seed: an episode is reproducible from its seed, and the caller's RNG state is left alone.

``view="own"`` plans from the agent's own view instead of the full grid: the env is wrapped innermost by
:class:`modrl.envs.own_view.OwnView` (a map of the cells seen so far, kept up to date by every step whoever takes it),
the planning state is :func:`modrl.envs.own_view.own_view_state`, the goals are read without the env's privileged
target (:func:`modrl.envs.goals.goals_for_env` with ``own_view``), the domain has the exploration operators
(:data:`modrl.envs.operators.EXPLORE_OPERATORS`), and the scripted skills -- all of them with the scripted skills,
the fallback and ``explore`` with options -- read the map.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import torch

from modrl.config import ConfigError
from modrl.envs.goals import NotSeenYet, goals_for_env
from modrl.envs.operators import planning_domain
from modrl.envs.own_view import OwnView, goal_objects, own_view_of
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.options import OptionLibrary
from modrl.planner import (
    Domain,
    ExecutionTrace,
    Goal,
    GroundOperator,
    MonitorConfig,
    Plan,
    SearchConfig,
    SkillExecutor,
    SkillResult,
    SkillStatus,
    execute,
)
from modrl.planner.option_executor import OptionExecutor
from modrl.planner.search import Algorithm, Allowed

from .skills import learned_skills, wrap_for_library


class PlannerConfigError(ConfigError):
    """A :class:`PlannerRunConfig` value out of range: ``"<field>: <detail>"``; :attr:`flag_message` says it for the
    command-line flag of the same name (``--option-steps must be >= 1, got 0``)."""

    def __init__(self, field_name: str, detail: str) -> None:
        super().__init__(f"{field_name}: {detail}")
        self.field_name, self.detail = field_name, detail

    @property
    def flag_message(self) -> str:
        """The message naming the flag ``--<field-name>`` instead of the field."""
        return f"--{self.field_name.replace('_', '-')} {self.detail}"


def _check(condition: bool, field_name: str, detail: str) -> None:
    if not condition:
        raise PlannerConfigError(field_name, detail)


@dataclass(frozen=True, kw_only=True)
class PlannerRunConfig:
    """What one planner episode runs with.

    Attributes:
        option_steps: Step cap of one option call.
        max_nodes: Node expansions per (re-)plan before the search gives up (:class:`modrl.planner.SearchConfig`).
        max_replans: Re-plans allowed per episode after the first plan.
        loop_limit: An option call that sees one observation this many times is stuck: it ends, ``escape_steps``
            random moves (turn left / turn right / forward) follow, and the planner re-plans (0: off; see
            :mod:`modrl.planner.option_executor`).
        escape_steps: Random moves after a stuck option call (or a cycle).
        cycle_limit: After an option call that ends by its own termination, its step's effects observed, in a
            planning state (base atoms) such calls have now left this many times in the episode, the same escape
            follows (0: off).
        deterministic: Greedy option actions (``False``: sampled).
        fallback: The scripted skills run the steps no option serves (with an option library; without one the
            scripted skills run every step anyway).
        skill_aware: With options and no fallback, plan only over the skills the options serve
            (:attr:`OptionExecutor.allowed <modrl.planner.option_executor.OptionExecutor.allowed>`); ``False``: over
            every declared operator, so steps no option serves fail and trigger re-plans.
        algorithm: The search (:class:`modrl.planner.SearchConfig`): ``"wastar"`` (the default: weighted A* with
            h_FF; on the panel of ``experiments/bench/bench_planner.py`` as many plans as A*, as long, after far
            fewer nodes), ``"gbfs"``, or ``"astar"`` / ``"bfs"`` for shortest plans.
        weight: ``"wastar"``'s weight on the heuristic.
        view: ``"full"``: plan over the full grid (privileged); ``"own"``: over the map of the cells the agent has
            seen, with exploration (see the module docstring).

    Raises:
        PlannerConfigError: A value is out of range (the message names the field, its
            :attr:`~PlannerConfigError.flag_message` the flag).
    """

    option_steps: int = 100
    max_nodes: int = SearchConfig().max_nodes
    max_replans: int = 20
    loop_limit: int = 3
    escape_steps: int = 3
    cycle_limit: int = 3
    deterministic: bool = True
    fallback: bool = False
    skill_aware: bool = True
    algorithm: Algorithm = "wastar"
    weight: float = SearchConfig().weight
    view: View = "full"

    def __post_init__(self) -> None:
        _check(
            isinstance(self.option_steps, int) and self.option_steps >= 1,
            "option_steps",
            f"must be >= 1, got {self.option_steps}",
        )
        _check(
            isinstance(self.max_nodes, int) and self.max_nodes >= 1, "max_nodes", f"must be >= 1, got {self.max_nodes}"
        )
        _check(
            isinstance(self.max_replans, int) and self.max_replans >= 0,
            "max_replans",
            f"must be >= 0, got {self.max_replans}",
        )
        _check(
            isinstance(self.loop_limit, int) and (self.loop_limit == 0 or self.loop_limit >= 2),
            "loop_limit",
            f"must be 0 (off) or >= 2, got {self.loop_limit}",
        )
        _check(
            isinstance(self.escape_steps, int) and self.escape_steps >= 0,
            "escape_steps",
            f"must be >= 0, got {self.escape_steps}",
        )
        _check(
            isinstance(self.cycle_limit, int) and (self.cycle_limit == 0 or self.cycle_limit >= 2),
            "cycle_limit",
            f"must be 0 (off) or >= 2, got {self.cycle_limit}",
        )
        try:
            self.search  # noqa: B018 -- checks the algorithm and the weight
        except ConfigError as exc:
            field_name, _, detail = str(exc).partition(": ")
            raise PlannerConfigError(field_name, detail) from None
        _check(self.view in VIEWS, "view", f"must be one of {', '.join(VIEWS)}, got {self.view!r}")

    @property
    def search(self) -> SearchConfig:
        """The search of every (re-)plan."""
        return SearchConfig(algorithm=self.algorithm, max_nodes=self.max_nodes, weight=self.weight)

    @property
    def monitor(self) -> MonitorConfig:
        """The execution limits of :func:`modrl.planner.execute`."""
        return MonitorConfig(search=self.search, max_replans=self.max_replans)


View = Literal["full", "own"]
VIEWS: tuple[View, ...] = ("full", "own")
"""What the planner reads: the full grid (``full``, privileged) or the agent's own view (``own``)."""

Runner = ScriptedSkills | OptionExecutor
"""What runs a planner episode's skills: the scripted skills, or a library's options."""


@dataclass(eq=False, kw_only=True)
class PlannerRun:
    """One planner episode, set up by :func:`start_planner_episode`: the env (wrapped and reset), the skill executor,
    the episode's seed and config, the planning domain, the plan filter, and after :meth:`execute` the trace.

    ``allowed`` starts as the executor's filter (:attr:`OptionExecutor.allowed
    <modrl.planner.option_executor.OptionExecutor.allowed>` with options and ``config.skill_aware``, else ``None``);
    a caller may replace it before :meth:`execute`.
    """

    env: gym.Env
    runner: Runner
    seed: int
    config: PlannerRunConfig
    allowed: Allowed | None = None
    trace: ExecutionTrace | None = None
    look_steps: int = 0
    _goals: tuple[Goal, ...] | None = None
    _domain: Domain | None = None

    @property
    def domain(self) -> Domain:
        """The planning domain for :attr:`goals` (:func:`modrl.envs.operators.planning_domain`, without the put-next
        operators when no goal needs them), made when first asked for."""
        if self._domain is None:
            self._domain = planning_domain(self.goals, own_view=self.config.view == "own")
        return self._domain

    @property
    def options(self) -> OptionExecutor | None:
        """The option executor, if a library's options run the skills."""
        return self.runner if isinstance(self.runner, OptionExecutor) else None

    @property
    def goals(self) -> tuple[Goal, ...]:
        """The env's goals, read from the state when first asked for (:func:`modrl.envs.goals.goals_for_env`); from
        the own view, the objects they name are then given to the map (its state marks them ``unseen`` until seen),
        so read the goals before the state to plan from."""
        if self._goals is None:
            own = own_view_of(self.env)
            while True:
                try:
                    self._goals = goals_for_env(self.env, self.runner.observe(), own_view=own is not None)
                    break
                except NotSeenYet as exc:
                    if own is None or not self._look_for(exc.type_):
                        raise
            if own is not None:
                own.needed = goal_objects(a for g in self._goals for a in g.holds | g.achieve)
        return self._goals

    def _look_for(self, type_: str) -> bool:
        """Own view, a mission naming an object by its type alone ("open the door") before one was seen: run the
        scripted ``explore`` skill until an object of that type is on the map (its steps are :attr:`look_steps`);
        whether one was found."""
        look = GroundOperator(
            operator="look",
            args=(type_,),
            pre=frozenset(),
            neg=(),
            add=frozenset(),
            delete_exact=frozenset(),
            skill="explore",
            skill_args=(type_, "*"),
        )
        skills = ScriptedSkills(self.env, own_view=True)
        result = skills.execute(look)
        self.look_steps += result.steps
        view = own_view_of(self.env)
        return view is not None and view.view.seen(type_, "*") and not result.episode_over

    def execute(self, executor: SkillExecutor | None = None, *, initial: Plan | None = None) -> ExecutionTrace:
        """Plan to :attr:`goals` and execute with monitoring and re-planning (:func:`modrl.planner.execute`), the
        skills run by ``executor`` (default: :attr:`runner`; e.g. a wrapper around it), in a fork of torch's RNG
        seeded with :attr:`seed`; ``initial``, a plan already found from the current state, is run instead of
        searching again. Sets and returns :attr:`trace`."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.trace = execute(
                self.domain,
                self.goals,
                self.runner if executor is None else executor,
                self.config.monitor,
                allowed=self.allowed,
                initial=initial,
            )
        return self.trace

    @property
    def proven_unsolvable(self) -> str | None:
        """Why no policy can solve this episode, when the first search proved its goals unreachable before any action
        (:attr:`ExecutionTrace.proven_unreachable <modrl.planner.ExecutionTrace.proven_unreachable>`): see
        :func:`proven_unsolvable`. ``None`` before :meth:`execute`, or when it was not proven so."""
        if self.trace is None or self.look_steps:
            return None
        return proven_unsolvable(self.trace.proven_unreachable, self.config.view)

    def close(self) -> None:
        """Close the env."""
        self.env.close()


def proven_unsolvable(proof: str | None, view: View) -> str | None:
    """``"proven unreachable at the start: <proof>"`` for the :attr:`NoPlan.proof <modrl.planner.NoPlan.proof>` of a
    search from an episode's initial state, planned over the full grid: an admissible estimate (h_max or the
    goal-count bound) is infinite there, so no sequence of the operators reaches the goals, and as the full grid is the
    env's whole state, no policy solves the episode (as far as the operators model the env). ``None`` without a proof
    or from the own view (cells not seen yet may hold what the proof says is missing)."""
    if proof is None or view != "full":
        return None
    return f"proven unreachable at the start: {proof}"


def start_planner_episode(
    env: gym.Env,
    *,
    seed: int,
    config: PlannerRunConfig,
    library: OptionLibrary | None = None,
    wrap: Callable[[gym.Env], gym.Env] | None = None,
) -> PlannerRun:
    """Set up one planner episode of ``env`` (see the module docstring): wrapped for ``library`` (if any), then by
    ``wrap`` (if given; e.g. a recorder), reset with ``seed``, and its skill executor built on the outermost wrapper.
    """
    own = config.view == "own"
    if own:
        env = OwnView(env)
    if library is not None:
        env = wrap_for_library(env, library)
    if wrap is not None:
        env = wrap(env)
    env.reset(seed=seed)
    runner: Runner
    allowed = None
    if library is None:
        runner = ScriptedSkills(env, own_view=own)
    else:
        fallback: SkillExecutor | None = ScriptedSkills(env, own_view=own) if config.fallback else None
        if own and fallback is None:
            fallback = ExploreOnly(ScriptedSkills(env, own_view=True))
        view = own_view_of(env)
        runner = learned_skills(
            env,
            library,
            fallback=fallback,
            max_skill_steps=config.option_steps,
            deterministic=config.deterministic,
            seed=seed,
            loop_limit=config.loop_limit or None,
            escape_steps=config.escape_steps,
            cycle_limit=config.cycle_limit or None,
            observe=None if view is None else view.state,
        )
        allowed = runner.allowed if config.skill_aware else None
        if own and not config.fallback and config.skill_aware:
            allowed = _options_or_explore(runner)
    return PlannerRun(env=env, runner=runner, seed=seed, config=config, allowed=allowed)


class ExploreOnly:
    """The scripted ``explore`` skill as the fallback of options that plan from the own view without the scripted
    fallback (no option explores): it runs ``explore`` steps and fails every other step at once. The evaluation counts
    its calls as scripted-fallback calls: an assist, named in the report."""

    def __init__(self, skills: ScriptedSkills) -> None:
        self.skills = skills

    def observe(self) -> frozenset[str]:
        """The own-view planning state."""
        return self.skills.observe()

    def execute(self, step: GroundOperator) -> SkillResult:
        """Run ``step`` if it explores, else fail."""
        if step.skill != "explore":
            return SkillResult(status=SkillStatus.FAILED, state=self.observe())
        return self.skills.execute(step)


def _options_or_explore(runner: OptionExecutor) -> Allowed:
    """The skill-aware filter with the scripted ``explore`` (:class:`ExploreOnly`) beside the options."""

    def allowed(op: GroundOperator) -> bool:
        return op.skill == "explore" or runner.serves(op)

    return allowed


def play_planner_episode(
    env: gym.Env,
    *,
    seed: int,
    config: PlannerRunConfig,
    library: OptionLibrary | None = None,
    wrap: Callable[[gym.Env], gym.Env] | None = None,
    executor: Callable[[PlannerRun], SkillExecutor] | None = None,
) -> PlannerRun:
    """One whole planner episode: :func:`start_planner_episode`, :meth:`PlannerRun.execute` (the skills run by
    ``executor(run)`` if given, e.g. a wrapper around ``run.runner``), the env closed. Returns the run; its
    :attr:`~PlannerRun.trace` is set."""
    run = start_planner_episode(env, seed=seed, config=config, library=library, wrap=wrap)
    try:
        run.execute(None if executor is None else executor(run))
    finally:
        run.close()
    return run
