"""The search loops of :func:`modrl.planner.search.plan`: breadth-first search, and best-first search (A*, weighted
A*, greedy best-first) over the nodes ``(base state, goals reached)`` of a :class:`~modrl.planner.search._Space`.

Each returns ``(goal node or None, parent links, nodes expanded, node bound hit)``; :func:`path` reads the plan off
the parent links.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import TYPE_CHECKING

from modrl.planner.operators import GroundOperator
from modrl.planner.relaxed import Relaxation

if TYPE_CHECKING:
    from modrl.planner.search import SearchConfig, _Node, _Progress, _Space

DEAD_END_GUESS = 1e6
"""The estimate that ``"wastar"`` and ``"gbfs"`` give a state h_FF calls a dead end without proof: searched last."""


def path(parents: dict[_Node, tuple[_Node, GroundOperator] | None], node: _Node) -> tuple[GroundOperator, ...]:
    """The ground operators from the start to ``node``, following the parent links back."""
    steps = []
    link = parents[node]
    while link is not None:
        node, op = link
        steps.append(op)
        link = parents[node]
    return tuple(reversed(steps))


def breadth_first(
    space: _Space, start: _Node, max_nodes: int, progress: _Progress
) -> tuple[_Node | None, dict, int, bool]:
    """Breadth-first search (shortest plans with unit costs); the goal test when a node is generated."""
    parents: dict[_Node, tuple[_Node, GroundOperator] | None] = {start: None}
    frontier = deque([start])
    expanded = 0
    while frontier:
        if expanded >= max_nodes:
            return None, parents, expanded, True
        node = frontier.popleft()
        expanded += 1
        progress.tick(expanded)
        for op, nxt in space.successors(node):
            if nxt in parents:
                continue
            parents[nxt] = (node, op)
            if nxt[1] == len(space.goals):
                return nxt, parents, expanded, False
            frontier.append(nxt)
    return None, parents, expanded, False


def best_first(
    space: _Space, start: _Node, config: SearchConfig, progress: _Progress
) -> tuple[_Node | None, dict, int, bool]:
    """A* (``f = g + h``, h admissible: the larger of :meth:`_Space.heuristic` and h_max), weighted A*
    (``f = g + w * h_FF``) or greedy best-first (``f = h_FF``, ties to the larger ``g``), with duplicate detection.
    A* and weighted A* re-open a node reached again more cheaply; greedy search never does."""
    algorithm = config.algorithm
    greedy = algorithm == "gbfs"
    weight = 1.0 if algorithm == "astar" else config.weight
    kind: Relaxation = "hmax" if algorithm == "astar" else "hff"

    def priority(g: int, h: float) -> float:
        return h if greedy else g + weight * h

    parents: dict[_Node, tuple[_Node, GroundOperator] | None] = {start: None}
    cost = {start: 0}
    heap: list[tuple[float, int, int, int, _Node]] = [(priority(0, space.relaxed(start, kind)), 0, 0, 0, start)]
    tie, expanded, closed = 0, 0, set()
    estimates: dict[_Node, float] = {}
    while heap:
        _, _, _, g, node = heapq.heappop(heap)
        if node in closed or g > cost[node]:
            continue
        if node[1] == len(space.goals):
            return node, parents, expanded, False
        if expanded >= config.max_nodes:
            return None, parents, expanded, True
        closed.add(node)
        expanded += 1
        progress.tick(expanded)
        for op, nxt in space.successors(node):
            known = cost.get(nxt, math.inf)
            if g + 1 >= known or (greedy and known < math.inf):
                continue
            h = estimates.get(nxt)
            if h is None:
                h = estimates[nxt] = space.relaxed(nxt, kind)
            if math.isinf(h):
                if algorithm == "astar" or math.isinf(space.relaxed(nxt, "hmax")):
                    continue  # a dead end for sure (h_max and the goal-count bound are admissible)
                h = DEAD_END_GUESS
            closed.discard(nxt)
            cost[nxt], parents[nxt] = g + 1, (node, op)
            tie += 1
            heapq.heappush(heap, (priority(g + 1, h), g + 1 if greedy else -(g + 1), tie, g + 1, nxt))
    return None, parents, expanded, False
