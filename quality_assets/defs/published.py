"""`<dataset>/published`: the consumers' table, promoted only after the blocking checks pass."""


import dagster as dg

from quality_assets.contract import Dataset
from quality_assets.defs.common import PUBLISHED, RAW, VALIDATION, stage_asset, stage_key
from quality_assets.defs.resources import WarehouseResource
from quality_assets.publish import gate, publish_partition, published_table


def build_published_asset(dataset: Dataset, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    table = published_table(dataset.name)

    @stage_asset(
        dataset, PUBLISHED, partitions,
        # raw's file_parsed and validation's error rules are blocking checks: a failure in the same
        # run keeps this step from running at all
        deps=[stage_key(dataset, RAW), stage_key(dataset, VALIDATION)],
        kinds={"duckdb"},
        description=(
            f"The clean table for consumers, {table}: the partition's loaded rows (never quarantined ones), "
            "replaced in one transaction once the file parsed and every error-severity rule passed."
        ),
        metadata={"dataset": dataset.name, "dagster/table_name": table},
    )
    def published(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        keys = list(context.partition_keys)
        with warehouse.get().connect() as con:
            gates = {key: gate(con, dataset, key) for key in keys}
            blocked = {key: g for key, g in gates.items() if not g.ok}
            if blocked:  # all or nothing, like the run's own blocking checks
                raise dg.Failure(
                    description="not published: " + "; ".join(f"{key}: {g.summary()}" for key, g in blocked.items()),
                    metadata={"blocked_by": ", ".join(dict.fromkeys(r for g in blocked.values() for r in g.blocked_by))},
                    allow_retries=False,
                )
            done = [publish_partition(con, dataset, key) for key in keys]
        for item in done:
            context.log.info(f"{table} partition {item.partition_key!r}: {item.rows} rows published "
                             f"(replacing {item.replaced})")
        metadata = {
            "dagster/row_count": sum(item.rows for item in done),
            "rows_replaced": sum(item.replaced for item in done),
            "table": table,
        }
        if done and done[-1].columns:
            metadata["dagster/column_schema"] = dg.TableSchema(
                columns=[dg.TableColumn(name, type_) for name, type_ in done[-1].columns.items()])
        if len(done) > 1:
            for item in done:
                context.add_asset_metadata({"dagster/row_count": item.rows, "rows_replaced": item.replaced},
                                           partition_key=item.partition_key)
        return dg.MaterializeResult(metadata=metadata)

    return published
