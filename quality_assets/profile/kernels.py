"""Statistics kernels over numpy arrays: histogram edges and counts, weighted quantiles, central
moments, Pearson and Spearman matrices, normality tests."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None



def equal_width_edges(low: float, high: float, bins: int, integer: bool) -> list[float]:
    if high <= low:
        return [low, low + 1.0]
    if integer and high - low + 1 <= bins:  # one bin per integer value
        return [low + i - 0.5 for i in range(int(high - low) + 2)]
    width = (high - low) / bins
    return [low + i * width for i in range(bins)] + [high]


def double_literal(value: float) -> str:
    """A DOUBLE literal that is exactly `value` (a bare decimal literal would be parsed as DECIMAL)."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def bin_counts(values: np.ndarray, counts: np.ndarray | None, edges: list[float]) -> list[int]:
    """Counts per bin of the equal-width `edges`, binned exactly as the second scan's SQL bins them."""
    bins = len(edges) - 1
    width = (edges[-1] - edges[0]) / bins
    index = np.clip(np.floor((values - edges[0]) / width), 0, bins - 1).astype(np.int64)
    return [int(round(c)) for c in np.bincount(index, weights=counts, minlength=bins)]


def weighted_quantiles(values: np.ndarray, counts: np.ndarray, qs: list[float]) -> list[float]:
    """np.quantile(np.repeat(values, counts), qs) (linear interpolation) without repeating; values ascending."""
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])
    out = []
    for q in qs:
        h = (total - 1) * q
        low = math.floor(h)
        a = float(values[np.searchsorted(cumulative, low, side="right")])
        b = float(values[np.searchsorted(cumulative, min(low + 1, total - 1), side="right")])
        out.append(a + (h - low) * (b - a))
    return out


