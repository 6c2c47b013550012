"""Metric anomalies: a partition's profile metrics against their trailing history.

Each metric series is judged by a robust z over the last `window` partitions of history: the
expected value is the median, the spread the MAD of leave-one-out errors (each past value
against the median of the others, so the spread is predictive and honest on short histories);
day-of-week medians are used when the partitions are days and the weekly pattern predicts
held-out days clearly better than a flat level. A value within the range the window has seen is
never an anomaly. Values flagged before are left out of the training window. An anomaly needs both a
robust z beyond the sensitivity's threshold and a change larger than the minimum (relative, and
absolute for shares), in the allowed direction.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass

import numpy as np

from quality_assets.anomalies.settings import AnomalySettings

DATASET_METRICS = ("row_count", "quarantine_share")
COLUMN_METRICS = ("null_share", "distinct_count", "mean", "std", "p5", "p50", "p95", "top_value_share",
                  "length_mean")
LOCATION_METRICS = ("mean", "std", "p5", "p50", "p95")
SHARE_METRICS = ("null_share", "top_value_share", "quarantine_share")
MIN_SHARE_CHANGE = 0.01  # a share must move by at least one percentage point
# values that advance with time by nature: their level is not compared with the past
TRENDING_TYPES = ("datetime", "identifier")
MAD_TO_SIGMA = 1.4826


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

    def as_row(self) -> dict:
        return dict(self.__dict__)


def _day(key: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(key)
    except ValueError:
        return None


def read_metric_history(con, dataset: str, partitions: list[str]) -> dict[tuple[str | None, str], dict[str, float]]:
    """(column, metric) -> {partition: value} from qa.column_profiles (latest run per partition)
    and the quarantine share from qa.files, for the given partitions."""
    out: dict[tuple[str | None, str], dict[str, float]] = {}
    if not partitions:
        return out
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'qa' "
                         "AND table_name = 'column_profiles'").fetchall()[0][0]
    if exists:
        rows = con.execute(
            """WITH latest AS (
                   SELECT partition_key, run_id FROM qa.column_profiles
                   WHERE dataset = ? AND column_name IS NULL AND metric = 'row_count'
                     AND list_contains(?, partition_key)
                   QUALIFY row_number() OVER (PARTITION BY partition_key ORDER BY profiled_at DESC, run_id DESC) = 1)
               SELECT p.partition_key, p.column_name, p.metric, p.value
               FROM qa.column_profiles p JOIN latest l ON p.partition_key = l.partition_key AND p.run_id = l.run_id
               WHERE p.dataset = ? AND p.value IS NOT NULL AND isfinite(p.value)
                 AND ((p.column_name IS NULL AND p.metric = 'row_count') OR list_contains(?, p.metric))""",
            [dataset, partitions, dataset, list(COLUMN_METRICS)]).fetchall()
        for partition, column, metric, value in rows:
            out.setdefault((column, metric), {})[partition] = value
    rows = con.execute(
        """SELECT partition_key, sum(rows_quarantined) / nullif(sum(rows_read), 0) FROM (
               SELECT * FROM qa.files WHERE dataset = ? AND list_contains(?, partition_key)
                 AND status IN ('loaded', 'loaded_with_errors', 'empty')
               QUALIFY row_number() OVER (PARTITION BY partition_key, source_path ORDER BY started DESC) = 1)
           GROUP BY 1""", [dataset, partitions]).fetchall()
    for partition, share in rows:
        if share is not None:
            out.setdefault((None, "quarantine_share"), {})[partition] = float(share)
    return out


def semantic_types(con, dataset: str, partition_key: str) -> dict[str, str]:
    """column -> the profile's semantic type of the partition (latest run)."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'qa' "
                         "AND table_name = 'column_profiles'").fetchall()[0][0]
    if not exists:
        return {}
    rows = con.execute(
        """SELECT column_name, detail FROM qa.column_profiles
           WHERE dataset = ? AND partition_key = ? AND metric = 'semantic_type' AND column_name IS NOT NULL
           QUALIFY row_number() OVER (PARTITION BY column_name ORDER BY profiled_at DESC, run_id DESC) = 1""",
        [dataset, partition_key]).fetchall()
    out = {}
    for column, detail in rows:
        try:
            parsed = json.loads(detail)
            out[column] = parsed.get("type") if isinstance(parsed, dict) else str(parsed)
        except (TypeError, ValueError):
            continue
    return out


def past_anomalies(con, dataset: str) -> set[tuple[str, str | None, str]]:
    """(partition, column, metric) flagged by earlier runs: left out of the training windows."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'qa' "
                         "AND table_name = 'metric_anomalies'").fetchall()[0][0]
    if not exists:
        return set()
    return set(con.execute("SELECT partition_key, column_name, metric FROM qa.metric_anomalies "
                           "WHERE dataset = ? AND is_anomaly", [dataset]).fetchall())


def _leave_one_out(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each value minus the median of the other values of its group (NaN when it is alone)."""
    out = np.full(values.size, np.nan)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        if members.size < 2:
            continue
        for i in members:
            out[i] = values[i] - np.median(values[members[members != i]])
    return out


