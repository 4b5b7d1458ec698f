"""Search modes (A*, weighted A*, greedy best-first) and the delete-relaxation heuristics, on the corridor domain."""

from __future__ import annotations

import pytest

from modrl.config import ConfigError
from modrl.planner import (
    Domain,
    Goal,
    NoPlan,
    NoPlanReason,
    Operator,
    Param,
    Plan,
    SearchConfig,
    plan,
    simulate,
    unreachable_proof,
)
from modrl.planner.relaxed import RelaxedGraph
from modrl.planner.search import ALGORITHMS
from tests.test_planner import CORRIDOR, GEM, LINKS, SHORTEST, START, random_corridor_problems


def _plan(result: Plan | NoPlan) -> Plan:
    assert isinstance(result, Plan), result
    return result


def _h(state: frozenset[str], goal: str, kind: str, *, negations: bool) -> float:
    graph = RelaxedGraph(CORRIDOR, CORRIDOR.ground(state), state, [goal], negations=negations)
    return graph.evaluate(CORRIDOR.closure(state), graph.goal_ids([goal]), kind)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_mode_plans_the_corridor(algorithm: str) -> None:
    found = _plan(plan(CORRIDOR, START, GEM, SearchConfig(algorithm=algorithm)))
    assert simulate(CORRIDOR, START, found.steps, GEM) == 1 and found.algorithm == algorithm
    assert len(found) >= len(SHORTEST)
    if algorithm in ("bfs", "astar"):
        assert found.names == SHORTEST


def _h_in(domain: Domain, state: frozenset[str], goal: str, kind: str, *, negations: bool) -> float:
    graph = RelaxedGraph(domain, domain.ground(state), state, [goal], negations=negations)
    return graph.evaluate(domain.closure(state), graph.goal_ids([goal]), kind)  # type: ignore[arg-type]


# The corridor with an operator that locks a cell again: "not locked(c3)" is then no longer exact once true.
RELOCKABLE = Domain(
    operators=(
        *CORRIDOR.operators,
        Operator(
            name="lock", params=(Param(name="?x"), Param(name="?y")), pre=("at(?x)", "link(?x,?y)"), add=("locked(?y)",)
        ),
    )
)


def test_compiled_negations_see_the_lock_that_the_plain_relaxation_walks_through() -> None:
    # Plain, with a lock operator: move c1-c2-c3-c4 and take the gem (the lock on c3 is a negative precondition,
    # dropped): 4.
    assert _h_in(RELOCKABLE, START, "holding(gem)", "hff", negations=False) == 4
    assert _h_in(RELOCKABLE, START, "holding(gem)", "hmax", negations=False) == 4
    # Compiled: "not locked(c3)" needs the unlock, which needs the key from c0: 7 operators in the relaxed plan.
    assert _h_in(RELOCKABLE, START, "holding(gem)", "hff", negations=True) == 7
    assert _h_in(RELOCKABLE, START, "holding(gem)", "hadd", negations=True) >= 7
    keyless = frozenset(START - {"obj(key,c0)"})
    assert _h_in(RELOCKABLE, keyless, "holding(gem)", "hff", negations=True) == float("inf")
    assert _h_in(RELOCKABLE, keyless, "holding(gem)", "hmax", negations=False) == 4  # no proof: the lock is dropped
    assert _h(START, "holding(unicorn)", "hmax", negations=False) == float("inf")


def test_a_negation_no_operator_can_undo_is_compiled_in_the_plain_relaxation_too() -> None:
    """No operator locks a cell: once "not locked(c3)" holds it holds for good, so its ``!L`` fact is exact and h_max
    keeps it (still admissible). A key-less start is then a proven dead end, which weighted A* and greedy search prune
    at once (GoToImpUnlock seeds 6 and 14, whose key is locked in the room it opens, searched until the time limit)."""
    assert _h(START, "holding(gem)", "hmax", negations=False) == 6  # the key fetch (c1-c0-c1-c2, unlock) counted
    keyless = frozenset(START - {"obj(key,c0)"})
    assert _h(keyless, "holding(gem)", "hmax", negations=False) == float("inf")
    for algorithm in ("astar", "wastar", "gbfs"):
        found = plan(CORRIDOR, keyless, GEM, SearchConfig(algorithm=algorithm))
        assert isinstance(found, NoPlan) and found.reason is NoPlanReason.UNREACHABLE and found.expanded == 1
    relockable = plan(RELOCKABLE, keyless, GEM, SearchConfig(algorithm="wastar"))
    assert isinstance(relockable, NoPlan) and relockable.expanded > 1  # searched: the relaxation proves nothing


def test_modes_agree_on_solvability_and_astar_stays_shortest() -> None:
    solved = 0
    for start, goals in random_corridor_problems(1):
        bfs = plan(CORRIDOR, start, goals, SearchConfig(algorithm="bfs"))
        for algorithm in ("astar", "wastar", "gbfs"):
            found = plan(CORRIDOR, start, goals, SearchConfig(algorithm=algorithm))
            if isinstance(bfs, NoPlan):
                assert isinstance(found, NoPlan) and found.reason is NoPlanReason.UNREACHABLE, algorithm
                continue
            assert simulate(CORRIDOR, start, _plan(found).steps, goals) == 2, algorithm
            assert len(found) >= len(bfs) and (algorithm != "astar" or len(found) == len(bfs)), algorithm
            h_max = _h(start, "holding(key)", "hmax", negations=False)
            assert h_max <= len(bfs)  # admissible
        solved += not isinstance(bfs, NoPlan)
    assert solved >= 8


