"""`<dataset>/report`: the partition's HTML report and machine-readable files, summarised in the UI."""


import dagster as dg

from quality_assets.contract import Dataset
from quality_assets.defs.common import (
    ANOMALIES,
    REPORT,
    markdown_table,
    partition_results,
    stage_asset,
    stage_key,
)
from quality_assets.defs.resources import OutputFolderResource, WarehouseResource
from quality_assets.report import ReportResult, build_reports

# The last stage that describes the data. Not `validation`: its blocking checks would stop the
# report on exactly the partitions whose producer needs it; the report reads the rules' results
# from their tables instead.
UPSTREAM_STAGE = ANOMALIES
TOP_FAILURES = 8


def build_report_asset(dataset: Dataset, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    key = stage_key(dataset, REPORT)

    @stage_asset(
        dataset, REPORT, partitions,
        deps=[stage_key(dataset, UPSTREAM_STAGE)],
        kinds={"html"},
        # Not downstream of validation, so order it after steps that become ready with it: the run's
        # in-process executor starts ready steps by priority, and the report then sees this run's rule results.
        op_tags={"dagster/priority": "-10"},
        description=(
            "A self-contained HTML report of the partition (verdict and failures first, then the file audit, "
            "every column's profile and trend, correlations) with profile.json, metrics.csv, audit.log.json and "
            "metrics.prom, written atomically under `$QA_OUTPUT_DIR/" + dataset.name + "/<partition>/`."
        ),
        metadata={"dataset": dataset.name},
    )
    def report(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, output_folder: OutputFolderResource
    ) -> dg.MaterializeResult:
        output_dir = output_folder.get()
        results = build_reports(warehouse.get(), dataset.name, list(context.partition_keys), output_dir,
                                dataset.description or "")
        for result in results:
            context.log.info(f"{dataset.name}/{result.data.partition_key}: {result.data.verdict.headline}; "
                             f"report at {result.report_path}")
        return partition_results(context, key, results, lambda r: r.data.partition_key, report_metadata,
                                 lambda some: [], lambda all_: {
            "partitions": len(all_),
            "verdicts": dg.MetadataValue.json({r.data.partition_key: r.data.verdict.level for r in all_}),
            "report_folder": dg.MetadataValue.path(str(all_[-1].folder.parent)),
        })

    return report


def report_metadata(result: ReportResult) -> dict:
    data = result.data
    summary = data.summary()
    return {
        "verdict": data.verdict.level,
        "headline": data.verdict.headline,
        "summary": dg.MetadataValue.md(summary_markdown(result)),
        "report_path": dg.MetadataValue.path(str(result.report_path)),
        "output_folder": dg.MetadataValue.path(str(result.folder)),
        # numbers Dagster plots across materializations
        "rows_loaded": summary["rows_loaded"] or 0,
        "rows_quarantined": summary["rows_quarantined"],
        "checks_failed_error": summary["checks_failed"]["error"],
        "checks_failed_warn": summary["checks_failed"]["warn"],
        "row_anomalies": summary["row_anomalies"],
        "metric_anomalies": summary["metric_anomalies"],
        "drifted_columns": summary["drifted_columns"],
        "profile_alerts": summary["profile_alerts"],
        "columns": summary["columns"],
        "report_bytes": result.report_bytes,
        "report_seconds": round(result.gather_s + result.render_s, 3),
    }


def top_failures(result: ReportResult, limit: int = TOP_FAILURES) -> list[dict]:
    data = result.data
    rows = [{"what": f"rule {c['rule']}", "severity": c["severity"],
             "rows": c["failing_rows"] if c["failing_rows"] is not None else "",
             "detail": c["error"] or c["message"]} for c in data.failed_checks]
    rows += [{"what": f"quarantine {code}", "severity": "warn", "rows": count, "detail": "rows that did not parse"}
             for code, count in data.quarantine_by_code]
    rows += [{"what": f"drift {d['column_name']}", "severity": "warn", "rows": "", "detail": d.get("reason") or d.get("test")}
             for d in data.drifted()]
    rows += [{"what": f"metric {m.get('column_name') or '(dataset)'}.{m['metric']}", "severity": "warn", "rows": "",
              "detail": m.get("reason") or ""} for m in data.metric_anomalies()]
    if data.rows_flagged():
        rows.append({"what": "anomalous rows", "severity": "warn", "rows": data.rows_flagged(),
                     "detail": "see the report's Anomalous rows"})
    return rows[:limit]


def summary_markdown(result: ReportResult) -> str:
    verdict = result.data.verdict
    icon = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "no_data": "NO DATA"}[verdict.level]
    failures = top_failures(result)
    text = f"**{icon}**: {md_text(verdict.headline)}"
    if failures:
        text += "\n\nTop failures:\n\n" + markdown_table(failures, max_chars=120)
    return text + f"\n\nReport: `{result.report_path.as_posix().replace('`', '')}`"


def md_text(text: str) -> str:
    """Data text inside markdown: markup characters escaped, one line."""
    for char in "\\`*_{}[]<>()#+-.!|":
        text = text.replace(char, "\\" + char)
    return " ".join(text.split())
