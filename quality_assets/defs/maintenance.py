"""The Dagster side of retention: dynamic partition keys and materialization history."""

import dagster as dg

from quality_assets.contract import Contract
from quality_assets.defs.raw import files_partitions


def dynamic_partition_keys(instance: dg.DagsterInstance, contract: Contract) -> dict[str, set[str]]:
    return {
        ds.name: set(instance.get_dynamic_partitions(files_partitions(ds).name))
        for ds in contract.datasets if ds.partitioning == "file"
    }


def dataset_asset_keys(defs: dg.Definitions, dataset: str) -> list[dg.AssetKey]:
    """The partitioned assets of a dataset (`<dataset>/raw` and the stages after it)."""
    graph = defs.get_repository_def().asset_graph
    return sorted(
        (key for key in graph.get_all_asset_keys()
         if key.path[0] == dataset and len(key.path) > 1 and graph.get(key).partitions_def is not None),
        key=lambda k: k.to_user_string(),
    )


def remove_from_dagster(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    contract: Contract,
    keys_by_dataset: dict[str, list[str]],
) -> tuple[int, int]:
    """Delete dynamic partition keys and wipe the partitions' materializations where the event log
    storage can (Dagster's SQLite and PostgreSQL storages cannot wipe single partitions: their
    history stays, and a deleted dynamic key no longer shows in the UI); returns (deleted, wiped)."""
    deleted = wiped = 0
    can_wipe = True
    for name, keys in keys_by_dataset.items():
        if not keys:
            continue
        ds = contract.dataset(name)
        for asset_key in dataset_asset_keys(defs, name) if can_wipe else ():
            try:
                instance.wipe_asset_partitions(asset_key, keys)
                wiped += len(keys)
            except NotImplementedError:
                can_wipe = False
                break
        if ds.partitioning == "file":
            partitions = files_partitions(ds).name
            for key in keys:
                if instance.has_dynamic_partition(partitions, key):
                    instance.delete_dynamic_partition(partitions, key)
                    deleted += 1
    return deleted, wiped
