"""`json`: every value of a column parses as JSON (DuckDB's built-in json extension, no download)."""

from __future__ import annotations

from quality_assets.rules.kind import Plan, RowKind, register


@register
class Json(RowKind):
    name = "json"

    def describe(self, params: dict) -> str:
        return f"{params['column']} holds JSON"

    def fail(self, plan: Plan, col: str, col_type: str, published: dict) -> str:
        return f"{col} IS NOT NULL AND NOT json_valid(CAST({col} AS VARCHAR))"
