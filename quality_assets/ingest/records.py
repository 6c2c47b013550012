"""The record-by-record CSV reader, for files DuckDB's reader gives up on as a whole (an unterminated
quote swallowing the rest of the file, say): quarantines the broken record and reads on.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from quality_assets.contract import Dataset
from quality_assets.ingest.audit import BATCH_ROWS, ERROR_CODES
from quality_assets.ingest.casting import cast_text_rows
from quality_assets.ingest.quarantine import insert_quarantine, quarantine_row
from quality_assets.ingest.sniff import Dialect, target_names
from quality_assets.warehouse import quote_ident


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


def physical_lines(handle, encoding: str) -> Iterator[tuple[int, str, bool]]:
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


def stage_csv_records(con, source: Path, dataset: Dataset, dialect: Dialect, encoding: str, compression: str | None) -> dict[str, str]:
    """Record-by-record CSV reader for files DuckDB's reader rejects as a whole."""
    targets = target_names(dataset, dialect.names)
    width = len(targets)
    # A file whose records all end with one empty field (see fields.py) expects it on every record.
    expected = width + 1 if dialect.trailing_empty else width
    trailing = " (the last one empty, as on every record of this file)" if dialect.trailing_empty else ""
    keep_quoted_empty = dataset.csv.quoted_empty == "string"
    double_quote = dialect.quote * 2
    null_values = set(dataset.csv.null_values)
    limit = max(dataset.csv.max_line_bytes, 1024)
    csv.field_size_limit(max(limit * 2, csv.field_size_limit()))
    con.execute(
        "CREATE TABLE text_rows (_source_row BIGINT, _line BIGINT, _raw_line VARCHAR, "
        + ", ".join(f"{quote_ident(t)} VARCHAR" for t in targets) + ")"
    )
    opener = gzip.open if compression == "gzip" else open
    header_lines = (1 if dialect.header else 0) + dialect.skip
    batch: list[list] = []
    quarantine: list[tuple] = []
    record_no = 0
    with opener(source, "rb") as handle:
        feed = _LineFeed(physical_lines(handle, encoding), limit)
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
                quarantine.append(quarantine_row(record_no, first[0], None, code, message, None, first[1].rstrip("\r\n")))
                feed.replay.extendleft(reversed(rest))
                reader = new_reader()
                continue
            if not fields:
                continue  # blank line: not a record
            record_no += 1
            lines = feed.current
            raw_line = "".join(item[1] for item in lines).rstrip("\r\n")
            if "\x00" in raw_line:
                quarantine.append(quarantine_row(record_no, lines[0][0], None, "E_NUL", ERROR_CODES["E_NUL"], None, raw_line))
            elif not all(item[2] for item in lines):
                quarantine.append(quarantine_row(record_no, lines[0][0], None, "E_ENCODING", ERROR_CODES["E_ENCODING"] + f" ({encoding})", None, raw_line))
            elif len(fields) != expected or (dialect.trailing_empty and fields[-1] != ""):
                quarantine.append(quarantine_row(
                    record_no, lines[0][0], None, "E_COLUMN_COUNT",
                    f"expected {expected} fields{trailing}, found {len(fields)}", None, raw_line))
            else:
                values = [None if v in null_values else v for v in fields[:width]]
                if keep_quoted_empty and double_quote in raw_line and None in values:
                    quoted = quoted_empty_fields(raw_line, dialect.delimiter, dialect.quote)
                    values = ["" if v is None and i < len(quoted) and quoted[i] else v for i, v in enumerate(values)]
                batch.append([record_no, lines[0][0], raw_line, *values])
                if len(batch) >= BATCH_ROWS:
                    _append_text_rows(con, batch, targets)
                    batch = []
    _append_text_rows(con, batch, targets)
    insert_quarantine(con, quarantine)
    return cast_text_rows(con, dataset, targets, date_format=dialect.date_format)


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


def quoted_empty_fields(line: str, delimiter: str, quote: str) -> list[bool]:
    """For each field of a CSV record, whether it is a quoted empty string (`""`): Python's csv
    reader returns '' for it and for an unquoted empty field alike."""
    flags, i, n = [], 0, len(line)
    while True:
        if i < n and line[i] == quote:
            j, empty = i + 1, True
            while j < n:
                if line[j] == quote:
                    if j + 1 < n and line[j + 1] == quote:
                        j, empty = j + 2, False
                        continue
                    break
                j, empty = j + 1, False
            flags.append(empty)
            i = line.find(delimiter, j + 1)
        else:
            flags.append(False)
            i = line.find(delimiter, i)
        if i < 0:
            return flags
        i += 1
