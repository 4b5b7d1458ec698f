"""modrl.stats against hand-computed values: IQM, percentile bootstrap, summaries, frames-to-threshold, alignment."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from modrl.stats import (
    Summary,
    align_curves,
    bootstrap_ci,
    bootstrap_ci_curve,
    frames_to_threshold,
    iqm,
    summarize,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([7.0], 7.0),  # n=1: k=0, plain mean
        ([1.0, 9.0], 5.0),  # n=2: k=0
        ([1.0, 2.0, 9.0], 4.0),  # n=3: k=floor(0.75)=0, plain mean
        ([4.0, 1.0, 3.0, 2.0], 2.5),  # n=4: k=1 -> mean(2, 3)
        ([5.0, 1.0, 4.0, 2.0, 3.0], 3.0),  # n=5: k=floor(1.25)=1 -> mean(2, 3, 4)
        ([1.0, 2.0, 3.0, 4.0, 5.0, 100.0], 3.5),  # n=6: k=1 -> mean(2, 3, 4, 5)
        ([100.0, 1, 2, 3, 4, 5, 6], 4.0),  # n=7: k=1 -> mean(2..6)
        ([1.0, 2, 3, 4, 5, 6, 7, 100], 4.5),  # n=8: k=2 -> mean(3, 4, 5, 6)
        ([-50.0, 0, 1, 2, 3, 4, 5, 6, 7, 50], 3.5),  # n=10: k=2 -> mean(1..6)
    ],
)
def test_iqm_hand_computed(values: list[float], expected: float) -> None:
    assert iqm(values) == pytest.approx(expected, abs=1e-12)


def test_iqm_ignores_order_and_outliers() -> None:
    assert iqm([1e9, 2.0, 3.0, -1e9]) == pytest.approx(2.5)
    assert iqm(np.array([3.0, 1.0, 2.0, 4.0])) == iqm([1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("bad", [[], [[1.0, 2.0]], [1.0, math.nan], [math.inf]])
def test_degenerate_inputs_raise(bad: list) -> None:
    with pytest.raises(ValueError, match="values"):
        iqm(bad)
    with pytest.raises(ValueError, match="values"):
        bootstrap_ci(bad)
    with pytest.raises(ValueError, match="values"):
        summarize(bad)


def test_bootstrap_matches_hand_rolled_loop() -> None:
    values = np.array([0.0, 1.0, 5.0])
    rng = np.random.default_rng(7)
    index = rng.integers(0, 3, size=(5, 3))
    means = sorted(sum(values[i] for i in row) / 3 for row in index)
    # confidence 0.5 -> 25th and 75th percentiles of 5 sorted values: positions 1 and 3 exactly.
    assert bootstrap_ci(values, confidence=0.5, n_resamples=5, seed=7) == pytest.approx((means[1], means[3]))
    # confidence 0.8 -> 10th/90th percentiles: positions 0.4 and 3.6, linear interpolation.
    low = means[0] + 0.4 * (means[1] - means[0])
    high = means[3] + 0.6 * (means[4] - means[3])
    assert bootstrap_ci(values, confidence=0.8, n_resamples=5, seed=7) == pytest.approx((low, high))
    # A custom statistic goes through the per-row loop with the same resamples.
    maxima = sorted(max(values[i] for i in row) for row in index)
    assert bootstrap_ci(values, max, confidence=0.5, n_resamples=5, seed=7) == pytest.approx((maxima[1], maxima[3]))


def test_bootstrap_is_reproducible_and_seeded() -> None:
    values = [0.1, 0.4, 0.35, 0.8, 0.6, 0.2]
    first = bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) == first
    # With 10 000 resamples of 6 values the percentiles barely move with the seed; with 20 they do.
    assert bootstrap_ci(values, n_resamples=20, seed=4) != bootstrap_ci(values, n_resamples=20, seed=3)
    assert bootstrap_ci(values, iqm, n_resamples=500, seed=3) == bootstrap_ci(values, iqm, n_resamples=500, seed=3)


def test_bootstrap_ci_of_symmetric_sample_contains_mean() -> None:
    values = [-2.0, -1.0, 0.0, 1.0, 2.0]
    low, high = bootstrap_ci(values, seed=0)
    assert -2.0 < low < 0.0 < high < 2.0
    assert low == pytest.approx(-high, abs=0.1)
    assert bootstrap_ci(values, confidence=0.5, seed=0)[1] < high  # narrower interval for lower confidence


def test_bootstrap_degenerate_cases() -> None:
    assert bootstrap_ci([0.25]) == (0.25, 0.25)
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1.0, 2.0], n_resamples=0)


def test_curve_bootstrap_equals_columnwise_bootstrap() -> None:
    matrix = np.array([[0.0, 0.2, 0.5], [0.1, 0.6, 0.9], [0.0, 0.3, 1.0], [0.2, 0.2, 0.7]])
    low, high = bootstrap_ci_curve(matrix, n_resamples=300, seed=5)
    for t in range(matrix.shape[1]):
        assert (low[t], high[t]) == pytest.approx(bootstrap_ci(matrix[:, t], n_resamples=300, seed=5))
    one_low, one_high = bootstrap_ci_curve(matrix[:1])
    assert one_low.tolist() == one_high.tolist() == matrix[0].tolist()
    with pytest.raises(ValueError, match="seeds"):
        bootstrap_ci_curve(np.zeros(3))


def test_summarize_hand_computed() -> None:
    summary = summarize([4.0, 1.0, 3.0, 2.0], seed=2)
    low, high = bootstrap_ci([4.0, 1.0, 3.0, 2.0], seed=2)
    expected = Summary(n=4, mean=2.5, iqm=2.5, ci_low=low, ci_high=high, std=math.sqrt(5.0 / 3.0))
    assert dataclasses.astuple(summary) == pytest.approx(dataclasses.astuple(expected))
    skewed = summarize([0.0, 1.0, 2.0, 3.0, 100.0])
    assert skewed.mean == pytest.approx(21.2) and skewed.iqm == pytest.approx(2.0)
    single = summarize([0.5])
    assert (single.n, single.mean, single.iqm, single.ci_low, single.ci_high) == (1, 0.5, 0.5, 0.5, 0.5)
    assert math.isnan(single.std)
    with pytest.raises(dataclasses.FrozenInstanceError):
        single.mean = 1.0  # type: ignore[misc]


def test_frames_to_threshold() -> None:
    steps = [64, 128, 192, 256]
    assert frames_to_threshold(steps, [None, 0.5, 0.9, 0.95], 0.9) == 192  # >= counts
    assert frames_to_threshold(steps, [0.95, 0.5, 0.9, 0.95], 0.9) == 64
    assert frames_to_threshold(steps, [None, math.nan, 0.1, 0.2], 0.9) is None
    assert frames_to_threshold([], [], 0.5) is None
    with pytest.raises(ValueError, match="length"):
        frames_to_threshold(steps, [0.1], 0.5)


def test_align_curves_union_of_steps_without_extrapolation() -> None:
    grid, matrix = align_curves([([0, 10, 20], [0.0, 1.0, 2.0]), ([5, 15, 25], [0.0, 10.0, 20.0])])
    # Overlap [5, 20]; union of steps inside it: 5, 10, 15, 20.
    assert grid.tolist() == [5.0, 10.0, 15.0, 20.0]
    assert matrix.tolist() == [[0.5, 1.0, 1.5, 2.0], [0.0, 5.0, 10.0, 15.0]]
    grid, matrix = align_curves([([64, 128, 192], [math.nan, 0.2, 0.4])])
    assert grid.tolist() == [128.0, 192.0] and matrix.tolist() == [[0.2, 0.4]]
    grid, matrix = align_curves([([0, 10], [0.0, 1.0]), ([20, 30], [0.0, 1.0])])
    assert grid.size == 0 and matrix.shape == (2, 0)
    assert align_curves([([1, 2], [math.nan, math.nan])])[0].size == 0
