"""Kinds judged on one column's values, row by row: not null, accepted values, range, regex,
length, type."""

from __future__ import annotations

from quality_assets.rules.kind import Plan, RowKind, bounds_problems, register
from quality_assets.rules.sql import RuleSQLError, sql_literal
from quality_assets.vocabulary import INTEGER_TYPES, duckdb_type
from quality_assets.warehouse import quote_literal

STRICT_INTEGER = r"^\s*[-+]?[0-9]+\s*$"


@register
class NotNull(RowKind):
    name = "not_null"

    def describe(self, params: dict) -> str:
        return f"{params['column']} is never null"

    def fail(self, plan: Plan, col: str, col_type: str, published: dict) -> str:
        return f"{col} IS NULL"


@register
class AcceptedValues(RowKind):
    name = "accepted_values"
    params = {"column": "column", "values": "values"}
    required = ("column", "values")

    def describe(self, params: dict) -> str:
        return f"{params['column']} in {params['values']}"

    def fail(self, plan: Plan, col: str, col_type: str, published: dict) -> str:
        literals = [sql_literal(v, col_type) for v in plan.rule.params["values"] if v is not None]
        plan.literals.extend(literals)
        return f"{col} IS NOT NULL AND {col} NOT IN ({', '.join(literals)})" if literals else f"{col} IS NOT NULL"


@register
class Range(RowKind):
    name = "range"
    params = {"column": "column", "min": "bound", "max": "bound", "inclusive": "flag"}

    def check(self, params: dict):
        return bounds_problems(self, params)

    def describe(self, params: dict) -> str:
        low, high = params.get("min"), params.get("max")
        op = "<=" if params.get("inclusive", True) else "<"
        return " ".join(x for x in (f"{low} {op}" if low is not None else "", params["column"],
                                     f"{op} {high}" if high is not None else "") if x)

    def fail(self, plan: Plan, col: str, col_type: str, published: dict) -> str:
        p = plan.rule.params
        low_op, high_op = (">=", "<=") if p.get("inclusive", True) else (">", "<")
        numeric_bounds = all(isinstance(p.get(b), (int, float)) and not isinstance(p.get(b), bool)
                             for b in ("min", "max") if p.get(b) is not None)
        subject, subject_type = col, col_type
        if col_type == "VARCHAR" and numeric_bounds:
            subject, subject_type = f"TRY_CAST({col} AS DOUBLE)", "DOUBLE"  # text that is not a number fails
        conditions = []
        for bound, op in (("min", low_op), ("max", high_op)):
            if p.get(bound) is not None:
                literal = sql_literal(p[bound], subject_type)
                plan.literals.append(literal)
                conditions.append(f"{subject} {op} {literal}")
        if not conditions:
            raise RuleSQLError("range needs min or max")
        return f"{col} IS NOT NULL AND NOT coalesce({' AND '.join(conditions)}, false)"


@register
class Regex(RowKind):
    name = "regex"
    params = {"column": "column", "pattern": "regex"}
    required = ("column", "pattern")

    def describe(self, params: dict) -> str:
        return f"{params['column']} matches {params['pattern']}"

    def fail(self, plan: Plan, col: str, col_type: str, published: dict) -> str:
        pattern = quote_literal(plan.rule.params["pattern"])
        plan.literals.append(f"regexp_matches('', {pattern})")  # RE2 must accept the pattern
        return f"{col} IS NOT NULL AND NOT regexp_matches(CAST({col} AS VARCHAR), {pattern})"


@register
class Length(RowKind):
    name = "length"
    params = {"column": "column", "min": "count", "max": "count"}

    def check(self, params: dict):
        return bounds_problems(self, params)

    def describe(self, params: dict) -> str:
        return f"length of {params['column']} in [{params.get('min', 0)}, {params.get('max', '∞')}]"

    def fail(self, plan: Plan, col: str, col_type: str, published: dict) -> str:
        p = plan.rule.params
        conditions = []
        if p.get("min") is not None:
            conditions.append(f"length(CAST({col} AS VARCHAR)) >= {int(p['min'])}")
        if p.get("max") is not None:
            conditions.append(f"length(CAST({col} AS VARCHAR)) <= {int(p['max'])}")
        if not conditions:
            raise RuleSQLError("length needs min or max")
        return f"{col} IS NOT NULL AND NOT ({' AND '.join(conditions)})"


@register
class Type(RowKind):
    name = "type"
    params = {"column": "column", "type": "type"}
    required = ("column", "type")

    def describe(self, params: dict) -> str:
        return f"{params['column']} is a {params['type']}"

    def fail(self, plan: Plan, col: str, col_type: str, published: dict) -> str:
        target = duckdb_type(plan.rule.params["type"])
        if target is None:
            raise RuleSQLError(f"unknown type {plan.rule.params['type']!r}")
        if target in INTEGER_TYPES and col_type not in INTEGER_TYPES:
            # DuckDB rounds '1.5' to 2 when casting text to an integer; a whole number is asked for
            return (f"{col} IS NOT NULL AND (TRY_CAST({col} AS {target}) IS NULL "
                    f"OR NOT regexp_matches(CAST({col} AS VARCHAR), {quote_literal(STRICT_INTEGER)}))")
        return f"{col} IS NOT NULL AND TRY_CAST({col} AS {target}) IS NULL"
