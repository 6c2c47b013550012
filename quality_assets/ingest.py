"""Load one landed file into the warehouse: typed rows, quarantined rows, and an audit row.

A CSV file that DuckDB's reader can take is loaded straight into `raw."<dataset>"` in one
transaction under the warehouse lock (`load_file`): one parallel parse, no copy, rejected records
captured with `store_rejects`. Everything else takes two steps: `stage_file` parses the file into
a private staging database with no lock held (Parquet, JSON lines, transcoded encodings, and a
streaming Python parser for files DuckDB's reader gives up on, such as an unterminated quote
swallowing the rest of the file), then `publish_stage` copies the staged rows into
`raw."<dataset>"`, `qa.quarantine` and `qa.files` in one short transaction. Either way the
partition is replaced in one transaction and every data record ends up either loaded or
quarantined: rows_read = rows_loaded + rows_quarantined.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
import uuid
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from quality_assets.contract import Dataset
from quality_assets.warehouse import Warehouse, quote_ident, quote_literal

ERROR_CODES = {
    "E_COLUMN_COUNT": "the record has more or fewer fields than the header",
    "E_QUOTE": "an unterminated or misplaced quote",
    "E_ENCODING": "bytes that are not valid in the declared encoding",
    "E_LINE_SIZE": "a record longer than max_line_bytes",
    "E_NUMERIC_FORMAT": "a value that is not a number in a numeric column",
    "E_DATE_FORMAT": "a value that is not a date or timestamp in a temporal column",
    "E_BOOLEAN_FORMAT": "a value that is not true/false in a boolean column",
    "E_TYPE": "a value that cannot be cast to its column's type",
    "E_JSON": "a line that is not a JSON object",
    "E_PARSE": "a record the CSV reader could not parse",
}
FILE_ERRORS = {
    "E_EMPTY_FILE": "the file is empty",
    "E_BINARY": "the file is binary, not text in a supported format",
    "E_UNREADABLE": "the file could not be read in its format",
}

META_COLUMNS = ("_partition_key", "_source_row", "_run_id")
CSV_DELIMITERS = (",", "\t", "|", ";")
SNIFF_BYTES = 256 * 1024
BATCH_ROWS = 50_000
QUARANTINE_LINE_CAP = 1024 * 1024
DUCKDB_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "latin-1": "latin-1", "latin1": "latin-1",
                    "iso-8859-1": "latin-1", "iso8859-1": "latin-1"}
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


# ---------------------------------------------------------------------------------------------
# Entry points


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
    identical content."""
    source = Path(source)
    previous = None
    if not force:
        with warehouse.connect() as con:
            previous = last_load(con, dataset.name, partition_key)
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
        # One read of the file, beside DuckDB's parse: its sha256 and where its line breaks stop
        # being regular (see _LineBreaks).
        scan = pool.submit(scan_file, source, digest)
        audit = _new_audit(source, stat, dataset, partition_key, run_id)
        plan = _plan_direct_csv(warehouse, source, dataset, audit)
        hand_over = None
        if plan is not None:
            try:
                return _load_csv_direct(warehouse, plan, scan)
            except _HandOver as exc:
                hand_over = str(exc)
        workdir = Path(tempfile.mkdtemp(prefix="stage-", dir=_staging_root(warehouse)))
        try:
            staged = _stage(warehouse, source, dataset, partition_key, run_id, workdir, scan, hand_over)
            with warehouse.connect() as con:
                return publish_stage(con, staged)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _staging_root(warehouse: Warehouse) -> Path:
    root = warehouse.path.parent / ".staging"
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
        "SELECT * FROM qa.files WHERE dataset = ? AND partition_key = ? AND status <> 'unchanged' "
        "ORDER BY finished DESC LIMIT 1",
        [dataset, partition_key],
    )
    row = rel.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in rel.description], row, strict=True))