def finish_moments(s: dict) -> None:
    """std, skewness and excess kurtosis (pandas' bias-corrected definitions) from the central sums m2..m4."""
    n = int(s.get("finite") or 0)
    s["std"] = s["skew"] = s["kurt"] = None
    if n < 2 or s.get("m2") is None:
        return
    if s["min"] == s["max"]:
        s["std"] = 0.0
        return
    m2, m3, m4 = float(s["m2"]), float(s["m3"]), float(s["m4"])
    s["std"] = math.sqrt(m2 / (n - 1))
    if m2 <= 0:
        return
    if n >= 3:
        s["skew"] = n * math.sqrt(n - 1) / (n - 2) * m3 / m2 ** 1.5
    if n >= 4:
        s["kurt"] = (n * (n + 1) * (n - 1) * m4 / ((n - 2) * (n - 3) * m2 * m2)
                     - 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def pearson_matrix(x: np.ndarray, min_periods: int = 3) -> np.ndarray:
    """Pearson correlations of the columns of x over the rows where both are finite, as pandas'
    DataFrame.corr computes them, in a few matrix products instead of a loop over pairs."""
    valid = np.isfinite(x)
    mask = valid.astype(float)
    with np.errstate(all="ignore"):
        means = np.nan_to_num(np.nanmean(np.where(valid, x, np.nan), axis=0))
    centred = np.where(valid, x - means, 0.0)  # centred first: the sums below then lose little precision
    n = mask.T @ mask
    sums = centred.T @ mask  # [i, j]: sum of column i over the rows where i and j are finite
    squares = (centred * centred).T @ mask
    products = centred.T @ centred
    with np.errstate(all="ignore"):
        covariance = products - sums * sums.T / n
        variance = squares - sums * sums / n
        r = covariance / np.sqrt(variance * variance.T)
    r[(n < min_periods) | (variance <= 0) | (variance.T <= 0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def spearman_matrix(x: np.ndarray, min_periods: int = 3) -> np.ndarray:
    """Spearman correlations as pandas computes them: Pearson of average ranks taken over the rows where
    both columns are finite (pairs whose columns are finite on different rows are ranked afresh)."""
    x = np.asfortranarray(x)  # column slices contiguous
    valid = np.isfinite(x)
    order = np.argsort(np.where(valid, x, np.inf), axis=0, kind="stable")  # each column sorted once
    ranks = np.full(x.shape, np.nan)
    for i in range(x.shape[1]):
        ranks[:, i] = _average_ranks(x[:, i], order[:, i], valid[:, i])
    r = pearson_matrix(ranks, min_periods)
    for i in range(x.shape[1]):
        for j in range(i + 1, x.shape[1]):
            if np.array_equal(valid[:, i], valid[:, j]):
                continue
            both = valid[:, i] & valid[:, j]
            r[i, j] = r[j, i] = np.nan
            if both.sum() >= min_periods:
                a = _average_ranks(x[:, i], order[:, i], both)[both]
                b = _average_ranks(x[:, j], order[:, j], both)[both]
                a, b = a - a.mean(), b - b.mean()
                # einsum, not @: OpenBLAS threads spin on vectors this small when the cores are busy
                ab, aa, bb = (float(np.einsum("i,i->", u, v)) for u, v in ((a, b), (a, a), (b, b)))
                scale = math.sqrt(aa * bb)  # 0 when a column is constant over the rows both have
                r[i, j] = r[j, i] = np.clip(ab / scale, -1.0, 1.0) if scale > 0 else np.nan
    return r


def _average_ranks(values: np.ndarray, order: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """1-based ranks (ties averaged) of values[keep], NaN elsewhere; `order` sorts `values`."""
    rows = order[keep[order]]
    ordered = values[rows]
    ranks = np.full(values.shape, np.nan)
    if rows.size:
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], rows.size]
        ranks[rows] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks

def normality_test(values: np.ndarray, test: str) -> dict | None:
    """A normality test of finite values: {"test", "statistic", "p_value", "sample"} (None if too few)."""
    n = int(values.size)
    if n < 8 or float(np.nanstd(values)) == 0.0:
        return None
    if test == "dagostino":  # the default: in numpy, so that a profile does not pay scipy's import
        statistic, p_value = dagostino_pearson(values)
        return {"test": test, "statistic": finite(statistic), "p_value": finite(p_value), "sample": n}
    from scipy import stats  # lazy: about a second to import, and only these tests need it

    with np.errstate(all="ignore"):
        if test == "shapiro":
            statistic, p_value = stats.shapiro(values)
        elif test == "ks":
            standard = (values - values.mean()) / values.std(ddof=1)
            statistic, p_value = stats.kstest(standard, "norm")
        elif test == "anderson":
            result = stats.anderson(values, dist="norm")
            statistic = result.statistic
            p_value = _anderson_p_value(statistic, n)
        else:
            raise ValueError(f"unknown normality test {test!r}")
    return {"test": test, "statistic": finite(statistic), "p_value": finite(p_value), "sample": n}


def dagostino_pearson(values: np.ndarray) -> tuple[float, float]:
    """D'Agostino-Pearson K² and its p-value, as scipy.stats.normaltest computes them (D'Agostino,
    Belanger & D'Agostino 1990): the skewness and kurtosis z-scores squared and summed, chi² with 2
    degrees of freedom. At least 8 values, not all equal."""
    n = float(values.size)
    centred = values - values.mean()
    m2 = float(np.mean(centred ** 2))
    b1 = float(np.mean(centred ** 3)) / m2 ** 1.5  # biased skewness
    b2 = float(np.mean(centred ** 4)) / m2 ** 2  # biased kurtosis (not excess)
    with np.errstate(all="ignore"):
        y = b1 * math.sqrt((n + 1) * (n + 3) / (6.0 * (n - 2)))
        beta2 = 3.0 * (n * n + 27 * n - 70) * (n + 1) * (n + 3) / ((n - 2.0) * (n + 5) * (n + 7) * (n + 9))
        w2 = -1 + math.sqrt(2 * (beta2 - 1))
        delta = 1 / math.sqrt(0.5 * math.log(w2))
        alpha = math.sqrt(2.0 / (w2 - 1))
        y = y if y != 0 else 1.0
        z_skew = delta * math.log(y / alpha + math.sqrt((y / alpha) ** 2 + 1))

        mean = 3.0 * (n - 1) / (n + 1)
        variance = 24.0 * n * (n - 2) * (n - 3) / ((n + 1) * (n + 1.0) * (n + 3) * (n + 5))
        x = (b2 - mean) / math.sqrt(variance)
        sqrt_beta1 = (6.0 * (n * n - 5 * n + 2) / ((n + 7) * (n + 9))
                      * math.sqrt(6.0 * (n + 3) * (n + 5) / (n * (n - 2) * (n - 3))))
        a = 6.0 + 8.0 / sqrt_beta1 * (2.0 / sqrt_beta1 + math.sqrt(1 + 4.0 / sqrt_beta1 ** 2))
        denom = 1 + x * math.sqrt(2 / (a - 4.0))
        term2 = math.copysign(((1 - 2.0 / a) / abs(denom)) ** (1 / 3.0), denom) if denom != 0 else math.nan
        z_kurt = (1 - 2 / (9.0 * a) - term2) / math.sqrt(2 / (9.0 * a))
    k2 = z_skew ** 2 + z_kurt ** 2
    return k2, math.exp(-k2 / 2)  # chi² survival function with 2 degrees of freedom


def _anderson_p_value(a2: float, n: int) -> float:
    """D'Agostino & Stephens (1986) p-value of the Anderson-Darling statistic, mean and variance estimated."""
    a = a2 * (1 + 0.75 / n + 2.25 / n ** 2)
    if a >= 0.6:
        return math.exp(1.2937 - 5.709 * a + 0.0186 * a ** 2)
    if a >= 0.34:
        return math.exp(0.9177 - 4.279 * a - 1.38 * a ** 2)
    if a >= 0.2:
        return 1 - math.exp(-8.318 + 42.796 * a - 59.938 * a ** 2)
    return 1 - math.exp(-13.436 + 101.14 * a - 223.73 * a ** 2)

