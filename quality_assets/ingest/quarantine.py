"""Quarantine: the staging tables, a whole file rejected or empty, DuckDB's rejected records turned into coded rows, and the
error code of a failed cast.
"""

from __future__ import annotations

import duckdb

from quality_assets.ingest.audit import QUARANTINE_LINE_CAP, LoadAudit
from quality_assets.ingest.scan import irregular_line_breaks
from quality_assets.ingest.sniff import Dialect, sample_records
from quality_assets.warehouse import insert_rows, quote_ident


def create_quarantine_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE quarantine (source_row BIGINT, line BIGINT, column_name VARCHAR, "
        "error_code VARCHAR, message VARCHAR, raw_value VARCHAR, raw_line VARCHAR, raw_line_bytes BIGINT)"
    )


def reset_stage(con) -> None:
    """Drop whatever a failed staging attempt left behind, keeping the empty quarantine."""
    for name, kind in con.execute(
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_name <> 'quarantine'"
    ).fetchall():
        con.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} IF EXISTS {quote_ident(name)}")
    con.execute("DELETE FROM quarantine")


def whole_file_outcome(con, audit: LoadAudit, code: str, message: str, status: str) -> dict[str, str]:
    con.execute("CREATE TABLE rows (_source_row BIGINT)")
    audit.status = status
    audit.message = message
    audit.error_codes = {code: 1}
    audit.parser = "none"
    return {}


def quarantine_rejects(source, compression, scan, rejected, dialect, targets, column_types, header_lines) -> list[tuple]:
    """Quarantine rows (see quarantine_row) for DuckDB's rejected records."""
    if any("UNQUOTED VALUE" in kinds for _, kinds, *_ in rejected):
        # An unterminated quote: DuckDB swallows every record after it into the one rejected
        # line. The record-by-record reader quarantines that line and reads on.
        raise duckdb.InvalidInputException("unterminated quote")
    last_rejected = max(r[6] for r in rejected)
    known = scan.result() if scan is not None else None
    if known is not None and known.line_breaks_known:
        irregular = known.irregular_from is not None and known.irregular_from <= last_rejected + 2
    else:
        irregular = irregular_line_breaks(source, compression, last_rejected)
    if irregular:
        # DuckDB's reject line numbers count blank lines (and a CRLF in a LF file as two lines),
        # its loaded rows do not: only the record-by-record reader numbers both the same way.
        raise duckdb.InvalidInputException("blank lines or mixed line breaks before rejected records")
    rows = []
    for line, kinds, indexes, names, csv_line, messages, _ in rejected:
        csv_line = csv_line.strip("\r\n") if csv_line is not None else None
        # A record can fail several ways; report the structural fault first, else the first cast.
        pick = min(range(len(kinds)), key=lambda i: REJECT_PRIORITY.get(kinds[i], len(REJECT_PRIORITY)))
        target = _target_for(names[pick], dialect.names, targets)
        code = _duckdb_code([kinds[pick]], column_types.get(target) if target else None)
        is_cast = kinds[pick] == "CAST"
        value = _field(csv_line, indexes[pick], dialect) if is_cast else None
        if is_cast and value == "":
            # A quoted "" in a typed column: no value (NULL), where DuckDB's reader, keeping quoted
            # empties as text, rejects it. The record-by-record reader tells the two apart.
            raise duckdb.InvalidInputException("quoted empty values in typed columns")
        rows.append(quarantine_row(
            line - header_lines, line, target if is_cast else None, code,
            _first_line_text(messages[pick]), value, csv_line,
        ))
    return rows


def _target_for(source_name: str | None, sources: list[str], targets: list[str]) -> str | None:
    if source_name is None:
        return None
    for src, tgt in zip(sources, targets, strict=True):
        if src == source_name:
            return tgt
    return source_name


def _first_line_text(message: str | None) -> str:
    return (message or "").strip().splitlines()[0][:500] if message else ""


REJECT_PRIORITY = {
    "INVALID ENCODING": 0, "INVALID UNICODE": 0, "LINE SIZE OVER MAXIMUM": 1, "UNQUOTED VALUE": 2,
    "MISSING COLUMNS": 3, "TOO MANY COLUMNS": 3, "INVALID STATE": 4, "CAST": 5,
}


def _duckdb_code(kinds: list[str], column_type: str | None) -> str:
    for kind, code in (
        ("INVALID ENCODING", "E_ENCODING"), ("INVALID UNICODE", "E_ENCODING"),
        ("LINE SIZE OVER MAXIMUM", "E_LINE_SIZE"), ("UNQUOTED VALUE", "E_QUOTE"),
        ("MISSING COLUMNS", "E_COLUMN_COUNT"), ("TOO MANY COLUMNS", "E_COLUMN_COUNT"),
        ("INVALID STATE", "E_PARSE"),
    ):
        if kind in kinds:
            return code
    return cast_error_code(column_type or "")


def cast_error_code(column_type: str) -> str:
    upper = column_type.upper()
    if any(t in upper for t in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMERIC")):
        return "E_NUMERIC_FORMAT"
    if any(t in upper for t in ("DATE", "TIME")):
        return "E_DATE_FORMAT"
    if "BOOL" in upper:
        return "E_BOOLEAN_FORMAT"
    return "E_TYPE"


def _field(csv_line: str | None, index: int | None, dialect: Dialect) -> str | None:
    if csv_line is None or index is None:
        return None
    records = sample_records(csv_line, dialect.delimiter, dialect.quote, limit=1)
    if records and 0 <= index - 1 < len(records[0]):
        return records[0][index - 1]
    return None


def quarantine_row(source_row, line, column, code, message, value, raw_line) -> tuple:
    raw_bytes = len(raw_line.encode("utf-8", "surrogatepass")) if raw_line is not None else None
    if raw_line is not None and len(raw_line) > QUARANTINE_LINE_CAP:
        raw_line = raw_line[:QUARANTINE_LINE_CAP]
    if value is not None and len(value) > 1000:
        value = value[:1000]
    return (source_row, line, column, code, message, value, raw_line, raw_bytes)


def insert_quarantine(con, rows: list[tuple]) -> None:
    insert_rows(con, "quarantine", rows)
