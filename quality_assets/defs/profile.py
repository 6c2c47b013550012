"""`<dataset>/profile`: per-column statistics of a partition, kept as history in qa.column_profiles."""

import datetime as dt

import dagster as dg

from quality_assets.contract import Dataset
from quality_assets.defs.common import PROFILE, RAW, markdown_table, stage_asset, stage_key
from quality_assets.defs.resources import QualitySettings, WarehouseResource
from quality_assets.profile import TableProfile, profile_partition, write_profile

MARKDOWN_MAX_COLUMNS = 100


def build_profile_asset(dataset: Dataset, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @stage_asset(
        dataset, PROFILE, partitions,
        deps=[stage_key(dataset, RAW)],
        kinds={"duckdb"},
        description=(
            f"Statistics of every column of the partition's rows in raw.\"{dataset.name}\" (types, nulls, "
            "distinct values, quantiles, histograms, top values, shapes, correlations, alerts), "
            "every run kept in qa.column_profiles."
        ),
        metadata={"dataset": dataset.name, "dagster/table_name": "qa.column_profiles"},
    )
    def profile(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                quality_settings: QualitySettings) -> dg.MaterializeResult:
        settings = quality_settings.resolved()
        keys = list(context.partition_keys)
        profiles: list[TableProfile] = []
        with warehouse.for_step(len(keys)) as step_warehouse:
            for key in keys:
                with step_warehouse.connect() as con:
                    result = profile_partition(con, dataset, key, top_values=settings.top_values,
                                               gaussian_test=settings.gaussian_test)
                    write_profile(con, dataset.name, key, context.run.run_id, result)
                steps = ", ".join(f"{step} {seconds:.2f}s" for step, seconds in result.timings.items())
                context.log.info(f"{dataset.name}/{key}: {int(result.metrics['row_count'])} rows x "
                                 f"{len(result.columns)} columns profiled, {int(result.metrics['alert_count'])} "
                                 f"alerts ({steps})")
                profiles.append(result)
        if len(profiles) > 1:
            for key, result in zip(keys, profiles, strict=True):
                context.add_asset_metadata(numeric_metadata(result), partition_key=key)
        return dg.MaterializeResult(metadata=profile_metadata(profiles[-1]))

    return profile


def numeric_metadata(profile: TableProfile) -> dict:
    m = profile.metrics
    return {
        "dagster/row_count": int(m.get("row_count") or 0),
        "max_null_share": float(m["max_null_share"]) if m.get("max_null_share") is not None else 0.0,
        "duplicate_rows": int(m.get("duplicate_rows") or 0),
        "alert_count": int(m.get("alert_count") or 0),
        "column_count": int(m.get("column_count") or 0),
    }


def profile_metadata(profile: TableProfile) -> dict:
    metadata = numeric_metadata(profile)
    if profile.metrics.get("bytes") is not None:
        metadata["bytes"] = int(profile.metrics["bytes"])
    metadata["dagster/column_schema"] = dg.TableSchema(columns=[
        dg.TableColumn(col.name, col.semantic_type, description=_type_note(col.details.get("semantic_type") or {}))
        for col in profile.columns
    ])
    metadata["columns"] = dg.MetadataValue.md(headline_table(profile))
    alerts = profile.all_alerts()
    if alerts:
        metadata["alerts"] = dg.MetadataValue.md(markdown_table(
            [{"column": a.get("column", "(table)"), "alert": a["alert"], "detail": a["detail"]} for a in alerts[:200]],
            max_chars=80))
    correlations = profile.correlations
    if correlations.get("capped"):
        metadata["correlation_columns_capped_at"] = int(correlations["columns_capped_at"])
    return metadata


def _type_note(semantic: dict) -> str:
    note = f"stored as {semantic.get('storage_type', '?')}"
    if semantic.get("stored_as_text"):
        note += f"; every value parses as {semantic.get('type')}"
    if semantic.get("mixed_types"):
        note += "; mixed types"
    return note


def headline_table(profile: TableProfile) -> str:
    """Per-column headline statistics as a markdown table (cells escaped)."""
    rows = []
    for col in profile.columns[:MARKDOWN_MAX_COLUMNS]:
        m = col.metrics
        top = (col.details.get("top_values") or [{}])[0]
        rows.append({
            "column": col.name,
            "type": col.semantic_type,
            "nulls": _share(m.get("null_share")),
            "distinct": _count(m.get("distinct_count")) + (" ~" if col.details.get("distinct_method") == "hll" else ""),
            "min": _value(m.get("min"), col),
            "max": _value(m.get("max"), col),
            "mean": _value(m.get("mean"), col),
            "top value": f"{top.get('value')} ({_share(m.get('top_value_share'))})" if top else "",
            "alerts": ", ".join(a["alert"] for a in col.alerts),
        })
    table = markdown_table(rows, max_chars=40)
    hidden = len(profile.columns) - MARKDOWN_MAX_COLUMNS
    return table + (f"\n\n_{hidden} more columns in qa.column_profiles_" if hidden > 0 else "")


def _share(value) -> str:
    return "" if value is None else f"{value:.1%}"


def _count(value) -> str:
    return "" if value is None else f"{int(value):,}"


def _value(value, col) -> str:
    if value is None:
        return ""
    if col.semantic_type == "datetime" and not (col.details.get("semantic_type") or {}).get("stored_as_text"):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return f"{value:.6g}"
