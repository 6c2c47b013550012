"""The CSV dialect: delimiter, quote, header, column names and date format, sniffed from a sample
(contract options win), and the `read_csv` options that follow from it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from quality_assets.contract import Dataset
from quality_assets.ingest.audit import META_COLUMNS, LoadAudit
from quality_assets.ingest.scan import read_text_sample
from quality_assets.warehouse import quote_literal

CSV_DELIMITERS = (",", "\t", "|", ";")
SNIFF_DELIMITERS = (*CSV_DELIMITERS, " ")


DUCKDB_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "latin-1": "latin-1", "latin1": "latin-1",
                    "iso-8859-1": "latin-1", "iso8859-1": "latin-1"}


@dataclass
class Dialect:
    delimiter: str
    quote: str
    escape: str
    header: bool
    names: list[str]  # source names (header values, or column1..N)
    date_format: str = "%Y-%m-%d"
    trailing_empty: bool = False  # every data record ends with one empty field beyond the header
    skip: int = 0  # lines before the header: the contract's skip_rows and a sniffed preamble
    notes: dict[str, int] = field(default_factory=dict)  # warning codes on the file (W_PREAMBLE: lines)


def sniff_dialect(sample: str, dataset: Dataset) -> Dialect:
    """Pick delimiter, quote, preamble and header from a text sample; contract options win.

    The dialect comes from the body (the lines after the first), so a damaged header line cannot
    decide it; a header that disagrees with the body is re-split with another dialect when that
    gives the body's field count, else the columns get positional names (`column_1`...), and
    the file says so (W_HEADER_RESPLIT, W_HEADER_POSITIONAL). Lines before the header that do
    not have the body's field count are a preamble, skipped and counted (W_PREAMBLE)."""
    opts = dataset.csv
    lines = sample.splitlines(keepends=True)
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample cut a record short
    lines = lines[opts.skip_rows:]
    body_text = "".join(lines[1:]) if len(lines) > 2 else "".join(lines)
    delimiter = opts.delimiter or _best_delimiter(body_text, opts.quote or '"')
    quote = opts.quote or _best_quote(body_text, delimiter)
    width = _body_width(body_text, delimiter, quote)
    notes: dict[str, int] = {}
    preamble = 0
    if width and opts.header is not False and not opts.skip_rows:
        preamble = _preamble(lines, delimiter, quote, width, dataset)
        if preamble:
            notes["W_PREAMBLE"] = preamble
    text = "".join(lines[preamble:])
    records = sample_records(text, delimiter, quote, limit=200)
    first = records[0] if records else []
    skip = opts.skip_rows + preamble
    if width and len(first) != width and preamble < len(lines):
        # A damaged first line (a stray quote may even swallow the body): judge it alone.
        first = next(iter(sample_records(lines[preamble], delimiter, quote, limit=1)), [])
        records = [first, *sample_records("".join(lines[preamble + 1:]), delimiter, quote, limit=200)]
    header = opts.header if opts.header is not None else _looks_like_header(records, dataset)
    header_skipped = False
    if header:
        names = [name.strip() for name in first]
        trailing = len(names) + 1 == width and all(r[-1] == "" for r in records[1:] if len(r) == width)
        if width and len(names) != width and not trailing:
            names, note = _repair_header(lines[preamble] if preamble < len(lines) else "", names, width)
            if note:
                notes[note] = 1
                header_skipped = True  # the reader skips the line instead of parsing it as a header
        names = [name or f"column{i}" for i, name in enumerate(names, start=1)]
    else:
        widest = max((len(r) for r in records), default=0)
        declared = [c.name for c in dataset.columns]
        names = [declared[i] if i < len(declared) else f"column{i + 1}" for i in range(widest)]
    names = _dedupe(names)
    body = records[1:] if header else records
    trailing_empty = bool(header and body) and all(len(r) == len(names) + 1 and r[-1] == "" for r in body)
    if header_skipped:
        header, skip = False, skip + 1
    return Dialect(delimiter, quote, opts.escape or quote, header, names, _vote_date_format(body, names, dataset),
                   trailing_empty, skip, notes)


def _body_width(text: str, delimiter: str, quote: str) -> int:
    """The field count nine in ten body records share (0: no such agreement)."""
    widths = [len(r) for r in sample_records(text, delimiter, quote, limit=200)]
    if len(widths) < 2:
        return 0
    modal = max(set(widths), key=widths.count)
    return modal if widths.count(modal) >= 0.9 * len(widths) else 0