def test_inadmissible_modes_search_an_unsolvable_space_to_the_end_and_keep_the_bound() -> None:
    keyless = frozenset(START - {"obj(key,c0)"})
    for algorithm in ("wastar", "gbfs"):
        stuck = plan(CORRIDOR, keyless, GEM, SearchConfig(algorithm=algorithm))
        assert isinstance(stuck, NoPlan) and stuck.reason is NoPlanReason.UNREACHABLE
        bounded = plan(CORRIDOR, START, GEM, SearchConfig(algorithm=algorithm, max_nodes=2))
        assert isinstance(bounded, NoPlan) and bounded.reason is NoPlanReason.BOUND and bounded.expanded == 2
        holding = frozenset(LINKS | {"at(c0)", "holding(key)"})
        again = _plan(
            plan(CORRIDOR, holding, Goal(achieve=frozenset({"holding(key)"})), SearchConfig(algorithm=algorithm))
        )
        assert again.names == ("drop(key,c0)", "take(key,c0)")  # an achieved atom that already holds is undone first


def test_search_config_checks_mode_and_weight() -> None:
    assert SearchConfig(algorithm="wastar", weight=1).weight == 1
    for bad in (0.5, float("inf"), True, "2"):
        with pytest.raises(ConfigError, match="weight"):
            SearchConfig(algorithm="wastar", weight=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not one of bfs, astar, wastar, gbfs"):
        SearchConfig(algorithm="dfs")  # type: ignore[arg-type]


def test_an_event_that_can_never_happen_again_is_a_dead_end() -> None:
    """Doors open and never close: once door ``b`` is open, "open door b" (an event) is out of reach for good. The
    goals open ``a`` and then ``b``; the admissible estimate calls a state with ``b`` already open a dead end, so
    such a state is pruned (every mode) and a search from one ends at once."""
    from modrl.planner import Domain, Operator, Param, heuristic

    doors = Domain(
        operators=(
            Operator(
                name="open",
                params=(Param(name="?d"),),
                pre=("at(?d)",),
                neg=("open(?d)",),
                add=("open(?d)",),
            ),
            Operator(
                name="walk",
                params=(Param(name="?x"), Param(name="?y")),
                pre=("at(?x)", "path(?x,?y)"),
                add=("at(?y)",),
                delete=("at(?x)",),
            ),
        )
    )
    links = {"path(s,b)", "path(b,a)", "path(s,c)", "path(c,d)", "path(d,a)", "path(a,b)"}
    start = frozenset({*links, "at(s)"})
    goals = [Goal(achieve=frozenset({"open(a)"})), Goal(achieve=frozenset({"open(b)"}))]
    assert heuristic(doors, start | {"open(b)"}, goals) == float("inf")
    assert heuristic(doors, start, goals) < float("inf")
    for algorithm in ALGORITHMS:
        found = _plan(plan(doors, start, goals, SearchConfig(algorithm=algorithm)))
        assert simulate(doors, start, found.steps, goals) == 2
        assert found.names.index("open(a)") < found.names.index("open(b)"), algorithm
    opened = plan(doors, start | {"open(b)"}, goals, SearchConfig(algorithm="gbfs"))
    assert isinstance(opened, NoPlan) and opened.reason is NoPlanReason.UNREACHABLE and opened.expanded == 1


def test_a_dead_end_proven_at_the_start_says_which_goal_atom_and_what_stays_true() -> None:
    """The proof :class:`NoPlan` carries when an admissible estimate is infinite where the search starts; none when
    the search only exhausted the space (the re-lockable corridor: the relaxation drops its lock and proves
    nothing)."""
    keyless = frozenset(START - {"obj(key,c0)"})
    for algorithm in ALGORITHMS:
        found = plan(CORRIDOR, keyless, GEM, SearchConfig(algorithm=algorithm))
        assert isinstance(found, NoPlan) and found.reason is NoPlanReason.UNREACHABLE, algorithm
        assert found.proof == "no relaxed plan reaches holding(gem) (h_max = inf); stays true for good: locked(c3)"
        assert found.proof in found.message and unreachable_proof(CORRIDOR, keyless, GEM) == found.proof
    relockable = plan(RELOCKABLE, keyless, GEM, SearchConfig(algorithm="wastar"))
    assert isinstance(relockable, NoPlan) and relockable.reason is NoPlanReason.UNREACHABLE
    assert relockable.proof is None and "exhausted" in relockable.message
    assert unreachable_proof(CORRIDOR, START, GEM) is None  # solvable
    unicorn = plan(CORRIDOR, START, Goal(holds=frozenset({"holding(unicorn)"})))
    assert isinstance(unicorn, NoPlan) and unicorn.proof == "no operator adds holding(unicorn) (goal 1)"