def sha256_file(path: Path, chunk: int = 8 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FileScan:
    sha256: str
    irregular_from: int | None  # first byte offset with irregular line breaks (None: none)
    line_breaks_known: bool  # False for compressed files: their text was not scanned


def scan_file(path: Path, sha256: str | None = None, chunk: int = 8 * 1024 * 1024) -> FileScan:
    """The file's sha256 (unless given) and, for uncompressed files, where its line breaks stop
    being regular, from one read."""
    digest = hashlib.sha256()
    breaks = _LineBreaks()
    with open(path, "rb") as handle:
        block = handle.read(chunk)
        compressed = block[:2] == b"\x1f\x8b"
        while block:
            if sha256 is None:
                digest.update(block)
            if not compressed:
                breaks.feed(block)
            block = handle.read(chunk)
    breaks.feed(b"", final=True)
    return FileScan(sha256 or digest.hexdigest(), breaks.first if not compressed else None, not compressed)


class _LineBreaks:
    """Finds the first byte offset where a text's line breaks stop being regular: an empty line,
    or a line break of another kind (LF, CRLF, CR) than the first one. Searches in C (find,
    count); a regular expression only inside a CRLF block whose counts disagree."""

    _STRAY_IN_CRLF = re.compile(rb"(?<!\r)\n|\r(?!\n)")

    def __init__(self) -> None:
        self.kind: bytes | None = None
        self.offset = 0  # file offset of the next byte fed, minus the held bytes
        self.held = b""
        self.first: int | None = None

    def feed(self, block: bytes, final: bool = False) -> None:
        if self.first is not None:
            return
        chunk = self.held + block
        start = self.offset
        if final:
            self.held = b""
        else:
            # A trailing run of CR/LF may continue in the next block: judge it with that.
            body = chunk.rstrip(b"\r\n")
            chunk, self.held = body, chunk[len(body):]
        self.offset = start + len(chunk)
        found = self._find(chunk)
        if found is not None:
            self.first = start + found

    def _find(self, chunk: bytes) -> int | None:
        has_cr = b"\r" in chunk
        hits = [chunk.find(b"\n\n")]
        if has_cr:
            hits += [chunk.find(b"\r\r"), chunk.find(b"\n\r\n")]
        if self.kind is None:
            lf, cr = chunk.find(b"\n"), chunk.find(b"\r")
            if lf >= 0 or cr >= 0:
                i = min(p for p in (lf, cr) if p >= 0)
                self.kind = b"\r\n" if chunk[i:i + 2] == b"\r\n" else chunk[i:i + 1]
        if self.kind == b"\n" and has_cr:
            hits.append(chunk.find(b"\r"))
        elif self.kind == b"\r":
            hits.append(chunk.find(b"\n"))
        elif self.kind == b"\r\n":
            crlf = chunk.count(b"\r\n")
            if not (crlf == chunk.count(b"\n") == chunk.count(b"\r")):
                stray = self._STRAY_IN_CRLF.search(chunk)
                hits.append(stray.start() if stray else -1)
        hits = [h for h in hits if h >= 0]
        return min(hits) if hits else None


# ---------------------------------------------------------------------------------------------
# Straight load of a CSV file


class _HandOver(Exception):
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


def _plan_direct_csv(warehouse: Warehouse, source: Path, dataset: Dataset, audit: LoadAudit) -> _DirectCsv | None:
    """Prepare a straight load (no lock held), or None when the file must be staged: not CSV,
    empty or binary, an encoding DuckDB cannot read, or a file DuckDB's reader cannot describe."""
    clock = time.perf_counter()
    head, compression = _peek(source)
    fmt = dataset.format if dataset.format != "auto" else _detect_format(source, head)
    if fmt != "csv" or audit.bytes == 0 or _is_blank(head) or b"\x00" in head:
        return None
    encoding = _csv_encoding(dataset, head)
    if encoding not in DUCKDB_ENCODINGS:
        return None
    audit.format, audit.compression, audit.encoding = fmt, compression, encoding
    duck_encoding = DUCKDB_ENCODINGS[encoding]
    try:
        if duck_encoding != "utf-8":
            audit.utf8_valid = _is_utf8(source, compression)
        dialect = _sniff_csv(source, dataset, audit, duck_encoding, compression)
    except (EOFError, gzip.BadGzipFile, zlib.error):
        return None  # a corrupt gzip stream: the staged path rejects the file
    options = _csv_options(dataset, dialect, duck_encoding, compression)
    targets = _target_names(dataset, dialect.names)
    declared = {c.name: c.type for c in dataset.columns if c.type}
    # DuckDB's integer cast rounds "1.5" to 2 and accepts "1_000": declared integer columns are
    # read as text and cast strictly in the insert; rows that fail go to quarantine.
    integers = {tgt: declared[tgt] for tgt in targets if declared.get(tgt) in INTEGER_TYPES}
    types = {src: "VARCHAR" if tgt in integers else declared[tgt]
             for src, tgt in zip(dialect.names, targets, strict=True) if tgt in declared}
    options["names"] = dialect.names
    if types:
        options["types"] = types
    try:
        with warehouse.scratch() as con:
            described = con.execute(f"DESCRIBE SELECT * FROM {_reader_sql(source, options)}").fetchall()
    except duckdb.Error:
        return None  # the staged path tries again and hands over to the record-by-record reader
    if len(described) != len(dialect.names):
        return None
    integers.update(_sniffed_integers(described, targets, declared))
    options["types"] = {row[0]: "VARCHAR" if tgt in integers else row[1] for tgt, row in zip(targets, described, strict=True)}
    column_types = {tgt: integers.get(tgt, row[1]) for tgt, row in zip(targets, described, strict=True)}
    audit.phases["prepare_s"] = round(time.perf_counter() - clock, 3)
    return _DirectCsv(source, dataset, audit, dialect, options, targets, column_types, integers, clock)


def _reader_sql(source: Path, options: dict) -> str:
    return f"read_csv({quote_literal(str(source))}, {_sql_options(options)})"


def _load_csv_direct(warehouse: Warehouse, plan: _DirectCsv, scan: Future) -> LoadAudit:
    """Replace the partition with the file's rows, parsed by DuckDB straight into raw in one
    transaction under the warehouse lock. Raises _HandOver (having rolled back) when the
    record-by-record reader must take over.

    DuckDB's parallel reader keeps the file's order, so a new row's rowid among the inserted rows
    is its ordinal among the loaded records; one UPDATE turns that into its record number, adding
    the rejected records before it. Rows whose integer column is not a whole number are inserted
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
    header_lines = (1 if dialect.header else 0) + dataset.csv.skip_rows
    waiting = time.perf_counter()
    with warehouse.connect() as con:
        phases["lock_wait_s"] = _since(waiting)
        con.execute("BEGIN TRANSACTION")
        try:
            changes = _evolve_columns(con, table, plan.column_types)
            con.execute(f"DELETE FROM {table} WHERE _partition_key = ? OR (_partition_key >= ? AND _partition_key < ?)",
                        [key, f"{key}\0", f"{key}\1"])
            step = time.perf_counter()
            insert, params = _direct_insert_sql(table, plan, options, pending)
            try:
                inserted = con.execute(insert, params).fetchone()[0]
            except (duckdb.ConstraintException, duckdb.OutOfMemoryException):
                raise  # the warehouse cannot take the rows: no other reader would help
            except duckdb.Error as exc:
                raise _HandOver(_first_line(exc)) from None
            phases["insert_s"] = _since(step)
            step = time.perf_counter()
            rejected = con.execute(
                "SELECT line, list(error_type::VARCHAR ORDER BY column_idx), list(column_idx ORDER BY column_idx), "
                "list(column_name ORDER BY column_idx), any_value(csv_line), list(error_message ORDER BY column_idx), "
                f"max(line_byte_position) FROM temp.{quote_ident(rejects)} GROUP BY line ORDER BY line"
            ).fetchall()
            quarantine: list[tuple] = []
            if rejected:
                try:
                    quarantine = _quarantine_rejects(plan.source, audit.compression, scan, rejected, dialect,
                                                     plan.targets, plan.column_types, header_lines)
                except duckdb.Error as exc:
                    raise _HandOver(_first_line(exc)) from None
            _number_rows(con, table, [key, pending], [row[0] for row in quarantine])
            phases["number_s"] = _since(step)
            step = time.perf_counter()
            con.execute("DELETE FROM qa.quarantine WHERE dataset = ? AND partition_key = ?", [audit.dataset, key])
            if quarantine:
                con.executemany(
                    "INSERT INTO qa.quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(audit.dataset, key, audit.run_id, *row) for row in quarantine],
                )
            codes: dict[str, int] = {}
            for row in quarantine:
                codes[row[3]] = codes.get(row[3], 0) + 1
            not_whole = _quarantine_marked_rows(con, table, plan, pending) if plan.integers else 0
            if not_whole:
                codes["E_NUMERIC_FORMAT"] = codes.get("E_NUMERIC_FORMAT", 0) + not_whole
            _set_outcome(audit, inserted - not_whole, codes)
            audit.columns = list(plan.targets)
            keep = ", ".join(quote_ident(c) for c in audit.columns)
            preview = con.execute(
                f"SELECT {keep} FROM {table} WHERE _partition_key = ? AND _source_row <= ? ORDER BY _source_row LIMIT 5",
                [key, 5 + audit.rows_quarantined])
            names = [d[0] for d in preview.description]
            audit.preview = [dict(zip(names, row, strict=True)) for row in preview.fetchall()]
            phases["quarantine_s"] = _since(step)
            step = time.perf_counter()
            audit.sha256 = scan.result().sha256
            phases["sha256_wait_s"] = _since(step)
            audit.finished = dt.datetime.now()
            audit.duration_s = round(time.perf_counter() - plan.clock, 3)
            _finish_publish(con, audit, changes)
            step = time.perf_counter()
            con.execute("COMMIT")
            phases["commit_s"] = _since(step)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if not_whole:
            con.execute(f"DELETE FROM {table} WHERE _partition_key = ?", [pending])
    audit.column_types = dict(plan.column_types)
    return audit


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def _direct_insert_sql(table: str, plan: _DirectCsv, options: dict, pending: str) -> tuple[str, list]:
    """INSERT of the file's rows, with no record numbers yet. A row whose declared integer column
    is not a whole number goes under the `pending` key, a JSON array of its integer columns' text
    in `_run_id` (for _quarantine_marked_rows)."""
    audit = plan.audit
    names = ", ".join(quote_ident(t) for t in plan.targets)
    if not plan.integers:
        sql = (f"INSERT INTO {table} (_partition_key, _source_row, _run_id, {names}) "
               f"SELECT ?, NULL, ?, * FROM {_reader_sql(plan.source, options)}")
        return sql, [audit.partition_key, audit.run_id]
    inner, outer, texts, checks = [], [], [], []
    for i, (src, tgt) in enumerate(zip(plan.dialect.names, plan.targets, strict=True)):
        column = quote_ident(src)
        if tgt not in plan.integers:
            inner.append(f"{column} AS c{i}")
            outer.append(f"c{i}")
            continue
        # In a subquery so the regular expression runs once per value.
        inner.append(f"{column} AS t{i}, TRY_CAST(CASE WHEN regexp_full_match({column}, "
                     f"{quote_literal(STRICT_INTEGER)}) THEN {column} END AS {plan.integers[tgt]}) AS c{i}")
        outer.append(f"c{i}")
        texts.append(f"t{i}")
        checks.append(f"(t{i} IS NULL OR c{i} IS NOT NULL)")
    whole = " AND ".join(checks)
    sql = (f"INSERT INTO {table} (_partition_key, _source_row, _run_id, {names}) "
           f"SELECT CASE WHEN {whole} THEN ? ELSE ? END, NULL, "
           f"CASE WHEN {whole} THEN ? ELSE CAST(json_array({', '.join(texts)}) AS VARCHAR) END, {', '.join(outer)} "
           f"FROM (SELECT {', '.join(inner)} FROM {_reader_sql(plan.source, options)})")
    return sql, [audit.partition_key, pending, audit.run_id]


MAX_SHIFT_BRANCHES = 1024


def _number_rows(con, table: str, keys: list[str], quarantined: list[int]) -> None:
    """Set `_source_row` of the rows just inserted under `keys`: ordinal + rejected records before it.

    Loaded row k sits after j rejected records when t_j = r_j - j < k (r_j the j-th rejected
    record number), so its record number is k + max{j : t_j < k}.
    """
    where = f"_partition_key IN ({', '.join('?' for _ in keys)})"
    base = con.execute(f"SELECT min(rowid) FROM {table} WHERE {where}", keys).fetchone()[0]
    if base is None:
        return
    ordinal = f"(rowid - {int(base)} + 1)"
    shifts: dict[int, int] = {}
    for j, record in enumerate(sorted(quarantined), start=1):
        shifts[record - j] = j
    steps = sorted(shifts.items())
    if len(steps) <= MAX_SHIFT_BRANCHES:
        con.execute(
            f"UPDATE {table} SET _source_row = {ordinal} + {_shift_tree(ordinal, steps, 0, len(steps), 0)} "
            f"WHERE {where} AND rowid >= {int(base)}",
            keys,
        )
        return
    shift_table = f"shifts_{uuid.uuid4().hex}"
    con.execute(f"CREATE TEMP TABLE {shift_table} (t BIGINT, j BIGINT)")
    con.register("shift_steps", pa.table({"t": [t for t, _ in steps], "j": [j for _, j in steps]}))
    try:
        con.execute(f"INSERT INTO {shift_table} SELECT t, j FROM shift_steps")
    finally:
        con.unregister("shift_steps")
    con.execute(
        f"UPDATE {table} SET _source_row = numbered.record FROM ("
        f"  SELECT n.row_id, n.k + coalesce(s.j, 0) AS record FROM ("
        f"    SELECT rowid AS row_id, {ordinal} AS k FROM {table} WHERE {where} AND rowid >= {int(base)}"
        f"  ) n ASOF LEFT JOIN {shift_table} s ON n.k > s.t"
        f") numbered WHERE {table}.rowid = numbered.row_id",
        keys,
    )
    con.execute(f"DROP TABLE {shift_table}")


def _shift_tree(ordinal: str, steps: list[tuple[int, int]], lo: int, hi: int, below: int) -> str:
    """SQL for max{j : t_j < ordinal} over steps[lo:hi] (sorted by t), `below` when none: a
    balanced CASE tree, so each row takes log2(len(steps)) comparisons."""
    if lo >= hi:
        return str(int(below))
    mid = (lo + hi) // 2
    t, j = steps[mid]
    return (f"CASE WHEN {ordinal} > {int(t)} THEN {_shift_tree(ordinal, steps, mid + 1, hi, j)} "
            f"ELSE {_shift_tree(ordinal, steps, lo, mid, below)} END")


def _quarantine_marked_rows(con, table: str, plan: _DirectCsv, pending: str) -> int:
    """Quarantine the rows _direct_insert_sql put under `pending` (an integer column that is not
    a whole number); returns how many."""
    audit = plan.audit
    texts = {name: f"json_extract_string(_run_id, '$[{i}]')" for i, name in enumerate(plan.integers)}
    failing = [
        (name, f"NOT ({text} IS NULL OR TRY_CAST(CASE WHEN regexp_full_match({text}, {quote_literal(STRICT_INTEGER)}) "
               f"THEN {text} END AS {plan.integers[name]}) IS NOT NULL)")
        for name, text in texts.items()
    ]
    first = "CASE " + " ".join(f"WHEN {cond} THEN {quote_literal(name)}" for name, cond in failing) + " END"
    value = "CASE " + " ".join(f"WHEN {cond} THEN {texts[name]}" for name, cond in failing) + " END"
    kind = "CASE " + " ".join(f"WHEN {cond} THEN {quote_literal(plan.integers[name])}" for name, cond in failing) + " END"
    fields = " || ',' || ".join(
        f"coalesce({texts[c]}, '')" if c in texts else f"coalesce(CAST({quote_ident(c)} AS VARCHAR), '')"
        for c in plan.targets
    )
    moved = con.execute(
        f"INSERT INTO qa.quarantine SELECT ?, ?, ?, _source_row, NULL, column_name, 'E_NUMERIC_FORMAT', "
        f"'cannot cast ' || left(raw_value, 200) || ' to ' || type || ' (not a whole number)', "
        f"left(raw_value, 1000), left(raw_line, {QUARANTINE_LINE_CAP}), strlen(raw_line) FROM ("
        f"  SELECT _source_row, {first} AS column_name, {value} AS raw_value, {kind} AS type, {fields} AS raw_line "
        f"  FROM {table} WHERE _partition_key = ?) ORDER BY _source_row",
        [audit.dataset, audit.partition_key, audit.run_id, pending],
    ).fetchone()[0]
    return moved


# ---------------------------------------------------------------------------------------------
# Staging


def stage_file(
    warehouse: Warehouse,
    source: Path,
    dataset: Dataset,
    partition_key: str,
    run_id: str,
    workdir: Path,
) -> Staged:
    """Parse `source` into `workdir/stage.duckdb` (tables `rows`, `quarantine`)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        scan = pool.submit(scan_file, source)
        return _stage(warehouse, source, dataset, partition_key, run_id, workdir, scan)


def _new_audit(source: Path, stat: os.stat_result, dataset: Dataset, partition_key: str, run_id: str) -> LoadAudit:
    return LoadAudit(
        dataset=dataset.name, partition_key=partition_key, run_id=run_id,
        source_path=str(source), bytes=stat.st_size,
        mtime=dt.datetime.fromtimestamp(stat.st_mtime_ns / 1e9, tz=dt.timezone.utc).replace(tzinfo=None),
        started=dt.datetime.now(), contract_fingerprint=dataset.fingerprint(),
    )


def _stage(warehouse: Warehouse, source: Path, dataset: Dataset, partition_key: str, run_id: str,
           workdir: Path, scan: Future, hand_over: str | None = None) -> Staged:
    """stage_file, given the file's scan (running) and why DuckDB's reader already gave up on it."""
    clock = time.perf_counter()
    stat = source.stat()
    audit = _new_audit(source, stat, dataset, partition_key, run_id)
    stage_path = workdir / "stage.duckdb"
    con = warehouse.scratch(stage_path)
    try:
        _create_quarantine(con)
        column_types = _stage_into(con, source, dataset, audit, workdir, scan, hand_over)
        _finish_counts(con, audit)
        source_row_sql = _source_row_sql(con)
        stored = {name: kind for name, kind in _table_types(con, "rows").items() if column_types.get(name, kind) != kind}
    finally:
        con.close()
    audit.sha256 = scan.result().sha256
    audit.finished = dt.datetime.now()
    audit.duration_s = round(time.perf_counter() - clock, 3)
    declared = {c.name for c in dataset.columns if c.type}
    return Staged(stage_path, audit, column_types, declared, workdir, source_row_sql, stored)


def _create_quarantine(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE quarantine (source_row BIGINT, line BIGINT, column_name VARCHAR, "
        "error_code VARCHAR, message VARCHAR, raw_value VARCHAR, raw_line VARCHAR, raw_line_bytes BIGINT)"
    )


def _stage_into(con, source: Path, dataset: Dataset, audit: LoadAudit, workdir: Path, scan: Future,
                hand_over: str | None) -> dict[str, str]:
    """Fill `rows` and `quarantine`; returns the staged column types. Sets format fields on audit."""
    head, compression = _peek(source)
    audit.compression = compression
    fmt = dataset.format if dataset.format != "auto" else _detect_format(source, head)
    audit.format = fmt
    if audit.bytes == 0 or _is_blank(head):
        return _empty(con, audit, "E_EMPTY_FILE", FILE_ERRORS["E_EMPTY_FILE"], "empty")
    if fmt == "parquet":
        return _stage_parquet(con, source, dataset, audit)
    encoding = dataset.csv.encoding.lower()
    if b"\x00" in head and not encoding.startswith("utf-16") and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _empty(con, audit, "E_BINARY", FILE_ERRORS["E_BINARY"] + " (NUL bytes in the first block)", "rejected")
    try:
        if fmt == "json":
            return _stage_json(con, source, dataset, audit)
        return _stage_csv(con, source, dataset, audit, head, workdir, scan, hand_over)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        if audit.compression != "gzip":
            raise
        # A corrupt or truncated gzip stream (a file still being written, say): reject it whole.
        _reset_stage(con)
        return _empty(con, audit, "E_UNREADABLE", f"not a readable gzip file: {exc}", "rejected")


def _is_blank(head: bytes) -> bool:
    """Nothing but a byte-order mark and whitespace."""
    for bom in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        if head.startswith(bom):
            head = head[len(bom):]
            if bom != codecs.BOM_UTF8:
                head = head.replace(b"\x00", b"")
            break
    return not head.strip()


def _reset_stage(con) -> None:
    """Drop whatever a failed staging attempt left behind, keeping the empty quarantine."""
    for name, kind in con.execute(
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_name <> 'quarantine'"
    ).fetchall():
        con.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} IF EXISTS {quote_ident(name)}")
    con.execute("DELETE FROM quarantine")


def _empty(con, audit: LoadAudit, code: str, message: str, status: str) -> dict[str, str]:
    con.execute("CREATE TABLE rows (_source_row BIGINT)")
    audit.status = status
    audit.message = message
    audit.error_codes = {code: 1}
    audit.parser = "none"
    return {}


def _peek(source: Path) -> tuple[bytes, str | None]:
    with open(source, "rb") as handle:
        magic = handle.read(4)
    if magic[:2] == b"\x1f\x8b":
        try:
            with gzip.open(source, "rb") as handle:
                return handle.read(SNIFF_BYTES), "gzip"
        except (OSError, EOFError):
            return magic, "gzip"
    with open(source, "rb") as handle:
        return handle.read(SNIFF_BYTES), None


def _detect_format(source: Path, head: bytes) -> str:
    if head[:4] == b"PAR1":
        return "parquet"
    name = source.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "json"
    if head.lstrip()[:1] == b"{":
        return "json"
    return "csv"


def _finish_counts(con, audit: LoadAudit) -> None:
    loaded = con.execute("SELECT count(*) FROM rows").fetchone()[0]
    codes = con.execute("SELECT error_code, count(*) FROM quarantine GROUP BY 1").fetchall()
    _set_outcome(audit, loaded, dict(codes))
    audit.columns = [c for c in _table_columns(con, "rows") if c != "_source_row"]
    if audit.columns:
        keep = ", ".join(quote_ident(c) for c in audit.columns)
        preview = con.execute(f"SELECT {keep} FROM rows ORDER BY rowid LIMIT 5")
        names = [d[0] for d in preview.description]
        audit.preview = [dict(zip(names, row, strict=True)) for row in preview.fetchall()]


def _set_outcome(audit: LoadAudit, loaded: int, quarantined_by_code: dict[str, int]) -> None:
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


def _table_columns(con, table: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]


def _table_types(con, table: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE {table}").fetchall()}


# ---------------------------------------------------------------------------------------------
# CSV


@dataclass
class Dialect:
    delimiter: str
    quote: str
    escape: str
    header: bool
    names: list[str]  # source names (header values, or column1..N)
    date_format: str = "%Y-%m-%d"


def sniff_dialect(sample: str, dataset: Dataset) -> Dialect:
    """Pick delimiter and header from a text sample; contract options win."""
    opts = dataset.csv
    quote = opts.quote or '"'
    lines = sample.splitlines(keepends=True)
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample cut a record short
    text = "".join(lines[opts.skip_rows:])
    delimiter = opts.delimiter or _best_delimiter(text, quote)
    records = _sample_records(text, delimiter, quote, limit=200)
    first = records[0] if records else []
    header = opts.header if opts.header is not None else _looks_like_header(records, dataset)
    if header:
        names = [name.strip() or f"column{i}" for i, name in enumerate(first, start=1)]
    else:
        width = max((len(r) for r in records), default=0)
        declared = [c.name for c in dataset.columns]
        names = [declared[i] if i < len(declared) else f"column{i + 1}" for i in range(width)]
    names = _dedupe(names)
    body = records[1:] if header else records
    return Dialect(delimiter, quote, opts.escape or quote, header, names, _vote_date_format(body, names, dataset))


DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y", "%Y%m%d")


def _vote_date_format(records: list[list[str]], names: list[str], dataset: Dataset) -> str:
    """The date format most sample values of the declared DATE columns follow (ISO if none).

    One format is chosen per file by majority, so a single malformed value cannot switch the
    whole file to its format (and then reject every well-formed row).
    """
    aliases = dataset.alias_map()
    date_columns = [
        i for i, name in enumerate(names)
        if (col := dataset.column(aliases.get(name.lower(), name))) is not None and col.type == "DATE"
    ]
    votes = dict.fromkeys(DATE_FORMATS, 0)
    for record in records:
        for i in date_columns:
            value = record[i].strip() if i < len(record) else ""
            for fmt in DATE_FORMATS:
                try:
                    dt.datetime.strptime(value, fmt)
                except ValueError:
                    continue
                votes[fmt] += 1
                break
    return max(DATE_FORMATS, key=lambda f: (votes[f], f == "%Y-%m-%d"))


def _dedupe(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for name in names:
        key = name.lower()
        if key in seen:
            seen[key] += 1
            name = f"{name}_{seen[key]}"
        else:
            seen[key] = 0
        result.append(name)
    return result


def _sample_records(text: str, delimiter: str, quote: str, limit: int) -> list[list[str]]:
    records = []
    try:
        for record in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quote):
            if record:
                records.append(record)
            if len(records) >= limit:
                break
    except csv.Error:
        pass
    return records


def _best_delimiter(text: str, quote: str) -> str:
    best, best_score = ",", (-1.0, 0)
    for delimiter in CSV_DELIMITERS:
        records = _sample_records(text, delimiter, quote, limit=100)
        widths = [len(r) for r in records]
        if not widths:
            continue
        modal = max(set(widths), key=widths.count)
        if modal < 2:
            continue
        score = (widths.count(modal) / len(widths), modal)
        if score > best_score:
            best, best_score = delimiter, score
    return best


_NUMBER = re.compile(r"^\s*[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?\s*$")
_DATE = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")


def _kind(value: str) -> str:
    if value.strip() == "":
        return "empty"
    if _NUMBER.match(value):
        return "number"
    if _DATE.match(value):
        return "date"
    return "text"


def _looks_like_header(records: list[list[str]], dataset: Dataset) -> bool:
    if not records:
        return True
    first, body = records[0], records[1:]
    known = dataset.alias_map()
    if known and sum(1 for v in first if v.strip().lower() in known) >= max(1, len(first) // 2):
        return True
    if any(_kind(v) in ("number", "date") for v in first):
        return False
    if not body:
        return True
    for i in range(len(first)):
        kinds = [_kind(r[i]) for r in body if i < len(r)]
        typed = [k for k in kinds if k in ("number", "date")]
        if kinds and len(typed) >= 0.8 * len([k for k in kinds if k != "empty"] or [1]):
            return True  # a typed column under a text first row
    # All text: a header's values are distinct and do not recur in their column.
    if len(set(first)) != len(first):
        return False
    return not any(first[i] == r[i] for r in body for i in range(min(len(first), len(r))))


def _read_text_sample(source: Path, compression: str | None, encoding: str) -> str:
    opener = gzip.open if compression == "gzip" else open
    with opener(source, "rb") as handle:
        raw = handle.read(SNIFF_BYTES)
    return raw.decode(encoding, errors="replace").lstrip("\ufeff")


def _csv_encoding(dataset: Dataset, head: bytes) -> str:
    encoding = dataset.csv.encoding.lower()
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and encoding == "utf-8":
        encoding = "utf-16"
    return encoding


def _sniff_csv(source: Path, dataset: Dataset, audit: LoadAudit, duck_encoding: str, compression: str | None) -> Dialect:
    sample = _read_text_sample(source, compression, "utf-8" if duck_encoding == "utf-8" else "latin-1")
    dialect = sniff_dialect(sample, dataset)
    audit.delimiter, audit.quote, audit.header = dialect.delimiter, dialect.quote, dialect.header
    return dialect


def _stage_csv(con, source: Path, dataset: Dataset, audit: LoadAudit, head: bytes, workdir: Path,
               scan: Future, hand_over: str | None) -> dict[str, str]:
    encoding = _csv_encoding(dataset, head)
    audit.encoding = encoding
    transcoded = encoding not in DUCKDB_ENCODINGS
    if transcoded:
        # DuckDB reads only UTF-8 and Latin-1 without downloading an extension: transcode first.
        source = _transcode(source, audit.compression, encoding, workdir)
        audit.utf8_valid = False
        duck_encoding = "utf-8"
        compression = None
    else:
        duck_encoding = DUCKDB_ENCODINGS[encoding]
        compression = audit.compression
        if duck_encoding != "utf-8":
            audit.utf8_valid = _is_utf8(source, compression)
    dialect = _sniff_csv(source, dataset, audit, duck_encoding, compression)
    if hand_over is None:
        try:
            audit.parser = "duckdb"
            line_breaks = None if transcoded else scan
            return _stage_csv_duckdb(con, source, dataset, dialect, duck_encoding, compression, line_breaks)
        except duckdb.Error as exc:
            # DuckDB gave up on the file as a whole; parse it record by record instead.
            _reset_stage(con)
            hand_over = _first_line(exc)
    audit.parser = "python"
    audit.message = f"parsed by the record-by-record reader ({hand_over})"
    return _stage_csv_python(con, source, dataset, dialect, duck_encoding, compression)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200]


def _transcode(source: Path, compression: str | None, encoding: str, workdir: Path) -> Path:
    target = workdir / "transcoded.csv"
    opener = gzip.open if compression == "gzip" else open
    with opener(source, "rb") as raw, open(target, "w", encoding="utf-8", newline="") as out:
        reader = codecs.getreader(encoding)(raw, errors="replace")
        while chunk := reader.read(4 * 1024 * 1024):
            out.write(chunk.lstrip("\ufeff") if out.tell() == 0 else chunk)
    return target


def _is_utf8(source: Path, compression: str | None) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    opener = gzip.open if compression == "gzip" else open
    try:
        with opener(source, "rb") as handle:
            while block := handle.read(8 * 1024 * 1024):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _csv_options(dataset: Dataset, dialect: Dialect, encoding: str, compression: str | None) -> dict:
    opts = dataset.csv
    options = {
        "delim": dialect.delimiter,
        "quote": dialect.quote,
        "escape": dialect.escape,
        "header": dialect.header,
        "skip": opts.skip_rows,
        "encoding": encoding,
        "max_line_size": max(opts.max_line_bytes, 1024),
        "nullstr": list(opts.null_values),
        "normalize_names": False,
        "compression": "gzip" if compression == "gzip" else "none",
    }
    if opts.comment:
        options["comment"] = opts.comment
    options["dateformat"] = opts.date_format or dialect.date_format
    if opts.timestamp_format:
        options["timestampformat"] = opts.timestamp_format
    return options


def _sql_options(options: dict) -> str:
    parts = []
    for key, value in options.items():
        if isinstance(value, bool):
            parts.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int):
            parts.append(f"{key} = {value}")
        elif isinstance(value, list):
            parts.append(f"{key} = [{', '.join(quote_literal(v) for v in value)}]")
        elif isinstance(value, dict):
            items = ", ".join(f"{quote_literal(k)}: {quote_literal(v)}" for k, v in value.items())
            parts.append(f"{key} = {{{items}}}")
        else:
            parts.append(f"{key} = {quote_literal(value)}")
    return ", ".join(parts)


def _target_names(dataset: Dataset, source_names: list[str]) -> list[str]:
    """Contract names for source headers (aliases applied), avoiding the meta columns."""
    aliases = dataset.alias_map()
    names = []
    for name in source_names:
        target = aliases.get(name.lower(), name)
        if target in META_COLUMNS:
            target = f"{target}_source"
        names.append(target)
    return _dedupe(names)


def _stage_csv_duckdb(con, source: Path, dataset: Dataset, dialect: Dialect, encoding: str, compression: str | None,
                      scan: Future | None) -> dict[str, str]:
    options = _csv_options(dataset, dialect, encoding, compression)
    targets = _target_names(dataset, dialect.names)
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
    reader = f"read_csv({quote_literal(str(source))}, {_sql_options(options)})"
    described = con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
    if len(described) != len(dialect.names):
        raise duckdb.InvalidInputException(
            f"DuckDB found {len(described)} columns where the header has {len(dialect.names)}"
        )
    sniffed = _sniffed_integers(described, targets, declared)
    if sniffed:
        integers.update(sniffed)
        types.update({src: "VARCHAR" for src, tgt in zip(dialect.names, targets, strict=True) if tgt in sniffed})
        options["types"] = types
        reader = f"read_csv({quote_literal(str(source))}, {_sql_options(options)})"
    select = ", ".join(
        f"{quote_ident(src)} AS {quote_ident(tgt)}" for src, tgt in zip(dialect.names, targets, strict=True)
    )
    # No row_number() here (it costs ~40% of the load): rows keep the reader's order, so a staged
    # row's rowid is its ordinal among the rows DuckDB accepted, and the record number follows
    # from the rejected records before it (see _source_row_sql).
    con.execute(f"CREATE TABLE rows AS SELECT {select} FROM {reader}")
    header_lines = (1 if dialect.header else 0) + dataset.csv.skip_rows
    column_types = _table_types(con, "rows")
    rejected = con.execute(
        "SELECT line, list(error_type::VARCHAR ORDER BY column_idx), list(column_idx ORDER BY column_idx), "
        "list(column_name ORDER BY column_idx), any_value(csv_line), list(error_message ORDER BY column_idx), "
        "max(line_byte_position) FROM rejects GROUP BY line ORDER BY line"
    ).fetchall()
    if rejected:
        rows = _quarantine_rejects(source, compression, scan, rejected, dialect, targets, column_types, header_lines)
        _insert_quarantine(con, rows)
    _record_shifts(con)
    if integers:
        _quarantine_non_integers(con, integers)
        column_types.update(integers)  # cast when published
    return column_types


def _sniffed_integers(described: list[tuple], targets: list[str], declared: dict[str, str]) -> dict[str, str]:
    """Undeclared columns DuckDB typed as integers from its sample of the file. They are read as
    text and cast strictly like declared ones: DuckDB's own cast would turn a later "1.5" into 2
    without a word, where a strict cast quarantines that row with its original line."""
    return {tgt: row[1] for tgt, row in zip(targets, described, strict=True)
            if tgt not in declared and row[1] in INTEGER_TYPES}


def _quarantine_rejects(source, compression, scan, rejected, dialect, targets, column_types, header_lines) -> list[tuple]:
    """Quarantine rows (see _quarantine_row) for DuckDB's rejected records."""
    if any("UNQUOTED VALUE" in kinds for _, kinds, *_ in rejected):
        # An unterminated quote: DuckDB swallows every record after it into the one rejected
        # line. The record-by-record reader quarantines that line and reads on.
        raise duckdb.InvalidInputException("unterminated quote")
    last_rejected = max(r[6] for r in rejected)
    known = scan.result() if scan is not None else None
    if known is not None and known.line_breaks_known:
        irregular = known.irregular_from is not None and known.irregular_from <= last_rejected + 2
    else:
        irregular = _irregular_line_breaks(source, compression, last_rejected)
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
        rows.append(_quarantine_row(
            line - header_lines, line, target if is_cast else None, code,
            _first_line_text(messages[pick]), value, csv_line,
        ))
    return rows


INTEGER_TYPES = ("BIGINT", "INTEGER", "SMALLINT")
STRICT_INTEGER = r"^\s*[-+]?[0-9]+\s*$"


def _quarantine_non_integers(con, integers: dict[str, str]) -> None:
    """Quarantine rows whose text in a declared integer column is not a whole number.

    The columns stay text in the stage; publishing casts them, which cannot fail after this.
    """
    failing = [
        (name, f"({quote_ident(name)} IS NOT NULL AND NOT (regexp_full_match({quote_ident(name)}, "
               f"{quote_literal(STRICT_INTEGER)}) AND TRY_CAST({quote_ident(name)} AS {kind}) IS NOT NULL))")
        for name, kind in integers.items()
    ]
    any_failing = " OR ".join(cond for _, cond in failing)
    first = "CASE " + " ".join(f"WHEN {cond} THEN {quote_literal(name)}" for name, cond in failing) + " END"
    value = "CASE " + " ".join(f"WHEN {cond} THEN {quote_ident(name)}" for name, cond in failing) + " END"
    kind = "CASE " + " ".join(f"WHEN {cond} THEN {quote_literal(integers[name])}" for name, cond in failing) + " END"
    columns = [c for c in _table_columns(con, "rows") if c != "_source_row"]
    fields = " || ',' || ".join(f"coalesce(CAST({quote_ident(c)} AS VARCHAR), '')" for c in columns)
    con.execute(
        f"CREATE TEMP TABLE non_integers AS SELECT rowid AS staged_rowid, {_source_row_sql(con)} AS source_row, "
        f"{first} AS column_name, {value} AS raw_value, {kind} AS type, {fields} AS raw_line "
        f"FROM rows WHERE {any_failing}"
    )
    if con.execute("SELECT count(*) FROM non_integers").fetchone()[0] == 0:
        return
    con.execute(
        "INSERT INTO quarantine SELECT source_row, NULL, column_name, 'E_NUMERIC_FORMAT', "
        "'cannot cast ' || left(raw_value, 200) || ' to ' || type || ' (not a whole number)', "
        "left(raw_value, 1000), raw_line, NULL FROM non_integers"
    )
    if "_source_row" in _table_columns(con, "rows"):
        con.execute("DELETE FROM rows WHERE rowid IN (SELECT staged_rowid FROM non_integers)")
        return
    # Deleting would let the checkpoint at close compact the table and renumber its rowids (which
    # are the record numbers here): keep the numbers in a column instead.
    con.execute(
        f"CREATE TABLE rows_numbered AS SELECT {_source_row_sql(con)} AS _source_row, * FROM rows "
        "WHERE rowid NOT IN (SELECT staged_rowid FROM non_integers)"
    )
    con.execute("DROP TABLE rows")
    con.execute("ALTER TABLE rows_numbered RENAME TO rows")


def _irregular_line_breaks(source: Path, compression: str | None, end: int) -> bool:
    """Whether the first `end` bytes of the (decompressed) file hold an empty line or more than
    one kind of line break (LF, CRLF, CR). Counts bytes in C, never loops over lines."""
    opener = gzip.open if compression == "gzip" else open
    kinds: set[str] = set()
    held = b""
    with opener(source, "rb") as handle:
        remaining = end + 2
        while True:
            block = handle.read(min(max(remaining, 0), 8 * 1024 * 1024))
            remaining -= len(block)
            chunk = held + block
            held = b""
            if block and remaining > 0:
                # A trailing run of CR/LF may continue in the next block: judge it with that.
                body = chunk.rstrip(b"\r\n")
                chunk, held = body, chunk[len(body):]
            if _line_break_kinds(chunk, kinds):
                return True
            if not block or remaining <= 0:
                return False


def _line_break_kinds(chunk: bytes, kinds: set[str]) -> bool:
    """Add the kinds of line break in chunk to kinds; True when irregular (empty line or mixed)."""
    if b"\n\n" in chunk or b"\r\r" in chunk or b"\n\r\n" in chunk:
        return True
    crlf, lf, cr = chunk.count(b"\r\n"), chunk.count(b"\n"), chunk.count(b"\r")
    if crlf:
        kinds.add("crlf")
    if lf > crlf:
        kinds.add("lf")
    if cr > crlf:
        kinds.add("cr")
    return len(kinds) > 1


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
    records = _sample_records(csv_line, dialect.delimiter, dialect.quote, limit=1)
    if records and 0 <= index - 1 < len(records[0]):
        return records[0][index - 1]
    return None


def _quarantine_row(source_row, line, column, code, message, value, raw_line) -> tuple:
    raw_bytes = len(raw_line.encode("utf-8", "surrogatepass")) if raw_line is not None else None
    if raw_line is not None and len(raw_line) > QUARANTINE_LINE_CAP:
        raw_line = raw_line[:QUARANTINE_LINE_CAP]
    if value is not None and len(value) > 1000:
        value = value[:1000]
    return (source_row, line, column, code, message, value, raw_line, raw_bytes)


def _insert_quarantine(con, rows: list[tuple]) -> None:
    if rows:
        con.executemany("INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


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


def _source_row_sql(con) -> str:
    """SQL for a staged row's record number in the file."""
    if "_source_row" in _table_columns(con, "rows"):
        return "_source_row"
    shifts = con.execute("SELECT t, j FROM source_row_shifts ORDER BY t DESC").fetchall()
    ordinal = "(rowid + 1)"
    if not shifts:
        return ordinal
    cases = " ".join(f"WHEN {ordinal} > {int(t)} THEN {int(j)}" for t, j in shifts)
    return f"{ordinal} + CASE {cases} ELSE 0 END"


class _RecordTooLong(Exception):
    pass


class _LineFeed:
    """Physical lines for csv.reader, remembering those of the current record for replay."""

    def __init__(self, lines: Iterator[tuple[int, str, bool]], limit: int):
        self.lines = lines
        self.replay: deque = deque()
        self.current: list[tuple[int, str, bool]] = []
        self.current_bytes = 0
        self.limit = limit

    def __iter__(self):
        return self

    def __next__(self) -> str:
        item = self.replay.popleft() if self.replay else next(self.lines)
        self.current.append(item)
        self.current_bytes += len(item[1])
        if self.current_bytes > self.limit:
            raise _RecordTooLong
        return item[1]

    def start_record(self) -> None:
        self.current = []
        self.current_bytes = 0


_AFTER_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")


def _physical_lines(handle, encoding: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, decoded cleanly) for each line of a binary handle; a lone CR ends a
    line too (old Mac exports), as it does for DuckDB's reader."""
    number = 0
    for raw in handle:
        for part in _AFTER_LONE_CR.split(raw) if b"\r" in raw else (raw,):
            if not part:
                continue
            number += 1
            try:
                yield number, part.decode(encoding), True
            except UnicodeDecodeError:
                yield number, part.decode(encoding, errors="replace"), False


def _stage_csv_python(con, source: Path, dataset: Dataset, dialect: Dialect, encoding: str, compression: str | None) -> dict[str, str]:
    """Record-by-record CSV reader for files DuckDB's reader rejects as a whole."""
    targets = _target_names(dataset, dialect.names)
    width = len(targets)
    null_values = set(dataset.csv.null_values)
    limit = max(dataset.csv.max_line_bytes, 1024)
    csv.field_size_limit(max(limit * 2, csv.field_size_limit()))
    con.execute(
        "CREATE TABLE text_rows (_source_row BIGINT, _line BIGINT, _raw_line VARCHAR, "
        + ", ".join(f"{quote_ident(t)} VARCHAR" for t in targets) + ")"
    )
    opener = gzip.open if compression == "gzip" else open
    header_lines = (1 if dialect.header else 0) + dataset.csv.skip_rows
    batch: list[list] = []
    quarantine: list[tuple] = []
    record_no = 0
    with opener(source, "rb") as handle:
        feed = _LineFeed(_physical_lines(handle, encoding), limit)
        for _ in range(header_lines):
            next(feed, None)
        def new_reader():
            return csv.reader(feed, delimiter=dialect.delimiter, quotechar=dialect.quote,
                              doublequote=dialect.escape == dialect.quote,
                              escapechar=None if dialect.escape == dialect.quote else dialect.escape,
                              strict=True)

        reader = new_reader()
        while True:
            feed.start_record()
            try:
                fields = next(reader)
            except StopIteration:
                break
            except (csv.Error, _RecordTooLong) as exc:
                first, rest = feed.current[0], feed.current[1:]
                record_no += 1
                if isinstance(exc, _RecordTooLong) and not rest:
                    code, message = "E_LINE_SIZE", ERROR_CODES["E_LINE_SIZE"]
                elif isinstance(exc, _RecordTooLong):  # a quote left open swallowed the lines after it
                    code, message = "E_QUOTE", f"{ERROR_CODES['E_QUOTE']}: still open after {feed.limit} bytes"
                else:
                    code, message = "E_QUOTE", f"{ERROR_CODES['E_QUOTE']}: {exc}"
                quarantine.append(_quarantine_row(record_no, first[0], None, code, message, None, first[1].rstrip("\r\n")))
                feed.replay.extendleft(reversed(rest))
                reader = new_reader()
                continue
            if not fields:
                continue  # blank line: not a record
            record_no += 1
            lines = feed.current
            raw_line = "".join(item[1] for item in lines).rstrip("\r\n")
            if not all(item[2] for item in lines):
                quarantine.append(_quarantine_row(record_no, lines[0][0], None, "E_ENCODING", ERROR_CODES["E_ENCODING"] + f" ({encoding})", None, raw_line))
            elif len(fields) != width:
                quarantine.append(_quarantine_row(
                    record_no, lines[0][0], None, "E_COLUMN_COUNT",
                    f"expected {width} fields, found {len(fields)}", None, raw_line))
            else:
                batch.append([record_no, lines[0][0], raw_line, *(None if v in null_values else v for v in fields)])
                if len(batch) >= BATCH_ROWS:
                    _append_text_rows(con, batch, targets)
                    batch = []
    _append_text_rows(con, batch, targets)
    _insert_quarantine(con, quarantine)
    return _cast_text_rows(con, dataset, targets, date_format=dialect.date_format)


def _append_text_rows(con, batch: list[list], targets: list[str]) -> None:
    if not batch:
        return
    names = ["_source_row", "_line", "_raw_line", *targets]
    columns = list(zip(*batch, strict=True))
    table = pa.table({
        f"c{i}": pa.array(col, type=pa.int64() if i < 2 else pa.string())
        for i, col in enumerate(columns)
    })
    con.register("text_batch", table)
    try:
        con.execute(
            "INSERT INTO text_rows SELECT "
            + ", ".join(f"c{i} AS {quote_ident(n)}" for i, n in enumerate(names)) + " FROM text_batch"
        )
    finally:
        con.unregister("text_batch")


INFER_ORDER = ("BIGINT", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP")


def _cast_text_rows(con, dataset: Dataset, targets: list[str], table: str = "text_rows",
                    date_format: str | None = None) -> dict[str, str]:
    """Cast text columns to their declared (or inferred) types; failing rows go to quarantine.

    `date_format` is the file's sniffed date format, used when the contract names none.
    """
    declared = {c.name: c.type for c in dataset.columns if c.type}
    source_types = {row[0]: row[1] for row in con.execute(f"DESCRIBE {table}").fetchall()}
    types = {}
    to_infer = [t for t in targets if t not in declared and source_types.get(t) == "VARCHAR"]
    inferred = _infer_types(con, table, to_infer, dataset, date_format)
    for name in targets:
        types[name] = declared.get(name) or inferred.get(name) or source_types[name]
    casts, failures = [], []
    for name in targets:
        expr = _cast_expr(quote_ident(name), source_types[name], types[name], dataset, date_format)
        casts.append(f"{expr} AS {quote_ident(name)}")
        if expr != quote_ident(name):
            failures.append((name, f"({quote_ident(name)} IS NOT NULL AND {expr} IS NULL)"))
    con.execute(
        f"CREATE TABLE rows AS SELECT _source_row, {', '.join(casts) or '1 AS _empty'} FROM {table}"
        + (f" WHERE NOT ({' OR '.join(f for _, f in failures)})" if failures else "")
        + " ORDER BY _source_row"
    )
    if failures:
        first_failure = "CASE " + " ".join(
            f"WHEN {cond} THEN {quote_literal(name)}" for name, cond in failures
        ) + " END"
        code_case = "CASE " + " ".join(
            f"WHEN {cond} THEN {quote_literal(cast_error_code(types[name]))}" for name, cond in failures
        ) + " END"
        value_case = "CASE " + " ".join(
            f"WHEN {cond} THEN CAST({quote_ident(name)} AS VARCHAR)" for name, cond in failures
        ) + " END"
        type_case = "CASE " + " ".join(
            f"WHEN {cond} THEN {quote_literal(types[name])}" for name, cond in failures
        ) + " END"
        raw = "_raw_line" if "_raw_line" in source_types else "CAST(to_json(t) AS VARCHAR)"
        line = "_line" if "_line" in source_types else "NULL"
        con.execute(
            f"INSERT INTO quarantine SELECT _source_row, {line}, {first_failure}, {code_case}, "
            f"'cannot cast ' || left({value_case}, 200) || ' to ' || {type_case}, "
            f"left({value_case}, 1000), left({raw}, {QUARANTINE_LINE_CAP}), strlen({raw}) "
            f"FROM {table} t WHERE {' OR '.join(f for _, f in failures)}"
        )
    return {row[0]: row[1] for row in con.execute("DESCRIBE rows").fetchall()}


def _cast_expr(column_sql: str, source_type: str, target_type: str, dataset: Dataset,
               date_format: str | None = None) -> str:
    if source_type == target_type:
        return column_sql
    text = f"trim(CAST({column_sql} AS VARCHAR))" if source_type == "VARCHAR" else column_sql
    date_format = dataset.csv.date_format or (date_format if date_format != "%Y-%m-%d" else None)
    if source_type == "VARCHAR" and target_type == "DATE" and date_format:
        return f"CAST(try_strptime({text}, {quote_literal(date_format)}) AS DATE)"
    if source_type == "VARCHAR" and target_type.startswith("TIMESTAMP") and dataset.csv.timestamp_format:
        return f"try_strptime({text}, {quote_literal(dataset.csv.timestamp_format)})"
    if source_type == "VARCHAR" and target_type in INTEGER_TYPES:
        # TRY_CAST would round '1.5' to 2: only whole-number text becomes an integer.
        return f"CASE WHEN regexp_full_match({text}, {quote_literal(INTEGER_TEXT)}) THEN TRY_CAST({text} AS {target_type}) END"
    return f"TRY_CAST({text} AS {target_type})"


INTEGER_TEXT = r"[+-]?[0-9]+"
LEADING_ZERO = r"^[+-]?0[0-9]"  # '01234' is a code (zip, account), not the number 1234


def _infer_types(con, table: str, columns: list[str], dataset: Dataset, date_format: str | None = None) -> dict[str, str]:
    if not columns:
        return {}
    probes = []
    for name in columns:
        col = quote_ident(name)
        probes.append(f"count({col})")
        for candidate in INFER_ORDER:
            expr = _cast_expr(col, "VARCHAR", candidate, dataset, date_format)
            if candidate == "BIGINT":  # TRY_CAST rounds '1.5' to 2: only whole numbers are integers
                expr = f"CASE WHEN regexp_full_match(trim({col}), {quote_literal(INTEGER_TEXT)}) THEN {expr} END"
            if candidate in ("BIGINT", "DOUBLE"):  # as DuckDB's sniffer, keep leading zeros as text
                expr = f"CASE WHEN NOT regexp_matches(trim({col}), {quote_literal(LEADING_ZERO)}) THEN {expr} END"
            if candidate == "DATE":  # the DATE cast drops a time part ('2026-01-02T03:04:05'): a TIMESTAMP
                expr = f"CASE WHEN NOT contains({col}, ':') THEN {expr} END"
            probes.append(f"count({expr})")
    counts = con.execute(f"SELECT {', '.join(probes)} FROM {table}").fetchone()
    result = {}
    step = len(INFER_ORDER) + 1
    for i, name in enumerate(columns):
        present = counts[i * step]
        result[name] = "VARCHAR"
        if present == 0:
            continue
        for j, candidate in enumerate(INFER_ORDER):
            if counts[i * step + 1 + j] == present:
                result[name] = candidate
                break
    return result


# ---------------------------------------------------------------------------------------------
# JSON lines and Parquet


def _stage_json(con, source: Path, dataset: Dataset, audit: LoadAudit) -> dict[str, str]:
    audit.parser = "python-json"
    audit.encoding = "utf-8"
    targets: list[str] = []
    columns: dict[str, str] = {}  # JSON key -> column (DuckDB names ignore case, JSON keys do not)
    con.execute("CREATE TABLE text_rows (_source_row BIGINT, _line BIGINT, _raw_line VARCHAR)")
    batch: list[dict] = []
    quarantine: list[tuple] = []
    record_no = 0
    opener = gzip.open if audit.compression == "gzip" else open
    with opener(source, "rb") as handle:
        for line_no, text, clean in _physical_lines(handle, "utf-8"):
            stripped = text.strip()
            if not stripped:
                continue
            record_no += 1
            if not clean:
                quarantine.append(_quarantine_row(record_no, line_no, None, "E_ENCODING", ERROR_CODES["E_ENCODING"] + " (utf-8)", None, stripped))
                continue
            try:
                value = json.loads(stripped)
            except ValueError as exc:
                quarantine.append(_quarantine_row(record_no, line_no, None, "E_JSON", f"invalid JSON: {exc}", None, stripped))
                continue
            if not isinstance(value, dict):
                quarantine.append(_quarantine_row(record_no, line_no, None, "E_JSON", f"expected a JSON object, found {type(value).__name__}", None, stripped))
                continue
            row = {"_source_row": record_no, "_line": line_no, "_raw_line": stripped}
            for key, item in value.items():
                name = columns.get(key)
                if name is None:
                    name = columns[key] = _json_column(dataset, str(key), targets)
                    if name not in targets:
                        targets.append(name)
                        con.execute(f"ALTER TABLE text_rows ADD COLUMN {quote_ident(name)} VARCHAR")
                row[name] = _json_text(item)
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                _append_dict_rows(con, batch, targets)
                batch = []
    _append_dict_rows(con, batch, targets)
    _insert_quarantine(con, quarantine)
    audit.utf8_valid = "E_ENCODING" not in {q[3] for q in quarantine}
    return _cast_text_rows(con, dataset, targets)


def _json_column(dataset: Dataset, key: str, targets: list[str]) -> str:
    """The column for a JSON key seen for the first time: its contract column (aliases and case
    ignored), else the key itself, suffixed when it differs from a taken name only in case."""
    name = _target_names(dataset, [key])[0]
    if dataset.column(name) is not None:
        return name
    taken = {t.lower() for t in targets}
    candidate, suffix = name, 0
    while candidate.lower() in taken:
        suffix += 1
        candidate = f"{name}_{suffix}"
    return candidate


def _json_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _append_dict_rows(con, batch: list[dict], targets: list[str]) -> None:
    if not batch:
        return
    names = ["_source_row", "_line", "_raw_line", *targets]
    table = pa.table({
        f"c{i}": pa.array([row.get(name) for row in batch], type=pa.int64() if i < 2 else pa.string())
        for i, name in enumerate(names)
    })
    con.register("text_batch", table)
    try:
        con.execute(
            f"INSERT INTO text_rows ({', '.join(quote_ident(n) for n in names)}) SELECT "
            + ", ".join(f"c{i}" for i in range(len(names))) + " FROM text_batch"
        )
    finally:
        con.unregister("text_batch")


def _stage_parquet(con, source: Path, dataset: Dataset, audit: LoadAudit) -> dict[str, str]:
    audit.parser = "duckdb-parquet"
    reader = f"read_parquet({quote_literal(str(source))}, file_row_number = true)"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
    except duckdb.Error as exc:
        return _empty(con, audit, "E_UNREADABLE", f"not a readable Parquet file: {_first_line(exc)}", "rejected")
    sources = [row[0] for row in described if row[0] != "file_row_number"]
    targets = _target_names(dataset, sources)
    select = ", ".join(f"{quote_ident(s)} AS {quote_ident(t)}" for s, t in zip(sources, targets, strict=True))
    con.execute(f"CREATE VIEW parquet_rows AS SELECT file_row_number + 1 AS _source_row, {select} FROM {reader}")
    try:
        return _cast_text_rows(con, dataset, targets, table="parquet_rows")
    except duckdb.Error as exc:  # the footer reads but a data page does not
        _reset_stage(con)
        return _empty(con, audit, "E_UNREADABLE", f"not a readable Parquet file: {_first_line(exc)}", "rejected")


# ---------------------------------------------------------------------------------------------
# Publishing


WIDENINGS = {
    frozenset({"BIGINT", "DOUBLE"}): "DOUBLE",
    frozenset({"INTEGER", "BIGINT"}): "BIGINT",
    frozenset({"INTEGER", "DOUBLE"}): "DOUBLE",
    frozenset({"DATE", "TIMESTAMP"}): "TIMESTAMP",
}


def raw_table(dataset: str) -> str:
    return f"raw.{quote_ident(dataset)}"


def publish_stage(con: duckdb.DuckDBPyConnection, staged: Staged) -> LoadAudit:
    """Replace the partition in raw, qa.quarantine and qa.files in one transaction."""
    audit = staged.audit
    table = raw_table(audit.dataset)
    con.execute(f"ATTACH {quote_literal(str(staged.path))} AS stage (READ_ONLY)")
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            changes = _evolve_raw_table(con, table, staged)
            con.execute(f"DELETE FROM {table} WHERE _partition_key = ?", [audit.partition_key])
            columns = [c for c in staged.column_types if c != "_source_row"]
            if columns:
                names = ", ".join(quote_ident(c) for c in columns)
                values = ", ".join(
                    f"CAST(trim({quote_ident(c)}) AS {staged.column_types[c]})" if c in staged.stored_types else quote_ident(c)
                    for c in columns
                )
                # Staged rows are in file order already: no ORDER BY (a sort of every row).
                con.execute(
                    f"INSERT INTO {table} (_partition_key, _source_row, _run_id, {names}) "
                    f"SELECT ?, {staged.source_row_sql}, ?, {values} FROM stage.rows",
                    [audit.partition_key, audit.run_id],
                )
            con.execute("DELETE FROM qa.quarantine WHERE dataset = ? AND partition_key = ?",
                        [audit.dataset, audit.partition_key])
            con.execute(
                "INSERT INTO qa.quarantine SELECT ?, ?, ?, * FROM stage.quarantine ORDER BY source_row",
                [audit.dataset, audit.partition_key, audit.run_id],
            )
            _finish_publish(con, audit, changes)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    finally:
        con.execute("DETACH stage")
    audit.column_types = {c: t for c, t in staged.column_types.items() if c != "_source_row"}
    return audit


def _finish_publish(con, audit: LoadAudit, changes: list[str]) -> None:
    """Flag a duplicate of another partition's content, note schema changes, write the audit row."""
    if audit.sha256 and audit.status != "rejected":
        dup = con.execute(
            "SELECT partition_key FROM qa.files WHERE dataset = ? AND sha256 = ? "
            "AND partition_key <> ? AND status NOT IN ('rejected', 'unchanged') "
            "ORDER BY finished LIMIT 1",
            [audit.dataset, audit.sha256, audit.partition_key],
        ).fetchone()
        if dup:
            audit.duplicate_of = dup[0]
            audit.message += f"; same content as partition {dup[0]!r}"
    if changes:
        audit.message += "; schema: " + ", ".join(changes)
    insert_audit(con, audit)


def insert_audit(con: duckdb.DuckDBPyConnection, audit: LoadAudit) -> None:
    placeholders = ", ".join("?" for _ in LoadAudit.AUDIT_COLUMNS)
    con.execute(f"INSERT INTO qa.files VALUES ({placeholders})", audit.as_row())


def _evolve_raw_table(con, table: str, staged: Staged) -> list[str]:
    """Create the raw table or add and widen columns so the staged rows fit; returns the changes."""
    return _evolve_columns(con, table, staged.column_types)


def _evolve_columns(con, table: str, column_types: dict[str, str]) -> list[str]:
    """Create the raw table or add and widen columns so rows of these types fit; returns the changes."""
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {table} "
        "(_partition_key VARCHAR NOT NULL, _source_row BIGINT, _run_id VARCHAR)"
    )
    existing = {row[0]: row[1] for row in con.execute(f"DESCRIBE {table}").fetchall()}
    changes = []
    for name, staged_type in column_types.items():
        if name == "_source_row":
            continue
        current = existing.get(name)
        if current is None:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {quote_ident(name)} {staged_type}")
            if len(existing) > len(META_COLUMNS):
                changes.append(f"added {name} {staged_type}")
        elif current != staged_type:
            wider = WIDENINGS.get(frozenset({current, staged_type}), "VARCHAR")
            if wider != current:
                con.execute(f"ALTER TABLE {table} ALTER COLUMN {quote_ident(name)} TYPE {wider}")
                changes.append(f"{name} {current} -> {wider}")
    return changes


def is_temporary_name(name: str) -> bool:
    """Names of files still being written or hidden: never loaded."""
    base = Path(name).name
    return base.startswith((".", "~$", "_COPYING_")) or base.lower().endswith(TEMP_SUFFIXES)
