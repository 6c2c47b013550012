"""How many points of a sorted grid lie at or below, and strictly below, each of many values:
the counts the numeric tails turn into p-values, for every row of every numeric feature."""

from __future__ import annotations

import numpy as np

BUCKETS_PER_STEP = 4  # equal-width buckets over the grid's range, per distinct grid value
MAX_WIDTH = 4  # distinct values in the fullest bucket beyond which a binary search is quicker
MIN_STEPS = 64  # fewer distinct values: a binary search takes a few steps anyway


class GridCounts:
    """Counts of a sorted grid's points: one search among its distinct values (a discrete column
    has a few), found in equal-width buckets where the values are spread evenly enough.

    A value's bucket comes from a monotone function of it (subtract, multiply, clip, truncate),
    computed the same way for the grid's values: every distinct value in an earlier bucket is
    below the value, every one in a later bucket above it, so the count is the bucket's first
    index plus the few values of its own bucket at or below it, exactly what a binary search finds.
    """

    def __init__(self, grid: np.ndarray) -> None:
        self.steps, counts = np.unique(grid, return_counts=True)
        self.counts_below = np.concatenate(([0], np.cumsum(counts)))  # grid points below each step, 0 first
        self.first: np.ndarray | None = None
        m = self.steps.size
        if m < MIN_STEPS:
            return
        self.origin = float(self.steps[0])
        self.buckets = BUCKETS_PER_STEP * m
        with np.errstate(over="ignore", divide="ignore"):
            self.scale = self.buckets / (float(self.steps[-1]) - self.origin)
        if not np.isfinite(self.scale) or self.scale <= 0:
            return
        first = np.searchsorted(self._bucket(self.steps), np.arange(self.buckets + 1), side="left")
        width = int(np.diff(first).max())
        if width <= MAX_WIDTH:
            self.first, self.width = first, width
            # past the last step nothing counts: a value is finite, never above +inf
            self.padded = np.concatenate((self.steps, np.full(width, np.inf)))

    def _bucket(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            position = (values - self.origin) * self.scale
        return np.clip(position, 0, self.buckets - 1).astype(np.intp)

    def distinct_at_or_below(self, t: np.ndarray) -> np.ndarray:
        """Distinct grid values at or below each finite t (np.searchsorted(steps, t, 'right'))."""
        if self.first is None:
            return np.searchsorted(self.steps, t, side="right")
        start = self.first[self._bucket(t)]
        k = start.copy()
        for w in range(self.width):
            k += self.padded[start + w] <= t  # sorted: the bucket's values at or below t come first
        return k

    def counts(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(grid points at or below t, grid points strictly below t) for finite values t."""
        k = self.distinct_at_or_below(t)
        below = self.counts_below[k - (self.steps[k - 1] == t)]  # k = 0: steps[-1] > t, never equal
        return self.counts_below[k], below
