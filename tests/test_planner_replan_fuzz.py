"""Fuzzing the plan-execute-re-plan loop: skills that fail, time out, return early, or act amid random moves.

Hypothesis draws, for each skill call, what goes wrong (nothing; a failure or a time-out without acting; a skill that
says it is done at once without acting; random moves before or after the skill) and the search mode and re-plan
limit. Every execution must end, within a wall-clock limit, with one clear outcome whose trace agrees with it:
success only with every goal reached (or the env solved), the re-plan limit only when that many re-plans were made,
no re-plan beyond the limit, no skill beyond ``max_skills``, ``no_plan`` only when search from the last observed
state finds none, ``no_progress`` only with the re-plan-loop message. The corridor cases run in the default suite
(tenths of a second each); DoorKey-5x5 with the scripted skills too, a few cases; more envs and cases are ``slow``.
"""

from __future__ import annotations

import contextlib
import random
import warnings
from typing import Any

import pytest

pytest.importorskip("hypothesis")  # the `test` extra; an environment without it skips the fuzzer, not the suite
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from modrl.planner import (
    Domain,
    ExecutionTrace,
    Goal,
    GroundOperator,
    MonitorConfig,
    NoPlan,
    Outcome,
    SearchConfig,
    SkillResult,
    SkillStatus,
    plan,
)
from tests.fuzz_limits import fuzz_settings, time_limit
from tests.test_planner import CORRIDOR, GEM, START, World

CASE_SECONDS = 30
EVENTS = ("ok", "fail", "timeout", "early", "noise_before", "noise_after")
"""What happens to one skill call: run as is; fail / time out without acting; say done at once without acting (a
skill that returns early); random moves before it runs; random moves after it ran."""


class Perturbed:
    """A skill executor whose ``k``-th call suffers ``events[k]`` (``"ok"`` past the end); ``noise(n)`` makes ``n``
    random moves in the world and returns ``(steps, episode over, success)``."""

    def __init__(self, inner: Any, events: list[str], moves: list[int], noise: Any) -> None:
        self.inner, self.events, self.moves, self.noise, self.calls = inner, events, moves, noise, 0

    def observe(self) -> frozenset[str]:
        return self.inner.observe()  # type: ignore[no-any-return]

    def execute(self, step: GroundOperator) -> SkillResult:
        k, self.calls = self.calls, self.calls + 1
        event = self.events[k] if k < len(self.events) else "ok"
        moves = self.moves[k % len(self.moves)] if self.moves else 1
        if event in ("fail", "timeout"):
            status = SkillStatus.FAILED if event == "fail" else SkillStatus.TIMEOUT
            return SkillResult(status=status, state=self.observe(), steps=0)
        if event == "early":
            return SkillResult(status=SkillStatus.DONE, state=self.observe(), steps=0)
        before = 0
        if event == "noise_before":
            before, over, success = self.noise(moves)
            if over:
                return SkillResult(
                    status=SkillStatus.FAILED, state=self.observe(), steps=before, episode_over=True, success=success
                )
        result: SkillResult = self.inner.execute(step)
        if event != "noise_after" or result.episode_over:
            return SkillResult(
                status=result.status,
                state=result.state,
                steps=before + result.steps,
                episode_over=result.episode_over,
                success=result.success,
            )
        after, over, success = self.noise(moves)
        return SkillResult(
            status=result.status, state=self.observe(), steps=result.steps + after, episode_over=over, success=success
        )


def check_trace(
    trace: ExecutionTrace, domain: Domain, goals: tuple[Goal, ...], config: MonitorConfig, solved: bool
) -> None:
    """The outcome is one of the clear ones and the trace agrees with it."""
    with contextlib.suppress(InvalidArgument):  # outside a Hypothesis test there are no statistics to keep
        event(trace.outcome.value)  # pytest --hypothesis-show-statistics: how often each outcome was met
    limit = "re-plan limit reached"
    searched = [p for p in trace.plans[1:] if p.no_plan != limit]  # the limit's own record is no search
    assert len(searched) <= config.max_replans and len(trace.steps) <= config.max_skills
    assert all(p.no_plan != limit for p in trace.plans[:-1])
    last = trace.plans[-1] if trace.plans else None
    if trace.outcome is Outcome.SUCCESS:
        assert trace.stage == len(goals) or solved
    elif trace.outcome is Outcome.REPLAN_LIMIT:
        assert len(searched) == config.max_replans and last is not None and last.no_plan == limit
    elif trace.outcome is Outcome.NO_PROGRESS:
        assert last is not None and "re-plan loop" in (last.no_plan or "")
    elif trace.outcome is Outcome.NO_PLAN:
        assert last is not None and last.no_plan is not None
        again = plan(domain, trace.final_state, goals, config.search, stage=trace.stage)
        assert isinstance(again, NoPlan)  # no plan from where it stopped: not a search that gave up too early
    else:
        assert trace.outcome in (Outcome.SKILL_LIMIT, Outcome.EPISODE_OVER), trace.outcome
        assert trace.outcome is not Outcome.SKILL_LIMIT or len(trace.steps) == config.max_skills


perturbations = st.lists(st.sampled_from(EVENTS), max_size=12)
modes = st.sampled_from(["astar", "wastar", "gbfs"])


