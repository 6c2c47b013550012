"""The contract's fixed-shape blocks as pydantic models: a dataset's `landing`, `csv` and `daily`
blocks and a column's settings. Each field says what it accepts, in the words the contract
reports; `validate_block` turns every error into a line-numbered problem, all at once, and keeps
the valid fields so that the checks after it still run."""

from __future__ import annotations

import codecs
import datetime as dt
import re
import zoneinfo
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from quality_assets.contract.lines import Problems, line_at
from quality_assets.vocabulary import COLUMN_TYPES, duckdb_type

STRFTIME = "expected a strftime pattern such as '%d/%m/%Y'"


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # what a missing required field is reported as, and what stands in for it meanwhile
    MISSING: ClassVar[dict[str, str]] = {}
    FALLBACK: ClassVar[dict[str, Any]] = {}


def validate_block(model: type[Block], spec: dict, where: str, problems: Problems, line: int | None = None) -> Block:
    """The block, its problems added to `problems` (`where.field: message` at the field's line; an
    unknown key at the key's line); with problems, the block of its valid fields."""
    try:
        return model.model_validate(spec)
    except ValidationError as exc:
        bad = set()
        for error in exc.errors():
            key = str(error["loc"][0])
            bad.add(key)
            at = line_at(spec, key) or line
            if error["type"] == "extra_forbidden":
                allowed = ", ".join(sorted(model.model_fields))
                problems.add(at, where, f"unknown key {key!r} (expected one of: {allowed})")
            elif error["type"] == "missing":
                problems.add(at, f"{where}.{key}", model.MISSING.get(key, "required"))
            else:
                problems.add(at, f"{where}.{key}", error["msg"].removeprefix("Value error, "))
        kept = {k: v for k, v in spec.items() if k not in bad}
        return model.model_validate({**{k: v for k, v in model.FALLBACK.items() if k not in kept}, **kept})


def _strftime(value: Any) -> str:
    if not isinstance(value, str) or "%" not in value:
        raise ValueError(STRFTIME)
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


class Landing(Block):
    """`landing:` as a mapping (a plain folder path is its `path`)."""

    path: str
    glob: str = "*"
    recursive: bool = False
    MISSING: ClassVar[dict[str, str]] = {"path": "required: the folder files land in"}

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("required: the folder files land in")
        return value

    @field_validator("glob", mode="before")
    @classmethod
    def _glob(cls, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError("expected a glob pattern such as '*.csv'")
        return value

    _recursive = field_validator("recursive", mode="before")(_flag)


class CsvOptions(Block):
    delimiter: str | None = None
    quote: str | None = None
    escape: str | None = None
    header: bool | None = None
    encoding: str = "utf-8"
    null_values: tuple[str, ...] = ("",)
    max_line_bytes: int = 2 * 1024 * 1024
    date_format: str | None = None
    timestamp_format: str | None = None
    skip_rows: int = 0
    comment: str | None = None
    quoted_empty: str = "string"  # a quoted "" field: the empty string, or "null" like an unquoted empty one

    @field_validator("delimiter", "quote", "escape", "comment", mode="before")
    @classmethod
    def _single_character(cls, value: Any, info) -> str:
        if info.field_name == "delimiter" and value == "\\t":
            value = "\t"
        if not (isinstance(value, str) and len(value) == 1 and value not in "\r\n"):
            raise ValueError(f"expected a single character, got {value!r}")
        return value

    _header = field_validator("header", mode="before")(_flag)
    _formats = field_validator("date_format", "timestamp_format", mode="before")(_strftime)

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding(cls, value: Any) -> str:
        try:
            codecs.lookup(str(value))
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return str(value).lower()

    @field_validator("null_values", mode="before")
    @classmethod
    def _null_values(cls, value: Any) -> tuple[str, ...]:
        if isinstance(value, (str, tuple)):
            value = [value] if isinstance(value, str) else list(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of strings")
        return tuple(value)

    @field_validator("max_line_bytes", "skip_rows", mode="before")
    @classmethod
    def _count(cls, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError("expected a non-negative whole number")
        return value

    @field_validator("quoted_empty", mode="before")
    @classmethod
    def _quoted_empty(cls, value: Any) -> str:
        value = "null" if value is None else value  # YAML reads null as None
        if value not in ("string", "null"):
            raise ValueError("expected string or null")
        return value


class DailySpec(Block):
    """`partitioning: daily`: one partition per day, the day taken from the file name or a column."""

    start: str  # first partition, YYYY-MM-DD
    file_pattern: str | None = None  # regex searched in the file's relative path; group 'date' or 1
    date_format: str | None = None  # how the file name writes the date; None: %Y%m%d or %Y-%m-%d
    column: str | None = None  # or: the date/timestamp column that assigns rows to days
    timezone: str = "UTC"
    schedule: str = "01:00"  # time of day the schedule processes the previous day
    MISSING: ClassVar[dict[str, str]] = {"start": "expected the first day as YYYY-MM-DD, got None"}
    FALLBACK: ClassVar[dict[str, Any]] = {"start": "1970-01-01"}

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> str:
        try:
            return dt.date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise ValueError(f"expected the first day as YYYY-MM-DD, got {value!r}") from None

    @field_validator("file_pattern", mode="before")
    @classmethod
    def _file_pattern(cls, value: Any) -> str | None:
        if value is None:
            return None
        try:
            compiled = re.compile(str(value))
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        if compiled.groups == 0:
            raise ValueError("needs a group around the date, e.g. 'orders_(?P<date>\\d{8})'")
        return str(value)

    @field_validator("date_format", mode="before")
    @classmethod
    def _date_format(cls, value: Any) -> str:
        if not isinstance(value, str) or "%" not in value:
            raise ValueError("expected a strftime pattern such as '%Y%m%d'")
        return value

    @field_validator("column", mode="before")
    @classmethod
    def _column(cls, value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise ValueError(f"expected a column name, got {value!r}")
        return value

    @field_validator("timezone", mode="before")
    @classmethod
    def _timezone(cls, value: Any) -> str:
        try:
            zoneinfo.ZoneInfo(str(value))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return str(value)

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> str:
        if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", str(value)):
            raise ValueError(f"expected a time of day HH:MM, got {str(value)!r}")
        return str(value)


class ColumnSpec(Block):
    """A column's settings (a bare type name is its `type`)."""

    type: str | None = None  # the DuckDB type
    aliases: tuple[str, ...] = ()
    description: str = ""
    format: str | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> str | None:
        if value is None:
            return None
        db_type = duckdb_type(str(value))
        if db_type is None:
            raise ValueError(f"unknown type {value!r} (expected one of: {', '.join(sorted(set(COLUMN_TYPES)))}, "
                             "decimal(p,s))")
        return db_type

    @field_validator("aliases", mode="before")
    @classmethod
    def _aliases(cls, value: Any) -> tuple[str, ...]:
        if isinstance(value, (str, tuple)):
            value = [value] if isinstance(value, str) else list(value)
        if not isinstance(value, list) or not all(isinstance(a, str) and a for a in value):
            raise ValueError("expected a list of source header names")
        return tuple(value)

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, value: Any) -> str:
        return str(value)

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, value: Any) -> str | None:
        return None if value is None else _strftime(value)
