"""Where published rows live: `published."<dataset>"` is a view, not a second copy of raw.

A published partition whose rows raw still holds is read from raw (a row of qa.published_partitions
with held = false). Before raw loses such a partition's rows (a new load of it, retention), they are
copied once into `published_held."<dataset>"` and the partition marked held: consumers keep the
last good version while the new load waits for its checks. Publishing the new load drops the held
copy. So the common path (a new file, validated, published) copies nothing.
"""

from __future__ import annotations

import duckdb

from quality_assets.catalog import table_types
from quality_assets.warehouse import quote_ident, quote_literal

HELD_SCHEMA = "published_held"
REGISTRY = "qa.published_partitions"


def held_table(dataset: str) -> str:
    return f"{HELD_SCHEMA}.{quote_ident(dataset)}"


def hold_published(con: duckdb.DuckDBPyConnection, dataset: str, keys: list[str]) -> int:
    """Copy the rows of these partitions that consumers read from raw into the held table, before
    raw deletes them (call inside the deleting transaction); returns the rows copied."""
    if not keys or not table_types(con, "qa", "published_partitions"):
        return 0
    live = [row[0] for row in con.execute(
        f"SELECT partition_key FROM {REGISTRY} WHERE dataset = ? AND partition_key = ANY(?) AND NOT held",
        [dataset, list(keys)]).fetchall()]
    if not live:
        return 0
    evolve_held(con, dataset)
    copied = con.execute(f"INSERT INTO {held_table(dataset)} BY NAME SELECT * FROM raw.{quote_ident(dataset)} "
                         "WHERE _partition_key = ANY(?)", [live]).fetchone()[0]
    con.execute(f"UPDATE {REGISTRY} SET held = true WHERE dataset = ? AND partition_key = ANY(?)", [dataset, live])
    return copied


def evolve_held(con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    """Create the held table, or add and retype columns to follow raw's."""
    raw_types = table_types(con, "raw", dataset)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {HELD_SCHEMA}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {held_table(dataset)} AS SELECT * FROM raw.{quote_ident(dataset)} LIMIT 0")
    current = table_types(con, HELD_SCHEMA, dataset)
    for name, type_ in raw_types.items():
        if name not in current:
            con.execute(f"ALTER TABLE {held_table(dataset)} ADD COLUMN {quote_ident(name)} {type_}")
        elif current[name] != type_:
            con.execute(f"ALTER TABLE {held_table(dataset)} ALTER COLUMN {quote_ident(name)} TYPE {type_}")


def promote(con: duckdb.DuckDBPyConnection, dataset: str, partition_key: str, target: str) -> int:
    """Make raw's rows of the partition the published ones (inside the caller's transaction);
    returns the rows that stopped being published (the partition's former version)."""
    _define_view(con, dataset, target)
    replaced = con.execute(f"SELECT count(*) FROM {target} WHERE _partition_key = ?", [partition_key]).fetchone()[0]
    con.execute(f"DELETE FROM {held_table(dataset)} WHERE _partition_key = ?", [partition_key])
    con.execute(f"DELETE FROM {REGISTRY} WHERE dataset = ? AND partition_key = ?", [dataset, partition_key])
    con.execute(f"INSERT INTO {REGISTRY} VALUES (?, ?, false, now()::TIMESTAMP)", [dataset, partition_key])
    return replaced


def _define_view(con: duckdb.DuckDBPyConnection, dataset: str, target: str) -> None:
    """`target` as the view over raw's live published partitions and the held rows. A published
    table from before this layout becomes held rows once (its partitions marked held)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS qa")
    con.execute(f"CREATE TABLE IF NOT EXISTS {REGISTRY} (dataset VARCHAR NOT NULL, partition_key VARCHAR NOT NULL, "
                "held BOOLEAN NOT NULL, published_at TIMESTAMP NOT NULL)")
    evolve_held(con, dataset)
    kind = con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = 'published' "
                       "AND table_name = ?", [dataset]).fetchone()
    if kind and kind[0] == "BASE TABLE":
        con.execute(f"INSERT INTO {held_table(dataset)} BY NAME SELECT * FROM {target}")
        con.execute(f"INSERT INTO {REGISTRY} SELECT DISTINCT ?, _partition_key, true, now()::TIMESTAMP FROM {target}",
                    [dataset])
        con.execute(f"DROP TABLE {target}")
    elif kind:
        return  # the view already (it follows raw's columns as they change)
    con.execute(
        f"CREATE VIEW {target} AS SELECT * FROM raw.{quote_ident(dataset)} WHERE _partition_key IN ("
        f"SELECT partition_key FROM {REGISTRY} WHERE dataset = {quote_literal(dataset)} AND NOT held) "
        f"UNION ALL BY NAME SELECT * FROM {held_table(dataset)}")
