"""SQL from the contract: users' expressions (guarded to be one expression) and values as
literals of a column's type. Every identifier and value is quoted (`quote_ident`,
`quote_literal`)."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import duckdb

from quality_assets.vocabulary import is_numeric
from quality_assets.warehouse import quote_literal


class RuleSQLError(ValueError):
    """A rule that cannot be turned into SQL for this data (a bad value, a missing column)."""


class MissingColumn(RuleSQLError):
    """The rule names a column the data does not have."""


def _tokens(text: str) -> list[tuple[str, object]]:
    """DuckDB's tokens of an SQL text as (text, kind); DuckDB gives byte offsets."""
    data = text.encode("utf-8")
    found = duckdb.tokenize(text)
    return [
        (data[start:found[n + 1][0] if n + 1 < len(found) else len(data)].decode("utf-8", "replace").strip(), kind)
        for n, (start, kind) in enumerate(found)
    ]


def user_sql_problem(text: str) -> str | None:
    """Why a contract's SQL expression cannot run, or None: one expression, nothing else."""
    if not isinstance(text, str) or not text.strip():
        return "expected an SQL expression"
    try:
        tokens = _tokens(text)
    except Exception as exc:  # noqa: BLE001 - the tokenizer's own message is the best one
        return f"cannot read the expression: {exc}"
    operators = [piece for piece, kind in tokens if kind == duckdb.token_type.operator]
    lexed = _comment_or_open_quote(text)  # DuckDB 1.5 (the lake extra) drops these from its tokens
    if lexed:
        return lexed
    if any(";" in piece for piece in operators):
        return "';' is not allowed: a rule's SQL is one expression, not statements"
    if any(kind == duckdb.token_type.comment for _, kind in tokens):
        return "comments are not allowed in a rule's SQL"
    for piece, kind in tokens:
        if kind == duckdb.token_type.string_const and (len(piece) < 2 or piece[-1] != piece[0]):
            return "unterminated string literal"
        if kind == duckdb.token_type.identifier and piece.startswith('"') and (len(piece) < 2 or not piece.endswith('"')):
            return "unterminated quoted identifier"
    depth = 0
    for piece in operators:
        depth += piece.count("(") - piece.count(")")
        if depth < 0:
            return "unbalanced parentheses"
    if depth != 0:
        return "unbalanced parentheses"
    return None


def _comment_or_open_quote(text: str) -> str | None:
    """A comment, or a string literal or quoted identifier left open, found by scanning the text."""
    quote = None
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == quote and text[i + 1:i + 2] == quote:
                i += 2  # '' or "" inside: an escaped quote
                continue
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif text[i:i + 2] in ("--", "/*"):
            return "comments are not allowed in a rule's SQL"
        i += 1
    if quote == "'":
        return "unterminated string literal"
    if quote == '"':
        return "unterminated quoted identifier"
    return None


def user_expression(text: str) -> str:
    """A contract's SQL expression, checked, in parentheses."""
    problem = user_sql_problem(text)
    if problem:
        raise RuleSQLError(problem)
    return f"({text})"


def identifiers_in(text: str, columns: list[str]) -> list[str]:
    """The table's columns an SQL expression mentions (for showing failing rows)."""
    by_lower = {c.lower(): c for c in columns}
    found: list[str] = []
    try:
        tokens = _tokens(text)
    except Exception:  # noqa: BLE001 - only picks columns to show; the expression itself was checked before
        return found
    for piece, kind in tokens:
        if kind != duckdb.token_type.identifier and kind != duckdb.token_type.keyword:
            continue
        name = piece[1:-1].replace('""', '"') if piece.startswith('"') else piece.lower()
        column = name if name in columns else by_lower.get(name)
        if column and column not in found:
            found.append(column)
    return found


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def sql_literal(value: Any, column_type: str) -> str:
    """A contract value as an SQL literal of the column's type."""
    if value is None:
        return "NULL"
    column_type = column_type.upper()
    if is_numeric(column_type):
        if isinstance(value, bool):
            raise RuleSQLError(f"{value!r} is not a number (column is {column_type})")
        number = value
        if isinstance(value, str):
            try:
                number = int(value) if re.fullmatch(r"\s*[-+]?\d+\s*", value) else float(value)
            except ValueError:
                raise RuleSQLError(f"{value!r} is not a number (column is {column_type})") from None
        if not isinstance(number, (int, float)):
            raise RuleSQLError(f"{value!r} is not a number (column is {column_type})")
        if isinstance(number, float):
            if not math.isfinite(number):
                raise RuleSQLError(f"{value!r} is not a finite number")
            return f"CAST({number!r} AS DOUBLE)"
        return str(int(number))
    if column_type == "VARCHAR":
        return quote_literal(_text(value))
    return f"CAST({quote_literal(_text(value))} AS {column_type})"
