"""Routing health (modrl.routing_health) on allocations whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modrl.routing_health import routing_health


def test_one_module_per_task_is_fully_specialised() -> None:
    health = routing_health(np.eye(3), np.array([5, 5, 5]))
    assert health.mutual_information == pytest.approx(math.log(3))  # knowing the task says which of 3 modules
    assert health.normalised_mi == pytest.approx(1.0) and health.specialised and not health.collapsed
    assert np.allclose(health.task_entropy, 0.0) and np.allclose(health.top_share, 1.0)


def test_uniform_and_collapsed_routers_carry_no_task_information() -> None:
    uniform = routing_health(np.full((3, 4), 0.25), np.ones(3))
    assert uniform.mutual_information == pytest.approx(0.0, abs=1e-12) and not uniform.specialised
    assert np.allclose(uniform.task_entropy, math.log(4)) and not uniform.collapsed
    collapsed = routing_health(np.array([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1]]), np.ones(3))
    assert collapsed.collapsed and not collapsed.specialised  # every task on module 0: hard, but not specialised
    assert collapsed.normalised_mi < 0.1


def test_hand_computed_mutual_information_and_unseen_tasks() -> None:
    # Two seen tasks (counts 1 and 3), two modules; task 2 never seen.
    usage = np.array([[0.8, 0.2], [0.2, 0.8], [0.0, 0.0]])
    health = routing_health(usage, np.array([1, 3, 0]))
    p_task = np.array([0.25, 0.75])
    joint = p_task[:, None] * usage[:2]
    p_module = joint.sum(axis=0)
    expected = float(np.sum(joint * np.log(joint / (p_task[:, None] * p_module))))
    assert health.mutual_information == pytest.approx(expected)
    assert health.normalised_mi == pytest.approx(expected / math.log(2))
    assert np.isnan(health.task_entropy[2]) and np.isnan(health.top_share[2])
    assert health.specialised  # tops 0.8 on different modules
    assert "routing: task-module MI" in health.line() and "specialised" in health.line()


def test_bad_allocations_are_refused() -> None:
    with pytest.raises(ValueError, match="must be"):
        routing_health(np.ones((2, 2)), np.ones(3))
    with pytest.raises(ValueError, match="distribution"):
        routing_health(np.array([[0.5, 0.2]]), np.ones(1))
    with pytest.raises(ValueError, match=">= 0"):
        routing_health(np.eye(2), np.array([1, -1]))
    empty = routing_health(np.zeros((2, 2)), np.zeros(2))  # nothing seen yet
    assert empty.mutual_information == 0.0 and not empty.specialised and not empty.collapsed
