"""Metric anomalies: a partition's profile metrics against their trailing history.

Each metric series is judged by a robust z over the last `window` partitions of history: the
expected value is the median, the spread the MAD of leave-one-out errors (each past value
against the median of the others, so the spread is predictive and honest on short histories);
day-of-week medians are used when the partitions are days and the weekly pattern predicts
held-out days clearly better. The spread is never below the metric's own noise: its sampling
error at the partition's row count, past errors rescaled to that row count, and the step of a
discrete metric. Tail and dispersion metrics of positive columns are judged on a log scale.
A value within the range the window has seen is never an anomaly. Values flagged before are
left out of the training window. An anomaly needs a robust z beyond the sensitivity's threshold,
a change larger than the minimum (relative, and absolute for shares), the allowed direction, and
a p-value (Student t with the degrees of freedom of the spread's estimate: short histories give
wide intervals) that stays below `metric_alpha` after the family's correction:
each column's metrics combined, then Holm across the columns (dozens of metrics: one per-metric
threshold would make some false alarm on a clean partition likely). Which metrics a column gets
depends on its role (roles.py); the dataset's volume is judged on its own (volume.py).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from quality_assets.anomalies.metric_history import (
    COLUMN_METRICS,
    first_values,
    first_variation,
    history_starts,
    past_anomalies,
    read_metric_history,
    semantic_types,
)
from quality_assets.anomalies.references import reference_history
from quality_assets.anomalies.series import leave_one_out, trend
from quality_assets.contract.anomalies import AnomalySettings

LOCATION_METRICS = ("mean", "std", "p5", "p50", "p95")
LOG_SCALE_METRICS = ("std", "p5", "p95", "row_count")
# statistics of the partition's rows (their sampling noise depends on the row count)
SAMPLE_METRICS = ("null_share", "distinct_count", "mean", "std", "p5", "p50", "p95", "top_value_share", "length_mean")
SHARE_METRICS = ("null_share", "top_value_share", "quarantine_share")
# statistics of the column's non-null values: their sampling noise depends on how many there are,
# not on the row count (a column filled on 13 of 330 rows gives a p95 of 13 values, and shows
# fewer of its categories, more variably)
VALUE_METRICS = ("distinct_count", "mean", "std", "p5", "p50", "p95", "top_value_share", "length_mean")
QUANTILE_METRICS = ("p5", "p50", "p95")
MIN_SHARE_CHANGE = 0.01  # a share must move by at least one percentage point
# values that advance with time by nature: their level is not compared with the past
TRENDING_TYPES = ("datetime", "identifier")
MAD_TO_SIGMA = 1.4826
MAD_EFFICIENCY = 0.37
# the metrics that fit each role: no location for keys, times and periods (they advance by
# nature), no distinct count for keys (it follows the volume); periods are judged in period.py
ROLE_METRICS = {
    "identifier": ("null_share", "length_mean", "top_value_share"),
    "time": ("null_share", "distinct_count"),
    "period": ("null_share",),
}


@dataclass
class MetricResult:
    column_name: str | None
    metric: str
    value: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    robust_z: float | None
    direction: str
    history_size: int
    seasonal: bool
    is_anomaly: bool
    reason: str
    p_value: float | None = None  # None: not judged (no value or too little history)
    adjusted_p: float | None = None

    def as_row(self) -> dict:
        return dict(self.__dict__)


def _day(key: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(key)
    except ValueError:
        return None


def _log_scale(metric: str, value: float, values: np.ndarray) -> bool:
    """Tail and dispersion metrics of a positive column are judged on a log scale: their sampling
    error is multiplicative (one large value moves a std or a p95 up far more than down), and the
    log makes it symmetric, as the robust z assumes."""
    return metric in LOG_SCALE_METRICS and value > 0 and bool(np.all(values > 0))


def _p_value(z: float | None, df: float, direction: str) -> float:
    """The probability of a robust z at least this far out, in the allowed direction, under a
    Student t with the history's degrees of freedom (the spread is estimated, not known)."""
    from scipy import stats  # lazy: scipy takes about a second to import

    if z is None:
        return 1.0
    if math.isinf(z):
        return 0.0 if (direction == "both" or (z > 0) == (direction == "up")) else 1.0
    if direction == "up":
        return float(stats.t.sf(z, df))
    if direction == "down":
        return float(stats.t.cdf(z, df))
    return float(2 * stats.t.sf(abs(z), df))


