"""`<dataset>/raw`: a landed file (or a run's range of them) loaded into the warehouse, with a parse check."""


import datetime as dt
import json

import dagster as dg

from quality_assets.contract import Dataset
from quality_assets.defs.common import (
    RAW,
    markdown_table,
    partition_check,
    partition_results,
    stage_asset,
    stage_key,
)
from quality_assets.defs.resources import OutputFolderResource, WarehouseResource
from quality_assets.ingest import LoadAudit, load_file
from quality_assets.ingest.load import defer_busy_audit
from quality_assets.landing import resolve_file
from quality_assets.report import build_report
from quality_assets.warehouse import WarehouseBusy

FILE_PARSED_CHECK = "file_parsed"


class RawLoadConfig(dg.Config):
    force: bool = False
    """Reload even when the partition already holds identical content."""


def files_partitions(dataset: Dataset) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=f"{dataset.name}_files")


def build_raw_asset(dataset: Dataset, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    key = stage_key(dataset, RAW)

    @stage_asset(
        dataset, RAW, partitions,
        kinds={"duckdb", "csv"},
        description=(
            f"Files landed in {dataset.landing_dir} loaded row for row into raw.\"{dataset.name}\"; "
            "rows that cannot be parsed go to qa.quarantine, every load is audited in qa.files."
        ),
        check_specs=[
            partition_check(
                FILE_PARSED_CHECK, key, partitions, blocking=True,
                description="The file was readable (error if rejected) and every row parsed (warn if rows were quarantined).",
            )
        ],
        metadata={"dataset": dataset.name, "landing_dir": str(dataset.landing_dir), "glob": dataset.glob},
    )
    def raw(context: dg.AssetExecutionContext, config: RawLoadConfig, warehouse: WarehouseResource,
            output_folder: OutputFolderResource) -> dg.MaterializeResult:
        loads, keys = [], list(context.partition_keys)  # one file, or several in one run (a range)
        paths = {}
        for partition_key in keys:
            try:
                paths[partition_key] = resolve_file(dataset, partition_key)
            except FileNotFoundError as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from None
        # A range's files load through one connection: opening the warehouse twice a file (the last
        # load, then the load after sniffing) held the writer lock longer than small files' rows did.
        started, entered = dt.datetime.now(), False
        try:
            with warehouse.for_step(len(keys)) as step_warehouse:
                entered = True
                for partition_key in keys:
                    audit = load_file(step_warehouse, paths[partition_key], dataset, partition_key,
                                      context.run.run_id, force=config.force)
                    context.log.info(f"{dataset.name}/{partition_key}: {audit.status}: {audit.message}")
                    metadata = raw_metadata(audit)
                    if audit.status == "rejected":
                        # file_parsed fails and blocks every later stage, the report included: the
                        # producer still gets a report saying why.
                        report = build_report(step_warehouse, dataset.name, partition_key, output_folder.get(),
                                              dataset.description or "")
                        metadata["report_path"] = dg.MetadataValue.path(str(report.report_path))
                        metadata["verdict"] = report.data.verdict.level
                        metadata["headline"] = report.data.verdict.headline
                    loads.append((partition_key, audit, metadata))
        except WarehouseBusy as exc:
            if not entered:  # the range's connection: no file was tried, and each keeps its audit row
                for partition_key in keys:
                    defer_busy_audit(warehouse.get(), paths[partition_key], dataset, partition_key,
                                     context.run.run_id, started, exc)
            raise
        return partition_results(
            context, key, loads, lambda load: load[0], lambda load: load[2],
            lambda some: [file_parsed_result([audit for _, audit, _ in some])],
            lambda all_: {"files": len(all_),
                          "rows_loaded": sum(audit.rows_loaded for _, audit, _ in all_),
                          "rows_quarantined": sum(audit.rows_quarantined for _, audit, _ in all_),
                          "by_file": dg.MetadataValue.md(markdown_table([
                              {"file": k, "status": audit.status, "rows": audit.rows_loaded,
                               "quarantined": audit.rows_quarantined} for k, audit, _ in all_]))},
            blocking=lambda check: True)

    return raw


def file_parsed_result(audits: list[LoadAudit]) -> dg.AssetCheckResult:
    """The file's parse check; over several files (a run's range), failed if any file failed, and
    an error (blocking the range's later stages) if any was not loaded."""
    failed_hard = any(a.status in ("rejected", "failed") for a in audits)  # failed: not loaded (file changed, warehouse busy)
    passed = all(a.status in ("loaded", "unchanged") and a.rows_quarantined == 0 for a in audits)
    rows_read = sum(a.rows_read for a in audits)
    quarantined = sum(a.rows_quarantined for a in audits)
    codes: dict[str, int] = {}
    for audit in audits:
        for code, count in audit.error_codes.items():
            codes[code] = codes.get(code, 0) + count
    if len(audits) == 1:
        status, message = audits[0].status, audits[0].message
    else:
        failed = [a for a in audits if a.status not in ("loaded", "unchanged") or a.rows_quarantined]
        status = "failed" if failed_hard else "loaded"
        message = "; ".join(f"{a.partition_key}: {a.status}: {a.message}" for a in failed)[:2000] or "every file parsed"
    return dg.AssetCheckResult(
        check_name=FILE_PARSED_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR if failed_hard else dg.AssetCheckSeverity.WARN,
        metadata={
            "status": status,
            "message": message,
            "rows_read": rows_read,
            "rows_quarantined": quarantined,
            "quarantined_share": round(quarantined / rows_read, 6) if rows_read else 0.0,
            "error_codes": dg.MetadataValue.json(codes),
        },
    )


def raw_metadata(audit: LoadAudit) -> dict:
    metadata = {
        "dagster/row_count": audit.rows_loaded,
        "status": audit.status,
        "message": audit.message,
        "rows_read": audit.rows_read,
        "rows_quarantined": audit.rows_quarantined,
        "quarantined_by_code": dg.MetadataValue.json(audit.error_codes),
        "sha256": audit.sha256 or "",
        "bytes": audit.bytes,
        "source_path": dg.MetadataValue.path(audit.source_path),
        "format": audit.format or "",
        "parser": audit.parser,
        "delimiter": json.dumps(audit.delimiter) if audit.delimiter else "",
        "encoding": audit.encoding or "",
        "duration_s": audit.duration_s,
    }
    if audit.duplicate_of:
        metadata["duplicate_of"] = audit.duplicate_of
    if audit.column_types:
        metadata["dagster/column_schema"] = dg.TableSchema(
            columns=[dg.TableColumn(name, type_) for name, type_ in audit.column_types.items()]
        )
    if audit.preview:
        metadata["preview"] = dg.MetadataValue.md(markdown_table(audit.preview))
    return metadata
