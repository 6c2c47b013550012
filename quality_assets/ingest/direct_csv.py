"""The straight CSV load: a file DuckDB's reader can take is parsed into `raw."<dataset>"` in one
transaction under the warehouse lock, rejected records captured and numbered around.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import time
import uuid
import zlib
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from quality_assets.contract import Dataset
from quality_assets.ingest.audit import (
    QUARANTINE_LINE_CAP,
    LoadAudit,
    first_line_of,
    seconds_since,
    set_outcome,
)
from quality_assets.ingest.casting import (
    FLOAT_TYPES,
    INTEGER_TYPES,
    number_failure,
    strict_integer_sql,
)
from quality_assets.ingest.commit import evolve_columns, finish_publish, raw_table
from quality_assets.ingest.fields import field_check_needed, misfit_records, nul_condition
from quality_assets.ingest.footer import detect_footer
from quality_assets.ingest.numbering import number_rows
from quality_assets.ingest.quarantine import quarantine_rejects
from quality_assets.ingest.scan import (
    FileScan,
    binary_reason,
    check_unchanged,
    detect_format,
    is_blank,
    is_utf8,
    peek,
)
from quality_assets.ingest.schema import WHOLE_FILE, record_new_columns, undeclared
from quality_assets.ingest.sniff import (
    DUCKDB_ENCODINGS,
    Dialect,
    csv_encoding,
    csv_options,
    sniff_csv,
    sql_options,
    target_names,
)
from quality_assets.ingest.staged_csv import sniffed_integers
from quality_assets.published_rows import hold_published
from quality_assets.warehouse import Warehouse, insert_rows, quote_ident, quote_literal, transaction


class HandOver(Exception):
    """DuckDB's reader cannot load the file as it is: stage it with the record-by-record reader."""


@dataclass
class _DirectCsv:
    """A CSV file DuckDB's reader can load straight into raw, and how to read it."""

    source: Path
    dataset: Dataset
    audit: LoadAudit
    dialect: Dialect
    options: dict  # read_csv options, every column's type given (nothing left to sniff under the lock)
    targets: list[str]  # contract names of the file's columns, in file order
    column_types: dict[str, str]  # the types the rows get
    integers: dict[str, str]  # declared integer columns: read as text, cast strictly in the insert
    clock: float
    stat: os.stat_result  # the file before the load: compared after it
    float_columns: list[str] = field(default_factory=list)  # floating-point columns of the file
    floats: list[str] = field(default_factory=list)  # those checked in the insert: one held an infinity


def plan_direct_csv(warehouse: Warehouse, source: Path, dataset: Dataset, audit: LoadAudit,
                    stat: os.stat_result) -> _DirectCsv | None:
    """Prepare a straight load (no lock held), or None when the file must be staged: not CSV,
    empty or binary, an encoding DuckDB cannot read, or a file DuckDB's reader cannot describe."""
    clock = time.perf_counter()
    head, compression = peek(source)
    fmt = dataset.format if dataset.format != "auto" else detect_format(source, head)
    if fmt != "csv" or audit.bytes == 0 or is_blank(head):
        return None
    encoding = csv_encoding(dataset, head)
    if binary_reason(head, encoding) or b"\x00" in head:
        return None  # rejected, or NUL bytes in records: the staged path
    if encoding not in DUCKDB_ENCODINGS:
        return None
    audit.format, audit.compression, audit.encoding = fmt, compression, encoding
    duck_encoding = DUCKDB_ENCODINGS[encoding]
    try:
        if duck_encoding != "utf-8":
            audit.utf8_valid = is_utf8(source, compression)
        dialect = sniff_csv(source, dataset, audit, duck_encoding, compression)
    except (EOFError, gzip.BadGzipFile, zlib.error):
        return None  # a corrupt gzip stream: the staged path rejects the file
    if detect_footer(source, dataset, dialect, duck_encoding, compression, audit) is not None:
        return None  # the staged path reads the file without its footer
    options = csv_options(dataset, dialect, duck_encoding, compression)
    targets = target_names(dataset, dialect.names)
    declared = {c.name: c.type for c in dataset.columns if c.type}
    # DuckDB's integer cast rounds "1.5" to 2 and accepts "1_000": declared integer columns are
    # read as text and cast strictly in the insert; rows that fail go to quarantine.
    integers = {tgt: declared[tgt] for tgt in targets if declared.get(tgt) in INTEGER_TYPES}
    types = {src: "VARCHAR" if tgt in integers else declared[tgt]
             for src, tgt in zip(dialect.names, targets, strict=True) if tgt in declared}
    options["names"] = dialect.names
    if types:
        options["types"] = types
    # Types not yet known are inferred from every row, so a value's fate never depends on where
    # it sits in the file; the dataset's later files are read with the types kept.
    # Quoted empties count as no value when inferring: a quoted "" is no reason for a column to be text.
    sniffing = {**options, "allow_quoted_nulls": True}
    if undeclared(dataset, targets):
        sniffing["sample_size"] = WHOLE_FILE
    try:
        with warehouse.scratch() as con:
            described = con.execute(f"DESCRIBE SELECT * FROM {_reader_sql(source, sniffing)}").fetchall()
    except duckdb.Error:
        return None  # the staged path tries again and hands over to the record-by-record reader
    if len(described) != len(dialect.names):
        return None
    integers.update(sniffed_integers(described, targets, declared))
    options["types"] = {row[0]: "VARCHAR" if tgt in integers else row[1] for tgt, row in zip(targets, described, strict=True)}
    column_types = {tgt: integers.get(tgt, row[1]) for tgt, row in zip(targets, described, strict=True)}
    audit.phases["prepare_s"] = round(time.perf_counter() - clock, 3)
    floats = [tgt for tgt, kind in column_types.items() if kind in FLOAT_TYPES]
    return _DirectCsv(source, dataset, audit, dialect, options, targets, column_types, integers, clock, stat, floats)


