"""Definitions built from the contract: per dataset, its assets, job and sensor."""

from __future__ import annotations

import os

import dagster as dg

from quality_assets.config import Settings, settings_from_env
from quality_assets.contract import Contract, load_contract
from quality_assets.defs.raw import build_raw_asset, files_partitions
from quality_assets.defs.resources import WarehouseResource
from quality_assets.defs.sensors import build_landing_sensor


def dataset_job_name(dataset: str) -> str:
    return f"{dataset}_job"


def build_definitions(contract: Contract, settings: Settings) -> dg.Definitions:
    assets, jobs, sensors = [], [], []
    for dataset in contract.datasets:
        partitions = files_partitions(dataset)
        raw = build_raw_asset(dataset, partitions)
        job = dg.define_asset_job(
            dataset_job_name(dataset.name),
            selection=dg.AssetSelection.assets(raw).upstream().downstream(),
            description=f"Everything for one landed file of {dataset.name}.",
        )
        assets.append(raw)
        jobs.append(job)
        sensors.append(build_landing_sensor(dataset, job, partitions, settings))
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        sensors=sensors,
        resources={"warehouse": warehouse_resource(settings)},
    )


def warehouse_resource(settings: Settings) -> WarehouseResource:
    """Paths given by environment variables stay EnvVars, resolved when a run launches."""
    def env_or(name: str, default: str):
        return dg.EnvVar(name) if os.environ.get(name) else default

    return WarehouseResource(
        path=env_or("QA_DUCKDB_PATH", str(settings.duckdb_path)),
        memory_limit=env_or("QA_DUCKDB_MEMORY_LIMIT", settings.memory_limit),
        lock_timeout_s=settings.lock_timeout_s,
    )


@dg.definitions
def defs() -> dg.Definitions:
    settings = settings_from_env()
    return build_definitions(load_contract(settings.contracts), settings)
