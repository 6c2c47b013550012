"""`scorecard`: the daily cross-dataset health summary, with its job (its schedule is in
schedules.py)."""

import dagster as dg

from quality_assets.config import Settings
from quality_assets.contract import Contract
from quality_assets.defs.common import WAREHOUSE_POOL, retried_on_conflict
from quality_assets.defs.resources import OutputFolderResource, WarehouseResource
from quality_assets.scorecard import compute_scorecard, markdown, write_files, write_scorecard

SCORECARD_KEY = dg.AssetKey(["scorecard"])
SCORECARD_JOB = "scorecard_job"
DEFAULT_START = "2026-01-01"


def scorecard_start(contract: Contract, settings: Settings) -> str:
    if settings.scorecard_start:
        return settings.scorecard_start
    starts = [ds.daily.start for ds in contract.datasets if ds.daily]
    return min(starts) if starts else DEFAULT_START


def build_scorecard(contract: Contract, settings: Settings) -> tuple:
    """The scorecard asset and its job."""
    partitions = dg.DailyPartitionsDefinition(start_date=scorecard_start(contract, settings))
    datasets = [(ds.name, ds.partitioning) for ds in contract.datasets]

    @dg.asset(
        key=SCORECARD_KEY,
        partitions_def=partitions,
        group_name="scorecard",
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,
        description=(
            "Per dataset and day: files, rows, quarantined rows, checks passed and failed, anomalies, "
            "drift and freshness, in qa.scorecard and `$QA_OUTPUT_DIR/scorecard/<day>/`."
        ),
    )
    @retried_on_conflict
    def scorecard(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, output_folder: OutputFolderResource
    ) -> dg.MaterializeResult:
        day = context.partition_key
        with warehouse.get().connect() as con:
            rows = compute_scorecard(con, datasets, day)
            write_scorecard(con, rows, day, context.run.run_id)
        folder = write_files(rows, day, output_folder.get())
        statuses = [r.status for r in rows]
        return dg.MaterializeResult(metadata={
            "scorecard": dg.MetadataValue.md(markdown(rows, day)),
            "datasets": len(rows),
            "datasets_error": statuses.count("error"),
            "datasets_warn": statuses.count("warn"),
            "files": sum(r.files for r in rows),
            "rows_loaded": sum(r.rows_loaded for r in rows),
            "rows_quarantined": sum(r.rows_quarantined for r in rows),
            "checks_failed": sum(r.checks_failed for r in rows),
            "path": dg.MetadataValue.path(str(folder / "scorecard.json")),
        })

    job = dg.define_asset_job(SCORECARD_JOB, selection=[SCORECARD_KEY], description="The daily scorecard.")
    return scorecard, job