def evaluate_series(value: float | None, history: list[tuple[str, float]], current_key: str, metric: str,
                    settings: AnomalySettings, daily: bool, column: str | None = None,
                    family_size: int = 1) -> MetricResult:
    """Judge one metric of the current partition against its (already cleaned) history, oldest first.
    `family_size` is the number of metrics tested for the partition: the p-value is
    Bonferroni-adjusted by it (metric_anomalies applies Holm's step-down across the family)."""
    result, _ = _evaluate(value, history, current_key, metric, settings, daily, column)
    if result.p_value is not None:
        result.adjusted_p = min(1.0, result.p_value * family_size)
        _conclude(result, settings)
    return result


def sampling_error(metric: str, expected: float, rows: float | None, expected_std: float | None) -> float:
    """The standard error of the partition's metric under the history's model, from the partition's
    row count: a metric cannot be expected to be steadier than its sampling noise, however calm a
    short history happens to be. Shares are binomial, a mean is std / sqrt(n) (the history's std:
    the partition's own may be inflated by the very rows that make it anomalous); 0 where no simple
    formula holds."""
    if not rows or rows < 2:
        return 0.0
    if metric in SHARE_METRICS and 0 <= expected <= 1:
        return math.sqrt(expected * (1 - expected) / rows)
    if metric == "mean" and expected_std is not None and math.isfinite(expected_std):
        return expected_std / math.sqrt(rows)
    return 0.0


COUNT_METRICS = ("distinct_count", "row_count")
MIN_TREND = 4  # partitions of history before a trend can be told from noise


def _resolution(values: np.ndarray, metric: str = "") -> float:
    """The smallest step between the distinct values of the window: a discrete metric (a p95 of
    whole numbers, a count) cannot be known better than this step; a count, not better than one."""
    distinct = np.unique(values)
    step = float(np.diff(distinct).min()) if distinct.size > 1 else 0.0
    return max(step, 1.0) if metric in COUNT_METRICS else step


