"""Episodes no policy can solve, labelled so only on a proof from the initial state (the coverage table's
``unsolvable``): the first search from the full grid, before any action, finds h_max (or the goal-count bound)
infinite. Regressions on the generator bugs behind such seeds, and checks that solvable seeds are never labelled."""

from __future__ import annotations

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid and BabyAI ids)
import pytest

from modrl.agents.planning.episode import (
    PlannerRunConfig,
    play_planner_episode,
    proven_unsolvable,
    start_planner_episode,
)
from modrl.cli.main import main
from modrl.planner import Outcome, Plan, SearchConfig, advance, plan, unreachable_proof

PREFIX = "proven unreachable at the start: no relaxed plan reaches "


@pytest.mark.parametrize(
    ("env_id", "seed", "target", "stays"),
    [
        # BabyAI's generator compares numpy ints with ``is``: the key of the locked room can land inside it.
        ("BabyAI-GoToImpUnlock-v0", 6, "facing(key,grey)", "locked(door,yellow@7_11)"),
        ("BabyAI-GoToImpUnlock-v0", 14, "facing(box,grey@10_5)", "locked(door,"),
        # MiniGrid's v0 generator set the ball blocking the blue door on the box that held the purple key.
        ("MiniGrid-ObstructedMaze-1Q-v0", 7, "carrying(ball,blue)", "locked(door,purple)"),
        ("MiniGrid-ObstructedMaze-2Dlhb-v0", 7, "carrying(ball,blue)", "locked(door,purple)"),
    ],
)
def test_a_seed_no_policy_can_solve_is_proven_unsolvable_before_any_action(
    env_id: str, seed: int, target: str, stays: str
) -> None:
    run = play_planner_episode(gym.make(env_id), seed=seed, config=PlannerRunConfig())
    assert run.trace is not None and run.trace.outcome is Outcome.NO_PLAN and not run.trace.steps
    assert not run.runner.episode_success
    why = run.proven_unsolvable
    assert why is not None and why.startswith(f"{PREFIX}{target} (h_max = inf); stays true for good: {stays}"), why


def test_modrl_plan_prints_the_same_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "MiniGrid-ObstructedMaze-1Q-v0", "--seed", "7", "--execute"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    run = play_planner_episode(gym.make("MiniGrid-ObstructedMaze-1Q-v0"), seed=7, config=PlannerRunConfig())
    assert last == f"no plan (unsolvable): {run.proven_unsolvable}"


def test_from_the_own_view_nothing_is_labelled_unsolvable() -> None:
    """The same seed from the agent's own view: the proof comes only after exploring (the unseen cells could have
    held the key), so the episode is a plain ``no_plan``, and a proof is never read as one about the env."""
    run = play_planner_episode(gym.make("MiniGrid-ObstructedMaze-1Q-v0"), seed=7, config=PlannerRunConfig(view="own"))
    assert run.trace is not None and run.trace.outcome is Outcome.NO_PLAN and run.trace.steps
    assert run.trace.plans[-1].proof is not None and run.trace.proven_unreachable is None
    assert run.proven_unsolvable is None
    assert proven_unsolvable("anything", "own") is None and proven_unsolvable(None, "full") is None


@pytest.mark.parametrize(
    ("env_id", "seeds"),
    [
        ("BabyAI-GoToImpUnlock-v0", (0, 7)),
        pytest.param("BabyAI-GoToImpUnlock-v0", (1, 2, 3, 4, 5, 8, 9, 10), marks=pytest.mark.slow),
        ("MiniGrid-ObstructedMaze-1Q-v0", (0, 1, 2, 3, 4, 5, 6, 8)),
        ("MiniGrid-ObstructedMaze-2Dlhb-v0", (0, 1, 2, 3, 4, 5, 6, 8)),
        ("MiniGrid-ObstructedMaze-1Q-v1", (7,)),  # the fixed generator: seed 7 has its key
    ],
)
def test_a_solvable_seed_is_never_labelled_unsolvable(env_id: str, seeds: tuple[int, ...]) -> None:
    """Solvable seeds of the same ids: the episode is solved, and no state along the first plan (the start included)
    is proven a dead end -- a proof there would be wrong, as the plan reaches the goals from it."""
    for seed in seeds:
        run = start_planner_episode(gym.make(env_id), seed=seed, config=PlannerRunConfig())
        goals, state, domain = run.goals, run.runner.observe(), run.domain
        found = plan(domain, state, goals, SearchConfig(algorithm="wastar"))
        assert isinstance(found, Plan), (seed, found)
        stage = advance(goals, 0, None, domain.closure(state))
        for step in found.steps:
            assert unreachable_proof(domain, state, goals, stage) is None, (seed, step.name)
            after = step.apply(state)
            stage = advance(goals, stage, domain.closure(state), domain.closure(after))
            state = after
        assert stage == len(goals)
        trace = run.execute(initial=found)
        assert trace.outcome is Outcome.SUCCESS and run.runner.episode_success, seed
        assert run.proven_unsolvable is None and trace.proven_unreachable is None
        run.close()
