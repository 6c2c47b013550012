"""The contract's vocabulary shared by the contract parser and the stages: column type names
and durations. A leaf module, so that the contract and the rule kinds both use it without
importing each other."""

from __future__ import annotations

import re

# Contract type name -> DuckDB type.
COLUMN_TYPES = {
    "integer": "BIGINT",
    "int": "BIGINT",
    "bigint": "BIGINT",
    "smallint": "SMALLINT",
    "float": "DOUBLE",
    "double": "DOUBLE",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "datetime": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "time": "TIME",
    "string": "VARCHAR",
    "text": "VARCHAR",
    "varchar": "VARCHAR",
}
DECIMAL_TYPE = re.compile(r"^decimal\((\d{1,2}),\s*(\d{1,2})\)$")
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "UHUGEINT")
NUMERIC_TYPES = (*INTEGER_TYPES, "FLOAT", "DOUBLE", "REAL")


def duckdb_type(type_name: str) -> str | None:
    """Contract type name -> DuckDB type, or None when unknown."""
    name = type_name.strip().lower()
    if name in COLUMN_TYPES:
        return COLUMN_TYPES[name]
    match = DECIMAL_TYPE.match(name)
    if match and int(match.group(2)) <= int(match.group(1)) <= 38:
        return f"DECIMAL({match.group(1)},{match.group(2)})"
    return None


def is_numeric(column_type: str) -> bool:
    t = column_type.upper()
    return t in NUMERIC_TYPES or t.startswith("DECIMAL")


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")


def parse_duration(text: str) -> float | None:
    """'36h' -> seconds, None when not a duration."""
    match = DURATION.match(text)
    if not match:
        return None
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return float(match.group(1)) * scale
