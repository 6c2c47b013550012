"""The DuckDB warehouse: one file, schemas `raw` and `qa`, and a queue for its single writer.

DuckDB lets one process open a database file for writing, and no other process may open it
while that one does. Every connection therefore goes through an exclusive file lock next to the
database, so concurrent runs wait their turn (bounded by a timeout) instead of failing with
DuckDB's lock error. A CSV file DuckDB's reader can take is loaded straight into the warehouse
under the lock (one parse, no copy); other files are parsed in a private staging database first,
so the lock is held only for their copy-in transaction.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

QA_TABLES_DDL = [
    "CREATE SCHEMA IF NOT EXISTS raw",
    "CREATE SCHEMA IF NOT EXISTS qa",
    """CREATE TABLE IF NOT EXISTS qa.files (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        source_path VARCHAR NOT NULL,
        format VARCHAR,
        compression VARCHAR,
        sha256 VARCHAR,
        bytes BIGINT,
        mtime TIMESTAMP,
        rows_read BIGINT,
        rows_loaded BIGINT,
        rows_quarantined BIGINT,
        columns VARCHAR[],
        delimiter VARCHAR,
        quote VARCHAR,
        header BOOLEAN,
        encoding VARCHAR,
        utf8_valid BOOLEAN,
        parser VARCHAR,
        started TIMESTAMP,
        finished TIMESTAMP,
        duration_s DOUBLE,
        status VARCHAR NOT NULL,
        message VARCHAR,
        error_codes MAP(VARCHAR, BIGINT),
        duplicate_of VARCHAR,
        contract_fingerprint VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS qa.quarantine (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        source_row BIGINT,
        line BIGINT,
        column_name VARCHAR,
        error_code VARCHAR NOT NULL,
        message VARCHAR,
        raw_value VARCHAR,
        raw_line VARCHAR,
        raw_line_bytes BIGINT
    )""",
]


class WarehouseBusy(RuntimeError):
    """The warehouse stayed locked by another process for longer than the timeout."""


@contextmanager
def exclusive_lock(lock_path: Path, timeout_s: float, poll_s: float = 0.05) -> Iterator[None]:
    """Hold an exclusive flock on lock_path, waiting up to timeout_s for other holders."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(lock_path)
                    raise WarehouseBusy(
                        f"warehouse {lock_path.with_suffix('')} is still in use by {holder} "
                        f"after waiting {timeout_s:.0f}s (raise QA_DUCKDB_LOCK_TIMEOUT, or stop the "
                        "other process)"
                    ) from None
                time.sleep(poll_s)
                poll_s = min(poll_s * 1.5, 0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _read_holder(lock_path: Path) -> str:
    try:
        return lock_path.read_text().strip() or "another process"
    except OSError:
        return "another process"


class Warehouse:
    """One DuckDB file; `connect()` queues behind other processes using it."""

    def __init__(
        self,
        path: str | Path,
        lock_timeout_s: float = 600.0,
        memory_limit: str | None = "1GB",
        threads: int | None = None,
    ):
        self.path = Path(path).expanduser().resolve()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout_s = lock_timeout_s
        self.memory_limit = memory_limit
        self.threads = threads

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with exclusive_lock(self.lock_path, self.lock_timeout_s):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(str(self.path), config=self._config())
            try:
                for ddl in QA_TABLES_DDL:
                    con.execute(ddl)
                yield con
            finally:
                con.close()

    def scratch(self, path: Path | None = None) -> duckdb.DuckDBPyConnection:
        """A private database (in memory without `path`) with the warehouse's memory settings;
        no lock needed."""
        if path is None:
            return duckdb.connect(":memory:", config=self._config())
        path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path), config=self._config(temp_dir=path.parent / "spill"))

    def _config(self, temp_dir: Path | None = None) -> dict:
        config: dict = {}
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        if self.threads:
            config["threads"] = self.threads
        config["temp_directory"] = str(temp_dir or self.path.parent / ".spill")
        return config


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB SQL."""
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a string literal for DuckDB SQL."""
    return "'" + str(value).replace("'", "''") + "'"