def _evaluate(value: float | None, history: list[tuple[str, float]], current_key: str, metric: str,
              settings: AnomalySettings, daily: bool, column: str | None,
              rows: float | None = None, expected_std: float | None = None,
              sizes: dict[str, float] | None = None, efficiency: float = MAD_EFFICIENCY,
              whole: bool = False) -> tuple[MetricResult, bool]:
    """The series' robust z, p-value and band; returns the result (not yet concluded) and whether
    the value is outside the band in the allowed direction."""
    direction = settings.direction_of(metric)
    history = [(k, v) for k, v in history if v is not None and math.isfinite(v)][-settings.window:]
    base = dict(column_name=column, metric=metric, value=value, direction=direction, history_size=len(history))
    if value is None or not math.isfinite(value):
        return MetricResult(**base, expected=None, lower=None, upper=None, robust_z=None, seasonal=False,
                            is_anomaly=False, reason="no value in this partition's profile"), False
    if len(history) < settings.min_history:
        return MetricResult(**base, expected=None, lower=None, upper=None, robust_z=None, seasonal=False,
                            is_anomaly=False,
                            reason=f"history of {len(history)} partition(s) < min_history {settings.min_history}"), False
    raw = np.array([v for _, v in history], dtype=np.float64)
    log = _log_scale(metric, value, raw)
    values = np.log(raw) if log else raw
    current = math.log(value) if log else value
    expected = float(np.median(values))
    residual = leave_one_out(values, np.zeros(values.size, dtype=int))
    seen, seasonal = values, False
    today = _day(current_key) if daily else None
    days = [_day(k) for k, _ in history] if today else []
    if today and all(days):
        weekday = np.array([d.weekday() for d in days])
        same = values[weekday == today.weekday()]
        if same.size >= 2 and len(set(weekday.tolist())) >= 5:
            seasonal_residual = leave_one_out(values, weekday)
            # the weekly pattern is used only when it predicts held-out days clearly better
            if np.nansum(np.abs(seasonal_residual)) < 0.8 * np.nansum(np.abs(residual)):
                expected, residual, seen, seasonal = float(np.median(same)), seasonal_residual, same, True
    trending = False
    if not seasonal and values.size >= MIN_TREND:
        trend_residual, predicted = trend(values)
        # a steady rise or fall (yearly volumes that grow) is followed only when it predicts
        # held-out partitions clearly better than the median
        if np.sum(np.abs(trend_residual)) < 0.8 * np.nansum(np.abs(residual)):
            expected, residual, trending = predicted, trend_residual, True
    # the spread of leave-one-out errors is a predictive spread: it includes the error of the
    # median itself, which matters on short histories
    if metric in SAMPLE_METRICS and rows and sizes and all(sizes.get(k) for k, _ in history):
        # a sample statistic's noise shrinks as 1/sqrt(rows): each past error is rescaled to this
        # partition's row count, and only ever widens the spread (a quiet weekend is noisier
        # than the weekdays that dominate the window; a large partition keeps the plain spread)
        grown = residual * np.sqrt(np.array([sizes[k] for k, _ in history]) / rows)
        grown = grown[np.isfinite(grown)]
    else:
        grown = np.zeros(0)
    residual = residual[np.isfinite(residual)]
    if not residual.size:
        scale = 0.0
    else:  # robust to a past value the exclusions missed
        scale = MAD_TO_SIGMA * float(np.median(np.abs(residual)))
    if grown.size:
        scale = max(scale, MAD_TO_SIGMA * float(np.median(np.abs(grown))))
    # floors: the rounding noise of a discrete metric (step / sqrt(12), the sd of a uniform error
    # of one step) and the metric's own sampling error at this partition's row count
    level = math.exp(expected) if log else expected
    sampling_se = sampling_error(metric, level, rows, expected_std)
    step = _resolution(raw, metric)  # in the metric's units; relative on a log scale
    if whole and metric in QUANTILE_METRICS:
        # a quantile of whole numbers moves in whole steps (an interpolated 4.3 in the history
        # does not make 4 -> 5 a finer change than one step)
        step = max(step, 1.0)
    scale = max(scale, (step / level if log else step) / math.sqrt(12), sampling_se / level if log else sampling_se)
    if scale == 0 and level:  # a constant history says nothing of its spread: the minimum change is the
        # smallest one that counts, so it sits at z_threshold rather than at an infinite z
        change = settings.min_relative_change * abs(level)
        scale = (math.log1p(change / abs(level)) if log else change) / settings.z_threshold
    # the minimum changes are in the metric's own units, the z band in the judged scale
    z_low, z_high = expected - settings.z_threshold * scale, expected + settings.z_threshold * scale
    if log:
        z_low, z_high = math.exp(z_low), math.exp(z_high)
    change = max(settings.min_relative_change * abs(level), MIN_SHARE_CHANGE if metric in SHARE_METRICS else 0.0)
    # a value the (cleaned) window has already seen is never an anomaly: discrete metrics such
    # as a p5 of ratings jump between values with a MAD of 0
    seen_low, seen_high = (np.exp(seen) if log else seen).min(), (np.exp(seen) if log else seen).max()
    lower = min(z_low, level - change, float(seen_low))
    upper = max(z_high, level + change, float(seen_high))
    if scale > 0:
        z = (current - expected) / scale
    else:
        z = 0.0 if current == expected else math.copysign(math.inf, current - expected)
    above, below = value > upper, value < lower
    outside = (above and direction in ("both", "up")) or (below and direction in ("both", "down"))
    how = "seasonal (same weekday) " if seasonal else "trend-following " if trending else ""
    how += "log-scale " if log else ""
    z_text = f"robust z {z:+.1f}" if math.isfinite(z) else "history constant"
    if outside:
        reason = (f"{metric} {value:.6g} {'above' if above else 'below'} the {how}expected {level:.6g} "
                  f"(band {lower:.6g} .. {upper:.6g}, {z_text}, {len(history)} partitions)")
    elif above or below:
        reason = f"outside the band ({z_text}) but direction is {direction}"
    else:
        reason = f"within the {how}band {lower:.6g} .. {upper:.6g} ({z_text})"
    # the t's degrees of freedom say how well the spread is known: few partitions, wide intervals.
    # The MAD is as precise as a standard deviation of about 37% as many values (its efficiency
    # at the normal)
    df = max(1.0, (residual.size - 1.0) * efficiency)
    p_value = _p_value(z, df, direction) if outside else 1.0
    return MetricResult(**base, expected=level, lower=lower, upper=upper,
                        robust_z=None if not math.isfinite(z) else round(z, 4), seasonal=seasonal,
                        is_anomaly=bool(outside), reason=reason, p_value=p_value), bool(outside)


