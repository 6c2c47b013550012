"""Volume, judged first and on its own: the partition's row count and its share of quarantined
rows, each against the recent partitions where the row count raised no alarm, on its own test (never diluted
by a correction across every profile metric), from `min_history` partitions of history, with
intervals that widen when the history is short, and by weekday when partitions are days."""

from __future__ import annotations

from quality_assets.anomalies.columns import raw_table
from quality_assets.anomalies.metric_anomalies import MetricResult, _evaluate
from quality_assets.anomalies.metric_history import quarantine_shares
from quality_assets.contract.anomalies import AnomalySettings
from quality_assets.warehouse import quote_literal

VOLUME_METRICS = ("row_count", "quarantine_share")
SHORT_HISTORY = 7  # fewer partitions than this: the interval is widened, and the reason says so


def row_counts(con, dataset: str, partitions: list[str]) -> dict[str, float]:
    keys = "[" + ", ".join(quote_literal(k) for k in partitions) + "]"
    return {k: float(n) for k, n in con.execute(
        f"SELECT _partition_key, count(*) FROM {raw_table(dataset)} WHERE list_contains({keys}, _partition_key) "
        "GROUP BY 1").fetchall()}


def volume_findings(con, dataset: str, partition_key: str, history: list[str], settings: AnomalySettings,
                    daily: bool) -> list[MetricResult]:
    """The row count and the quarantined share of the partition against `history` (oldest first)."""
    window = history[-settings.window:]
    series = {"row_count": row_counts(con, dataset, [*window, partition_key]),
              "quarantine_share": quarantine_shares(con, dataset, [*window, partition_key])}
    rows = series["row_count"].get(partition_key)
    out = []
    for metric in VOLUME_METRICS:
        by_partition = series[metric]
        if partition_key not in by_partition:
            continue
        past = [(k, by_partition[k]) for k in window if k in by_partition]
        # one question, asked once per partition: its t keeps history - 1 degrees of freedom
        # (with the MAD's 37% efficiency three partitions would leave a 50% drop unproven)
        result, _ = _evaluate(by_partition[partition_key], past, partition_key, metric, settings, daily, None, rows,
                              efficiency=1.0)
        if result.p_value is not None:
            # two volume tests per partition: Bonferroni across them, nothing else
            result.adjusted_p = min(1.0, result.p_value * len(VOLUME_METRICS))
            if result.is_anomaly and result.adjusted_p > settings.metric_alpha:
                result.is_anomaly = False
                result.reason = (f"outside the band but not significant (p {result.adjusted_p:.2g} > "
                                 f"{settings.metric_alpha:g}): " + result.reason)
            elif result.is_anomaly:
                result.reason = f"volume: {result.reason}, p {result.adjusted_p:.2g}"
            if len(past) < SHORT_HISTORY:
                result.reason += f"; short history ({len(past)} partitions): the interval is widened"
        out.append(result)
    return out
