"""Records whose field count DuckDB's reader lets pass: it drops empty fields at the end of a
record, so `2,b,2.5,` under a three-column header loads as if it were `2,b,2.5`. A record with
more or fewer fields than the header is never loaded as if it fitted: it is quarantined
(`E_COLUMN_COUNT`), unless every record of the file ends with the same one empty field (a
trailing delimiter on every data line), which is then part of the dialect.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb

from quality_assets.ingest.scan import FileScan
from quality_assets.ingest.sniff import Dialect, sample_records, sql_options
from quality_assets.warehouse import quote_ident, quote_literal

NOT_A_NULL = "\x01qa: no null string\x01"  # empty fields stay '' and padded ones NULL
READER_ONLY = ("names", "types", "nullstr", "dateformat", "timestampformat", "store_rejects", "rejects_table",
               "rejects_scan", "allow_quoted_nulls")  # options of the load, not of this check


def field_check_needed(scan: FileScan | None, dialect: Dialect) -> bool:
    """Whether some record may end with a surplus empty field: only a line ending with the
    delimiter can (the scan counts them); always for a file that was not scanned."""
    return dialect.trailing_empty or scan is None or scan.may_end_with(dialect.delimiter)


def misfit_records(con: duckdb.DuckDBPyConnection, source: Path, options: dict, dialect: Dialect,
                   width: int) -> int:
    """How many records DuckDB's reader accepts with surplus empty fields (or, in a file whose
    records all end with one empty field, without it); -1 when the reader cannot tell."""
    check = {k: v for k, v in options.items() if k not in READER_ONLY}
    # With one more column than the header (two with a trailing delimiter) and null padding, the
    # reader keeps an empty surplus field as '' where a record without one gets NULL; a record
    # with still more fields is rejected, and judged from its line below.
    expected = width + 1 if dialect.trailing_empty else width
    rejects = f"field_check_{uuid.uuid4().hex}"
    check.update(columns={f"f{i}": "VARCHAR" for i in range(expected + 1)}, null_padding=True,
                 nullstr=[NOT_A_NULL], auto_detect=False, store_rejects=True, rejects_table=rejects,
                 rejects_scan=f"{rejects}_scan")
    misfit = f"f{expected} = ''"  # a surplus field with a value is rejected by the reader itself
    if dialect.trailing_empty:
        misfit += f" OR f{width} IS NULL"
    try:
        count = con.execute(
            f"SELECT count(*) FROM read_csv({quote_literal(str(source))}, {sql_options(check)}) WHERE {misfit}"
        ).fetchall()[0][0]  # fetchall: the rejects table exists once the result is consumed
        stored = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [rejects]).fetchone()[0]
        lines = con.execute(
            f"SELECT csv_line FROM {quote_ident(rejects)} WHERE error_type::VARCHAR = 'TOO MANY COLUMNS'"
        ).fetchall() if stored else []
        for table in (rejects, f"{rejects}_scan"):
            con.execute(f"DROP TABLE IF EXISTS {quote_ident(table)}")
    except duckdb.Error:
        return -1
    for (line,) in lines:
        fields = next(iter(sample_records(line or "", dialect.delimiter, dialect.quote, limit=1)), [])
        count += all(value == "" for value in fields[width:])  # else the reader rejects it itself
    return count


def nul_condition(columns: list[str], column_types: dict[str, str]) -> str | None:
    """SQL that holds for a row with a NUL character in a text column (None: no text column).
    DuckDB's reader keeps NULs; the record-by-record reader quarantines their records (E_NUL)."""
    texts = [c for c in columns if column_types.get(c, "VARCHAR") == "VARCHAR"]
    return " OR ".join(f"contains({quote_ident(c)}, chr(0))" for c in texts) or None
