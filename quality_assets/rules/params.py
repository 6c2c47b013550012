"""A rule parameter's checks by its declared type (`Kind.params`): what the contract reports for a
wrong value, so that the evaluator can rely on the rest."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator

from quality_assets.rules.sql import user_sql_problem
from quality_assets.vocabulary import duckdb_type, parse_duration

SCALARS = (str, int, float, bool, dt.date, type(None))
COMPARE_OPS = ("<", "<=", "=", "==", "!=", "<>", ">=", ">")

# Each check: (params, key, the dataset's declared columns) -> problems
def _text(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    if not isinstance(params[key], str):
        yield f"{key}: expected text, got {params[key]!r}"


def _column(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    value = params[key]
    if not isinstance(value, str):
        yield f"{key}: expected text, got {value!r}"
    elif columns and value not in columns:
        yield f"unknown column {value!r}"


def _columns(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    value = params[key]
    if isinstance(value, str):
        value = params[key] = [value]  # shorthand: one column
    if not (isinstance(value, list) and all(isinstance(c, str) for c in value)):
        yield f"{key}: expected a column name or a list of them, got {value!r}"
    if columns and isinstance(value, list):
        yield from (f"unknown column {c!r}" for c in value if isinstance(c, str) and c not in columns)


def _column_list(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    value = params[key]
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        yield f"{key}: expected a list of column names"


def _sql(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    if not isinstance(params[key], str):
        yield f"{key}: expected text, got {params[key]!r}"
    elif problem := user_sql_problem(params[key]):
        yield f"{key}: {problem}"


def _regex(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    if not isinstance(params[key], str):
        yield f"{key}: expected text, got {params[key]!r}"
        return
    try:
        re.compile(params[key])
    except re.error as exc:
        yield f"invalid regular expression: {exc}"


def _type(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    if not isinstance(params[key], str):
        yield f"{key}: expected text, got {params[key]!r}"
    elif duckdb_type(params[key]) is None:
        yield f"unknown type {params[key]!r}"


def _types(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    if not isinstance(params[key], dict):
        yield f"{key}: expected a mapping of column name to type"
        return
    for name, type_name in params[key].items():
        if duckdb_type(str(type_name)) is None:
            yield f"{key}.{name}: unknown type {type_name!r}"


def _duration(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    if params[key] is not None and parse_duration(str(params[key])) is None:
        yield f"{key}: expected a duration such as '36h', '2d' or '90m', got {params[key]!r}"


def _bound(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    value = params[key]
    if value is not None and (isinstance(value, (bool, list, dict)) or not isinstance(value, SCALARS)):
        yield f"{key}: expected a number, a date or a text value, got {value!r}"


def _count(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    value = params[key]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        yield f"{key}: expected a whole number >= 0, got {value!r}"


def _share(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    value = params[key]
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        yield f"{key}: expected a share such as 0.3 (30%), got {value!r}"


def _flag(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    if not isinstance(params[key], bool):
        yield f"{key}: expected true or false"


def _values(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    if not isinstance(params[key], list):
        yield f"{key}: expected a list"
        return
    yield from (f"{key}: expected plain values, got {v!r}" for v in params[key] if not isinstance(v, SCALARS))


def _value(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    if not isinstance(params[key], SCALARS) or params[key] is None:
        yield f"{key}: expected a column name or a value, got {params[key]!r}"


def _op(params: dict, key: str, columns: set[str]) -> Iterator[str]:
    if params[key] not in COMPARE_OPS:
        yield f"{key} must be one of {', '.join(COMPARE_OPS)}"


PARAM_CHECKS: dict[str, Callable[[dict, str, set[str]], Iterator[str]]] = {
    "text": _text, "dataset": _text, "column": _column, "columns": _columns, "column_list": _column_list,
    "sql": _sql, "regex": _regex, "type": _type, "types": _types, "duration": _duration, "bound": _bound,
    "count": _count, "share": _share, "flag": _flag, "values": _values, "value": _value, "op": _op,
}
