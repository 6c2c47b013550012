"""published."<dataset>" as a view over raw: nothing copied when a new load is published, the last
good version kept (held) while a reload waits for its checks, kept through retention, and a
published table of an older warehouse taken over."""

from __future__ import annotations

from pathlib import Path

from quality_assets.contract import parse_contract
from quality_assets.ingest import load_file
from quality_assets.publish import gate, publish_partition
from quality_assets.retention import OldPartition, remove_partitions
from quality_assets.rules import validate
from quality_assets.warehouse import Warehouse

CONTRACT = """\
datasets:
  orders:
    columns: {id: bigint, currency: string}
    rules:
      - accepted_values: {column: currency, values: [EUR, USD]}
"""
GOOD = "id,currency\n1,EUR\n2,USD\n3,EUR\n"
BAD = "id,currency\n1,EUR\n2,BTC\n"
FIXED = "id,currency\n1,EUR\n2,USD\n"


def setup(tmp_path: Path):
    dataset = parse_contract(CONTRACT, tmp_path / "quality.yaml").dataset("orders")
    return dataset, Warehouse(tmp_path / "wh.duckdb")


def load_and_publish(tmp_path: Path, warehouse: Warehouse, dataset, key: str, text: str, run: str) -> bool:
    path = tmp_path / f"{run}.csv"
    path.write_text(text)
    load_file(warehouse, path, dataset, key, run, force=True)
    validate(warehouse, dataset, [key], run)
    with warehouse.connect() as con:
        if not gate(con, dataset, key).ok:
            return False
        publish_partition(con, dataset, key)
    return True


def query(warehouse: Warehouse, sql: str) -> list[tuple]:
    with warehouse.connect() as con:
        return con.execute(sql).fetchall()


def published(warehouse: Warehouse) -> list[tuple]:
    return query(warehouse, 'SELECT _partition_key, id, currency FROM published."orders" ORDER BY ALL')


def held_rows(warehouse: Warehouse) -> int:
    return query(warehouse, 'SELECT count(*) FROM published_held."orders"')[0][0]


def test_publishing_copies_nothing_and_a_blocked_reload_keeps_the_last_good_version(tmp_path):
    dataset, warehouse = setup(tmp_path)
    assert load_and_publish(tmp_path, warehouse, dataset, "a.csv", GOOD, "r1")
    assert query(warehouse, "SELECT table_type FROM information_schema.tables WHERE table_schema = 'published' "
                            "AND table_name = 'orders'") == [("VIEW",)]
    assert published(warehouse) == [("a.csv", 1, "EUR"), ("a.csv", 2, "USD"), ("a.csv", 3, "EUR")]
    assert held_rows(warehouse) == 0  # read from raw: no second copy
    assert not load_and_publish(tmp_path, warehouse, dataset, "b.csv", BAD, "r2")  # never published
    assert not load_and_publish(tmp_path, warehouse, dataset, "a.csv", BAD, "r3")  # blocked reload
    assert query(warehouse, "SELECT count(*) FROM raw.\"orders\" WHERE _partition_key = 'a.csv'") == [(2,)]
    assert published(warehouse) == [("a.csv", 1, "EUR"), ("a.csv", 2, "USD"), ("a.csv", 3, "EUR")]
    assert held_rows(warehouse) == 3
    assert load_and_publish(tmp_path, warehouse, dataset, "a.csv", FIXED, "r4")
    assert published(warehouse) == [("a.csv", 1, "EUR"), ("a.csv", 2, "USD")]
    assert held_rows(warehouse) == 0


def test_retention_keeps_published_rows(tmp_path):
    dataset, warehouse = setup(tmp_path)
    assert load_and_publish(tmp_path, warehouse, dataset, "a.csv", GOOD, "r1")
    assert load_and_publish(tmp_path, warehouse, dataset, "c.csv", FIXED, "r2")
    with warehouse.connect() as con:
        remove_partitions(con, [OldPartition("orders", "a.csv", "files", None)], tmp_path / "out")
    assert query(warehouse, "SELECT DISTINCT _partition_key FROM raw.\"orders\"") == [("c.csv",)]
    assert published(warehouse) == [("a.csv", 1, "EUR"), ("a.csv", 2, "USD"), ("a.csv", 3, "EUR"),
                                    ("c.csv", 1, "EUR"), ("c.csv", 2, "USD")]


def test_a_published_table_of_an_older_warehouse_is_taken_over(tmp_path):
    dataset, warehouse = setup(tmp_path)
    path = tmp_path / "old.csv"
    path.write_text(GOOD)
    load_file(warehouse, path, dataset, "old.csv", "r0")
    with warehouse.connect() as con:  # what publishing wrote before published became a view
        con.execute("CREATE SCHEMA published")
        con.execute('CREATE TABLE published."orders" AS SELECT * FROM raw."orders"')
        con.execute("DELETE FROM raw.\"orders\"")
    assert load_and_publish(tmp_path, warehouse, dataset, "a.csv", FIXED, "r1")
    assert published(warehouse) == [("a.csv", 1, "EUR"), ("a.csv", 2, "USD"),
                                    ("old.csv", 1, "EUR"), ("old.csv", 2, "USD"), ("old.csv", 3, "EUR")]