class _Infinite(Exception):
    """A floating-point column read an infinity (1e400): load again, checking those columns."""


def load_csv_direct(warehouse: Warehouse, plan: _DirectCsv, scan: Future) -> LoadAudit:
    """_load_csv_direct; when a floating-point value read as infinity (rare), once more with the
    check in the insert, which sends such rows to quarantine (E_NUMERIC_RANGE)."""
    try:
        return _load_csv_direct(warehouse, plan, scan)
    except _Infinite:
        plan.floats = list(plan.float_columns)
        plan.audit.phases.clear()
        return _load_csv_direct(warehouse, plan, scan)


def _reader_sql(source: Path, options: dict) -> str:
    return f"read_csv({quote_literal(str(source))}, {sql_options(options)})"


def _load_csv_direct(warehouse: Warehouse, plan: _DirectCsv, scan: Future) -> LoadAudit:
    """Replace the partition with the file's rows, parsed by DuckDB straight into raw in one
    transaction under the warehouse lock. Raises HandOver (having rolled back) when the
    record-by-record reader must take over.

    DuckDB's parallel reader keeps the file's order, so a new row's rowid among the inserted rows
    is its ordinal among the loaded records; one UPDATE turns that into its record number, adding
    the rejected records before it. (Not `row_number() OVER ()` in the insert: DuckDB runs a
    streaming window on one thread, and the CSV parse with it. Nor numbering in a second
    transaction: the UPDATE then skips rewriting every row into the WAL, but moving the rows from a
    loading key to the partition's holds every new key string in memory until the commit, out of
    memory at 10M rows under 1 GB.) Rows whose integer column is not a whole number are inserted
    under a pending partition key (`<key>\\0pending ...`: no partition key holds a NUL) and
    deleted after the commit, because deleting rows in the transaction that appended them makes
    DuckDB rewrite every appended row at commit. The next load of the partition removes pending
    rows a crash may have left behind.
    """
    audit, dataset, dialect = plan.audit, plan.dataset, plan.dialect
    audit.parser = "duckdb"
    phases = audit.phases
    table = raw_table(dataset.name)
    key = audit.partition_key
    pending = f"{key}\0pending {uuid.uuid4().hex}"
    rejects = f"rejects_{uuid.uuid4().hex}"
    options = {**plan.options, "store_rejects": True, "rejects_table": rejects, "rejects_scan": f"{rejects}_scan"}
    header_lines = (1 if dialect.header else 0) + dialect.skip
    waiting = time.perf_counter()
    with warehouse.connect() as con:
        phases["lock_wait_s"] = seconds_since(waiting)
        with transaction(con):
            changes = evolve_columns(con, table, plan.column_types)
            hold_published(con, dataset.name, [key])
            con.execute(f"DELETE FROM {table} WHERE _partition_key = ? OR (_partition_key >= ? AND _partition_key < ?)",
                        [key, f"{key}\0", f"{key}\1"])
            step = time.perf_counter()
            insert, params = _direct_insert_sql(table, plan, options, pending)
            try:
                inserted = con.execute(insert, params).fetchone()[0]
            except (duckdb.ConstraintException, duckdb.OutOfMemoryException):
                raise  # the warehouse cannot take the rows: no other reader would help
            except duckdb.Error as exc:
                raise HandOver(first_line_of(exc)) from None
            phases["insert_s"] = seconds_since(step)
            if plan.float_columns and not plan.floats and _holds_infinity(con, table, [key, pending], plan):
                raise _Infinite
            if _holds_nul(con, table, [key, pending], plan, scan.result()):
                raise HandOver("NUL bytes in records")
            if field_check_needed(scan.result(), dialect) and misfit_records(
                    con, plan.source, plan.options, dialect, len(plan.targets)):
                raise HandOver("records with more or fewer fields than the header")
            step = time.perf_counter()
            rejected = con.execute(
                "SELECT line, list(error_type::VARCHAR ORDER BY column_idx), list(column_idx ORDER BY column_idx), "
                "list(column_name ORDER BY column_idx), any_value(csv_line), list(error_message ORDER BY column_idx), "
                f"max(line_byte_position) FROM temp.{quote_ident(rejects)} GROUP BY line ORDER BY line"
            ).fetchall()
            quarantine: list[tuple] = []
            if rejected:
                try:
                    quarantine = quarantine_rejects(plan.source, audit.compression, scan, rejected, dialect,
                                                     plan.targets, plan.column_types, header_lines)
                except duckdb.Error as exc:
                    raise HandOver(first_line_of(exc)) from None
            number_rows(con, table, [key, pending], [row[0] for row in quarantine])
            phases["number_s"] = seconds_since(step)
            step = time.perf_counter()
            con.execute("DELETE FROM qa.quarantine WHERE dataset = ? AND partition_key = ?", [audit.dataset, key])
            insert_rows(con, "qa.quarantine", [(audit.dataset, key, audit.run_id, *row) for row in quarantine])
            codes: dict[str, int] = {}
            for row in quarantine:
                codes[row[3]] = codes.get(row[3], 0) + 1
            checked = plan.integers or plan.floats
            pending_rows = checked and con.execute(
                f"SELECT count(*) FROM {table} WHERE _partition_key = ?", [pending]).fetchone()[0]
            # The quarantine query's CASE spans every checked column: build it only when a row waits.
            marked = _quarantine_marked_rows(con, table, plan, pending) if pending_rows else {}
            for marked_code, count in marked.items():
                codes[marked_code] = codes.get(marked_code, 0) + count
            not_whole = sum(marked.values())
            set_outcome(audit, inserted - not_whole, codes)
            audit.columns = list(plan.targets)
            keep = ", ".join(quote_ident(c) for c in audit.columns)
            preview = con.execute(
                f"SELECT {keep} FROM {table} WHERE _partition_key = ? AND _source_row <= ? ORDER BY _source_row LIMIT 5",
                [key, 5 + audit.rows_quarantined])
            names = [d[0] for d in preview.description]
            audit.preview = [dict(zip(names, row, strict=True)) for row in preview.fetchall()]
            phases["quarantine_s"] = seconds_since(step)
            step = time.perf_counter()
            audit.sha256 = scan.result().sha256
            phases["sha256_wait_s"] = seconds_since(step)
            check_unchanged(plan.source, plan.stat, scan.result())  # else rolled back: not recorded as loaded
            audit.finished = dt.datetime.now()
            audit.duration_s = round(time.perf_counter() - plan.clock, 3)
            record_new_columns(con, table, audit, plan.column_types, {c.name for c in dataset.columns if c.type})
            finish_publish(con, audit, changes)
            step = time.perf_counter()
        phases["commit_s"] = seconds_since(step)
        if not_whole:
            con.execute(f"DELETE FROM {table} WHERE _partition_key = ?", [pending])
    audit.column_types = dict(plan.column_types)
    return audit


