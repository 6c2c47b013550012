"""The columns of raw."<dataset>" the detectors read, and their kinds."""

from __future__ import annotations

from dataclasses import dataclass

from quality_assets.catalog import table_types
from quality_assets.warehouse import quote_ident

SYSTEM_COLUMNS = ("_partition_key", "_source_row", "_run_id", "_source_file")
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "FLOAT", "REAL", "DOUBLE", "DECIMAL")
INTEGER_TYPES = NUMERIC_TYPES[:9]
TEMPORAL_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS",
                  "TIMESTAMP_NS", "TIMESTAMPTZ")


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    db_type: str
    index: int

    @property
    def kind(self) -> str | None:
        base = self.db_type.split("(")[0].upper()
        if base in NUMERIC_TYPES:
            return "numeric"
        if base in TEMPORAL_TYPES:
            return "temporal"
        if base == "TIME":
            return "numeric_time"
        if base == "BOOLEAN":
            return "boolean"
        if base == "VARCHAR":
            return "string"
        return None

    @property
    def integer(self) -> bool:
        return self.db_type.split("(")[0].upper() in INTEGER_TYPES


def raw_columns(con, dataset: str, exclude: tuple[str, ...] = ()) -> tuple[list[ColumnInfo], bool]:
    """The data columns of raw."<dataset>" that can be scored, and whether it has _source_file."""
    types = table_types(con, "raw", dataset)
    names = set(types)
    columns = [ColumnInfo(name, type_, i) for i, (name, type_) in enumerate(types.items())
               if name not in SYSTEM_COLUMNS and name not in exclude]
    return [c for c in columns if c.kind], "_source_file" in names


def raw_table(dataset: str) -> str:
    return f"raw.{quote_ident(dataset)}"
