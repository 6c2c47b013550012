"""A CSV file parsed by DuckDB's reader into the staging database (no lock held): rows, rejected
records quarantined, strict integer casts, and the record number of each staged row.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import duckdb

from quality_assets.contract import Dataset
from quality_assets.ingest.audit import LoadAudit, first_line_of, table_columns, table_types
from quality_assets.ingest.casting import FLOAT_TYPES, INTEGER_TYPES, STRICT_INTEGER, number_failure
from quality_assets.ingest.fields import field_check_needed, misfit_records, nul_condition
from quality_assets.ingest.footer import copy_body, detect_footer, quarantine_footer
from quality_assets.ingest.quarantine import insert_quarantine, quarantine_rejects, reset_stage
from quality_assets.ingest.records import stage_csv_records
from quality_assets.ingest.scan import is_utf8, transcode
from quality_assets.ingest.schema import WHOLE_FILE, undeclared
from quality_assets.ingest.sniff import (
    DUCKDB_ENCODINGS,
    Dialect,
    csv_encoding,
    csv_options,
    sniff_csv,
    sql_options,
    target_names,
)
from quality_assets.warehouse import quote_ident, quote_literal


def stage_csv(con, source: Path, dataset: Dataset, audit: LoadAudit, head: bytes, workdir: Path,
               scan: Future, hand_over: str | None) -> dict[str, str]:
    encoding = csv_encoding(dataset, head)
    audit.encoding = encoding
    transcoded = encoding not in DUCKDB_ENCODINGS
    if transcoded:
        # DuckDB reads only UTF-8 and Latin-1 without downloading an extension: transcode first.
        source = transcode(source, audit.compression, encoding, workdir)
        audit.utf8_valid = False
        duck_encoding = "utf-8"
        compression = None
    else:
        duck_encoding = DUCKDB_ENCODINGS[encoding]
        compression = audit.compression
        if duck_encoding != "utf-8":
            audit.utf8_valid = is_utf8(source, compression)
    dialect = sniff_csv(source, dataset, audit, duck_encoding, compression)
    footer = detect_footer(source, dataset, dialect, duck_encoding, compression, audit)
    if footer is not None:
        # The reader gets the table without its footer: the footer's lines decide no column's type.
        lines_before = copy_body(source, footer, workdir / "body.csv")
        source = workdir / "body.csv"
    column_types = _stage_csv(con, source, dataset, audit, dialect, duck_encoding, compression,
                              None if transcoded else scan, hand_over)
    if footer is not None:
        records = con.execute("SELECT (SELECT count(*) FROM rows) + (SELECT count(*) FROM quarantine)").fetchone()[0]
        quarantine_footer(con, footer, records, lines_before)
    return column_types


def _stage_csv(con, source: Path, dataset: Dataset, audit: LoadAudit, dialect: Dialect, duck_encoding: str,
               compression: str | None, line_breaks: Future | None, hand_over: str | None) -> dict[str, str]:
    if hand_over is None:
        try:
            audit.parser = "duckdb"
            return _stage_csv_duckdb(con, source, dataset, dialect, duck_encoding, compression, line_breaks)
        except duckdb.Error as exc:
            # DuckDB gave up on the file as a whole; parse it record by record instead.
            reset_stage(con)
            hand_over = first_line_of(exc)
    audit.parser = "python"
    audit.message = f"parsed by the record-by-record reader ({hand_over})"
    return stage_csv_records(con, source, dataset, dialect, duck_encoding, compression)


def _stage_csv_duckdb(con, source: Path, dataset: Dataset, dialect: Dialect, encoding: str, compression: str | None,
                      scan: Future | None) -> dict[str, str]:
    options = csv_options(dataset, dialect, encoding, compression)
    targets = target_names(dataset, dialect.names)
    declared = {c.name: c.type for c in dataset.columns if c.type}
    options["names"] = dialect.names
    types = {src: declared[tgt] for src, tgt in zip(dialect.names, targets, strict=True) if tgt in declared}
    # DuckDB's integer cast rounds "1.5" to 2 and accepts "1_000"; declared integer columns are
    # read as text and cast strictly below, so such values are quarantined instead.
    integers = {tgt: declared[tgt] for tgt in targets if declared.get(tgt) in INTEGER_TYPES}
    types.update({src: "VARCHAR" for src, tgt in zip(dialect.names, targets, strict=True) if tgt in integers})
    if types:
        options["types"] = types
    options.update(store_rejects=True, rejects_table="rejects", rejects_scan="rejects_scan")
    # Types not yet known are inferred from every row (see schema.py), then given to the reader.
    # Quoted empties count as no value when inferring: a quoted "" is no reason for a column to be text.
    sniffing = {**options, "allow_quoted_nulls": True}
    if undeclared(dataset, targets):
        sniffing["sample_size"] = WHOLE_FILE
    described = con.execute(
        f"DESCRIBE SELECT * FROM read_csv({quote_literal(str(source))}, {sql_options(sniffing)})").fetchall()
    if len(described) != len(dialect.names):
        raise duckdb.InvalidInputException(
            f"DuckDB found {len(described)} columns where the header has {len(dialect.names)}"
        )
    integers.update(sniffed_integers(described, targets, declared))
    options["types"] = {row[0]: "VARCHAR" if tgt in integers else row[1] for tgt, row in zip(targets, described, strict=True)}
    reader = f"read_csv({quote_literal(str(source))}, {sql_options(options)})"
    select = ", ".join(
        f"{quote_ident(src)} AS {quote_ident(tgt)}" for src, tgt in zip(dialect.names, targets, strict=True)
    )
    # No row_number() here (it costs ~40% of the load): rows keep the reader's order, so a staged
    # row's rowid is its ordinal among the rows DuckDB accepted, and the record number follows
    # from the rejected records before it (see record_number_sql).
    con.execute(f"CREATE TABLE rows AS SELECT {select} FROM {reader}")
    known = scan.result() if scan is not None and scan.result().line_breaks_known else None
    nul = nul_condition(targets, table_types(con, "rows"))
    if (known.nul_bytes > 0) if known else (nul and con.execute(f"SELECT 1 FROM rows WHERE {nul} LIMIT 1").fetchall()):
        raise duckdb.InvalidInputException("NUL bytes in records")
    if field_check_needed(scan.result() if scan is not None else None, dialect) and misfit_records(
            con, source, options, dialect, len(targets)):
        raise duckdb.InvalidInputException("records with more or fewer fields than the header")
    header_lines = (1 if dialect.header else 0) + dialect.skip
    column_types = table_types(con, "rows")
    rejected = con.execute(
        "SELECT line, list(error_type::VARCHAR ORDER BY column_idx), list(column_idx ORDER BY column_idx), "
        "list(column_name ORDER BY column_idx), any_value(csv_line), list(error_message ORDER BY column_idx), "
        "max(line_byte_position) FROM rejects GROUP BY line ORDER BY line"
    ).fetchall()
    if rejected:
        rows = quarantine_rejects(source, compression, scan, rejected, dialect, targets, column_types, header_lines)
        insert_quarantine(con, rows)
    _record_shifts(con)
    floats = [name for name, kind in column_types.items() if kind in FLOAT_TYPES]
    _quarantine_misfit_numbers(con, integers, floats)
    column_types.update(integers)  # cast when published
    return column_types


def sniffed_integers(described: list[tuple], targets: list[str], declared: dict[str, str]) -> dict[str, str]:
    """Undeclared columns DuckDB typed as integers from its sample of the file. They are read as
    text and cast strictly like declared ones: DuckDB's own cast would turn a later "1.5" into 2
    without a word, where a strict cast quarantines that row with its original line."""
    return {tgt: row[1] for tgt, row in zip(targets, described, strict=True)
            if tgt not in declared and row[1] in INTEGER_TYPES}


def _quarantine_misfit_numbers(con, integers: dict[str, str], floats: list[str]) -> None:
    """Quarantine rows whose text in an integer column is not a whole number in the type's range,
    or whose floating-point column read as infinity (1e400: beyond DOUBLE's range).

    Integer columns stay text in the stage; publishing casts them, which cannot fail after this.
    """
    failing = [
        (name, f"({quote_ident(name)} IS NOT NULL AND NOT (regexp_full_match({quote_ident(name)}, "
               f"{quote_literal(STRICT_INTEGER)}) AND TRY_CAST({quote_ident(name)} AS {kind}) IS NOT NULL))",
         number_failure(quote_ident(name), kind))
        for name, kind in integers.items()
    ] + [
        (name, f"coalesce(isinf({quote_ident(name)}), false)",
         number_failure(f"CAST({quote_ident(name)} AS VARCHAR)", "DOUBLE"))
        for name in floats
    ]
    if not failing:
        return
    any_failing = " OR ".join(cond for _, cond, _ in failing)
    first = "CASE " + " ".join(f"WHEN {cond} THEN {quote_literal(name)}" for name, cond, _ in failing) + " END"
    value = "CASE " + " ".join(f"WHEN {cond} THEN CAST({quote_ident(name)} AS VARCHAR)" for name, cond, _ in failing) + " END"
    code = "CASE " + " ".join(f"WHEN {cond} THEN {sql[0]}" for _, cond, sql in failing) + " END"
    message = "CASE " + " ".join(f"WHEN {cond} THEN {sql[1]}" for _, cond, sql in failing) + " END"
    columns = [c for c in table_columns(con, "rows") if c != "_source_row"]
    # concat_ws, not a chain of ||: a chain nests one level per column (DuckDB's depth limit is 1,000).
    fields = "concat_ws(',', " + ", ".join(f"coalesce(CAST({quote_ident(c)} AS VARCHAR), '')" for c in columns) + ")"
    con.execute(
        f"CREATE TEMP TABLE misfit_numbers AS SELECT rowid AS staged_rowid, {record_number_sql(con)} AS source_row, "
        f"{first} AS column_name, {value} AS raw_value, {code} AS code, {message} AS message, {fields} AS raw_line "
        f"FROM rows WHERE {any_failing}"
    )
    if con.execute("SELECT count(*) FROM misfit_numbers").fetchone()[0] == 0:
        return
    con.execute(
        "INSERT INTO quarantine SELECT source_row, NULL, column_name, code, message, "
        "left(raw_value, 1000), raw_line, NULL FROM misfit_numbers"
    )
    if "_source_row" in table_columns(con, "rows"):
        con.execute("DELETE FROM rows WHERE rowid IN (SELECT staged_rowid FROM misfit_numbers)")
        return
    # Deleting would let the checkpoint at close compact the table and renumber its rowids (which
    # are the record numbers here): keep the numbers in a column instead.
    con.execute(
        f"CREATE TABLE rows_numbered AS SELECT {record_number_sql(con)} AS _source_row, * FROM rows "
        "WHERE rowid NOT IN (SELECT staged_rowid FROM misfit_numbers)"
    )
    con.execute("DROP TABLE rows")
    con.execute("ALTER TABLE rows_numbered RENAME TO rows")


MAX_SHIFT_CASES = 256


def _record_shifts(con) -> None:
    """Store where quarantined records interrupt the rows DuckDB loaded.

    Loaded row k (rowid k - 1) sits after j quarantined records when t_j = r_j - j < k (r_j the
    j-th quarantined record number), so its record number is k + max{j : t_j < k}.
    """
    con.execute(
        "CREATE TABLE source_row_shifts AS SELECT t, max(j) AS j FROM ("
        "  SELECT source_row - row_number() OVER (ORDER BY source_row) AS t,"
        "         row_number() OVER (ORDER BY source_row) AS j FROM quarantine) GROUP BY t ORDER BY t"
    )
    if con.execute("SELECT count(*) FROM source_row_shifts").fetchone()[0] > MAX_SHIFT_CASES:
        # Too many breaks for a CASE expression: number the rows once, with an ASOF join.
        con.execute(
            "CREATE TABLE rows_numbered AS SELECT (r.rowid + 1) + coalesce(s.j, 0) AS _source_row, r.* "
            "FROM rows r ASOF LEFT JOIN source_row_shifts s ON (r.rowid + 1) > s.t ORDER BY r.rowid"
        )
        con.execute("DROP TABLE rows")
        con.execute("ALTER TABLE rows_numbered RENAME TO rows")


def record_number_sql(con) -> str:
    """SQL for a staged row's record number in the file."""
    if "_source_row" in table_columns(con, "rows"):
        return "_source_row"
    shifts = con.execute("SELECT t, j FROM source_row_shifts ORDER BY t DESC").fetchall()
    ordinal = "(rowid + 1)"
    if not shifts:
        return ordinal
    cases = " ".join(f"WHEN {ordinal} > {int(t)} THEN {int(j)}" for t, j in shifts)
    return f"{ordinal} + CASE {cases} ELSE 0 END"
