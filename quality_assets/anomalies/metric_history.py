"""The profile metrics the metric anomalies are judged on, read back from the warehouse: each
metric's value per partition (latest profile run), the quarantine share from the file audit, the
profile's semantic types and the metrics flagged before."""

from __future__ import annotations

import json

from quality_assets.catalog import has_table

COLUMN_METRICS = ("null_share", "distinct_count", "mean", "std", "p5", "p50", "p95", "top_value_share",
                  "length_mean")
READ_METRICS = (*COLUMN_METRICS, "null_count")  # null_count: each column's filled values (its sample size)


def read_metric_history(con, dataset: str, partitions: list[str]) -> dict[tuple[str | None, str], dict[str, float]]:
    """(column, metric) -> {partition: value} from qa.column_profiles (latest run per partition),
    for the given partitions (the quarantine share, judged with the volume: `quarantine_shares`)."""
    out: dict[tuple[str | None, str], dict[str, float]] = {}
    if not partitions:
        return out
    exists = has_table(con, "qa", "column_profiles")
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
            [dataset, partitions, dataset, list(READ_METRICS)]).fetchall()
        for partition, column, metric, value in rows:
            out.setdefault((column, metric), {})[partition] = value
    return out


def quarantine_shares(con, dataset: str, partitions: list[str]) -> dict[str, float]:
    """partition -> the share of its rows read that were quarantined, from its latest loads in qa.files."""
    rows = con.execute(
        """SELECT partition_key, sum(rows_quarantined) / nullif(sum(rows_read), 0) FROM (
               SELECT * FROM qa.files WHERE dataset = ? AND list_contains(?, partition_key)
                 AND status IN ('loaded', 'loaded_with_errors', 'empty')
               QUALIFY row_number() OVER (PARTITION BY partition_key, source_path ORDER BY started DESC) = 1)
           GROUP BY 1""", [dataset, partitions]).fetchall()
    return {partition: float(share) for partition, share in rows if share is not None}


def semantic_types(con, dataset: str, partition_key: str) -> dict[str, str]:
    """column -> the profile's semantic type of the partition (latest run)."""
    exists = has_table(con, "qa", "column_profiles")
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
    """(partition, column, metric) flagged by earlier runs: left out of the training windows
    until the change persists."""
    exists = has_table(con, "qa", "metric_anomalies")
    if not exists:
        return set()
    return set(con.execute("SELECT partition_key, column_name, metric FROM qa.metric_anomalies "
                           "WHERE dataset = ? AND is_anomaly", [dataset]).fetchall())


def first_values(counts: dict[str, dict[str, float]], window: list[str], partition_key: str) -> dict[str, int]:
    """Columns empty in every partition of the history that carry values now (wind radii recorded
    from 2004 on) -> the partitions of that history. New data is no fault of the data, and an empty
    history has no values to judge them by; a column that empties is still judged (null_share)."""
    out = {}
    for column, filled in counts.items():
        past = [k for k in window if k in filled]
        if past and filled.get(partition_key, 0) > 0 and not any(filled[k] for k in past):
            out[column] = len(past)
    return out


def first_variation(distinct: dict[str, dict[str, float]], window: list[str], partition_key: str) -> dict[str, int]:
    """Columns that held at most one value in every partition of the history and several now (a
    0/1 flag set for the first time near Christmas; a wait that is 0 until the first guest waits)
    -> the partitions of that history. A constant history shows no spread to judge a spread by:
    the change is reported, and the column's history starts here. A column whose one value is
    replaced by another is still judged (its level moved)."""
    out = {}
    for column, by_partition in distinct.items():
        past = [k for k in window if k in by_partition]
        if past and by_partition.get(partition_key, 0) > 1 and all(by_partition[k] <= 1 for k in past):
            out[column] = len(past)
    return out


def history_starts(counts: dict[str, dict[str, float]], distinct: dict[str, dict[str, float]],
                   window: list[str]) -> dict[str, str]:
    """Column -> the partition its history starts at: its first values, or its first variation
    when it held one value before (see first_values and first_variation)."""
    out = {}
    for column, filled in counts.items():
        start = next((i for i, k in enumerate(window) if filled.get(k)), None)
        if start is None:
            continue
        several = distinct.get(column, {})
        varied = next((i for i, k in enumerate(window) if several.get(k, 0) > 1), None)
        out[column] = window[max(start, varied if varied is not None else start)]
    return out
