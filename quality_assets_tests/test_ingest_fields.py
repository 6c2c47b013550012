"""No silent misalignment: a record with more or fewer fields than the header is quarantined
(E_COLUMN_COUNT), empty surplus fields included, wherever it sits in the file, unless every
record ends with the same one empty field."""

from __future__ import annotations

import pytest
from conftest import simple_dataset
from ingest_support import ORDERS, check, values

from quality_assets.ingest.scan import scan_file

SURPLUS = {
    "one_empty_surplus": "2,b,2.5,",
    "two_empty_surplus": "2,b,2.5,,",
    "empty_surplus_after_an_empty_value": "2,b,,",
    "too_few": "2,b",
    "valued_surplus": "2,b,2.5,x",
}


@pytest.mark.parametrize("untyped", [False, True], ids=["declared", "sniffed"])
@pytest.mark.parametrize("line", list(SURPLUS.values()), ids=list(SURPLUS))
def test_record_with_surplus_or_missing_fields_is_quarantined(harness, tmp_path, line, untyped):
    text = f"id,name,amount\n1,a,1.5\n{line}\n3,c,\n"
    dataset = simple_dataset(tmp_path, None if untyped else ORDERS)
    loaded = check(harness.load(harness.write("f.csv", text), dataset), 3)
    assert [(q["source_row"], q["error_code"], q["raw_line"]) for q in loaded.quarantine] == [(2, "E_COLUMN_COUNT", line)]
    # The legitimate empty last field of record 3 still loads, as NULL.
    assert values(loaded, "_source_row", "name", "amount") == [(1, "a", 1.5), (3, "c", None)]


@pytest.mark.parametrize("where", ["in_the_sniff_sample", "far_beyond_it"])
def test_surplus_empty_field_is_found_wherever_it_sits(harness, tmp_path, where):
    n = 20_000  # about 400 KB: beyond the 256 KiB the sniffer reads
    bad = 3 if where == "in_the_sniff_sample" else n - 2
    lines = ["id,name,amount"] + [f"{i},n{i},{i}.5" + ("," if i == bad else "") for i in range(1, n + 1)]
    loaded = check(harness.load(harness.write("big.csv", "\n".join(lines) + "\n"), simple_dataset(tmp_path, ORDERS)), n)
    assert [(q["source_row"], q["error_code"]) for q in loaded.quarantine] == [(bad, "E_COLUMN_COUNT")]
    assert loaded.audit.rows_loaded == n - 1


def test_every_record_ending_with_one_empty_field_is_a_trailing_delimiter(harness, tmp_path):
    text = "id,name,amount\n1,a,1.5,\n2,b,2.5,\n3,c,,\n"
    loaded = check(harness.load(harness.write("t.csv", text), simple_dataset(tmp_path, ORDERS)), 3)
    assert loaded.quarantine == []
    assert values(loaded, "id", "name", "amount") == [(1, "a", 1.5), (2, "b", 2.5), (3, "c", None)]


def test_a_trailing_delimiter_on_some_records_only_is_not_guessed_away(harness, tmp_path):
    text = "id,name,amount\n1,a,1.5\n2,b,2.5,\n3,c,3.5\n4,d,4.5,\n"
    loaded = check(harness.load(harness.write("m.csv", text), simple_dataset(tmp_path, ORDERS)), 4)
    assert [(q["source_row"], q["error_code"]) for q in loaded.quarantine] == [(2, "E_COLUMN_COUNT"), (4, "E_COLUMN_COUNT")]


def test_record_by_record_reader_quarantines_surplus_empty_fields_too(harness, tmp_path):
    # The unterminated quote hands the file to the record-by-record reader.
    text = 'id,name,amount\n1,a,1.5\n2,b,2.5,\n3,"open,3.5\n4,d,4.5\n'
    loaded = check(harness.load(harness.write("q.csv", text), simple_dataset(tmp_path, ORDERS)), 4)
    assert loaded.audit.parser == "python"
    assert [(q["source_row"], q["error_code"]) for q in loaded.quarantine] == [(2, "E_COLUMN_COUNT"), (3, "E_QUOTE")]


def test_scan_counts_lines_ending_with_the_delimiter(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\n1,\n2,3\r\n4,\r\n")
    assert scan_file(path, delimiters=(",", ";")).ending_with == {",": 2, ";": 0}
    assert scan_file(path, chunk=3, delimiters=(",",)).ending_with == {",": 2}  # across block edges
