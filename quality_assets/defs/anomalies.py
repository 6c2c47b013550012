"""`<dataset>/anomalies`: row scores, metric anomalies and drift of a partition, with three checks.

The checks warn by default (the contract's `anomalies.severity` can raise them to error) and are
never blocking: the report downstream must still run when data looks odd.
"""


import dagster as dg

from quality_assets.anomalies.stage import (
    AnomalyOptions,
    AnomalyResult,
    dataset_settings,
    detect_anomalies,
)
from quality_assets.contract import Dataset
from quality_assets.contract.anomalies import AnomalySettings
from quality_assets.defs.common import (
    ANOMALIES,
    PROFILE,
    markdown_table,
    partition_check,
    partition_results,
    stage_asset,
    stage_key,
)
from quality_assets.defs.resources import QualitySettings, WarehouseResource

ANOMALY_RATE_CHECK = "anomaly_rate_within_bounds"
METRIC_ANOMALIES_CHECK = "no_metric_anomalies"
DRIFT_CHECK = "no_drift"
TOP_ROWS = 20


def build_anomalies_asset(dataset: Dataset, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    key = stage_key(dataset, ANOMALIES)
    settings = dataset_settings(dataset)
    specs = [
        partition_check(ANOMALY_RATE_CHECK, key, partitions, description=(
            f"The share of rows flagged as anomalous is at most {settings.max_anomaly_rate:g} "
            f"({settings.severity['anomaly_rate']}).")),
        partition_check(METRIC_ANOMALIES_CHECK, key, partitions, description=(
            "No profile metric (row count, null share, distinct count, mean, quantiles, ...) departs from "
            f"its history ({settings.severity['metric_anomalies']}).")),
        partition_check(DRIFT_CHECK, key, partitions, description=(
            f"No column's distribution drifted from the reference ({settings.reference}) beyond PSI "
            f"{settings.drift_min_psi:g} ({settings.severity['drift']}).")),
    ]

    @stage_asset(
        dataset, ANOMALIES, partitions,
        deps=[stage_key(dataset, PROFILE)],
        check_specs=specs,
        kinds={"duckdb", "python"},
        description=(
            f"Which rows of the partition of raw.\"{dataset.name}\" look wrong and why (qa.row_anomalies), which "
            "profile metrics depart from their history (qa.metric_anomalies), and which columns drifted "
            "(qa.drift). No rules needed."
        ),
        metadata={"dataset": dataset.name, "contamination": "auto" if settings.contamination is None
                  else settings.contamination, "sensitivity": settings.sensitivity},
    )
    def anomalies(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  quality_settings: QualitySettings) -> dg.MaterializeResult:
        env = quality_settings.resolved()
        options = AnomalyOptions(batch_size=env.anomaly_batch_rows, reference_rows=env.anomaly_reference_rows,
                                 max_rows=env.anomaly_max_rows)
        keys = list(context.partition_keys)
        results = []
        with warehouse.for_step(len(keys)) as step_warehouse:
            for partition_key in keys:
                result = detect_anomalies(
                    step_warehouse, dataset, partition_key, context.run.run_id, options,
                    progress=lambda message, k=partition_key: context.log.info(f"{dataset.name}/{k}: {message}"))
                context.log.info(f"{dataset.name}/{partition_key}: {result.summary()}")
                results.append(result)
        return partition_results(
            context, key, results, lambda r: r.partition_key, anomaly_metadata,
            lambda some: check_results(settings, list(some)),
            lambda all_: {"partitions": len(all_),
                          "rows_flagged": sum(r.rows_flagged for r in all_),
                          "metric_anomalies": sum(len(r.metric_anomalies) for r in all_),
                          "drifted_columns": dg.MetadataValue.json(
                              {r.partition_key: r.drifted_columns for r in all_ if r.drifted_columns})})

    return anomalies


def _severity(settings: AnomalySettings, check: str) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if settings.severity[check] == "error" else dg.AssetCheckSeverity.WARN


def check_results(settings: AnomalySettings, results: list[AnomalyResult]) -> list[dg.AssetCheckResult]:
    rows = sum(r.rows_scored for r in results)
    flagged = sum(r.rows_flagged for r in results)
    rate = flagged / rows if rows else 0.0
    over = [r for r in results if r.anomaly_rate > settings.max_anomaly_rate]
    metric = [(r.partition_key, m) for r in results for m in r.metric_anomalies]
    drifted = [(r.partition_key, d) for r in results for d in r.drift if d.drifted]
    return [
        dg.AssetCheckResult(
            check_name=ANOMALY_RATE_CHECK, passed=not over, severity=_severity(settings, "anomaly_rate"),
            metadata={"anomaly_rate": round(rate, 6), "rows_flagged": flagged, "rows_scored": rows,
                      "causes": dg.MetadataValue.md(causes_table([c for r in results for c in r.causes])),
                      "max_anomaly_rate": settings.max_anomaly_rate,
                      "threshold": "; ".join(dict.fromkeys(r.threshold_method for r in results if r.threshold_method)),
                      "message": (f"{len(over)} partition(s) above {settings.max_anomaly_rate:.2%}: "
                                  + ", ".join(f"{r.partition_key} {r.anomaly_rate:.2%}" for r in over[:10])
                                  if over else f"{rate:.2%} of rows flagged")}),
        dg.AssetCheckResult(
            check_name=METRIC_ANOMALIES_CHECK, passed=not metric, severity=_severity(settings, "metric_anomalies"),
            metadata={"metric_anomalies": len(metric),
                      "message": "; ".join(f"{_metric_name(m)}: {m.reason}" for _, m in metric[:10])
                      or "every metric within its band (or too little history)",
                      "anomalies": dg.MetadataValue.md(metric_table([m for _, m in metric]))}),
        dg.AssetCheckResult(
            check_name=DRIFT_CHECK, passed=not drifted, severity=_severity(settings, "drift"),
            metadata={"drifted_columns": ", ".join(dict.fromkeys(d.column_name for _, d in drifted)),
                      "columns_tested": sum(1 for r in results for d in r.drift if d.p_value is not None),
                      "reference": ", ".join(dict.fromkeys(r.drift_reference or "none" for r in results)),
                      "message": "; ".join(f"{d.column_name}: {d.reason}" for _, d in drifted[:10])
                      or "no column drifted"}),
    ]


def _metric_name(metric) -> str:
    return f"{metric.column_name}.{metric.metric}" if metric.column_name else metric.metric


def metric_table(metrics) -> str:
    return markdown_table([
        {"metric": _metric_name(m), "value": f"{m.value:.6g}" if m.value is not None else "",
         "expected": f"{m.expected:.6g}" if m.expected is not None else "",
         "band": f"{m.lower:.6g} .. {m.upper:.6g}" if m.lower is not None else "",
         "robust z": f"{m.robust_z:+.1f}" if m.robust_z is not None else "", "history": m.history_size}
        for m in metrics[:50]], max_chars=60)


def causes_table(causes: list[dict]) -> str:
    return markdown_table([
        {"rows": f"{c['rows']:,}", "share": f"{c['share']:.2%}", "level": c["level"], "cause": c["description"],
         "examples": ", ".join(str(e["source_row"]) for e in c["examples"])} for c in causes[:20]], max_chars=200)


def top_rows_table(result: AnomalyResult) -> str:
    rows = []
    for row in result.rows[:TOP_ROWS]:
        contributions = row["explanation"]["contributions"]
        rows.append({
            "rank": row["rank"], "source_row": row["_source_row"], "score": f"{row['score']:.2f}",
            "columns": ", ".join(c["column"] for c in contributions),
            "why": " | ".join(c["why"] for c in contributions),
        })
    return markdown_table(rows, max_chars=160)


def anomaly_metadata(result: AnomalyResult) -> dict:
    metadata: dict = {
        "anomaly_rate": round(result.anomaly_rate, 6),
        "rows_scored": result.rows_scored,
        "rows_flagged": result.rows_flagged,
        "rows_stored": len(result.rows),
        "threshold": result.threshold_method or "not scored",
        "fitted_on": (f"{len(result.reference_partitions)} history partition(s), {result.reference_rows:,} rows"
                      if result.fitted_on == "history" else f"the partition itself ({result.reference_rows:,} rows)"
                      if result.fitted_on else "not fitted"),
        "features": len(result.features),
        "metric_anomalies": len(result.metric_anomalies),
        "drifted_columns": ", ".join(result.drifted_columns),
        "drift_reference": result.drift_reference or "none",
        "duration_s": result.duration_s,
        "tables": "qa.anomaly_causes, qa.row_anomalies, qa.metric_anomalies, qa.drift, qa.column_roles, qa.anomaly_runs",
    }
    if result.causes:
        metadata["causes"] = dg.MetadataValue.md(causes_table(result.causes))
        metadata["top_causes"] = dg.MetadataValue.json(
            [{"level": c["level"], "rows": c["rows"], "description": c["description"]} for c in result.causes[:5]])
    if result.roles:
        metadata["column_roles"] = dg.MetadataValue.md(markdown_table(
            [{"column": r.column, "role": r.role, "source": r.source, "why": r.reason} for r in result.roles.values()],
            max_chars=100))
    if result.rows:
        metadata["top_anomalous_rows"] = dg.MetadataValue.md(top_rows_table(result))
    if result.metric_anomalies:
        metadata["metric_anomaly_table"] = dg.MetadataValue.md(metric_table(result.metric_anomalies))
    if result.drift:
        metadata["drift"] = dg.MetadataValue.md(markdown_table([
            {"column": d.column_name, "test": d.test or "", "adjusted p": f"{d.adjusted_p:.3g}" if d.adjusted_p is not None else "",
             "PSI": f"{d.psi:.3f}" if d.psi is not None else "", "drifted": d.drifted, "reason": d.reason}
            for d in sorted(result.drift, key=lambda d: (not d.drifted, d.column_name))[:50]], max_chars=120))
    if result.notes:
        metadata["notes"] = "; ".join(result.notes)
    if result.skipped_columns:
        metadata["columns_not_scored"] = dg.MetadataValue.json(result.skipped_columns)
    return metadata