# -- the corridor (a simulated world) ------------------------------------------------------------------------------
def _corridor_noise(world: World, rng: random.Random) -> Any:
    def noise(n: int) -> tuple[int, bool, bool]:
        for _ in range(n):
            ops = CORRIDOR.applicable(world.state)
            if ops:
                world.state = rng.choice(ops).apply(world.state)
        return n, False, False

    return noise


def _corridor_case(events: list[str], moves: list[int], algorithm: str, max_replans: int, seed: int) -> None:
    world = World(START)
    config = MonitorConfig(search=SearchConfig(algorithm=algorithm), max_replans=max_replans, max_skills=40)  # type: ignore[arg-type]
    from modrl.planner import execute

    with time_limit(CASE_SECONDS):
        trace = execute(
            CORRIDOR, GEM, Perturbed(world, events, moves, _corridor_noise(world, random.Random(seed))), config
        )
    check_trace(trace, CORRIDOR, (GEM,), config, solved=False)
    if trace.outcome is Outcome.SUCCESS:
        assert "holding(gem)" in world.state


@fuzz_settings(80)
@given(perturbations, st.lists(st.integers(1, 4), max_size=6), modes, st.integers(0, 6), st.integers(0, 2**16))
def test_corridor_replan_loop_always_ends_with_a_clear_outcome(
    events: list[str], moves: list[int], algorithm: str, max_replans: int, seed: int
) -> None:
    _corridor_case(events, moves, algorithm, max_replans, seed)


def test_the_fuzzer_can_fail_a_loop_that_does_not_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """A monitor that ignored its re-plan limit would be caught: with the limit check removed, always-failing skills
    run until max_skills, and check_trace refuses that trace."""
    import modrl.planner.monitor as monitor

    world = World(START)
    config = MonitorConfig(max_replans=2, max_skills=40)
    trace = monitor.execute(CORRIDOR, GEM, Perturbed(world, ["timeout"] * 40, [], None), config)
    check_trace(trace, CORRIDOR, (GEM,), config, solved=False)  # the real monitor: re-plan limit
    assert trace.outcome is Outcome.REPLAN_LIMIT
    monkeypatch.setattr(monitor, "IDLE_ATTEMPTS", 10**6)
    loose = MonitorConfig(max_replans=10**6, max_skills=40)
    trace = monitor.execute(CORRIDOR, GEM, Perturbed(World(START), ["timeout"] * 40, [], None), loose)
    with pytest.raises(AssertionError):
        check_trace(trace, CORRIDOR, (GEM,), config, solved=False)


# -- MiniGrid with the scripted skills -----------------------------------------------------------------------------
def _minigrid_case(
    env_id: str, seed: int, events: list[str], moves: list[int], algorithm: str, max_replans: int
) -> None:
    import gymnasium as gym
    import minigrid  # noqa: F401

    from modrl.agents.planning.episode import PlannerRunConfig, start_planner_episode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(env_id)
    run = start_planner_episode(
        env,
        seed=seed,
        config=PlannerRunConfig(algorithm=algorithm, max_replans=max_replans),  # type: ignore[arg-type]
    )
    rng = random.Random(seed)
    runner = run.runner

    def noise(n: int) -> tuple[int, bool, bool]:
        for i in range(n):
            _, reward, terminated, truncated, _ = env.step(rng.randrange(6))  # turns, forward, pickup, drop, toggle
            if terminated or truncated:
                runner.episode_over, runner.episode_success = True, bool(terminated and float(reward) > 0)
                return i + 1, True, runner.episode_success
        return n, False, False

    try:
        with time_limit(CASE_SECONDS):
            trace = run.execute(Perturbed(runner, events, moves, noise))
        check_trace(trace, run.domain, run.goals, run.config.monitor, solved=bool(runner.episode_success))
    finally:
        run.close()


@fuzz_settings(12)
@given(st.integers(0, 50), perturbations, st.lists(st.integers(1, 6), max_size=6), modes, st.integers(0, 5))
def test_doorkey_replan_loop_always_ends_with_a_clear_outcome(
    seed: int, events: list[str], moves: list[int], algorithm: str, max_replans: int
) -> None:
    _minigrid_case("MiniGrid-DoorKey-5x5-v0", seed, events, moves, algorithm, max_replans)


SLOW_ENVS = (
    "MiniGrid-DoorKey-6x6-v0",
    "MiniGrid-UnlockPickup-v0",
    "MiniGrid-KeyCorridorS3R1-v0",
    "MiniGrid-ObstructedMaze-1Dlhb-v0",
    "MiniGrid-ObstructedMaze-1Q-v1",
    "BabyAI-GoToLocal-v0",
    "BabyAI-PutNextLocal-v0",
    "BabyAI-KeyInBox-v0",
)


@pytest.mark.slow
@fuzz_settings(400)
@given(
    st.sampled_from(SLOW_ENVS),
    st.integers(0, 1000),
    st.lists(st.sampled_from(EVENTS), max_size=20),
    st.lists(st.integers(1, 10), max_size=8),
    modes,
    st.integers(0, 8),
)
def test_many_envs_replan_loop_always_ends_with_a_clear_outcome(
    env_id: str, seed: int, events: list[str], moves: list[int], algorithm: str, max_replans: int
) -> None:
    _minigrid_case(env_id, seed, events, moves, algorithm, max_replans)
