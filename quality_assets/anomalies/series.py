"""Predictions of a metric's next value from its history, with their leave-one-out errors: the
median (by group: weekdays), and a Theil-Sen line for series that rise or fall steadily."""

from __future__ import annotations

import numpy as np


def leave_one_out(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each value minus the median of the other values of its group (NaN when it is alone)."""
    out = np.full(values.size, np.nan)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        if members.size < 2:
            continue
        for i in members:
            out[i] = values[i] - np.median(values[members[members != i]])
    return out


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The median of pairwise slopes and the matching intercept: a line one outlier cannot tilt."""
    i, j = np.triu_indices(x.size, k=1)
    slope = float(np.median((y[j] - y[i]) / (x[j] - x[i])))
    return slope, float(np.median(y - slope * x))


def trend(values: np.ndarray) -> tuple[np.ndarray, float]:
    """Leave-one-out errors of a Theil-Sen line through the series, and its prediction for the
    next partition."""
    x = np.arange(values.size, dtype=np.float64)
    residual = np.empty(values.size)
    for k in range(values.size):
        others = np.arange(values.size) != k
        slope, intercept = theil_sen(x[others], values[others])
        residual[k] = values[k] - (intercept + slope * x[k])
    slope, intercept = theil_sen(x, values)
    return residual, intercept + slope * values.size
