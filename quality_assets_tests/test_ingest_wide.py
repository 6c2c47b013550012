"""Wide files: thousands of columns load without expression-depth limits, with their audit row."""

from __future__ import annotations

import duckdb
import pytest
from conftest import simple_dataset
from ingest_support import check


def wide_text(columns: int, rows: int, bad_at: int | None = None) -> str:
    names = [f"{'ifs'[c % 3]}{c}" for c in range(columns)]
    lines = [",".join(names)]
    for r in range(rows):
        values = [str(r + c) if c % 3 == 0 else f"{r + c}.5" if c % 3 == 1 else f"t{r}" for c in range(columns)]
        if r == bad_at:
            values[3 * (columns // 6)] = "x"  # a word in an integer column
        lines.append(",".join(values))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"], ids=["straight", "staged"])
def test_a_file_with_1200_columns_loads_and_is_audited(harness, tmp_path, encoding):
    declared = simple_dataset(tmp_path, {f"i{c}": "bigint" for c in range(0, 1200, 3)}, {"encoding": encoding})
    loaded = check(harness.load(harness.write("w.csv", wide_text(1200, 50, bad_at=7), encoding=encoding), declared), 50)
    assert loaded.audit.rows_loaded == 49 and len(loaded.audit.columns) == 1200
    assert [(q["source_row"], q["error_code"]) for q in loaded.quarantine] == [(8, "E_NUMERIC_FORMAT")]
    assert harness.audits("ds", "w.csv")[0]["status"] == "loaded_with_errors"


@pytest.mark.slow
def test_2000_columns_by_10000_rows_load_within_the_memory_limit(harness, tmp_path):
    harness.warehouse.memory_limit = "1GB"
    loaded = harness.load(harness.write("w.csv", wide_text(2000, 10_000, bad_at=5_000)), simple_dataset(tmp_path))
    assert (loaded.audit.rows_read, loaded.audit.rows_loaded) == (10_000, 10_000)  # 'x' makes its column text
    assert loaded.audit.column_types["i999"] == "VARCHAR" and loaded.audit.column_types["i3"] == "BIGINT"


def test_a_load_that_runs_out_of_memory_keeps_an_audit_row(harness, tmp_path):
    harness.warehouse.memory_limit = "2MB"  # far too little for 2,000 columns
    with pytest.raises(duckdb.OutOfMemoryException):
        harness.load(harness.write("w.csv", wide_text(2000, 300)), simple_dataset(tmp_path))
    harness.warehouse.memory_limit = "512MB"
    [audit] = harness.audits("ds", "w.csv")
    assert (audit["status"], audit["error_codes"]) == ("failed", {"E_OUT_OF_MEMORY": 1})
    assert "QA_DUCKDB_MEMORY_LIMIT" in audit["message"]