def _best_quote(text: str, delimiter: str) -> str:
    """'"', unless the body quotes with ' (its lines open with ' or hold delimiter + ') and never with '"'."""
    if '"' in text or "'" not in text:
        return '"'
    lines = [line for line in text.splitlines() if line.strip()]
    opened = sum(line.startswith("'") or f"{delimiter}'" in line for line in lines)
    return "'" if lines and opened >= 0.5 * len(lines) else '"'


def _preamble(lines: list[str], delimiter: str, quote: str, width: int, dataset: Dataset) -> int:
    """How many lines before the header do not belong to the table: the header is the first of
    the leading lines with the body's field count (or the line before it, when that one is
    already data under a damaged header)."""
    for k, line in enumerate(lines[:20]):
        fields = next(iter(sample_records(line, delimiter, quote, limit=1)), [])
        if len(fields) != width:
            continue
        if k == 0:
            return 0
        body = sample_records("".join(lines[k + 1:k + 51]), delimiter, quote, limit=50)
        if _looks_like_header([fields, *body], dataset):
            return k
        return k - 1  # line k is data: the line before it is a damaged header
    return 0


HEADER_DIALECTS = [(d, q) for d in SNIFF_DELIMITERS for q in ('"', "'")]


def _repair_header(line: str, names: list[str], width: int) -> tuple[list[str], str | None]:
    """A header whose field count is not the body's: drop a trailing empty name, re-split it with
    another dialect, or name the columns by position."""
    if len(names) == width + 1 and not names[-1]:
        return names[:-1], None  # a trailing delimiter on the header line only
    for delimiter, quote in HEADER_DIALECTS:
        fields = next(iter(sample_records(line, delimiter, quote, limit=1)), [])
        if len(fields) == width and all(f.strip() for f in fields):
            return [f.strip().strip("\"'") for f in fields], "W_HEADER_RESPLIT"
    return [f"column_{i}" for i in range(1, width + 1)], "W_HEADER_POSITIONAL"


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


def sample_records(text: str, delimiter: str, quote: str, limit: int) -> list[list[str]]:
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
    for delimiter in SNIFF_DELIMITERS:
        records = sample_records(text, delimiter, quote, limit=100)
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


def value_kind(value: str) -> str:
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
    if any(value_kind(v) in ("number", "date") for v in first):
        return False
    if not body:
        return True
    for i in range(len(first)):
        kinds = [value_kind(r[i]) for r in body if i < len(r)]
        typed = [k for k in kinds if k in ("number", "date")]
        if kinds and len(typed) >= 0.8 * len([k for k in kinds if k != "empty"] or [1]):
            return True  # a typed column under a text first row
    # All text: a header's values are distinct and do not recur in their column.
    if len(set(first)) != len(first):
        return False
    return not any(first[i] == r[i] for r in body for i in range(min(len(first), len(r))))


def csv_encoding(dataset: Dataset, head: bytes) -> str:
    encoding = dataset.csv.encoding.lower()
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and encoding == "utf-8":
        encoding = "utf-16"
    return encoding


def sniff_csv(source: Path, dataset: Dataset, audit: LoadAudit, duck_encoding: str, compression: str | None) -> Dialect:
    sample = read_text_sample(source, compression, "utf-8" if duck_encoding == "utf-8" else "latin-1")
    dialect = sniff_dialect(sample, dataset)
    audit.delimiter, audit.quote, audit.header = dialect.delimiter, dialect.quote, dialect.header
    audit.error_codes.update(dialect.notes)
    audit.header = dialect.header or any(code.startswith("W_HEADER") for code in dialect.notes)
    return dialect


def csv_options(dataset: Dataset, dialect: Dialect, encoding: str, compression: str | None) -> dict:
    opts = dataset.csv
    options = {
        "delim": dialect.delimiter,
        "quote": dialect.quote,
        "escape": dialect.escape,
        "header": dialect.header,
        "skip": dialect.skip,
        "encoding": encoding,
        "max_line_size": max(opts.max_line_bytes, 1024),
        "nullstr": list(opts.null_values),
        "allow_quoted_nulls": opts.quoted_empty == "null",  # by default a quoted "" is the empty string
        "normalize_names": False,
        "compression": "gzip" if compression == "gzip" else "none",
    }
    if opts.comment:
        options["comment"] = opts.comment
    options["dateformat"] = opts.date_format or dialect.date_format
    if opts.timestamp_format:
        options["timestampformat"] = opts.timestamp_format
    return options


def sql_options(options: dict) -> str:
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


def target_names(dataset: Dataset, source_names: list[str]) -> list[str]:
    """Contract names for source headers (aliases applied), avoiding the meta columns."""
    aliases = dataset.alias_map()
    names = []
    for name in source_names:
        target = aliases.get(name.lower(), name)
        if target in META_COLUMNS:
            target = f"{target}_source"
        names.append(target)
    return _dedupe(names)