def evaluate_series(value: float | None, history: list[tuple[str, float]], current_key: str, metric: str,
                    settings: AnomalySettings, daily: bool, column: str | None = None) -> MetricResult:
    """Judge one metric of the current partition against its (already cleaned) history, oldest first."""
    direction = settings.direction_of(metric)
    history = [(k, v) for k, v in history if v is not None and math.isfinite(v)][-settings.window:]
    base = dict(column_name=column, metric=metric, value=value, direction=direction, history_size=len(history))
    if value is None or not math.isfinite(value):
        return MetricResult(**base, expected=None, lower=None, upper=None, robust_z=None, seasonal=False,
                            is_anomaly=False, reason="no value in this partition's profile")
    if len(history) < settings.min_history:
        return MetricResult(**base, expected=None, lower=None, upper=None, robust_z=None, seasonal=False,
                            is_anomaly=False,
                            reason=f"history of {len(history)} partition(s) < min_history {settings.min_history}")
    values = np.array([v for _, v in history], dtype=np.float64)
    expected = float(np.median(values))
    residual = _leave_one_out(values, np.zeros(values.size, dtype=int))
    seen, seasonal = values, False
    today = _day(current_key) if daily else None
    days = [_day(k) for k, _ in history] if today else []
    if today and all(days):
        weekday = np.array([d.weekday() for d in days])
        same = values[weekday == today.weekday()]
        if same.size >= 2 and len(set(weekday.tolist())) >= 5:
            seasonal_residual = _leave_one_out(values, weekday)
            # the weekly pattern is used only when it predicts held-out days clearly better
            if np.nansum(np.abs(seasonal_residual)) < 0.8 * np.nansum(np.abs(residual)):
                expected, residual, seen, seasonal = float(np.median(same)), seasonal_residual, same, True
    # the spread of leave-one-out errors is a predictive spread: it includes the error of the
    # median itself, which matters on short histories
    residual = residual[np.isfinite(residual)]
    scale = MAD_TO_SIGMA * float(np.median(np.abs(residual))) if residual.size else 0.0
    band = max(settings.z_threshold * scale, settings.min_relative_change * abs(expected),
               MIN_SHARE_CHANGE if metric in SHARE_METRICS else 0.0)
    # a value the (cleaned) window has already seen is never an anomaly: discrete metrics such
    # as a p5 of ratings jump between values with a MAD of 0
    lower, upper = min(expected - band, float(seen.min())), max(expected + band, float(seen.max()))
    z = (value - expected) / scale if scale > 0 else (0.0 if value == expected else None)
    above, below = value > upper, value < lower
    is_anomaly = (above and direction in ("both", "up")) or (below and direction in ("both", "down"))
    how = "seasonal (same weekday) " if seasonal else ""
    z_text = f"robust z {z:+.1f}" if z is not None else "history constant"
    if is_anomaly:
        reason = (f"{metric} {value:.6g} {'above' if above else 'below'} the {how}expected {expected:.6g} "
                  f"(band {lower:.6g} .. {upper:.6g}, {z_text}, {len(history)} partitions)")
    elif above or below:
        reason = f"outside the band ({z_text}) but direction is {direction}"
    else:
        reason = f"within the {how}band {lower:.6g} .. {upper:.6g} ({z_text})"
    return MetricResult(**base, expected=expected, lower=lower, upper=upper,
                        robust_z=None if z is None else round(z, 4), seasonal=seasonal, is_anomaly=bool(is_anomaly),
                        reason=reason)


def metric_anomalies(con, dataset: str, partition_key: str, history: list[str], settings: AnomalySettings,
                     daily: bool) -> list[MetricResult]:
    """Every tracked metric of the partition's latest profile against the history partitions."""
    window = history[-settings.window * 2:]  # room for excluded past anomalies
    series = read_metric_history(con, dataset, [*window, partition_key])
    types = semantic_types(con, dataset, partition_key)
    flagged = past_anomalies(con, dataset)
    results = []
    for (column, metric), by_partition in sorted(series.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        if column is not None and column in settings.exclude_columns:
            continue
        if column is not None and metric in LOCATION_METRICS and types.get(column) in TRENDING_TYPES:
            continue
        if partition_key not in by_partition:
            continue
        past = [(k, by_partition[k]) for k in window if k in by_partition and (k, column, metric) not in flagged]
        results.append(evaluate_series(by_partition[partition_key], past, partition_key, metric, settings, daily, column))
    return results