def _conclude(result: MetricResult, settings: AnomalySettings) -> None:
    """An outside-the-band value is an anomaly only when it survives the family's correction."""
    if result.is_anomaly and result.adjusted_p > settings.metric_alpha:
        result.is_anomaly = False
        result.reason = (f"outside the band but not significant across the metrics tested "
                         f"(adjusted p {result.adjusted_p:.2g} > metric_alpha {settings.metric_alpha:g}): "
                         + result.reason)
    elif result.is_anomaly:
        result.reason += f", adjusted p {result.adjusted_p:.2g}"


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control, any dependence)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def simes(p_values: list[float]) -> float:
    """Simes' combination of one column's metrics (valid for the positively dependent metrics of
    one column): a column whose mean, median and quantiles all move is stronger evidence than its
    smallest p-value times the number of its metrics."""
    ordered = sorted(p_values)
    m = len(ordered)
    return min(1.0, min(m * p / (k + 1) for k, p in enumerate(ordered))) if m else 1.0


def judge_family(tested: list[tuple[str | None, str, float, list[tuple[str, float]]]], current_key: str,
                 settings: AnomalySettings, daily: bool,
                 rows: float | None = None, expected_std: dict[str, float] | None = None,
                 sizes: dict[str, float] | None = None, counts: dict[str, dict[str, float]] | None = None,
                 whole: set[str] | frozenset[str] = frozenset()) -> list[MetricResult]:
    """Every (column, metric, value, history) tested for one partition, grouped by column: each
    column's metrics are combined (Simes), the columns corrected by Holm, and a metric is an
    anomaly when its column survives and it is itself outside its band. Grouping keeps one large
    change from being swallowed by a family of a hundred metrics. `rows` is the partition's row
    count and `expected_std` the history's median std per column, for the sampling error of
    shares and means; `sizes` the history partitions' row counts; `counts` each column's non-null
    values per partition (the sample size of its value metrics); `whole` the whole-number columns."""
    expected_std = expected_std or {}
    counts = counts or {}
    results = []
    for column, metric, value, history in tested:
        n, ns = rows, sizes
        if metric in VALUE_METRICS and column in counts:
            ns = counts[column]
            n = ns.get(current_key)
        results.append(_evaluate(value, history, current_key, metric, settings, daily, column, n,
                                 expected_std.get(column), ns, whole=column in whole)[0])
    by_column: dict[str | None, list[MetricResult]] = {}
    for r in results:
        if r.p_value is not None:
            by_column.setdefault(r.column_name, []).append(r)
    columns = list(by_column)
    adjusted = holm([simes([r.p_value for r in by_column[c]]) for c in columns])
    for column, column_p in zip(columns, adjusted, strict=True):
        for r in by_column[column]:
            r.adjusted_p = max(column_p, min(1.0, r.p_value * len(by_column[column])))
            _conclude(r, settings)
    return results