def _holds_infinity(con, table: str, keys: list[str], plan: _DirectCsv) -> bool:
    """Whether a floating-point column just loaded holds an infinity: one columnar scan of those
    columns, cheaper than checking every value in the insert."""
    keyed = ", ".join("?" for _ in keys)
    condition = " OR ".join(f"isinf({quote_ident(c)})" for c in plan.float_columns)
    return bool(con.execute(f"SELECT 1 FROM {table} WHERE _partition_key IN ({keyed}) AND ({condition}) LIMIT 1",
                            keys).fetchall())


def _holds_nul(con, table: str, keys: list[str], plan: _DirectCsv, scan: FileScan) -> bool:
    """Whether a record holds a NUL byte: counted by the scan, or looked for in the rows just
    loaded when the scan could not read the text (a compressed file)."""
    if scan.line_breaks_known:
        return scan.nul_bytes > 0
    condition = nul_condition(plan.targets, plan.column_types)
    if condition is None:
        return False
    keyed = ", ".join("?" for _ in keys)
    return bool(con.execute(f"SELECT 1 FROM {table} WHERE _partition_key IN ({keyed}) AND ({condition}) LIMIT 1",
                            keys).fetchall())


def _direct_insert_sql(table: str, plan: _DirectCsv, options: dict, pending: str) -> tuple[str, list]:
    """INSERT of the file's rows, with no record numbers yet. A row whose integer column is not a
    whole number in range, or whose floating-point column is infinite, goes under the `pending`
    key, a JSON array of those columns' text in `_run_id` (for _quarantine_marked_rows)."""
    audit = plan.audit
    names = ", ".join(quote_ident(t) for t in plan.targets)
    if not plan.integers and not plan.floats:
        sql = (f"INSERT INTO {table} (_partition_key, _source_row, _run_id, {names}) "
               f"SELECT ?, NULL, ?, * FROM {_reader_sql(plan.source, options)}")
        return sql, [audit.partition_key, audit.run_id]
    inner, outer, texts, checks = [], [], [], []
    for i, (src, tgt) in enumerate(zip(plan.dialect.names, plan.targets, strict=True)):
        column = quote_ident(src)
        if tgt in plan.floats:
            inner.append(f"{column} AS c{i}")
            outer.append(f"c{i}")
            texts.append(f"CAST(c{i} AS VARCHAR)")
            checks.append(f"NOT coalesce(isinf(c{i}), false)")
            continue
        if tgt not in plan.integers:
            inner.append(f"{column} AS c{i}")
            outer.append(f"c{i}")
            continue
        # In a subquery so the regular expression runs once per value.
        inner.append(f"{column} AS t{i}, {strict_integer_sql(column, plan.integers[tgt])} AS c{i}")
        outer.append(f"c{i}")
        texts.append(f"t{i}")
        checks.append(f"(t{i} IS NULL OR c{i} IS NOT NULL)")
    whole = " AND ".join(checks)
    sql = (f"INSERT INTO {table} (_partition_key, _source_row, _run_id, {names}) "
           f"SELECT CASE WHEN {whole} THEN ? ELSE ? END, NULL, "
           f"CASE WHEN {whole} THEN ? ELSE CAST(json_array({', '.join(texts)}) AS VARCHAR) END, {', '.join(outer)} "
           f"FROM (SELECT {', '.join(inner)} FROM {_reader_sql(plan.source, options)})")
    return sql, [audit.partition_key, pending, audit.run_id]


