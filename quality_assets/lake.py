"""The DuckLake backend: the catalog in PostgreSQL, the data as Parquet files under a data path
that every worker shares; many processes write at once with snapshot isolation.

A connection is an in-memory DuckDB that LOADs the ducklake and postgres extensions from the
files inside their PyPI packages (never INSTALLed: nothing is downloaded), ATTACHes the lake as
`lake` and makes it the default catalog, so that the stages' SQL (`raw."<dataset>"`, `qa.*`,
`published.*`) runs unchanged. There is no file lock: DuckLake retries a commit that raced
another writer for the next snapshot, and a commit that conflicts with another (both created
the same table, both deleted from the same data file) raises WarehouseConflict, which the
Dagster wiring retries as a whole step (the stages replace their partition, so a rerun is safe).
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from quality_assets.warehouse import (
    QA_TABLES_DDL,
    Warehouse,
    WarehouseConflict,
    is_conflict,
    quote_literal,
)

LAKE_PREFIX = "ducklake:"
LAKE_ALIAS = "lake"
EXTENSIONS = ("postgres_scanner", "ducklake")  # PyPI package duckdb-extension-<name>
_INSTANCES: dict[tuple, duckdb.DuckDBPyConnection] = {}  # per process: (pid, lake, mode, ...) -> instance
LAKE_EXTRA = ("pip install 'quality_assets[lake]' (duckdb==1.5.5 with duckdb-extension-ducklake, "
              "duckdb-extension-postgres-scanner and, for object storage, duckdb-extension-httpfs)")


class LakeUnavailable(RuntimeError):
    """The DuckLake extensions are not installed for this DuckDB, or the lake cannot be attached."""


def is_lake(spec: str | None) -> bool:
    return bool(spec) and spec.strip().startswith(LAKE_PREFIX)


def extension_file(name: str) -> Path:
    """The extension file shipped inside the package duckdb-extension-<name>."""
    module = f"duckdb_extension_{name}"
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise LakeUnavailable(f"the DuckDB extension package for {name!r} is not installed: {LAKE_EXTRA}")
    found = sorted(p for folder in spec.submodule_search_locations for p in Path(folder).rglob("*.duckdb_extension"))
    built_for = {p.parent.name: p for p in found}  # extensions/v<DuckDB version>/<name>.duckdb_extension
    if f"v{duckdb.__version__}" in built_for:
        return built_for[f"v{duckdb.__version__}"]
    raise LakeUnavailable(
        f"{module} holds no extension for DuckDB {duckdb.__version__} (built for: "
        f"{', '.join(sorted(built_for)) or 'none'}); the DuckLake backend needs {LAKE_EXTRA}")


def load_extensions(con: duckdb.DuckDBPyConnection, names: tuple[str, ...] = EXTENSIONS) -> None:
    """LOAD the extensions from their packages; a DuckDB they were not built for is refused with
    what to install."""
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    for name in names:
        path = extension_file(name)
        try:
            con.execute(f"LOAD {quote_literal(str(path))}")
        except duckdb.Error as exc:
            raise LakeUnavailable(
                f"DuckDB {duckdb.__version__} cannot load {path.name} ({str(exc).splitlines()[0]}); "
                f"the DuckLake backend needs {LAKE_EXTRA}") from None


class LakeWarehouse(Warehouse):
    """A DuckLake: `spec` is `ducklake:postgres:<libpq connection string>`, `data_path` the shared
    folder (or object-store URL) of its Parquet files. `work_dir` holds what stays local to a
    worker: staging databases and spill files."""

    # Every file is parsed into a local staging database first, then copied in by one short
    # transaction: the direct CSV load numbers rows by rowid, which DuckLake assigns otherwise,
    # and a long parse inside the lake's transaction would only widen the window for conflicts.
    direct_loads = False

    def __init__(self, spec: str, data_path: str | Path, work_dir: str | Path, memory_limit: str | None = "1GB",
                 threads: int | None = None, lock_timeout_s: float = 600.0, commit_retries: int = 20):
        work = Path(work_dir).expanduser().resolve()
        super().__init__(work / "lake-worker", lock_timeout_s=lock_timeout_s, memory_limit=memory_limit,
                         threads=threads)
        self.spec = spec.strip()
        self.data_path = str(data_path)
        self.commit_retries = commit_retries

    def describe(self) -> str:
        return f"{self.spec} (data {self.data_path})"

    def exists(self) -> bool:
        return True

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the lake as its default catalog; `read_only` for readers (a BI
        tool, a report) that must never write. Connections of a process share one DuckDB
        instance with the lake attached: loading the extensions takes most of a second."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        con = self._cursor(read_only)
        try:
            if not read_only:
                self._replay_deferred(con)
            yield con
        finally:
            con.close()

    def _cursor(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        key = (os.getpid(), self.spec, self.data_path, read_only, self.memory_limit, self.threads)
        for attempt in (1, 2):
            instance = _INSTANCES.get(key)
            if instance is None:
                instance = _INSTANCES[key] = self.attach(read_only)
                if not read_only:
                    self._create_tables(instance)
            try:
                con = instance.cursor()
                con.execute(f"USE {LAKE_ALIAS}")
                return con
            except duckdb.Error:  # the catalog connection broke (PostgreSQL restarted): attach afresh
                _INSTANCES.pop(key, None)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def attach(self, read_only: bool = False, attempts: int = 10) -> duckdb.DuckDBPyConnection:
        """A new DuckDB instance with the extensions loaded and the lake attached as `lake`.
        Workers attaching a new lake at once race to create its catalog tables: the losers
        wait and attach what the winner created."""
        for attempt in range(1, attempts + 1):
            con = duckdb.connect(":memory:", config=self._config())
            try:
                # object storage (s3://, gs://, az://, https://) goes through httpfs; credentials come
                # from DuckDB's own sources (environment, CREATE SECRET), never from this code
                remote = "://" in self.data_path
                load_extensions(con, EXTENSIONS + (("httpfs",) if remote else ()))
                if not remote:
                    Path(self.data_path).mkdir(parents=True, exist_ok=True)
                options = [f"DATA_PATH {quote_literal(self.data_path)}"] + (["READ_ONLY"] if read_only else [])
                con.execute(f"ATTACH {quote_literal(self.spec)} AS {LAKE_ALIAS} ({', '.join(options)})")
                con.execute(f"USE {LAKE_ALIAS}")
                # A commit that raced other writers for the next snapshot is retried by DuckLake:
                # every stage commits a few small writes, so with many workers races are common.
                # 20 tries 50 ms apart growing x1.3 wait up to ~30 s in all.
                con.execute(f"SET ducklake_max_retry_count = {int(self.commit_retries)}")
                con.execute("SET ducklake_retry_wait_ms = 50")
                con.execute("SET ducklake_retry_backoff = 1.3")
                return con
            except LakeUnavailable:
                con.close()
                raise
            except duckdb.Error as exc:
                con.close()
                racing = "Failed to initialize DuckLake" in str(exc) and "already exists" in str(exc)
                if not racing or attempt == attempts:
                    raise LakeUnavailable(f"cannot attach the lake {self.describe()}: {str(exc).splitlines()[0]}") from exc
                time.sleep(0.1 * attempt)
        raise AssertionError("unreachable")

    def _create_tables(self, con: duckdb.DuckDBPyConnection) -> None:
        """The schemas and qa tables, each in its own commit: two workers creating the same one at
        once conflict, and the loser finds it there on its next try."""
        for ddl in QA_TABLES_DDL:
            retry_conflicts(lambda ddl=ddl: con.execute(ddl), self.commit_retries, f"creating ({ddl.split('(')[0].strip()})")

    def snapshot(self, target: str | Path) -> Path:
        raise LakeUnavailable("a lake needs no snapshot copy: readers attach it read-only "
                              "(OPERATIONS.md, 'Reading the lake') and see committed snapshots only")


def retry_conflicts(action, attempts: int, what: str, wait_s: float = 0.05):
    """Run action again while it loses a commit conflict, at most `attempts` times; then a clear
    WarehouseConflict."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except (duckdb.Error, WarehouseConflict) as exc:
            if not is_conflict(exc):
                raise
            if attempt == attempts:
                raise WarehouseConflict(
                    f"{what}: still conflicting with other writers after {attempts} attempts "
                    f"({str(exc).splitlines()[0]})") from exc
            time.sleep(wait_s * 2 ** attempt)


def open_warehouse(settings) -> Warehouse:
    """The warehouse the settings choose: a DuckLake when QA_WAREHOUSE names one, else the
    DuckDB file at QA_DUCKDB_PATH. (`settings` is a config.Settings.)"""
    if is_lake(settings.warehouse):
        return LakeWarehouse(settings.warehouse, settings.lake_data_path, settings.duckdb_path.parent,
                             memory_limit=settings.memory_limit, threads=settings.duckdb_threads or None,
                             lock_timeout_s=settings.lock_timeout_s)
    if settings.warehouse:
        raise LakeUnavailable(f"QA_WAREHOUSE={settings.warehouse!r}: expected unset (the DuckDB file) or "
                              "ducklake:postgres:<connection string>")
    return Warehouse(settings.duckdb_path, lock_timeout_s=settings.lock_timeout_s, memory_limit=settings.memory_limit,
                     threads=settings.duckdb_threads or None)
