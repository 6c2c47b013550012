"""A real DuckLake for a test: a fresh PostgreSQL database for its catalog and a data folder of
its own, both removed afterwards. Skipped only when the `lake` extra (the extension wheels for
this DuckDB) is not installed; `make test-lake` (QA_LAKE_TESTS=1, part of `make test` and CI)
installs it, and there a missing extension fails instead."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from deployment_support import PG_HOST, PG_PASSWORD, PG_PORT, PG_USER, fresh_database, pg_connect

from quality_assets.lake import LakeUnavailable, LakeWarehouse, load_extensions


def lake_missing() -> str | None:
    """Why the lake backend cannot run here, or None."""
    try:
        with duckdb.connect(":memory:") as con:
            load_extensions(con)
    except LakeUnavailable as exc:
        return str(exc)
    return None


def require_lake() -> None:
    reason = lake_missing()
    if reason and os.environ.get("QA_LAKE_TESTS"):
        pytest.fail(f"QA_LAKE_TESTS is set (make test-lake): {reason}")
    if reason:
        pytest.skip(reason)


@dataclass
class Lake:
    database: str
    data_path: Path
    work_dir: Path

    @property
    def spec(self) -> str:
        password = f" password={PG_PASSWORD}" if PG_PASSWORD else ""
        return f"ducklake:postgres:dbname={self.database} host={PG_HOST} port={PG_PORT} user={PG_USER}{password}"

    def env(self) -> dict[str, str]:
        """What a process needs to use this lake."""
        return {"QA_WAREHOUSE": self.spec, "QA_LAKE_DATA_PATH": str(self.data_path)}

    def warehouse(self, **kwargs) -> LakeWarehouse:
        return LakeWarehouse(self.spec, self.data_path, self.work_dir, **kwargs)

    def catalog_sql(self, query: str) -> list[tuple]:
        with pg_connect(self.database) as con:
            return con.execute(query).fetchall()


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Lake]:
    require_lake()
    with fresh_database("qa_lake") as name:
        yield Lake(name, tmp_path / "lake-data", tmp_path / "lake-work")


# Two datasets, a reader and small files: shared by test_lake.py and test_lake_deployment.py.
CONTRACT = """\
version: 1
datasets:
  alpha:
    landing: {path: landing/alpha, glob: "*.csv"}
    columns: {id: bigint, amount: double, cat: string}
    rules: [{not_null: id}]
  beta:
    landing: {path: landing/beta, glob: "*.csv"}
    columns: {id: bigint, amount: double, cat: string}
    rules: [{not_null: id}]
"""

# A reader attached read-only the whole time: in every snapshot, each partition the audit says
# was loaded holds exactly its last load's rows in raw and, once published, one load's rows in
# published (never half of them), until the stop file appears.
READER = """
import json, sys, time
from pathlib import Path
from quality_assets.lake import LakeUnavailable, LakeWarehouse
spec, data, work, stop = sys.argv[1:5]
checks, torn, sizes = 0, [], set()
for _ in range(1200):  # the first worker creates the lake
    try:
        con = LakeWarehouse(spec, data, work).attach(read_only=True)
        break
    except LakeUnavailable:
        time.sleep(0.1)
def exists(schema, table):
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
                       "AND table_schema = ? AND table_name = ?", [schema, table]).fetchone()[0]
while not Path(stop).exists():
    con.execute("BEGIN TRANSACTION")
    if not exists("qa", "files"):  # the first worker has not created it yet
        con.execute("COMMIT")
        time.sleep(0.05)
        continue
    loads = {}  # every load of a partition, oldest first
    for d, k, n in con.execute("SELECT dataset, partition_key, rows_loaded FROM qa.files "
                               "WHERE status LIKE 'loaded%' ORDER BY finished").fetchall():
        loads.setdefault((d, k), []).append(n)
    audit = {key: rows[-1] for key, rows in loads.items()}
    held, published = {}, {}
    for ds in ("alpha", "beta"):
        for schema, into in (("raw", held), ("published", published)):
            if exists(schema, ds):
                into.update({(ds, k): n for k, n in con.execute(
                    f"SELECT _partition_key, count(*) FROM {schema}.{ds} GROUP BY ALL").fetchall()})
    con.execute("COMMIT")
    torn += [(key, n, held.get(key)) for key, n in audit.items() if held.get(key) != n]
    # a published partition is whole too: the rows of one load (the last good one stays published
    # while a new load of the partition waits for its checks)
    torn += [("published", key, n, loads.get(key)) for key, n in published.items() if n not in loads.get(key, [])]
    sizes.add(len(audit))
    checks += 1
    time.sleep(0.05)
print(json.dumps({"checks": checks, "torn": torn, "loaded_seen": sorted(sizes)}))
"""


def write_csv(path: Path, rows: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["id,amount,cat"] + [f"{i},{(i * seed) % 997 / 10},{'abc'[i % 3]}" for i in range(rows)]
    if seed % 2:
        lines.append("not-a-number,1.0,a")  # one quarantined row in every other file
    path.write_text("\n".join(lines) + "\n")
