"""Profiling one partition: its columns, the steps in order, the profile assembled."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import duckdb

from quality_assets.catalog import table_types
from quality_assets.contract import Dataset
from quality_assets.profile.frequencies import candidates, frequencies
from quality_assets.profile.model import TableProfile
from quality_assets.profile.results import column_profile, dataset_level
from quality_assets.profile.scans import (
    monotonicity,
    sample,
    sample_statistics,
    scan,
    second_scan,
    top_counts,
)
from quality_assets.profile.state import (
    GAUSSIAN_TESTS,
    PARTITION_COLUMNS,
    Column,
    ProfileOptions,
    Profiler,
    column_kind,
    source_bytes,
)
from quality_assets.warehouse import quote_ident

STEPS = (("scan", scan), ("sample", sample), ("monotonicity", monotonicity), ("frequencies", frequencies),
         ("candidates", candidates), ("second_scan", second_scan), ("top_counts", top_counts),
         ("sample_statistics", sample_statistics))


def profile_partition(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset | str,
    partition_key: str,
    top_values: int = 10,
    gaussian_test: str = "dagostino",
    options: ProfileOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> TableProfile:
    """Profile the partition's rows of raw."<dataset>" (every column but the load bookkeeping)."""
    name = dataset if isinstance(dataset, str) else dataset.name
    opts = options or ProfileOptions(top_values=top_values, gaussian_test=gaussian_test)
    if opts.gaussian_test not in GAUSSIAN_TESTS:
        raise ValueError(f"unknown normality test {opts.gaussian_test!r}; use one of {', '.join(GAUSSIAN_TESTS)}")
    con.execute("SET enable_progress_bar = false")
    table = f"raw.{quote_ident(name)}"
    described = list(table_types(con, "raw", name).items())
    columns = [
        Column(col_name, i, storage, column_kind(storage), f"c{i}")
        for i, (col_name, storage) in enumerate(c for c in described if c[0] not in PARTITION_COLUMNS)
    ]
    profile = TableProfile(name, partition_key)
    if not described:
        profile.metrics.update(row_count=0, column_count=0, duplicate_rows=0, alert_count=0, max_null_share=None,
                               bytes=source_bytes(con, name, partition_key))
        return profile
    state = Profiler(con, table, partition_key, columns, opts, progress or (lambda _: None))
    try:
        for name, step in STEPS:
            state.timed(profile, name, step)
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute("DROP TABLE IF EXISTS _profile_sample")
    for col in columns:
        profile.columns.append(column_profile(state, col))
    dataset_level(state, profile)
    return profile


