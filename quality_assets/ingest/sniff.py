"""The CSV dialect: delimiter, quote, header, column names and date format, sniffed from a sample
(contract options win), and the `read_csv` options that follow from it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path

from quality_assets.contract import Dataset
from quality_assets.ingest.audit import META_COLUMNS, LoadAudit
from quality_assets.ingest.scan import read_text_sample
from quality_assets.warehouse import quote_literal

CSV_DELIMITERS = (",", "\t", "|", ";")


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


def sniff_dialect(sample: str, dataset: Dataset) -> Dialect:
    """Pick delimiter and header from a text sample; contract options win."""
    opts = dataset.csv
    quote = opts.quote or '"'
    lines = sample.splitlines(keepends=True)
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample cut a record short
    text = "".join(lines[opts.skip_rows:])
    delimiter = opts.delimiter or _best_delimiter(text, quote)
    records = sample_records(text, delimiter, quote, limit=200)
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
    trailing_empty = bool(header and body) and all(len(r) == len(first) + 1 and r[-1] == "" for r in body)
    return Dialect(delimiter, quote, opts.escape or quote, header, names, _vote_date_format(body, names, dataset),
                   trailing_empty)


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
    for delimiter in CSV_DELIMITERS:
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


def csv_encoding(dataset: Dataset, head: bytes) -> str:
    encoding = dataset.csv.encoding.lower()
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and encoding == "utf-8":
        encoding = "utf-16"
    return encoding


def sniff_csv(source: Path, dataset: Dataset, audit: LoadAudit, duck_encoding: str, compression: str | None) -> Dialect:
    sample = read_text_sample(source, compression, "utf-8" if duck_encoding == "utf-8" else "latin-1")
    dialect = sniff_dialect(sample, dataset)
    audit.delimiter, audit.quote, audit.header = dialect.delimiter, dialect.quote, dialect.header
    return dialect


def csv_options(dataset: Dataset, dialect: Dialect, encoding: str, compression: str | None) -> dict:
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
