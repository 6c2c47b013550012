"""Footers: totals and notes after a CSV table's last record are quarantined (E_FOOTER, W_FOOTER on
the file), never loaded as rows nor typing a column; the same line before the last record is not one."""

from __future__ import annotations

import gzip

import pytest
from conftest import simple_dataset
from ingest_support import check, values

HEADER = "id,name,amount\n"


def body(first: int = 1, last: int = 20) -> str:
    return "".join(f"{i},name{i},{i}.5\n" for i in range(first, last + 1))


def footer_rows(loaded) -> list[tuple]:
    return [(q["source_row"], q["line"], q["raw_line"]) for q in loaded.quarantine if q["error_code"] == "E_FOOTER"]


@pytest.mark.parametrize("footer, lines", [
    ("\nTotal,,210.0\n", ["Total,,210.0"]),  # the body's field count, after a blank line
    ("Total,210.0\n", ["Total,210.0"]),  # another field count
    ("Grand total: 20 records\nGenerated 2026-02-01 by the ERP\n", ["Grand total: 20 records",
                                                                    "Generated 2026-02-01 by the ERP"]),
    ('"Note: amounts in EUR, VAT included"\n', ['"Note: amounts in EUR, VAT included"']),  # a quoted note
    ("TOTAL,,210.0", ["TOTAL,,210.0"]),  # no final line break
])
def test_footer_lines_are_quarantined_and_the_records_load_typed(harness, tmp_path, footer, lines):
    loaded = check(harness.load(harness.write("f.csv", HEADER + body() + footer), simple_dataset(tmp_path)),
                   20 + len(lines))
    first_line = 22 + footer.startswith("\n")  # header, 20 records, a blank line
    assert footer_rows(loaded) == [(20 + k, first_line + k - 1, line) for k, line in enumerate(lines, start=1)]
    assert loaded.audit.error_codes == {"W_FOOTER": len(lines), "E_FOOTER": len(lines)}
    assert loaded.audit.status == "loaded_with_errors" and loaded.audit.rows_loaded == 20
    # the totals line decided no column's type: ids stay integers
    assert loaded.audit.column_types["id"] == "BIGINT"
    assert values(loaded, "_source_row", "id")[-1] == (20, 20)


def test_footer_after_a_crlf_preamble_and_a_damaged_last_record(harness, tmp_path):
    text = ("Sales export\r\n\r\n" + HEADER + body() + "21,name21\n" + "Total,,231.0\nEnd of report\n").replace(
        "\n", "\r\n").replace("\r\r\n", "\r\n")
    loaded = check(harness.load(harness.write("f.csv", text), simple_dataset(tmp_path)), 23)
    assert loaded.audit.error_codes == {"W_PREAMBLE": 2, "W_FOOTER": 2, "E_FOOTER": 2, "E_COLUMN_COUNT": 1}
    # the cut record is a record with a field missing, not a footer line: its first field is an id
    assert [(q["source_row"], q["line"], q["error_code"]) for q in loaded.quarantine] == [
        (21, 24, "E_COLUMN_COUNT"), (22, 25, "E_FOOTER"), (23, 26, "E_FOOTER")]


def test_a_total_line_before_the_last_record_is_no_footer(harness, tmp_path):
    # Only a trailing block is a footer: the same line with records after it is a record like any other
    # (its text id makes the column text, as any text id would), so its fate does not hang on position.
    text = HEADER + body(1, 10) + "Total,,55.0\n" + body(11, 20)
    loaded = check(harness.load(harness.write("m.csv", text), simple_dataset(tmp_path)), 21)
    assert loaded.quarantine == [] and "W_FOOTER" not in loaded.audit.error_codes
    assert ("Total", None, 55.0) in values(loaded, "id", "name", "amount")


def test_a_last_record_that_fits_the_body_is_no_footer(harness, tmp_path):
    text = HEADER + body() + "21,Total,210.0\n"  # a summary word, but in a record whose id fits
    loaded = check(harness.load(harness.write("r.csv", text), simple_dataset(tmp_path)), 21)
    assert loaded.quarantine == [] and values(loaded, "id", "name")[-1] == (21, "Total")


def test_footer_of_a_later_file_is_e_footer_not_a_cast_error(harness, tmp_path):
    dataset = simple_dataset(tmp_path)
    harness.load(harness.write("a.csv", HEADER + body()), dataset)  # ids kept as BIGINT
    loaded = check(harness.load(harness.write("b.csv", HEADER + body() + "Total,,210.0\n"), dataset), 21)
    assert loaded.codes() == ["E_FOOTER"] and loaded.audit.rows_loaded == 20


def test_summary_row_whose_fields_fit_the_columns_loads(harness, tmp_path):
    # Text first column, the totals fit the numbers: nothing tells it from a record, so it loads.
    text = "region,sales\nNorth,10\nSouth,20\nTotal,30\n"
    loaded = check(harness.load(harness.write("s.csv", text), simple_dataset(tmp_path)), 3)
    assert loaded.quarantine == [] and values(loaded, "region")[-1] == ("Total",)


def test_compressed_files_are_not_searched_for_a_footer(harness, tmp_path):
    path = harness.write("f.csv.gz", gzip.compress((HEADER + body() + "Total,210.0\n").encode()))
    loaded = check(harness.load(path, simple_dataset(tmp_path)), 21)
    assert loaded.codes() == ["E_COLUMN_COUNT"]  # still quarantined, as any record with a field missing
