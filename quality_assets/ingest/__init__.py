"""Load one landed file into the warehouse: typed rows, quarantined rows, and an audit row.

A CSV file that DuckDB's reader can take is loaded straight into `raw."<dataset>"` in one
transaction under the warehouse lock (`load_file`, `direct_csv`): one parallel parse, no copy,
rejected records captured with `store_rejects`. Everything else takes two steps: `stage_file`
parses the file into a private staging database with no lock held (Parquet, JSON lines,
transcoded encodings, and the record-by-record reader for files DuckDB's reader gives up on,
such as an unterminated quote swallowing the rest of the file), then `publish_stage` copies the
staged rows into `raw."<dataset>"`, `qa.quarantine` and `qa.files` in one short transaction.
Either way the partition is replaced in one transaction and every data record ends up either
loaded or quarantined: rows_read = rows_loaded + rows_quarantined.

Modules: `load` (entry point), `scan` (bytes, hash, format), `sniff` (CSV dialect),
`direct_csv`, `staged_csv`, `records` (record-by-record reader), `casting`, `quarantine`,
`json_lines`, `parquet`, `stage`, `commit`, `audit`.
"""

from quality_assets.ingest.audit import (
    ERROR_CODES,
    FILE_ERRORS,
    META_COLUMNS,
    QUARANTINE_LINE_CAP,
    LoadAudit,
    Staged,
    is_temporary_name,
)
from quality_assets.ingest.commit import evolve_raw_table, insert_audit, publish_stage, raw_table
from quality_assets.ingest.load import last_load, load_file
from quality_assets.ingest.quarantine import cast_error_code
from quality_assets.ingest.scan import FileScan, scan_file, sha256_file
from quality_assets.ingest.schema import extend_schema, record_new_columns, stored_schema
from quality_assets.ingest.sniff import Dialect, sniff_dialect
from quality_assets.ingest.stage import stage_file

__all__ = [
    "ERROR_CODES", "FILE_ERRORS", "META_COLUMNS", "QUARANTINE_LINE_CAP", "Dialect", "FileScan", "LoadAudit",
    "Staged", "cast_error_code", "evolve_raw_table", "extend_schema", "insert_audit", "is_temporary_name", "last_load",
    "load_file", "publish_stage", "raw_table", "record_new_columns", "scan_file", "sha256_file", "sniff_dialect",
    "stage_file", "stored_schema",
]
