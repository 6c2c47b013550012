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
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
    """CREATE TABLE IF NOT EXISTS qa.dataset_columns (
        dataset VARCHAR NOT NULL,
        column_name VARCHAR NOT NULL,
        column_type VARCHAR NOT NULL,
        ordinal INTEGER NOT NULL,
        origin VARCHAR NOT NULL,
        partition_key VARCHAR,
        run_id VARCHAR,
        recorded TIMESTAMP
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


log = logging.getLogger(__name__)


class WarehouseBusy(RuntimeError):
    """The warehouse stayed locked by another process for longer than the timeout."""


class WarehouseConflict(RuntimeError):
    """A DuckLake commit conflicted with another writer's; the step is run again (bounded)."""


def is_conflict(exc: BaseException) -> bool:
    """A DuckLake commit that lost against concurrent writers' (worth running again): a logical
    conflict, or more snapshot races than DuckLake's own retries cover."""
    text = str(exc)
    return isinstance(exc, WarehouseConflict) or (isinstance(exc, duckdb.Error) and (
        "Transaction conflict" in text or "Failed to commit DuckLake transaction" in text))


_DUCKDB_HOLDER = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")


def _file_lock_holder(exc: duckdb.Error) -> str | None:
    """Who holds DuckDB's own lock on the file (a reader such as the DuckDB CLI or a BI tool), from
    DuckDB's error; None when the error is not about that lock."""
    text = str(exc)
    if "Could not set lock" not in text and "Conflicting lock" not in text:
        return None
    found = _DUCKDB_HOLDER.search(text)
    return f"pid {found.group(2)} ({found.group(1)})" if found else "another process"


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

    # A CSV DuckDB's reader takes is parsed straight into raw (numbered by rowid, under the lock)
    direct_loads = True

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
        self._held: duckdb.DuckDBPyConnection | None = None
        self._hold: ExitStack | None = None  # inside held(): what closes the connection and frees the lock

    @property
    def work_dir(self) -> Path:
        """Where a worker keeps its local files: staging databases, spill, deferred audit rows."""
        return self.path.parent

    def describe(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        """Whether anything was ever written (a lake is assumed to be there)."""
        return self.path.exists()

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._held is not None:  # inside held(): its one connection
            yield self._held
            return
        deadline = time.monotonic() + self.lock_timeout_s
        with exclusive_lock(self.lock_path, self.lock_timeout_s):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = self._open(deadline)
            try:
                for ddl in QA_TABLES_DDL:
                    con.execute(ddl)
                self._replay_deferred(con)
                yield con
            finally:
                con.close()

    @contextmanager
    def held(self) -> Iterator[Warehouse]:
        """This warehouse with one connection (and the lock) kept until the block ends: every
        `connect()` inside reuses it. For a step over many small partitions, where opening the
        file for each of them costs more than their work."""
        self._hold = ExitStack()
        try:
            with self._hold:
                self._held = self._hold.enter_context(self.connect())
                yield self
        finally:
            self._held = self._hold = None

    @contextmanager
    def released(self) -> Iterator[None]:
        """Inside held(): the connection closed and the lock freed for the block (work that needs
        neither, such as staging a file, while other runs write), then taken again. Elsewhere,
        nothing to let go."""
        if self._held is None or self._hold is None:
            yield
            return
        self._hold.close()
        self._held = None
        try:
            yield
        finally:
            self._held = self._hold.enter_context(self.connect())

    def _open(self, deadline: float, poll_s: float = 0.1) -> duckdb.DuckDBPyConnection:
        """Open the file for writing; while a process outside the queue (a read-only DuckDB
        client, a BI tool) holds it, wait and retry until the deadline, saying for whom."""
        waiting_since = None
        while True:
            try:
                con = duckdb.connect(str(self.path), config=self._config())
            except duckdb.IOException as exc:
                holder = _file_lock_holder(exc)
                if holder is None:
                    raise
                now = time.monotonic()
                if waiting_since is None:
                    waiting_since = now
                    log.warning("warehouse %s is open in %s; waiting up to %.0fs for it to close "
                                "(QA_DUCKDB_LOCK_TIMEOUT)", self.path, holder, max(deadline - now, 0))
                if now >= deadline:
                    raise WarehouseBusy(
                        f"warehouse {self.path} is held open by {holder}, a process outside the "
                        f"pipeline's queue (a DuckDB client or BI tool?), after waiting "
                        f"{now - waiting_since:.0f}s (raise QA_DUCKDB_LOCK_TIMEOUT, or close it; "
                        "OPERATIONS.md: query a snapshot instead)"
                    ) from None
                time.sleep(min(poll_s, max(deadline - now, 0.01)))
                poll_s = min(poll_s * 1.5, 1.0)
                continue
            if waiting_since is not None:
                log.warning("warehouse %s released after %.1fs", self.path, time.monotonic() - waiting_since)
            return con

    @property
    def deferred_path(self) -> Path:
        return self.path.with_name(self.path.name + ".deferred.jsonl")

    def defer_insert(self, table: str, values: list) -> None:
        """Keep a row the warehouse could not take now (it was busy), to insert at the next
        connection: an audit row saying why a load gave up must not be lost with the load."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.deferred_path.with_suffix(".lock"), 30), open(self.deferred_path, "a") as out:
            out.write(json.dumps({"table": table, "values": values}, default=str) + "\n")

    def _replay_deferred(self, con: duckdb.DuckDBPyConnection) -> None:
        if not self.deferred_path.exists():
            return
        with exclusive_lock(self.deferred_path.with_suffix(".lock"), 30):
            rows = [json.loads(line) for line in self.deferred_path.read_text().splitlines() if line.strip()]
            for row in rows:
                marks = ", ".join("?" for _ in row["values"])
                con.execute(f"INSERT INTO {row['table']} VALUES ({marks})", row["values"])
            self.deferred_path.unlink()

    def snapshot(self, target: str | Path) -> Path:
        """Copy the warehouse, between two runs, to a file anyone may query for as long as they
        like without holding up the pipeline."""
        target = Path(target).expanduser().resolve()
        with exclusive_lock(self.lock_path, self.lock_timeout_s):
            shutil.copyfile(self.path, target)
            wal = self.path.with_name(self.path.name + ".wal")
            target_wal = target.with_name(target.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, target_wal)
            else:
                target_wal.unlink(missing_ok=True)
        return target

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


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, commit: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK and re-raise: everything inside lands or nothing does.
    `commit=False` rolls back at the end too (a dry run that counts what it would delete)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    try:
        con.execute("COMMIT" if commit else "ROLLBACK")
    except duckdb.Error as exc:
        if is_conflict(exc):  # a DuckLake commit that lost: rolled back, nothing landed
            raise WarehouseConflict(f"the commit conflicted with another writer's: {str(exc).splitlines()[0]}") from exc
        raise


# From this many rows an insert goes through one Arrow table: executemany runs a statement per
# row, ~1 ms each (30 rows: 28 ms against 4.5; 4 rows: 4.4 against 2.6; one row: 1 against 2.2)
BULK_ROWS = 3


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list | tuple) -> None:
    """Append rows (positional, as the table's columns) to `table` (an SQL name, quoted)."""
    if not rows:
        return
    if len(rows) >= BULK_ROWS:
        import pyarrow as pa  # here: the CLI's start-up imports no pyarrow

        try:
            batch = pa.table({f"c{i}": pa.array(list(column)) for i, column in enumerate(zip(*rows, strict=True))})
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, UnicodeError):
            batch = None  # values pyarrow cannot type as one column: row by row below
        if batch is not None:
            con.register("_insert_rows", batch)
            try:
                con.execute(f"INSERT INTO {table} SELECT * FROM _insert_rows")
            finally:
                con.unregister("_insert_rows")
            return
    con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB SQL."""
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a string literal for DuckDB SQL."""
    return "'" + str(value).replace("'", "''") + "'"
