"""Source row numbers: multi-line records, blank lines, line-break kinds, preambles, file order."""

from __future__ import annotations

import pytest
from conftest import (
    simple_dataset,
)
from ingest_support import ORDERS, check, values


def test_source_rows_on_the_duckdb_path_with_multiline_records(harness, tmp_path):
    text = 'id,name,amount\n1,"a\nb\nc",1.5\n2,b,x\n3,"c\nd",3.5\n4,d\n5,e,5.5\n'
    loaded = check(harness.load(harness.write("m.csv", text), simple_dataset(tmp_path, ORDERS)), 5)
    assert loaded.audit.parser == "duckdb"
    assert values(loaded, "_source_row", "id") == [(1, 1), (3, 3), (5, 5)]
    assert [q["source_row"] for q in loaded.quarantine] == [2, 4]


@pytest.mark.parametrize("lineterminator", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_blank_lines_do_not_shift_source_rows(harness, tmp_path, lineterminator):
    lines = ["id,name,amount", "1,a,1.5", "", "2,b,x", "3,c,3.5", "", "", "4,d", "5,e,5.5", ""]
    text = lineterminator.join(lines) + lineterminator
    loaded = check(harness.load(harness.write("blank.csv", text), simple_dataset(tmp_path, ORDERS)), 5)
    assert values(loaded, "_source_row", "id") == [(1, 1), (3, 3), (5, 5)]
    assert [(q["source_row"], q["raw_line"]) for q in loaded.quarantine] == [(2, "2,b,x"), (4, "4,d")]


@pytest.mark.parametrize("parser", ["duckdb", "python"])
def test_old_mac_line_breaks(harness, tmp_path, parser):
    """A lone CR ends a line (old Excel for Mac exports): nothing is read as one giant line."""
    second = '2,"b,x' if parser == "python" else "2,b,x"
    text = "\r".join(["id,name,amount", "1,a,1.5", second, "3,c,3.5", "4,d", "5,e,5.5"]) + "\r"
    loaded = check(harness.load(harness.write("mac.csv", text), simple_dataset(tmp_path, ORDERS)), 5)
    assert loaded.audit.parser == parser
    assert values(loaded, "_source_row", "id") == [(1, 1), (3, 3), (5, 5)]
    assert [(q["source_row"], q["raw_line"]) for q in loaded.quarantine] == [(2, second), (4, "4,d")]


@pytest.mark.parametrize("text, loaded_rows, quarantined_rows", [
    ("id,name,amount\n1,a,1.5\r\n2,b,x\n3,c,3.5\n4,d\n5,e,5.5\n", [1, 3, 5], [(2, "2,b,x"), (4, "4,d")]),
    ("id,name,amount\n|\n,\r\n;2.5", [], [(1, "|"), (2, ","), (3, ";2.5")]),  # DuckDB counted 1, 2, 4
], ids=["crlf_in_lf_file", "only_rejects"])
def test_mixed_line_breaks_do_not_shift_source_rows(harness, tmp_path, text, loaded_rows, quarantined_rows):
    expected = len(loaded_rows) + len(quarantined_rows)
    loaded = check(harness.load(harness.write("mixed.csv", text), simple_dataset(tmp_path, ORDERS)), expected)
    assert [row["_source_row"] for row in loaded.raw] == loaded_rows
    assert [(q["source_row"], q["raw_line"]) for q in loaded.quarantine] == quarantined_rows


def test_crlf_raw_lines_carry_no_line_breaks(harness, tmp_path):
    text = "id,name,amount\r\n1,a,1.5\r\n2,b\r\n3,c,x\r\n"
    loaded = check(harness.load(harness.write("crlf.csv", text), simple_dataset(tmp_path, ORDERS)), 3)
    assert [q["raw_line"] for q in loaded.quarantine] == ["2,b", "3,c,x"]
    assert loaded.quarantine[1]["raw_value"] == "x"


def test_skip_rows_before_the_header(harness, tmp_path):
    text = "exported by shop v2\nat 2024-01-01\nid,name,amount\n1,a,1.5\n2,b,x\n3,c,3.5\n"
    dataset = simple_dataset(tmp_path, ORDERS, csv={"skip_rows": 2})
    loaded = check(harness.load(harness.write("s.csv", text), dataset), 3)
    assert values(loaded, "_source_row", "id") == [(1, 1), (3, 3)]
    assert (loaded.quarantine[0]["source_row"], loaded.quarantine[0]["line"]) == (2, 5)


@pytest.mark.parametrize("parser", ["duckdb", "python"])
def test_source_rows_of_a_larger_file_follow_the_file_order(harness, tmp_path, parser):
    n = 60_000
    lines = ["id,name,amount"]
    for i in range(1, n + 1):
        lines.append(f"{i},n{i}" if i % 7919 == 0 else f"{i},n{i},{'bad' if i % 10007 == 0 else i}")
    quote_error = n // 2
    if parser == "python":
        lines[quote_error] = f'{quote_error},"unterminated,1'  # lines[k] is record k
    text = "\n".join(lines) + "\n"
    harness.warehouse.threads = 4
    loaded = check(harness.load(harness.write("big.csv", text), simple_dataset(tmp_path, ORDERS)), n)
    assert loaded.audit.parser == parser
    assert all(row["_source_row"] == row["id"] for row in loaded.raw)
    bad = {q["source_row"] for q in loaded.quarantine}
    expected = {i for i in range(1, n + 1) if i % 7919 == 0 or i % 10007 == 0}
    if parser == "python":
        expected.add(quote_error)
    assert bad == expected
