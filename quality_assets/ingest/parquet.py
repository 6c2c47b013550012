"""Parquet files staged through DuckDB's reader; a file that cannot be read is rejected whole.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from quality_assets.contract import Dataset
from quality_assets.ingest.audit import LoadAudit, first_line_of
from quality_assets.ingest.casting import cast_text_rows
from quality_assets.ingest.quarantine import reset_stage, whole_file_outcome
from quality_assets.ingest.sniff import target_names
from quality_assets.warehouse import quote_ident, quote_literal


def stage_parquet(con, source: Path, dataset: Dataset, audit: LoadAudit) -> dict[str, str]:
    audit.parser = "duckdb-parquet"
    reader = f"read_parquet({quote_literal(str(source))}, file_row_number = true)"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
    except duckdb.Error as exc:
        return whole_file_outcome(con, audit, "E_UNREADABLE", f"not a readable Parquet file: {first_line_of(exc)}", "rejected")
    sources = [row[0] for row in described if row[0] != "file_row_number"]
    targets = target_names(dataset, sources)
    select = ", ".join(f"{quote_ident(s)} AS {quote_ident(t)}" for s, t in zip(sources, targets, strict=True))
    con.execute(f"CREATE VIEW parquet_rows AS SELECT file_row_number + 1 AS _source_row, {select} FROM {reader}")
    try:
        return cast_text_rows(con, dataset, targets, table="parquet_rows")
    except duckdb.Error as exc:  # the footer reads but a data page does not
        reset_stage(con)
        return whole_file_outcome(con, audit, "E_UNREADABLE", f"not a readable Parquet file: {first_line_of(exc)}", "rejected")
