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
