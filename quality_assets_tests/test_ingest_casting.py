"""Types: strict integers, inferred types that never lose information."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from conftest import (
    simple_dataset,
)
from ingest_support import check, csv_text, values


@pytest.mark.parametrize("parser", ["duckdb", "python", "python-json"])
def test_inferred_types_never_lose_information(harness, tmp_path, parser):
    """Undeclared columns: 1.5 is not rounded into an integer column, '01234' keeps its zero."""
    rows = [["id", "ratio", "flag", "zip"], [1, "1.5", "true", "01234"], [2, "2", "false", "00501"], [3, "0.25", "true", "10115"]]
    if parser == "python-json":
        name, text = "r.jsonl", "".join(json.dumps(dict(zip(rows[0], r, strict=True))) + "\n" for r in rows[1:])
    else:
        name, text = "r.csv", csv_text(rows) + ('4,"x,1,1\n' if parser == "python" else "")
    loaded = check(harness.load(harness.write(name, text), simple_dataset(tmp_path)), 3 + (parser == "python"))
    assert loaded.audit.parser == parser
    assert values(loaded, "id", "ratio", "flag", "zip") == [
        (1, 1.5, True, "01234"), (2, 2.0, False, "00501"), (3, 0.25, True, "10115")]
    assert loaded.audit.column_types == {"id": "BIGINT", "ratio": "DOUBLE", "flag": "BOOLEAN", "zip": "VARCHAR"}


@pytest.mark.parametrize("path_kind", ["duckdb", "python", "json"])
def test_declared_integer_column_quarantines_non_whole_numbers(harness, tmp_path, path_kind):
    """DuckDB's own cast rounds '1.5' to 2 and reads '1_000' and '0x10': a declared bigint must not."""
    values_in = ["1", "1.5", "1_000", " 7 ", "", "0x10", "-3"]
    if path_kind == "json":
        text = "".join(json.dumps({"id": v or None, "n": i}) + "\n" for i, v in enumerate(values_in))
        name = "ids.jsonl"
    else:
        text = "id,n\n" + "".join(f"{v},{i}\n" for i, v in enumerate(values_in))
        if path_kind == "python":
            text += '99,"unterminated\n'  # sends the whole file to the record-by-record reader
        name = "ids.csv"
    records = len(values_in) + (1 if path_kind == "python" else 0)
    loaded = check(harness.load(harness.write(name, text), simple_dataset(tmp_path, {"id": "bigint", "n": "bigint"})), records)
    assert loaded.audit.parser == {"duckdb": "duckdb", "python": "python", "json": "python-json"}[path_kind]
    assert values(loaded, "id") == [(1,), (7,), (None,), (-3,)]
    bad = {row["raw_value"]: row for row in loaded.quarantine if row["error_code"] == "E_NUMERIC_FORMAT"}
    assert sorted(bad) == ["0x10", "1.5", "1_000"]
    assert all(row["column_name"] == "id" for row in bad.values())
    assert bad["1.5"]["source_row"] == 2


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"], ids=["straight", "staged"])
def test_undeclared_column_sniffed_as_integer_never_rounds_a_later_fraction(harness, tmp_path, encoding):
    """DuckDB types `n` BIGINT from its sample and would store the late '1.5' as 2: it is quarantined."""
    text = "n,label\n" + "".join(f"{i},x\n" for i in range(30_000)) + "1.5,late\n"
    dataset = simple_dataset(tmp_path, csv={"encoding": encoding})
    loaded = check(harness.load(harness.write("late.csv", text, encoding=encoding), dataset), 30_001)
    assert loaded.audit.column_types["n"] == "BIGINT" and loaded.raw_count == 30_000
    assert (loaded.audit.phases.get("insert_s") is not None) == (encoding == "utf-8")  # which path ran
    assert "late" not in loaded.column("label")
    [bad] = loaded.quarantine
    assert (bad["error_code"], bad["raw_value"], bad["source_row"], bad["column_name"]) == ("E_NUMERIC_FORMAT", "1.5", 30_001, "n")
    assert bad["raw_line"] == "1.5,late"


def test_json_iso_timestamps_are_inferred_as_timestamps_not_dates(harness, tmp_path):
    """TRY_CAST('2026-01-02T03:04:05' AS DATE) succeeds by dropping the time: not a date."""
    records = [{"id": 1, "at": "2026-01-02T03:04:05", "day": "2026-01-02", "mixed": "2026-01-02"},
               {"id": 2, "at": "2026-01-03 10:30:00", "day": "2026-01-03", "mixed": "2026-01-03T08:00:00"}]
    text = "".join(json.dumps(r) + "\n" for r in records)
    loaded = check(harness.load(harness.write("times.jsonl", text), simple_dataset(tmp_path)), 2)
    assert loaded.audit.column_types == {"id": "BIGINT", "at": "TIMESTAMP", "day": "DATE", "mixed": "TIMESTAMP"}
    assert values(loaded, "at", "day", "mixed") == [
        (dt.datetime(2026, 1, 2, 3, 4, 5), dt.date(2026, 1, 2), dt.datetime(2026, 1, 2)),
        (dt.datetime(2026, 1, 3, 10, 30), dt.date(2026, 1, 3), dt.datetime(2026, 1, 3, 8)),
    ]
