"""Definitions built from the contract: per dataset, its assets, job and sensor."""

from __future__ import annotations

import os

import dagster as dg

from quality_assets.config import Settings, settings_from_env
from quality_assets.contract import Contract, load_contract
from quality_assets.defs.alerts import build_alert_sensors
from quality_assets.defs.anomalies import build_anomalies_asset
from quality_assets.defs.batching import stage_graph
from quality_assets.defs.daily import build_daily_raw_asset, daily_partitions
from quality_assets.defs.pools import build_lake_pool_sensor
from quality_assets.defs.profile import build_profile_asset
from quality_assets.defs.published import build_published_asset
from quality_assets.defs.raw import build_raw_asset, files_partitions
from quality_assets.defs.report import build_report_asset
from quality_assets.defs.resources import OutputFolderResource, QualitySettings, WarehouseResource
from quality_assets.defs.schedules import build_daily_schedule, build_scorecard_schedule
from quality_assets.defs.scorecard import build_scorecard
from quality_assets.defs.sensors import (
    build_daily_landing_sensor,
    build_landing_sensor,
    build_range_followup_sensor,
)
from quality_assets.defs.validation import build_validation_asset
from quality_assets.lake import is_lake


def dataset_job_name(dataset: str) -> str:
    return f"{dataset}_job"


def build_definitions(contract: Contract, settings: Settings) -> dg.Definitions:
    assets, jobs, sensors, schedules = [], [], [], []
    for dataset in contract.datasets:
        daily = dataset.partitioning == "daily"
        partitions = daily_partitions(dataset) if daily else files_partitions(dataset)
        raw = build_daily_raw_asset(dataset, partitions) if daily else build_raw_asset(dataset, partitions)
        job = dg.define_asset_job(
            dataset_job_name(dataset.name),
            selection=dg.AssetSelection.assets(raw).upstream().downstream(),
            description=f"Everything for one landed file of {dataset.name}.",
        )
        stages = [
            raw,
            build_validation_asset(dataset, partitions),
            build_published_asset(dataset, partitions),
            build_profile_asset(dataset, partitions),
            build_anomalies_asset(dataset, partitions),
            build_report_asset(dataset, partitions),
        ]
        assets += stages
        jobs.append(job)
        if not daily:
            sensors.append(build_landing_sensor(dataset, job, partitions, settings))
            sensors.append(build_range_followup_sensor(dataset, job, partitions, stage_graph(stages, dataset.name), settings))
        else:  # a day's files run once the day has closed, and the schedule runs the previous day
            if dataset.daily.file_pattern:
                sensors.append(build_daily_landing_sensor(dataset, job, settings))
            schedules.append(build_daily_schedule(dataset, job))
    scorecard, scorecard_job = build_scorecard(contract, settings)
    assets.append(scorecard)
    jobs.append(scorecard_job)
    schedules.append(build_scorecard_schedule(scorecard_job))
    sensors.extend(build_alert_sensors([ds.name for ds in contract.datasets], settings))
    if is_lake(settings.warehouse):
        sensors.append(build_lake_pool_sensor(settings))
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        sensors=sensors,
        schedules=schedules,
        resources={"warehouse": warehouse_resource(settings), "output_folder": output_folder_resource(settings),
                   "quality_settings": QualitySettings()},
        # A run's stages follow each other: one process per run instead of one per step halves
        # the start-up cost that dominates small files (benchmarks/deployment.py).
        executor=dg.in_process_executor,
    )


def env_or(name: str, default: str):
    """Settings given by environment variables stay EnvVars, resolved when a run launches."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def output_folder_resource(settings: Settings) -> OutputFolderResource:
    return OutputFolderResource(path=env_or("QA_OUTPUT_DIR", str(settings.output_dir)))


def warehouse_resource(settings: Settings) -> WarehouseResource:
    return WarehouseResource(
        path=env_or("QA_DUCKDB_PATH", str(settings.duckdb_path)),
        memory_limit=env_or("QA_DUCKDB_MEMORY_LIMIT", settings.memory_limit),
        threads=settings.duckdb_threads,
        lock_timeout_s=settings.lock_timeout_s,
        lake=env_or("QA_WAREHOUSE", settings.warehouse or ""),
        lake_data_path=env_or("QA_LAKE_DATA_PATH", settings.lake_data_path),
    )


@dg.definitions
def defs() -> dg.Definitions:
    settings = settings_from_env()
    return build_definitions(load_contract(settings.contracts), settings)
