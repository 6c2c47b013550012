"""The CSV dialect sniffer: delimiter, header, declared names, preambles, date formats."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import (
    simple_dataset,
)
from ingest_support import check, csv_text, values

from quality_assets.ingest import sniff_dialect


def sniff(tmp_path: Path, sample: str, columns: dict | None = None, csv_options: dict | None = None):
    return sniff_dialect(sample, simple_dataset(tmp_path, columns, csv_options))


@pytest.mark.parametrize("delimiter", [",", "\t", "|", ";"])
def test_sniff_delimiter(tmp_path, delimiter):
    sample = csv_text([["a", "b", "c"], [1, "x,y" if delimiter != "," else "x;y", 3], [4, 5, 6]], delimiter)
    dialect = sniff(tmp_path, sample)
    assert (dialect.delimiter, dialect.header, dialect.names) == (delimiter, True, ["a", "b", "c"])


def test_sniff_prefers_the_consistent_delimiter_over_the_frequent_one(tmp_path):
    sample = "name;note\nSmith, John;a, b, c\nDoe, Jane;x\nRoe;y, z\n"
    assert sniff(tmp_path, sample).delimiter == ";"


@pytest.mark.parametrize("sample, header", [
    ("id,name\n1,a\n2,b\n", True),
    ("1,a\n2,b\n", False),
    ("2024-01-01,a\n2024-01-02,b\n", False),
    ("name,city\nAna,Lisbon\nBo,Oslo\n", True),
    ("Ana,Lisbon\nBo,Oslo\n", True),  # all text, distinct and not recurring: taken as a header (ambiguous)
    ("Ana,Lisbon\nBo,Lisbon\n", False),  # a first-row value recurs in its column: data
    ("yes,no\nyes,no\n", False),  # first row recurs in the body: data
    ("id,name\n", True),
])
def test_sniff_header(tmp_path, sample, header):
    assert sniff(tmp_path, sample).header is header


def test_sniff_header_from_declared_names(tmp_path):
    dialect = sniff(tmp_path, "name,city\nid,name\n", {"name": "string", "city": "string"})
    assert dialect.header is True and dialect.names == ["name", "city"]


def test_sniff_without_header_uses_declared_names_then_positions(tmp_path):
    dialect = sniff(tmp_path, "1,a,x,y\n2,b,x,z\n", {"id": "bigint", "name": "string"})
    assert dialect.header is False
    assert dialect.names == ["id", "name", "column3", "column4"]


def test_sniff_contract_options_win(tmp_path):
    dialect = sniff(tmp_path, "a|b\n1|2\n", None, {"delimiter": ",", "header": False, "quote": "'", "escape": "\\"})
    assert (dialect.delimiter, dialect.header, dialect.quote, dialect.escape) == (",", False, "'", "\\")
    assert dialect.names == ["column1"]


def test_sniff_skips_preamble_rows(tmp_path):
    dialect = sniff(tmp_path, "report of 2024-01-01\n\nid;name\n1;a\n", None, {"skip_rows": 2})
    assert (dialect.delimiter, dialect.names) == (";", ["id", "name"])


def test_sniff_ignores_a_record_cut_off_by_the_sample(tmp_path):
    dialect = sniff(tmp_path, 'a,b,c\n1,2,3\n4,"5\n6', None)
    assert (dialect.delimiter, dialect.names) == (",", ["a", "b", "c"])


def test_sniff_blank_header_names_and_duplicates(tmp_path):
    assert sniff(tmp_path, "id,,id,Id\n1,2,3,4\n").names == ["id", "column2", "id_1", "Id_2"]


@pytest.mark.parametrize("values_, fmt", [
    (["31/01/2024", "15/02/2024", "01/03/2024"], "%d/%m/%Y"),
    (["01/31/2024", "02/15/2024", "03/01/2024"], "%m/%d/%Y"),
    (["2024-01-31", "2024-02-15"], "%Y-%m-%d"),
    (["31.01.2024", "oops", "01.02.2024"], "%d.%m.%Y"),
])
def test_sniff_votes_the_date_format_of_declared_date_columns(tmp_path, values_, fmt):
    sample = "id,day\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values_))
    assert sniff(tmp_path, sample, {"id": "bigint", "day": "date"}).date_format == fmt


def test_voted_date_format_also_applies_on_the_python_path(harness, tmp_path):
    text = 'id,day\n1,31/01/2024\n2,"15/02/2024\n3,01/03/2024\n4,02/03/2024\n'
    loaded = check(harness.load(harness.write("d.csv", text), simple_dataset(tmp_path, {"id": "bigint", "day": "date"})), 4)
    assert loaded.audit.parser == "python"
    assert loaded.codes() == ["E_QUOTE"]
    assert [str(d) for d in loaded.column("day")] == ["2024-01-31", "2024-03-01", "2024-03-02"]


def body(n: int = 20, delimiter: str = ",", quote: str = "") -> str:
    return "".join(delimiter.join(f"{quote}{v}{quote}" for v in (str(i), f"name{i}", f"{i}.5")) + "\n"
                   for i in range(1, n + 1))


@pytest.mark.parametrize("header_line, names, note", [
    ("id;name;amount", ["id", "name", "amount"], "W_HEADER_RESPLIT"),  # a ; header over a , body
    ("id name amount", ["id", "name", "amount"], "W_HEADER_RESPLIT"),  # space separated
    ('id,"name,amount', ["id", "name", "amount"], "W_HEADER_RESPLIT"),  # a stray quote merging names
    ('id,"name amount', ["column_1", "column_2", "column_3"], "W_HEADER_POSITIONAL"),  # and a missing delimiter
    ("id,name,amount,", ["id", "name", "amount"], None),  # a trailing delimiter on the header only
    ("id,name", ["column_1", "column_2", "column_3"], "W_HEADER_POSITIONAL"),  # a name missing
])
def test_damaged_header_is_recovered_and_every_row_loads(harness, tmp_path, header_line, names, note):
    loaded = check(harness.load(harness.write("h.csv", header_line + "\n" + body()), simple_dataset(tmp_path)), 20)
    assert loaded.audit.columns == names and loaded.quarantine == []
    assert (note in loaded.audit.error_codes) if note else not loaded.audit.error_codes
    assert [row[names[0]] for row in loaded.raw] == list(range(1, 21))


def test_preamble_lines_are_skipped_and_counted(harness, tmp_path):
    text = "Sales export\nGenerated 2026-01-31 by the ERP\n\nid,name,amount\n" + body()
    loaded = check(harness.load(harness.write("p.csv", text), simple_dataset(tmp_path)), 20)
    assert loaded.audit.columns == ["id", "name", "amount"] and loaded.audit.error_codes == {"W_PREAMBLE": 3}
    assert values(loaded, "_source_row", "id")[:2] == [(1, 1), (2, 2)]


@pytest.mark.parametrize("delimiter, quote", [(" ", ""), (",", "'"), ("\t", "'")])
def test_space_delimiter_and_single_quotes_are_sniffed(tmp_path, delimiter, quote):
    sample = delimiter.join(f"{quote}{n}{quote}" for n in ("id", "name", "amount")) + "\n" + body(20, delimiter, quote)
    found = sniff(tmp_path, sample)
    assert (found.delimiter, found.quote if quote else '"', found.names) == (delimiter, quote or '"', ["id", "name", "amount"])
