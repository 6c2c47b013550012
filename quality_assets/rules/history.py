"""The partition validated before this one, from `qa.validations`: what the schema and row-count
change rules compare against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quality_assets.contract import Dataset
    from quality_assets.rules.results import Evaluation


@dataclass(frozen=True)
class Previous:
    partition_key: str
    columns: list[str]
    types: dict[str, str]
    rows: int | None


def previous_validation(con, dataset: Dataset, evaluation: Evaluation) -> Previous | None:
    """The validation recorded for the partition before this one (by day for daily datasets, else
    by load time)."""
    if dataset.partitioning == "daily":
        order, condition, param = "partition_key DESC", "partition_key < ?", evaluation.partition_key
    else:
        if evaluation.loaded_at is None:
            return None
        order, condition, param = "loaded_at DESC", "loaded_at < ?", evaluation.loaded_at
    row = con.execute(
        f"SELECT partition_key, columns, column_types, rows_evaluated FROM qa.validations WHERE dataset = ? "
        f"AND partition_key <> ? AND {condition} ORDER BY {order} LIMIT 1",
        [dataset.name, evaluation.partition_key, param],
    ).fetchone()
    if row is None:
        return None
    columns = list(row[1] or [])
    return Previous(row[0], columns, dict(zip(columns, row[2] or [], strict=False)), row[3])
