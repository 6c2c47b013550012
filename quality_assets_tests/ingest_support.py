"""Helpers shared by the ingest tests."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from conftest import (
    Harness,
    Loaded,
    assert_conserved,
    assert_source_rows_complete,
)

from quality_assets import ingest

ORDERS = {"id": "bigint", "name": "string", "amount": "double"}


def csv_text(rows: list[list], delimiter: str = ",", lineterminator: str = "\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=lineterminator).writerows(rows)
    return buffer.getvalue()


def csv_records(text: str, delimiter: str = ",", header: bool = True) -> list[list[str]]:
    """The data records of a CSV text as Python's csv module reads them (blank lines skipped)."""
    records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if r]
    return records[1:] if header else records


def check(loaded: Loaded, expected_records: int) -> Loaded:
    """The conservation invariant and gap-free source row numbers, for every fixture."""
    assert_conserved(loaded, expected_records)
    assert_source_rows_complete(loaded)
    return loaded


def values(loaded: Loaded, *columns: str) -> list[tuple]:
    return [tuple(row[c] for c in columns) for row in loaded.raw]


def file_audit(harness: Harness, partition: str) -> dict:
    (audit,) = harness.audits("ds", partition)
    return audit


def counts(harness: Harness, partition: str) -> tuple[int, int, int]:
    """(raw rows, quarantined rows, audit rows) held for a partition."""
    raw = harness.query('SELECT count(*) FROM raw."ds" WHERE _partition_key = ?', [partition])[0][0]
    quarantined = harness.query("SELECT count(*) FROM qa.quarantine WHERE partition_key = ?", [partition])[0][0]
    audits = harness.query("SELECT count(*) FROM qa.files WHERE partition_key = ?", [partition])[0][0]
    return raw, quarantined, audits


def pending_keys(harness: Harness) -> list[str]:
    return [r[0] for r in harness.query('SELECT DISTINCT _partition_key FROM raw."ds" WHERE contains(_partition_key, chr(0))')]


def load_only(harness: Harness, path: Path, dataset) -> ingest.LoadAudit:
    return ingest.load_file(harness.warehouse, path, dataset, path.name, "run-1")
