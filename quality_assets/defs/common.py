"""What every stage's Dagster wiring shares: the warehouse pool, the stage keys, the `@asset`
preamble of a dataset's stage, emitting one partition's or a range's results, and markdown
tables for metadata."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import dagster as dg
import duckdb

from quality_assets.config import settings_from_env
from quality_assets.contract import Dataset
from quality_assets.warehouse import WarehouseConflict, is_conflict

WAREHOUSE_POOL = "duckdb_warehouse"  # the writing steps' pool: narrow on the file, a slot per worker on a lake (pools.py)
FILES_PER_BACKFILL_RUN = 25  # a backfill of a file dataset: this many files per run, each its own partition
RAW, VALIDATION, PUBLISHED, PROFILE, ANOMALIES, REPORT = "raw", "validation", "published", "profile", "anomalies", "report"

Item = TypeVar("Item")


def stage_key(dataset: Dataset | str, stage: str) -> dg.AssetKey:
    """`<dataset>/<stage>`."""
    return dg.AssetKey([dataset if isinstance(dataset, str) else dataset.name, stage])


@contextmanager
def accepting_preview_apis() -> Iterator[None]:
    """Build assets with the beta/preview APIs we rely on (single-run backfill policies,
    partitioned check specs) without a warning per dataset at every code-location load."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield


def stage_asset(dataset: Dataset, stage: str, partitions: dg.PartitionsDefinition, **kwargs: Any):
    """`@dg.asset` for one stage of a dataset: its key, partitions, group and the warehouse pool;
    a daily dataset's backfill runs its whole range in one run, a file dataset's runs files in batches."""

    def decorate(fn):
        with accepting_preview_apis():
            return dg.asset(
                key=stage_key(dataset, stage), partitions_def=partitions, group_name=dataset.name,
                pool=WAREHOUSE_POOL,
                backfill_policy=dg.BackfillPolicy.single_run() if dataset.partitioning == "daily"
                else dg.BackfillPolicy.multi_run(FILES_PER_BACKFILL_RUN),
                **kwargs,
            )(retried_on_conflict(fn))

    return decorate


def retried_on_conflict(fn: Callable) -> Callable:
    """A step whose lake commit lost against another writer's runs again (it replaces its
    partition, so a rerun is safe), QA_LAKE_RETRIES times with a growing wait; then it fails
    with the conflict. The embedded file never conflicts (its writers queue)."""

    @functools.wraps(fn)
    def step(context: dg.AssetExecutionContext, *args, **kwargs):
        try:
            return fn(context, *args, **kwargs)
        except (WarehouseConflict, duckdb.Error) as exc:
            if not is_conflict(exc):
                raise
            retries = settings_from_env().lake_retries
            context.log.warning(f"{exc}; attempt {context.retry_number + 1} of {retries + 1}")
            raise dg.RetryRequested(max_retries=retries, seconds_to_wait=min(0.5 * 2 ** context.retry_number, 10)) from exc

    # Dagster reads the step's parameters (context, config, resources) from its signature
    step.__signature__ = inspect.signature(fn, eval_str=True)
    return step


def partition_check(name: str, key: dg.AssetKey, partitions: dg.PartitionsDefinition, **kwargs: Any) -> dg.AssetCheckSpec:
    """A check partitioned like its asset, so that a partition's result lands on that partition."""
    with accepting_preview_apis():
        return dg.AssetCheckSpec(name, asset=key, partitions_def=partitions, **kwargs)


def partition_results(context: dg.AssetExecutionContext, key: dg.AssetKey, items: Sequence[Item],
                      partition_of: Callable[[Item], str], metadata_of: Callable[[Item], dict],
                      checks_of: Callable[[Sequence[Item]], list[dg.AssetCheckResult]],
                      range_metadata_of: Callable[[Sequence[Item]], dict],
                      blocking: Callable[[str], bool] = lambda check: False) -> dg.MaterializeResult:
    """One partition: its metadata and checks are the materialization's. A range (a daily
    backfill): each partition's metadata and check evaluations land on that partition, and the
    result returned is the run's verdict over the whole range."""
    if len(items) == 1:
        return dg.MaterializeResult(metadata=metadata_of(items[0]), check_results=checks_of(items))
    for item in items:
        partition = partition_of(item)
        context.add_asset_metadata(metadata_of(item), partition_key=partition)
        for check in checks_of([item]):
            context.log_event(dg.AssetCheckEvaluation(
                asset_key=key, check_name=check.check_name, passed=check.passed, severity=check.severity,
                metadata=check.metadata, partition=partition, blocking=blocking(check.check_name),
            ))
    return dg.MaterializeResult(metadata=range_metadata_of(items), check_results=checks_of(items))


def markdown_table(rows: list[dict], max_chars: int = 40) -> str:
    """A small markdown table; cell text is escaped so data cannot inject markup."""
    if not rows:
        return "_no rows_"
    names = list(rows[0])

    def cell(value) -> str:
        text = "" if value is None else str(value)
        text = text if len(text) <= max_chars else text[: max_chars - 1] + "…"
        # entities for the HTML characters: the raw markdown holds no tag, even before rendering
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        for char in "\\`*_{}[]()#+-.!|":
            text = text.replace(char, "\\" + char)
        return text.replace("\n", " ")

    lines = ["| " + " | ".join(cell(n) for n in names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(cell(row[n]) for n in names) + " |" for row in rows]
    return "\n".join(lines)
