"""Shared helpers for the pure-logic tests: a contract from YAML text, a warehouse per test, and
one call that loads a file and fetches what a user would look at afterwards."""

from __future__ import annotations

import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from lake_support import lake  # noqa: E402,F401  (the fixture: a real DuckLake per test)

from quality_assets.contract import Dataset, parse_contract
from quality_assets.ingest import LoadAudit, load_file, raw_table
from quality_assets.warehouse import Warehouse


def dataset_from_yaml(text: str, tmp_path: Path, name: str = "ds") -> Dataset:
    """Parse a contract given as YAML text (dedented) and return one of its datasets."""
    contract = parse_contract(textwrap.dedent(text), tmp_path / "quality.yaml")
    return contract.dataset(name)


def simple_dataset(tmp_path: Path, columns: dict[str, str] | None = None, csv: dict | None = None,
                   fmt: str | None = None, name: str = "ds") -> Dataset:
    """A one-dataset contract built from Python values (rendered to YAML, so it goes through the parser)."""
    import yaml

    spec: dict = {"landing": "landing"}
    if fmt:
        spec["format"] = fmt
    if csv:
        spec["csv"] = csv
    if columns:
        spec["columns"] = columns
    text = yaml.safe_dump({"version": 1, "datasets": {name: spec}}, allow_unicode=True, sort_keys=False)
    return parse_contract(text, tmp_path / "quality.yaml").dataset(name)


@dataclass
class Loaded:
    """One load and what the warehouse holds for its partition afterwards."""

    audit: LoadAudit
    raw: list[dict]  # raw rows of the partition, ordered by _source_row
    quarantine: list[dict]  # qa.quarantine rows of the partition, ordered by source_row
    raw_count: int
    quarantine_count: int

    def column(self, name: str) -> list:
        return [row[name] for row in self.raw]

    def codes(self) -> list[str]:
        return [q["error_code"] for q in self.quarantine]


class Harness:
    """A warehouse in its own DuckDB file, and helpers to write files and load them."""

    def __init__(self, root: Path):
        self.root = root
        self.landing = root / "landing"
        self.landing.mkdir(parents=True, exist_ok=True)
        self.warehouse = Warehouse(root / "wh" / "warehouse.duckdb", lock_timeout_s=30, memory_limit="512MB", threads=2)

    def write(self, name: str, content: bytes | str, encoding: str = "utf-8") -> Path:
        path = self.landing / name
        data = content.encode(encoding) if isinstance(content, str) else content
        path.write_bytes(data)
        return path

    def load(self, path: Path, dataset: Dataset, partition: str | None = None, force: bool = False,
             run_id: str | None = None) -> Loaded:
        partition = partition or path.name
        audit = load_file(self.warehouse, path, dataset, partition, run_id or f"run-{uuid.uuid4().hex[:8]}", force=force)
        return self.fetch(dataset.name, partition, audit)

    def fetch(self, dataset: str, partition: str, audit: LoadAudit | None = None) -> Loaded:
        with self.warehouse.connect() as con:
            raw = self._dicts(con, f"SELECT * FROM {raw_table(dataset)} WHERE _partition_key = ? ORDER BY _source_row",
                              [partition]) if self.has_raw(con, dataset) else []
            quarantine = self._dicts(
                con, "SELECT * FROM qa.quarantine WHERE dataset = ? AND partition_key = ? ORDER BY source_row",
                [dataset, partition])
        return Loaded(audit, raw, quarantine, len(raw), len(quarantine))

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with self.warehouse.connect() as con:
            return con.execute(sql, params or []).fetchall()

    def audits(self, dataset: str, partition: str) -> list[dict]:
        with self.warehouse.connect() as con:
            return self._dicts(con, "SELECT * FROM qa.files WHERE dataset = ? AND partition_key = ? ORDER BY started",
                               [dataset, partition])

    @staticmethod
    def has_raw(con: duckdb.DuckDBPyConnection, dataset: str) -> bool:
        return bool(con.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = 'raw' AND table_name = ?", [dataset]
        ).fetchone())

    @staticmethod
    def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict]:
        rel = con.execute(sql, params)
        names = [d[0] for d in rel.description]
        return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def assert_conserved(loaded: Loaded, expected_records: int) -> None:
    """Every data record is either loaded or quarantined, and the warehouse agrees with the audit."""
    audit = loaded.audit
    assert audit.rows_read == expected_records, audit.summary()
    assert audit.rows_read == audit.rows_loaded + audit.rows_quarantined, audit.summary()
    assert loaded.raw_count == audit.rows_loaded, audit.summary()
    assert loaded.quarantine_count == audit.rows_quarantined, audit.summary()


def assert_source_rows_complete(loaded: Loaded) -> None:
    """Loaded `_source_row`s plus quarantined `source_row`s are exactly 1..rows_read."""
    numbers = [row["_source_row"] for row in loaded.raw] + [q["source_row"] for q in loaded.quarantine]
    assert sorted(numbers) == list(range(1, loaded.audit.rows_read + 1)), (numbers, loaded.audit.summary())


def assert_quarantine_row(loaded: Loaded, row: dict, *, source_row: int, code: str, raw_line: str | None = None,
                          column: str | None = None, value: str | None = None) -> None:
    """The quarantine row names its dataset, partition, run, record number, line, code (and column and value)."""
    audit = loaded.audit
    assert row["dataset"] == audit.dataset
    assert row["partition_key"] == audit.partition_key
    assert row["run_id"] == audit.run_id
    assert row["source_row"] == source_row, row
    assert row["error_code"] == code, row
    if raw_line is not None:
        assert row["raw_line"] == raw_line, row
    if column is not None:
        assert row["column_name"] == column, row
        assert row["raw_value"] == value, row
