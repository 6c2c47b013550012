"""Record numbers of the rows a straight CSV load inserted: each row's ordinal among the loaded
records (its rowid, DuckDB's parallel reader keeping the file's order) plus the rejected records
before it.
"""

from __future__ import annotations

import uuid

import pyarrow as pa

MAX_SHIFT_BRANCHES = 1024


def number_rows(con, table: str, keys: list[str], quarantined: list[int]) -> None:
    """Set `_source_row` of the rows just inserted under `keys`: ordinal + rejected records before it.

    Loaded row k sits after j rejected records when t_j = r_j - j < k (r_j the j-th rejected
    record number), so its record number is k + max{j : t_j < k}.
    """
    where = f"_partition_key IN ({', '.join('?' for _ in keys)})"
    base = con.execute(f"SELECT min(rowid) FROM {table} WHERE {where}", keys).fetchone()[0]
    if base is None:
        return
    ordinal = f"(rowid - {int(base)} + 1)"
    shifts: dict[int, int] = {}
    for j, record in enumerate(sorted(quarantined), start=1):
        shifts[record - j] = j
    steps = sorted(shifts.items())
    if len(steps) <= MAX_SHIFT_BRANCHES:
        con.execute(
            f"UPDATE {table} SET _source_row = {ordinal} + {_shift_tree(ordinal, steps, 0, len(steps), 0)} "
            f"WHERE {where} AND rowid >= {int(base)}",
            keys,
        )
        return
    shift_table = f"shifts_{uuid.uuid4().hex}"
    con.execute(f"CREATE TEMP TABLE {shift_table} (t BIGINT, j BIGINT)")
    con.register("shift_steps", pa.table({"t": [t for t, _ in steps], "j": [j for _, j in steps]}))
    try:
        con.execute(f"INSERT INTO {shift_table} SELECT t, j FROM shift_steps")
    finally:
        con.unregister("shift_steps")
    con.execute(
        f"UPDATE {table} SET _source_row = numbered.record FROM ("
        f"  SELECT n.row_id, n.k + coalesce(s.j, 0) AS record FROM ("
        f"    SELECT rowid AS row_id, {ordinal} AS k FROM {table} WHERE {where} AND rowid >= {int(base)}"
        f"  ) n ASOF LEFT JOIN {shift_table} s ON n.k > s.t"
        f") numbered WHERE {table}.rowid = numbered.row_id",
        keys,
    )
    con.execute(f"DROP TABLE {shift_table}")


def _shift_tree(ordinal: str, steps: list[tuple[int, int]], lo: int, hi: int, below: int) -> str:
    """SQL for max{j : t_j < ordinal} over steps[lo:hi] (sorted by t), `below` when none: a
    balanced CASE tree, so each row takes log2(len(steps)) comparisons."""
    if lo >= hi:
        return str(int(below))
    mid = (lo + hi) // 2
    t, j = steps[mid]
    return (f"CASE WHEN {ordinal} > {int(t)} THEN {_shift_tree(ordinal, steps, mid + 1, hi, j)} "
            f"ELSE {_shift_tree(ordinal, steps, lo, mid, below)} END")
