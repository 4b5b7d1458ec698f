"""Statistics across seeds: interquartile mean, percentile bootstrap confidence intervals, frames-to-threshold.

Follows the recommendations of Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS): report the interquartile mean (IQM) beside the mean, and an interval estimate obtained by
resampling seeds (runs) with replacement. Everything here is numpy-only and deterministic given ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

Statistic = Callable[[NDArray[np.float64]], float]
_CURVE_CHUNK = 256  # columns per matrix product in bootstrap_ci_curve: bounds memory at n_resamples x 256 floats


def _as_sample(values: ArrayLike) -> NDArray[np.float64]:
    """``values`` as a finite 1-D float64 array of at least one element; raises ValueError otherwise."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {x.shape}")
    if x.size == 0:
        raise ValueError("values is empty: a statistic needs at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"values must be finite, got {x.tolist()}")
    return x


def iqm(values: ArrayLike) -> float:
    """Interquartile mean: the mean of the middle 50% of the sorted values (Agarwal et al. 2021).

    Same semantics as ``scipy.stats.trim_mean(values, 0.25)`` (what the authors' ``rliable`` library uses): with
    ``n`` values, ``k = floor(0.25 * n)`` values are dropped from each end of the sorted sample and the remaining
    ``n - 2k`` are averaged; no value is partially weighted. So n = 1..3 gives the plain mean, n = 4 and n = 5 drop one
    value at each end, n = 8 drops two, n = 10 drops two (keeping six).

    Args:
        values: ``(n,)`` finite numbers, ``n >= 1``.

    Raises:
        ValueError: Empty, not one-dimensional, or not finite.
    """
    x = np.sort(_as_sample(values))
    k = math.floor(0.25 * x.size)
    return float(np.mean(x[k : x.size - k]))


def _percentile_interval(stats: NDArray[np.float64], confidence: float) -> tuple[NDArray[np.float64], ...]:
    alpha = 1.0 - confidence
    low, high = np.percentile(stats, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)], axis=0)
    return low, high


