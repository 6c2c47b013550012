"""The catalog reads the stages share answer what information_schema answers; the anomaly tables'
DDL, skipped when everything is there, still creates and migrates what is not; rows inserted
through Arrow land as a statement per row would land them."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from quality_assets.anomalies.tables import ANOMALY_TABLES_DDL, RESULT_TABLES, ensure_anomaly_tables
from quality_assets.catalog import has_table, schema_tables, table_types
from quality_assets.warehouse import BULK_ROWS, insert_rows


def _warehouse(tmp_path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TYPE mood AS ENUM ('calm', 'cross')")
    con.execute('CREATE TABLE raw."odd name" (d DECIMAL(18,3), s STRUCT(a INT, "b c" VARCHAR), l INT[], '
                "m MAP(VARCHAR, INT), e mood, tz TIMESTAMPTZ, u UNION(n INT, s VARCHAR), a INT[3], j JSON)")
    con.execute('CREATE VIEW raw.v AS SELECT d, e FROM raw."odd name"')
    con.execute("CREATE TABLE main.other (x INT)")
    return con


def test_table_types_and_tables_are_information_schemas(tmp_path):
    con = _warehouse(tmp_path)
    for schema, table in (("raw", "odd name"), ("raw", "v"), ("main", "other"), ("raw", "missing")):
        expected = dict(con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position", [schema, table]).fetchall())
        assert table_types(con, schema, table) == expected
        assert list(table_types(con, schema, table)) == list(expected)  # in table order
    assert table_types(con, "raw", "odd name")["s"] == 'STRUCT(a INTEGER, "b c" VARCHAR)'
    # tables, not views; only the schema asked for
    assert schema_tables(con, "raw") == {"odd name"} and schema_tables(con, "nope") == set()
    assert has_table(con, "raw", "odd name") and not has_table(con, "raw", "v")
    assert not has_table(con, "raw", "other") and has_table(con, "main", "other")


def test_anomaly_tables_are_made_migrated_and_remade(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_anomaly_tables(con)
    assert set(RESULT_TABLES) <= schema_tables(con, "qa")
    # A warehouse from before the added columns, and one that lost a table: both mended.
    con.execute("ALTER TABLE qa.anomaly_runs DROP COLUMN partition_alarms")
    con.execute("ALTER TABLE qa.drift DROP COLUMN reference_spread")
    con.execute("DROP TABLE qa.column_roles")
    ensure_anomaly_tables(con)
    assert "partition_alarms" in table_types(con, "qa", "anomaly_runs")
    assert "reference_spread" in table_types(con, "qa", "drift")
    fresh = duckdb.connect(":memory:")
    for ddl in ANOMALY_TABLES_DDL:
        fresh.execute(ddl)
    for table in RESULT_TABLES:
        assert table_types(con, "qa", table).keys() == table_types(fresh, "qa", table).keys(), table


ROW_TABLE = ("CREATE TABLE {} (n BIGINT, x DOUBLE, s VARCHAR, j JSON, ok BOOLEAN, seen TIMESTAMP, tags VARCHAR[], "
             "nothing INTEGER, d DATE)")


@pytest.mark.parametrize("count", [1, BULK_ROWS, 40])
def test_rows_inserted_in_bulk_equal_rows_inserted_one_by_one(tmp_path, count):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute(ROW_TABLE.format("bulk"))
    con.execute(ROW_TABLE.format("one_by_one"))
    rows = [[i, i / 3 if i % 5 else None, f"é'\"{i}\n" if i % 4 else None, '{"k": [1, 2]}', i % 2 == 0,
             dt.datetime(2026, 1, 1, 12) + dt.timedelta(seconds=i), ["a", None, "c"] if i % 3 else [], None,
             dt.date(2026, 2, 1) + dt.timedelta(days=i)] for i in range(count)]
    insert_rows(con, '"bulk"', rows)
    con.executemany(f"INSERT INTO one_by_one VALUES ({', '.join('?' * len(rows[0]))})", rows)
    assert con.execute("SELECT * FROM bulk ORDER BY n").fetchall() == con.execute(
        "SELECT * FROM one_by_one ORDER BY n").fetchall()
    assert con.execute("SELECT count(*) FROM bulk").fetchone() == (count,)


def test_rows_arrow_cannot_type_go_in_one_by_one(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE t (v VARCHAR, n BIGINT)")
    insert_rows(con, "t", [[1, 1], ["two", 2], [3.5, 3], [None, 2**62]])  # a column of mixed kinds
    assert con.execute("SELECT * FROM t ORDER BY n").fetchall() == [
        ("1", 1), ("two", 2), ("3.5", 3), (None, 2**62)]
    insert_rows(con, "t", [])
    assert con.execute("SELECT count(*) FROM t").fetchone() == (4,)
