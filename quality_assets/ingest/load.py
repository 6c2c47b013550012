"""The entry point: load one file into its partition, straight into raw when DuckDB's reader can
take it, else staged then published; a no-op when the partition already holds the same content.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from quality_assets.contract import Dataset
from quality_assets.ingest.audit import LoadAudit, first_line_of
from quality_assets.ingest.commit import insert_audit, publish_stage
from quality_assets.ingest.direct_csv import HandOver, load_csv_direct, plan_direct_csv
from quality_assets.ingest.scan import FileChanged, scan_file, sha256_file
from quality_assets.ingest.schema import stored_schema, with_schema
from quality_assets.ingest.sniff import CSV_DELIMITERS
from quality_assets.ingest.stage import new_audit, stage_with_scan
from quality_assets.lake import retry_conflicts
from quality_assets.warehouse import Warehouse, WarehouseBusy

PUBLISH_ATTEMPTS = 3  # then WarehouseConflict: the step runs again (QA_LAKE_RETRIES)


def load_file(
    warehouse: Warehouse,
    source: Path,
    dataset: Dataset,
    partition_key: str,
    run_id: str,
    force: bool = False,
) -> LoadAudit:
    """Load one file into its partition (a CSV straight into raw when DuckDB's reader can take
    it, anything else staged then published); a no-op when this partition already holds
    identical content. When the warehouse stays busy past its timeout, the audit row saying so
    is kept for the next connection and WarehouseBusy raised."""
    started = dt.datetime.now()
    try:
        return _load_file(warehouse, Path(source), dataset, partition_key, run_id, force)
    except WarehouseBusy as exc:
        defer_busy_audit(warehouse, source, dataset, partition_key, run_id, started, exc)
        raise
    except duckdb.OutOfMemoryException as exc:
        # Rolled back; the file keeps its audit row, saying what to change.
        audit = _not_loaded(source, dataset, partition_key, run_id, started, "E_OUT_OF_MEMORY",
                            f"DuckDB ran out of memory ({first_line_of(exc)}); raise QA_DUCKDB_MEMORY_LIMIT")
        with warehouse.connect() as con:
            insert_audit(con, audit)
        raise
    except FileChanged as exc:
        # Rolled back: the partition keeps what it had; the sensor sees the new size or mtime
        # and requests the file again once it has settled.
        audit = _not_loaded(source, dataset, partition_key, run_id, started, "E_FILE_CHANGED",
                            f"{exc}; loaded again once it stops changing")
        with warehouse.connect() as con:
            insert_audit(con, audit)
        return audit


def defer_busy_audit(warehouse: Warehouse, source: Path, dataset: Dataset, partition_key: str, run_id: str,
                     started: dt.datetime, exc: WarehouseBusy) -> None:
    """The audit row of a file not loaded because the warehouse stayed busy, kept for the next
    connection to write."""
    audit = _not_loaded(source, dataset, partition_key, run_id, started, "E_WAREHOUSE_BUSY", str(exc))
    warehouse.defer_insert("qa.files", audit.as_row())


def _not_loaded(source: Path, dataset: Dataset, partition_key: str, run_id: str, started: dt.datetime,
                code: str, reason: str) -> LoadAudit:
    """The audit row of a load that gave up before it changed the warehouse."""
    finished = dt.datetime.now()
    return LoadAudit(
        dataset=dataset.name, partition_key=partition_key, run_id=run_id, source_path=str(source),
        status="failed", message=f"not loaded: {reason}", error_codes={code: 1},
        contract_fingerprint=dataset.fingerprint(), started=started, finished=finished,
        duration_s=round((finished - started).total_seconds(), 3),
    )


def _load_file(warehouse: Warehouse, source: Path, dataset: Dataset, partition_key: str, run_id: str,
               force: bool) -> LoadAudit:
    with warehouse.connect() as con:
        previous = None if force else last_load(con, dataset.name, partition_key)
        schema = stored_schema(con, dataset.name)
    stat = source.stat()
    digest = _unchanged(previous, source, stat, dataset) if previous else None
    if digest and digest == previous["sha256"]:
        audit = LoadAudit(
            dataset=dataset.name, partition_key=partition_key, run_id=run_id,
            source_path=str(source), status="unchanged", bytes=stat.st_size,
            sha256=previous["sha256"], rows_read=previous["rows_read"],
            rows_loaded=previous["rows_loaded"], rows_quarantined=previous["rows_quarantined"],
            columns=list(previous["columns"] or []), format=previous["format"],
            message=f"identical content already loaded by run {previous['run_id']}; nothing to do",
            error_codes=dict(previous["error_codes"] or {}),
            contract_fingerprint=dataset.fingerprint(), started=dt.datetime.now(),
        )
        audit.finished = audit.started
        with warehouse.connect() as con:
            insert_audit(con, audit)
        return audit
    with ThreadPoolExecutor(max_workers=1) as pool:
        audit = new_audit(source, stat, dataset, partition_key, run_id)
        plan = plan_direct_csv(warehouse, source, with_schema(dataset, schema), audit, stat) \
            if warehouse.direct_loads else None
        # One read of the file, beside DuckDB's parse: its sha256, where its line breaks stop
        # being regular (see LineBreaks) and how many lines end with the delimiter.
        delimiter = plan.dialect.delimiter if plan else dataset.csv.delimiter
        scan = pool.submit(scan_file, source, digest, delimiters=(delimiter,) if delimiter else CSV_DELIMITERS)
        hand_over = None
        if plan is not None:
            try:
                return load_csv_direct(warehouse, plan, scan)
            except HandOver as exc:
                hand_over = str(exc)
        workdir = Path(tempfile.mkdtemp(prefix="stage-", dir=_staging_root(warehouse)))
        try:
            with warehouse.released():  # parsed outside the lock, even by a range's held connection
                staged = stage_with_scan(warehouse, source, dataset, partition_key, run_id, workdir, scan, hand_over,
                                         schema)
            with warehouse.connect() as con:
                # A lake commit that lost to another worker's (both created the dataset's table) is
                # made again at once from the staged rows, rather than the whole step staging the
                # file again; each attempt starts from the staged audit (publishing amends it).
                return retry_conflicts(
                    lambda: publish_stage(con, dataclasses.replace(staged, audit=copy.deepcopy(staged.audit))),
                    PUBLISH_ATTEMPTS, f"publishing {dataset.name}/{partition_key}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _staging_root(warehouse: Warehouse) -> Path:
    root = warehouse.work_dir / ".staging"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _unchanged(previous: dict, source: Path, stat: os.stat_result, dataset: Dataset) -> str | None:
    """The file's sha256 when it may be the previous load's content again (compare it), else None."""
    if previous["contract_fingerprint"] != dataset.fingerprint() or previous["status"] == "rejected":
        return None
    if previous["bytes"] != stat.st_size:
        return None
    return sha256_file(source)


def last_load(con: duckdb.DuckDBPyConnection, dataset: str, partition_key: str) -> dict | None:
    """The newest audit row of a partition that changed the warehouse, as a dict."""
    rel = con.execute(
        "SELECT * FROM qa.files WHERE dataset = ? AND partition_key = ? AND status NOT IN ('unchanged', 'failed') "
        "ORDER BY finished DESC LIMIT 1",
        [dataset, partition_key],
    )
    row = rel.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in rel.description], row, strict=True))
