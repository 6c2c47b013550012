"""Predictions of a metric's next value from its history, with their leave-one-out errors: the
median (by group: weekdays), and a Theil-Sen line for series that rise or fall steadily.

Every metric of every partition is judged on a window of up to `window` (28) values, so the
leave-one-out medians are taken for all held-out values at once (one `np.median` over a matrix
whose row k holds the values without the k-th) rather than one call per value: the same medians,
without ~600 small numpy calls per partition."""

from __future__ import annotations

import numpy as np

MAX_CELLS = 1 << 20  # rows of a leave-one-out matrix taken at once: bounded memory for long windows


def _without_each(n: int, rows: np.ndarray) -> np.ndarray:
    """For each k in `rows`, the indexes 0..n-1 without k (a len(rows) x n-1 matrix)."""
    j = np.arange(n - 1)
    return j[None, :] + (j[None, :] >= rows[:, None])


def _chunks(n: int, width: int):
    step = max(1, MAX_CELLS // max(width, 1))
    for start in range(0, n, step):
        yield np.arange(start, min(start + step, n))


def leave_one_out(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each value minus the median of the other values of its group (NaN when it is alone)."""
    out = np.full(values.size, np.nan)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        if members.size < 2:
            continue
        own = values[members]
        for rows in _chunks(members.size, members.size):
            out[members[rows]] = own[rows] - np.median(own[_without_each(members.size, rows)], axis=1)
    return out


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The median of pairwise slopes and the matching intercept: a line one outlier cannot tilt."""
    i, j = np.triu_indices(x.size, k=1)
    slope = float(np.median((y[j] - y[i]) / (x[j] - x[i])))
    return slope, float(np.median(y - slope * x))


def trend(values: np.ndarray) -> tuple[np.ndarray, float]:
    """Leave-one-out errors of a Theil-Sen line through the series (at least 3 values), and its
    prediction for the next partition."""
    n = values.size
    x = np.arange(n, dtype=np.float64)
    i, j = np.triu_indices(n, k=1)
    slopes = (values[j] - values[i]) / (x[j] - x[i])
    residual = np.empty(n)
    for rows in _chunks(n, slopes.size):
        # the line without point k: the slopes of the pairs that do not involve k, and the
        # median of the other points' intercepts under that slope
        keep = (i[None, :] != rows[:, None]) & (j[None, :] != rows[:, None])
        slope = np.median(np.broadcast_to(slopes, keep.shape)[keep].reshape(rows.size, -1), axis=1)
        others = _without_each(n, rows)
        intercept = np.median(values[others] - slope[:, None] * x[others], axis=1)
        residual[rows] = values[rows] - (intercept + slope * x[rows])
    slope, intercept = theil_sen(x, values)
    return residual, intercept + slope * n
