"""Write-audit-publish: `published."<dataset>"`, the consumers' table, fed only by validated partitions.

A partition is promoted when its raw load was not rejected and its latest validation (qa.validations)
covers the load raw holds now, under the rules the contract has now, with no error-severity rule
failing. Dagster's blocking checks already keep `<dataset>/published` from running after a failed
validation in the same run; the gate here holds the same line when `published` is launched on its
own. Promotion replaces the partition in one transaction, so consumers see the old rows or the
new ones, never a mix. Quarantined rows are never in raw, so they never reach published; a
blocked partition keeps its previously published rows (the last good version), if any.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from quality_assets.catalog import latest_load_files, table_types
from quality_assets.contract import Dataset
from quality_assets.published_rows import promote
from quality_assets.rules import META_COLUMNS, ensure_tables, rules_fingerprint
from quality_assets.warehouse import quote_ident, transaction

PUBLISHED_SCHEMA = "published"


def published_table(dataset: str) -> str:
    return f"{PUBLISHED_SCHEMA}.{quote_ident(dataset)}"


@dataclass
class Gate:
    """Whether a partition may be published, and if not, what holds it back."""

    ok: bool
    reasons: list[str] = field(default_factory=list)
    blocked_by: list[str] = field(default_factory=list)  # rule names (or file_parsed)

    def summary(self) -> str:
        return "; ".join(self.reasons) or "all blocking checks passed"


@dataclass
class Published:
    dataset: str
    partition_key: str
    rows: int
    replaced: int  # rows of the partition published before
    columns: dict[str, str] = field(default_factory=dict)


def gate(con: duckdb.DuckDBPyConnection, dataset: Dataset, partition_key: str) -> Gate:
    ensure_tables(con)
    loads = latest_load_files(con, dataset.name, partition_key)
    rejected = [load["message"] for load in loads if load["status"] == "rejected"]
    if rejected:
        return Gate(False, [f"file_parsed: the file was rejected ({rejected[0]})"], ["file_parsed"])
    raw_run = loads[0]["run_id"] if loads else None  # None: a day without files, published as raw has it
    validation = con.execute(
        "SELECT raw_run_id, rules_fingerprint, blocking_failed, run_id FROM qa.validations "
        "WHERE dataset = ? AND partition_key = ? ORDER BY evaluated_at DESC LIMIT 1",
        [dataset.name, partition_key],
    ).fetchone()
    if validation is None:
        return Gate(False, [f"partition {partition_key!r} has not been validated: materialize {dataset.name}/validation first"])
    validated_raw, fingerprint, blocking, validation_run = validation
    if validated_raw != raw_run:
        return Gate(False, [f"the validation (run {validation_run}) is of an older load of the partition than raw "
                            f"holds now (run {raw_run}): materialize {dataset.name}/validation again"])
    if fingerprint != rules_fingerprint(dataset):
        return Gate(False, [f"the contract's rules changed since the validation (run {validation_run}): "
                            f"materialize {dataset.name}/validation again"])
    if blocking:
        return Gate(False, [f"blocked by error rule(s) {', '.join(blocking)} (run {validation_run})"], list(blocking))
    return Gate(True)


def publish_partition(con: duckdb.DuckDBPyConnection, dataset: Dataset, partition_key: str) -> Published:
    """Make raw's rows of the partition the published ones, in one transaction: published."<dataset>"
    is a view over raw (see published_rows), so nothing is copied."""
    raw_types = table_types(con, "raw", dataset.name)
    target = published_table(dataset.name)
    if not raw_types:  # nothing loaded yet (a day without files before any file)
        return Published(dataset.name, partition_key, 0, 0, {})
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {PUBLISHED_SCHEMA}")
    with transaction(con):
        replaced = promote(con, dataset.name, partition_key, target)
        rows = con.execute(f"SELECT count(*) FROM raw.{quote_ident(dataset.name)} WHERE _partition_key = ?",
                           [partition_key]).fetchone()[0]
    columns = {k: v for k, v in table_types(con, PUBLISHED_SCHEMA, dataset.name).items() if k not in META_COLUMNS}
    return Published(dataset.name, partition_key, rows, replaced, columns)
