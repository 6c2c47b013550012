"""Staging: parse a file into a private staging database (`rows`, `quarantine`) with no warehouse
lock held, choosing the reader by format.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from quality_assets.contract import Dataset
from quality_assets.ingest.audit import (
    FILE_ERRORS,
    LoadAudit,
    Staged,
    set_outcome,
    table_columns,
    table_types,
)
from quality_assets.ingest.json_lines import stage_json
from quality_assets.ingest.parquet import stage_parquet
from quality_assets.ingest.quarantine import (
    create_quarantine_table,
    reset_stage,
    whole_file_outcome,
)
from quality_assets.ingest.scan import (
    binary_reason,
    check_unchanged,
    detect_format,
    is_blank,
    peek,
    scan_file,
)
from quality_assets.ingest.schema import with_schema
from quality_assets.ingest.sniff import CSV_DELIMITERS
from quality_assets.ingest.staged_csv import record_number_sql, stage_csv
from quality_assets.warehouse import Warehouse, quote_ident


def stage_file(
    warehouse: Warehouse,
    source: Path,
    dataset: Dataset,
    partition_key: str,
    run_id: str,
    workdir: Path,
    schema: dict[str, str] | None = None,
) -> Staged:
    """Parse `source` into `workdir/stage.duckdb` (tables `rows`, `quarantine`), reading the
    columns the dataset already has (`schema`, from stored_schema) with their kept types."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        delimiters = (dataset.csv.delimiter,) if dataset.csv.delimiter else CSV_DELIMITERS
        scan = pool.submit(scan_file, source, delimiters=delimiters)
        return stage_with_scan(warehouse, source, dataset, partition_key, run_id, workdir, scan, schema=schema)


def new_audit(source: Path, stat: os.stat_result, dataset: Dataset, partition_key: str, run_id: str) -> LoadAudit:
    return LoadAudit(
        dataset=dataset.name, partition_key=partition_key, run_id=run_id,
        source_path=str(source), bytes=stat.st_size,
        mtime=dt.datetime.fromtimestamp(stat.st_mtime_ns / 1e9, tz=dt.timezone.utc).replace(tzinfo=None),
        started=dt.datetime.now(), contract_fingerprint=dataset.fingerprint(),
    )


def stage_with_scan(warehouse: Warehouse, source: Path, dataset: Dataset, partition_key: str, run_id: str,
           workdir: Path, scan: Future, hand_over: str | None = None, schema: dict[str, str] | None = None) -> Staged:
    """stage_file, given the file's scan (running) and why DuckDB's reader already gave up on it."""
    clock = time.perf_counter()
    stat = source.stat()
    audit = new_audit(source, stat, dataset, partition_key, run_id)
    dataset = with_schema(dataset, schema)  # after the audit: its contract fingerprint is the contract's
    stage_path = workdir / "stage.duckdb"
    con = warehouse.scratch(stage_path)
    try:
        create_quarantine_table(con)
        column_types = _stage_into(con, source, dataset, audit, workdir, scan, hand_over)
        _finish_counts(con, audit)
        source_row_sql = record_number_sql(con)
        stored = {name: kind for name, kind in table_types(con, "rows").items() if column_types.get(name, kind) != kind}
    finally:
        con.close()
    check_unchanged(source, stat, scan.result())
    audit.sha256 = scan.result().sha256
    audit.finished = dt.datetime.now()
    audit.duration_s = round(time.perf_counter() - clock, 3)
    declared = {c.name for c in dataset.columns if c.type}
    return Staged(stage_path, audit, column_types, declared, workdir, source_row_sql, stored)


def _stage_into(con, source: Path, dataset: Dataset, audit: LoadAudit, workdir: Path, scan: Future,
                hand_over: str | None) -> dict[str, str]:
    """Fill `rows` and `quarantine`; returns the staged column types. Sets format fields on audit."""
    head, compression = peek(source)
    audit.compression = compression
    fmt = dataset.format if dataset.format != "auto" else detect_format(source, head)
    audit.format = fmt
    if audit.bytes == 0 or is_blank(head):
        return whole_file_outcome(con, audit, "E_EMPTY_FILE", FILE_ERRORS["E_EMPTY_FILE"], "empty")
    if fmt == "parquet":
        return stage_parquet(con, source, dataset, audit)
    unreadable_gzip = compression == "gzip" and head[:2] == b"\x1f\x8b"  # judged by the gzip reader below
    reason = None if unreadable_gzip else binary_reason(head, dataset.csv.encoding.lower())
    if reason:
        return whole_file_outcome(con, audit, "E_BINARY", f"{FILE_ERRORS['E_BINARY']} ({reason})", "rejected")
    try:
        if fmt == "json":
            return stage_json(con, source, dataset, audit)
        return stage_csv(con, source, dataset, audit, head, workdir, scan, hand_over)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        if audit.compression != "gzip":
            raise
        # A corrupt or truncated gzip stream (a file still being written, say): reject it whole.
        reset_stage(con)
        return whole_file_outcome(con, audit, "E_UNREADABLE", f"not a readable gzip file: {exc}", "rejected")


def _finish_counts(con, audit: LoadAudit) -> None:
    loaded = con.execute("SELECT count(*) FROM rows").fetchone()[0]
    codes = con.execute("SELECT error_code, count(*) FROM quarantine GROUP BY 1").fetchall()
    set_outcome(audit, loaded, dict(codes))
    audit.columns = [c for c in table_columns(con, "rows") if c != "_source_row"]
    if audit.columns:
        keep = ", ".join(quote_ident(c) for c in audit.columns)
        preview = con.execute(f"SELECT {keep} FROM rows ORDER BY rowid LIMIT 5")
        names = [d[0] for d in preview.description]
        audit.preview = [dict(zip(names, row, strict=True)) for row in preview.fetchall()]