def _checked_columns(plan: _DirectCsv) -> list[str]:
    """The columns whose text _direct_insert_sql keeps for a pending row, in file order."""
    return [t for t in plan.targets if t in plan.integers or t in plan.floats]


def _quarantine_marked_rows(con, table: str, plan: _DirectCsv, pending: str) -> dict[str, int]:
    """Quarantine the rows _direct_insert_sql put under `pending` (an integer column that is not
    a whole number in range, a floating-point one that is infinite); returns how many per code."""
    audit = plan.audit
    checked = _checked_columns(plan)
    texts = {name: f"json_extract_string(_run_id, '$[{i}]')" for i, name in enumerate(checked)}
    failing = []
    for name in checked:
        text = texts[name]
        if name in plan.floats:
            cond = f"coalesce(isinf(TRY_CAST({text} AS DOUBLE)), false)"
            failing.append((name, cond, number_failure(text, "DOUBLE")))
        else:
            kind = plan.integers[name]
            cond = f"NOT ({text} IS NULL OR {strict_integer_sql(text, kind)} IS NOT NULL)"
            failing.append((name, cond, number_failure(text, kind)))
    first = "CASE " + " ".join(f"WHEN {cond} THEN {quote_literal(name)}" for name, cond, _ in failing) + " END"
    value = "CASE " + " ".join(f"WHEN {cond} THEN {texts[name]}" for name, cond, _ in failing) + " END"
    code = "CASE " + " ".join(f"WHEN {cond} THEN {sql[0]}" for _, cond, sql in failing) + " END"
    message = "CASE " + " ".join(f"WHEN {cond} THEN {sql[1]}" for _, cond, sql in failing) + " END"
    # concat_ws, not a chain of ||: a chain nests one level per column (DuckDB's depth limit is 1,000).
    fields = "concat_ws(',', " + ", ".join(
        f"coalesce({texts[c]}, '')" if c in texts else f"coalesce(CAST({quote_ident(c)} AS VARCHAR), '')"
        for c in plan.targets
    ) + ")"
    moved = con.execute(
        f"INSERT INTO qa.quarantine SELECT ?, ?, ?, _source_row, NULL, column_name, code, message, "
        f"left(raw_value, 1000), left(raw_line, {QUARANTINE_LINE_CAP}), strlen(raw_line) FROM ("
        f"  SELECT _source_row, {first} AS column_name, {value} AS raw_value, {code} AS code, {message} AS message, "
        f"  {fields} AS raw_line FROM {table} WHERE _partition_key = ?) ORDER BY _source_row RETURNING error_code",
        [audit.dataset, audit.partition_key, audit.run_id, pending],
    ).fetchall()
    codes: dict[str, int] = {}
    for (moved_code,) in moved:
        codes[moved_code] = codes.get(moved_code, 0) + 1
    return codes