def metric_anomalies(con, dataset: str, partition_key: str, history: list[str], settings: AnomalySettings,
                     daily: bool, roles: dict | None = None) -> list[MetricResult]:
    """Every tracked column metric of the partition's latest profile against the history
    partitions (the dataset's volume is judged on its own: see volume.py)."""
    roles = roles or {}
    window = history[-settings.window * 2:]  # room for excluded past anomalies
    series = read_metric_history(con, dataset, [*window, partition_key])
    types = semantic_types(con, dataset, partition_key)
    flagged: dict[tuple[str | None, str], set[str]] = {}
    for key, column, metric in past_anomalies(con, dataset):
        flagged.setdefault((column, metric), set()).add(key)
    sizes = series.get((None, "row_count"), {})
    counts = {column: {k: sizes[k] - nulls for k, nulls in by_partition.items() if k in sizes}
              for (column, metric), by_partition in series.items() if metric == "null_count"}
    distinct = {column: by_partition for (column, metric), by_partition in series.items() if metric == "distinct_count"}
    first = first_values(counts, window, partition_key)
    varied = {c: past for c, past in first_variation(distinct, window, partition_key).items()
              if c not in first and (c not in roles or roles[c].role != "period")}
    started = history_starts(counts, distinct, window)
    tested = []
    for (column, metric), by_partition in sorted(series.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        if column is None or column in settings.exclude_columns or partition_key not in by_partition:
            continue
        if column in first or (column in varied and metric in VALUE_METRICS):
            continue
        role = roles[column].role if column in roles else None
        if metric not in ROLE_METRICS.get(role, COLUMN_METRICS):
            continue
        if metric in LOCATION_METRICS and types.get(column) in TRENDING_TYPES:
            continue
        # from the column's first values on (before them it had none to compare with), without the
        # partitions where this metric alarmed, until its change persisted
        since = window[window.index(started[column]):] if started.get(column) else window
        keys = reference_history([k for k in since if k in by_partition], flagged.get((column, metric), set()))
        past = [(k, by_partition[k]) for k in keys]
        tested.append((column, metric, by_partition[partition_key], past))
    expected_std = {column: float(np.median([by_partition[k] for k in window if k in by_partition]))
                    for (column, metric), by_partition in series.items()
                    if metric == "std" and any(k in by_partition for k in window)}
    whole = {column for column, kind in types.items() if kind == "integer"}
    return judge_family(tested, partition_key, settings, daily, sizes.get(partition_key), expected_std, sizes,
                        counts, whole) + [
        MetricResult(column_name=column, metric="null_share", value=1 - counts[column][partition_key] / sizes[partition_key],
                     expected=1.0, lower=None, upper=None, robust_z=None, direction=settings.direction_of("null_share"),
                     history_size=past, seasonal=False, is_anomaly=False,
                     reason=f"first values: {counts[column][partition_key]:,.0f} rows carry a value, the column was empty "
                     f"in all {past} partitions of its history (reported, not judged: nothing to judge them by)")
        for column, past in first.items() if column not in settings.exclude_columns] + [
        MetricResult(column_name=column, metric="distinct_count", value=distinct[column][partition_key], expected=1.0,
                     lower=None, upper=None, robust_z=None, direction=settings.direction_of("distinct_count"),
                     history_size=past, seasonal=False, is_anomaly=False,
                     reason=f"first variation: {distinct[column][partition_key]:,.0f} distinct values, the column held "
                     f"one value in all {past} partitions of its history (reported, not judged: a constant history "
                     "shows no spread to judge by)")
        for column, past in varied.items() if column not in settings.exclude_columns]
