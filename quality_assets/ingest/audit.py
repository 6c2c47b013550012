"""What a load records: the audit row of `qa.files`, error codes, a staged file's handle, and the
outcome (counts, status, message) computed from loaded and quarantined rows.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ERROR_CODES = {
    "E_COLUMN_COUNT": "the record has more or fewer fields than the header",
    "E_QUOTE": "an unterminated or misplaced quote",
    "E_ENCODING": "bytes that are not valid in the declared encoding",
    "E_LINE_SIZE": "a record longer than max_line_bytes",
    "E_NUL": "a NUL byte inside the record (binary data in a text file)",
    "E_NUMERIC_FORMAT": "a value that is not a number in a numeric column",
    "E_NUMERIC_RANGE": "a number its column's type cannot hold (an integer past int64, 1e400 in DOUBLE)",
    "E_DATE_FORMAT": "a value that is not a date or timestamp in a temporal column",
    "E_BOOLEAN_FORMAT": "a value that is not true/false in a boolean column",
    "E_TYPE": "a value that cannot be cast to its column's type",
    "E_JSON": "a line that is not a JSON object",
    "E_PARSE": "a record the CSV reader could not parse",
    "E_FOOTER": "a line after the table's last record that is not a record of it (a total, a note)",
}


FILE_WARNINGS = {
    "W_PREAMBLE": "lines before the header that are not part of the table (counted), skipped",
    "W_HEADER_RESPLIT": "a header line in another dialect than the body, re-split with the one that fits",
    "W_HEADER_POSITIONAL": "a header line that fits no dialect of the body: columns named column_1, column_2, ...",
    "W_FOOTER": "lines after the table's last record that are not part of it (counted), quarantined as E_FOOTER",
}
FILE_ERRORS = {
    "E_EMPTY_FILE": "the file is empty",
    "E_BINARY": "the file is binary, not text in a supported format",
    "E_UNREADABLE": "the file could not be read in its format",
    "E_FILE_CHANGED": "the file changed while it was read: not loaded, retried once it settles",
    "E_OUT_OF_MEMORY": "DuckDB ran out of memory loading the file: not loaded (raise QA_DUCKDB_MEMORY_LIMIT)",
    "E_WAREHOUSE_BUSY": "the warehouse stayed held by another process past QA_DUCKDB_LOCK_TIMEOUT: not loaded",
}


META_COLUMNS = ("_partition_key", "_source_row", "_run_id")


BATCH_ROWS = 50_000


QUARANTINE_LINE_CAP = 1024 * 1024


TEMP_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".filepart", ".swp", "~")


@dataclass
class LoadAudit:
    """What `qa.files` records for one load."""

    dataset: str
    partition_key: str
    run_id: str
    source_path: str
    format: str = ""
    compression: str | None = None
    sha256: str | None = None
    bytes: int = 0
    mtime: dt.datetime | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    columns: list[str] = field(default_factory=list)
    delimiter: str | None = None
    quote: str | None = None
    header: bool | None = None
    encoding: str | None = None
    utf8_valid: bool | None = None
    parser: str = ""
    started: dt.datetime | None = None
    finished: dt.datetime | None = None
    duration_s: float = 0.0
    status: str = "loaded"
    message: str = ""
    error_codes: dict[str, int] = field(default_factory=dict)
    duplicate_of: str | None = None
    contract_fingerprint: str = ""
    column_types: dict[str, str] = field(default_factory=dict)
    preview: list[dict] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step, for benchmarks and logs

    AUDIT_COLUMNS = (
        "dataset", "partition_key", "run_id", "source_path", "format", "compression", "sha256",
        "bytes", "mtime", "rows_read", "rows_loaded", "rows_quarantined", "columns", "delimiter",
        "quote", "header", "encoding", "utf8_valid", "parser", "started", "finished",
        "duration_s", "status", "message", "error_codes", "duplicate_of", "contract_fingerprint",
    )

    def as_row(self) -> list:
        values = asdict(self)
        return [values[name] for name in self.AUDIT_COLUMNS]

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("preview", "phases")}


@dataclass
class Staged:
    """A file parsed into a staging database, ready to publish."""

    path: Path  # the staging database file
    audit: LoadAudit
    column_types: dict[str, str]  # the types the rows get in raw
    declared: set[str]
    workdir: Path
    source_row_sql: str = "_source_row"  # record number of a staged row, as SQL over stage.rows
    stored_types: dict[str, str] = field(default_factory=dict)  # types as staged, where they differ


def seconds_since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def set_outcome(audit: LoadAudit, loaded: int, quarantined_by_code: dict[str, int]) -> None:
    """Counts, error codes, status and message of a load, from its loaded rows and quarantine."""
    audit.rows_loaded = loaded
    audit.rows_quarantined = sum(quarantined_by_code.values())
    audit.rows_read = audit.rows_loaded + audit.rows_quarantined
    ordered = sorted(quarantined_by_code.items(), key=lambda item: (-item[1], item[0]))
    audit.error_codes = {**audit.error_codes, **dict(ordered)}
    if audit.status == "loaded":
        if audit.rows_quarantined:
            audit.status = "loaded_with_errors"
            audit.message = f"{audit.rows_quarantined} of {audit.rows_read} rows quarantined"
        elif audit.rows_read == 0 and not audit.message:
            audit.message = "header only: no data rows"
        else:
            audit.message = audit.message or f"{audit.rows_loaded} rows loaded"
    if audit.encoding and audit.encoding.startswith("utf") and audit.utf8_valid is None:
        audit.utf8_valid = "E_ENCODING" not in audit.error_codes


def table_columns(con, table: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]


def table_types(con, table: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE {table}").fetchall()}


def first_line_of(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200]


def is_temporary_name(name: str) -> bool:
    """Names of files still being written or hidden: never loaded."""
    base = Path(name).name
    return base.startswith((".", "~$", "_COPYING_")) or base.lower().endswith(TEMP_SUFFIXES)