def _check_bootstrap_args(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")


def bootstrap_ci(
    values: ArrayLike,
    statistic: Statistic = np.mean,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over ``values`` (e.g. one value per seed).

    Draws ``n_resamples`` resamples of size ``n`` with replacement as one ``(n_resamples, n)`` index matrix from
    ``numpy.random.default_rng(seed).integers(0, n, ...)``, evaluates ``statistic`` on each resample (row), and
    returns the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of those statistics
    (``numpy.percentile``, linear interpolation). ``statistic=np.mean`` is computed for all rows at once; any other
    callable is called once per row. With ``n == 1`` every resample is the value itself: ``(x, x)``.

    Args:
        values: ``(n,)`` finite numbers, ``n >= 1``.
        statistic: Maps a ``(n,)`` float64 array to a number, e.g. ``np.mean`` or :func:`iqm`.
        confidence: Coverage of the interval, in ``(0, 1)``.
        n_resamples: Number of bootstrap resamples, ``>= 1``.
        seed: Seed of the numpy Generator; the same seed gives the same interval.

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: Empty or non-finite values, or invalid ``confidence`` / ``n_resamples``.
    """
    x = _as_sample(values)
    _check_bootstrap_args(confidence, n_resamples)
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(n_resamples, x.size))]
    if statistic is np.mean:
        stats = samples.mean(axis=1)
    else:
        stats = np.array([float(statistic(row)) for row in samples], dtype=np.float64)
    low, high = _percentile_interval(stats, confidence)
    return float(low), float(high)


def bootstrap_ci_curve(
    matrix: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Pointwise percentile bootstrap interval of the mean curve, resampling whole seeds (rows) jointly.

    Uses the same resample indices as :func:`bootstrap_ci` with the same ``seed`` and ``n`` (each row of the index
    matrix picks ``n`` seeds), so column ``t`` equals ``bootstrap_ci(matrix[:, t], np.mean, seed=seed)`` up to
    floating-point rounding. Computed as a product of resample counts with the matrix, in column chunks.

    Args:
        matrix: ``(S, T)`` finite values: ``S`` seeds (``S >= 1``) by ``T`` aligned steps.
        confidence: Coverage of the interval, in ``(0, 1)``.
        n_resamples: Number of bootstrap resamples, ``>= 1``.
        seed: Seed of the numpy Generator.

    Returns:
        ``(low, high)``, each ``(T,)`` float64.

    Raises:
        ValueError: Not two-dimensional, no rows, non-finite values, or invalid arguments.
    """
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"matrix must be (seeds, steps) with at least one seed, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("matrix must be finite")
    _check_bootstrap_args(confidence, n_resamples)
    n = x.shape[0]
    if n == 1:
        return x[0].copy(), x[0].copy()
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(n_resamples, n))
    counts = np.zeros((n_resamples, n), dtype=np.float64)
    np.add.at(counts, (np.arange(n_resamples)[:, None], index), 1.0)
    low = np.empty(x.shape[1], dtype=np.float64)
    high = np.empty(x.shape[1], dtype=np.float64)
    for start in range(0, x.shape[1], _CURVE_CHUNK):
        cols = slice(start, start + _CURVE_CHUNK)
        low[cols], high[cols] = _percentile_interval(counts @ x[:, cols] / n, confidence)
    return low, high


@dataclass(frozen=True, kw_only=True)
class Summary:
    """Summary of one metric across seeds.

    Attributes:
        n: Number of values (seeds).
        mean: Arithmetic mean.
        iqm: Interquartile mean (:func:`iqm`).
        ci_low: Lower end of the 95% percentile bootstrap interval of the mean (:func:`bootstrap_ci`).
        ci_high: Upper end of that interval.
        std: Sample standard deviation (``ddof=1``); ``nan`` when ``n == 1``.
    """

    n: int
    mean: float
    iqm: float
    ci_low: float
    ci_high: float
    std: float


def summarize(values: ArrayLike, *, seed: int = 0) -> Summary:
    """:class:`Summary` of ``(n,)`` finite values: mean, IQM, 95% bootstrap CI of the mean (10 000 resamples), std.

    Raises:
        ValueError: Empty, not one-dimensional, or not finite.
    """
    x = _as_sample(values)
    low, high = bootstrap_ci(x, np.mean, seed=seed)
    std = float(np.std(x, ddof=1)) if x.size > 1 else math.nan
    return Summary(n=int(x.size), mean=float(np.mean(x)), iqm=iqm(x), ci_low=low, ci_high=high, std=std)


def frames_to_threshold(steps: Sequence[int], values: Sequence[float | None], threshold: float) -> int | None:
    """The first step whose value is ``>= threshold``; ``None`` if no value reaches it.

    Args:
        steps: ``(T,)`` steps (frames), in the order they were logged.
        values: ``(T,)`` metric at each step; ``None`` or NaN entries (nothing measured yet) never count.
        threshold: Level to reach.

    Raises:
        ValueError: ``steps`` and ``values`` differ in length.
    """
    if len(steps) != len(values):
        raise ValueError(f"steps and values differ in length: {len(steps)} != {len(values)}")
    for step, value in zip(steps, values, strict=True):
        if value is not None and not math.isnan(value) and value >= threshold:
            return int(step)
    return None


def align_curves(
    curves: Sequence[tuple[ArrayLike, ArrayLike]],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Put several seeds' curves on one step grid: the union of their steps, by linear interpolation.

    Each curve is ``(steps, values)`` with ascending steps; NaN values (nothing measured yet) are dropped first. The
    grid is the union of all remaining steps within the range every curve covers (from the largest first step to the
    smallest last step), so nothing is extrapolated; each curve is interpolated onto it with ``numpy.interp``.

    Args:
        curves: ``S`` pairs of ``(T_i,)`` steps and ``(T_i,)`` values.

    Returns:
        ``(grid, matrix)``: ``(T,)`` steps and ``(S, T)`` values; ``T == 0`` when the curves do not overlap or a
        curve has no finite value.
    """
    cleaned = []
    for steps, values in curves:
        s = np.asarray(steps, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        keep = np.isfinite(v)
        cleaned.append((s[keep], v[keep]))
    if not cleaned or any(s.size == 0 for s, _ in cleaned):
        return np.empty(0), np.empty((len(cleaned), 0))
    start = max(float(s[0]) for s, _ in cleaned)
    stop = min(float(s[-1]) for s, _ in cleaned)
    grid = np.unique(np.concatenate([s for s, _ in cleaned]))
    grid = grid[(grid >= start) & (grid <= stop)]
    return grid, np.stack([np.interp(grid, s, v) for s, v in cleaned]) if grid.size else np.empty((len(cleaned), 0))
