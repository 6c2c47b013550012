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


@pytest.mark.parametrize("where", ["first", "late"])
@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"], ids=["straight", "staged"])
def test_undeclared_column_type_comes_from_the_whole_first_file(harness, tmp_path, encoding, where):
    """DuckDB's sampled sniff typed `n` BIGINT and quarantined a late '1.5' that would have made it
    DOUBLE near the top: the type now comes from every row, so the value loads wherever it sits."""
    rows = [f"{i},x\n" for i in range(30_000)]
    rows.insert(0 if where == "first" else len(rows), "1.5,late\n")
    dataset = simple_dataset(tmp_path, csv={"encoding": encoding})
    loaded = check(harness.load(harness.write("late.csv", "n,label\n" + "".join(rows), encoding=encoding), dataset), 30_001)
    assert (loaded.audit.phases.get("insert_s") is not None) == (encoding == "utf-8")  # which path ran
    assert loaded.audit.column_types["n"] == "DOUBLE" and loaded.raw_count == 30_001 and loaded.quarantine == []
    assert 1.5 in loaded.column("n")


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


PATHS = {"duckdb": ("n.csv", "duckdb"), "staged": ("n.csv", "duckdb"), "python": ("n.csv", "python"),
         "json": ("n.jsonl", "python-json")}


def numbers_file(path_kind: str, rows: list[tuple[str, str]]) -> tuple[str, bytes, dict]:
    """A file of (id, amount) text pairs on the given parser path, and the CSV options it needs."""
    name, _ = PATHS[path_kind]
    if path_kind == "json":
        text = "".join(f'{{"id": {i}, "amount": {a}}}\n' for i, a in rows)
        return name, text.encode(), {}
    text = "id,amount\n" + "".join(f"{i},{a}\n" for i, a in rows)
    if path_kind == "python":
        text += '99,"unterminated\n'
    return name, text.encode("cp1252" if path_kind == "staged" else "utf-8"), (
        {"encoding": "cp1252"} if path_kind == "staged" else {})


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "inferred"])
@pytest.mark.parametrize("path_kind", list(PATHS))
def test_numbers_out_of_range_are_quarantined_not_stored_as_infinity(harness, tmp_path, path_kind, declared):
    rows = [("1", "1.5"), ("2", "1e400"), ("3", "-1e400"), ("4", "2.5")]
    name, data, csv = numbers_file(path_kind, rows)
    columns = {"id": "bigint", "amount": "double"} if declared else None
    extra = 1 if path_kind == "python" else 0
    loaded = check(harness.load(harness.write(name, data), simple_dataset(tmp_path, columns, csv)), 4 + extra)
    assert loaded.audit.parser == PATHS[path_kind][1]
    assert values(loaded, "id", "amount") == [(1, 1.5), (4, 2.5)]
    out = [(q["source_row"], q["error_code"], q["column_name"]) for q in loaded.quarantine if q["error_code"] != "E_QUOTE"]
    assert out == [(2, "E_NUMERIC_RANGE", "amount"), (3, "E_NUMERIC_RANGE", "amount")]
    assert "out of range for DOUBLE" in loaded.quarantine[0]["message"]


@pytest.mark.parametrize("path_kind", list(PATHS))
def test_integer_past_int64_in_a_bigint_column_is_out_of_range(harness, tmp_path, path_kind):
    rows = [("1", "1"), ("99999999999999999999", "2"), ("-9223372036854775809", "3"), ("9223372036854775807", "4"),
            ("1.5", "5")]
    name, data, csv = numbers_file(path_kind, rows)
    extra = 1 if path_kind == "python" else 0
    dataset = simple_dataset(tmp_path, {"id": "bigint", "amount": "bigint"}, csv)
    loaded = check(harness.load(harness.write(name, data), dataset), 5 + extra)
    assert values(loaded, "id") == [(1,), (9223372036854775807,)]
    out = [(q["source_row"], q["error_code"], q["raw_value"]) for q in loaded.quarantine if q["error_code"] != "E_QUOTE"]
    assert out == [(2, "E_NUMERIC_RANGE", "99999999999999999999"), (3, "E_NUMERIC_RANGE", "-9223372036854775809"),
                   (5, "E_NUMERIC_FORMAT", "1.5")]
    assert "out of range for BIGINT" in loaded.quarantine[0]["message"]


@pytest.mark.parametrize("path_kind", ["duckdb", "staged", "python"])
@pytest.mark.parametrize("setting", [None, "string", "null"])
def test_quoted_empty_is_an_empty_string_and_unquoted_empty_is_null(harness, tmp_path, path_kind, setting):
    text = 'id,name,note\n1,"",a\n2,,b\n3,"x",""\n'
    if path_kind == "python":
        text += '4,"unterminated\n'
    csv = {"encoding": "cp1252"} if path_kind == "staged" else {}
    if setting:
        csv["quoted_empty"] = setting
    dataset = simple_dataset(tmp_path, {"id": "bigint", "name": "string", "note": "string"}, csv)
    loaded = check(harness.load(harness.write("e.csv", text), dataset), 3 + (path_kind == "python"))
    empty = None if setting == "null" else ""
    assert values(loaded, "id", "name", "note") == [(1, empty, "a"), (2, None, "b"), (3, "x", empty)]


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "inferred"])
def test_quoted_empty_in_a_typed_column_is_null_not_a_reason_for_text(harness, tmp_path, declared):
    """Exports that quote every field write "" for a missing number: NULL, and the column stays numeric."""
    text = 'id,amount,day,note\n"1","1.5","2026-01-01","a"\n"2","","","b"\n"3","3.5","2026-01-03",""\n'
    columns = {"id": "bigint", "amount": "double", "day": "date", "note": "string"} if declared else None
    loaded = check(harness.load(harness.write("q.csv", text), simple_dataset(tmp_path, columns)), 3)
    assert loaded.quarantine == []
    assert loaded.audit.column_types == {"id": "BIGINT", "amount": "DOUBLE", "day": "DATE", "note": "VARCHAR"}
    assert values(loaded, "amount", "note") == [(1.5, "a"), (None, "b"), (3.5, "")]
