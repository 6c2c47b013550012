"""Whole-file outcomes: empty, header only, binary, corrupt Parquet or gzip, duplicates, the audit row."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pytest
from conftest import (
    simple_dataset,
)
from ingest_support import ORDERS, check, file_audit, values

from quality_assets import ingest
from quality_assets.ingest import FILE_ERRORS
from quality_assets.ingest import load as load_module


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"], ids=["zero_bytes", "whitespace", "bom_only"])
def test_empty_file(harness, tmp_path, content):
    loaded = check(harness.load(harness.write("empty.csv", content), simple_dataset(tmp_path, ORDERS)), 0)
    assert loaded.audit.status == "empty"
    assert loaded.audit.error_codes == {"E_EMPTY_FILE": 1}
    assert file_audit(harness, "empty.csv")["status"] == "empty"


@pytest.mark.parametrize("columns", [ORDERS, None], ids=["declared", "undeclared"])
def test_header_only_file(harness, tmp_path, columns):
    loaded = check(harness.load(harness.write("header.csv", "id,name,amount\n"), simple_dataset(tmp_path, columns)), 0)
    assert loaded.audit.status == "loaded"
    assert loaded.audit.rows_read == 0
    assert "header only" in loaded.audit.message
    assert file_audit(harness, "header.csv")["status"] == "loaded"


def test_binary_file_is_rejected(harness, tmp_path):
    loaded = check(harness.load(harness.write("image.csv", bytes(range(256)) * 64), simple_dataset(tmp_path, ORDERS)), 0)
    assert loaded.audit.status == "rejected"
    assert loaded.audit.error_codes == {"E_BINARY": 1}
    assert file_audit(harness, "image.csv")["status"] == "rejected"
    assert set(FILE_ERRORS) >= {"E_BINARY", "E_EMPTY_FILE", "E_UNREADABLE"}


def corrupt_parquet_bytes(tmp_path: Path, where: str) -> bytes:
    path = tmp_path / "good.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT range AS id, 'name-' || range AS name FROM range(20000)) TO '{path}' "
                    "(FORMAT parquet, COMPRESSION uncompressed)")
    data = bytearray(path.read_bytes())
    if where == "footer":
        return bytes(data[: len(data) // 2])
    middle = len(data) // 2
    data[middle:middle + 4000] = b"\xff" * 4000
    return bytes(data)


@pytest.mark.parametrize("where", ["footer", "data_page"])
def test_corrupt_parquet_is_rejected(harness, tmp_path, where):
    path = harness.write("broken.parquet", corrupt_parquet_bytes(tmp_path, where))
    loaded = check(harness.load(path, simple_dataset(tmp_path)), 0)
    assert loaded.audit.status == "rejected"
    assert loaded.audit.error_codes == {"E_UNREADABLE": 1}
    assert "Parquet" in loaded.audit.message


@pytest.mark.parametrize("damage", ["truncated", "bad_header"])
def test_corrupt_gzip_is_rejected(harness, tmp_path, damage):
    text = "id,name,amount\n" + "".join(f"{i},n{i},{i}.5\n" for i in range(50_000))
    packed = gzip.compress(text.encode())
    content = packed[: len(packed) // 2] if damage == "truncated" else b"\x1f\x8b" + b"not gzip at all" * 10
    loaded = check(harness.load(harness.write("orders.csv.gz", content), simple_dataset(tmp_path, ORDERS)), 0)
    assert loaded.audit.status == "rejected"
    assert loaded.audit.error_codes == {"E_UNREADABLE": 1}
    assert "gzip" in loaded.audit.message


def test_same_content_under_two_partitions_is_flagged_as_duplicate(harness, tmp_path):
    dataset = simple_dataset(tmp_path, ORDERS)
    text = "id,name,amount\n1,a,1.5\n2,b,2.5\n"
    first = check(harness.load(harness.write("orders_day1.csv", text), dataset), 2)
    second = check(harness.load(harness.write("orders_day1_copy.csv", text), dataset), 2)
    assert first.audit.duplicate_of is None
    assert second.audit.duplicate_of == "orders_day1.csv"
    assert "same content as partition 'orders_day1.csv'" in second.audit.message
    assert file_audit(harness, "orders_day1_copy.csv")["duplicate_of"] == "orders_day1.csv"
    assert first.audit.sha256 == second.audit.sha256 == ingest.sha256_file(harness.landing / "orders_day1.csv")


def test_audit_row_records_the_file(harness, tmp_path):
    text = "id;name;amount\n1;a;1,5\n"
    path = harness.write("orders.csv", text)
    dataset = simple_dataset(tmp_path, {"id": "bigint", "name": "string", "amount": "string"})
    loaded = check(harness.load(path, dataset, run_id="run-7"), 1)
    audit = file_audit(harness, "orders.csv")
    assert audit["run_id"] == "run-7" and audit["source_path"] == str(path)
    assert audit["bytes"] == len(text) and audit["sha256"] == ingest.sha256_file(path)
    assert (audit["rows_read"], audit["rows_loaded"], audit["rows_quarantined"]) == (1, 1, 0)
    assert audit["delimiter"] == ";" and audit["encoding"] == "utf-8" and audit["utf8_valid"] is True
    assert audit["columns"] == ["id", "name", "amount"]
    assert audit["finished"] >= audit["started"] and audit["duration_s"] >= 0
    assert audit["contract_fingerprint"] == loaded.audit.contract_fingerprint != ""


@pytest.mark.parametrize("path_kind", ["duckdb", "staged"])
def test_a_file_that_changes_while_it_is_read_is_not_recorded_as_loaded(harness, tmp_path, monkeypatch, path_kind):
    csv = {"encoding": "cp1252"} if path_kind == "staged" else None
    dataset = simple_dataset(tmp_path, ORDERS, csv)
    path = harness.write("grow.csv", "id,name,amount\n1,a,1.5\n")
    first = check(harness.load(path, dataset), 1)
    path.write_text("id,name,amount\n1,a,1.5\n2,b,2.5\n")
    real_scan = load_module.scan_file

    def scan_then_append(source, *args, **kwargs):
        scanned = real_scan(source, *args, **kwargs)
        with open(source, "a") as handle:  # a writer still appending after the hash was taken
            handle.write("3,c,3.5\n")
        return scanned

    monkeypatch.setattr(load_module, "scan_file", scan_then_append)
    changed = harness.load(path, dataset)
    assert changed.audit.status == "failed" and changed.audit.error_codes == {"E_FILE_CHANGED": 1}
    assert "changed while it was read" in changed.audit.message
    assert values(changed, "id") == values(first, "id") == [(1,)]  # the partition keeps what it had
    assert file_audit_rows(harness, "grow.csv")[-1]["status"] == "failed"
    monkeypatch.undo()
    settled = check(harness.load(path, dataset), 3)  # the next tick loads it: no 'unchanged' shortcut
    assert settled.audit.status == "loaded" and settled.audit.bytes == path.stat().st_size
    assert settled.audit.sha256 == ingest.sha256_file(path)


def file_audit_rows(harness, partition: str) -> list[dict]:
    return harness.audits("ds", partition)
