"""Several files of a dataset in one run (a range of its dynamic partitions), for the CLI's `run`
and the landing sensor alike, and what such a run left for its files to run alone
(`quality_assets.batches` holds the plain logic)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg

from quality_assets.batches import unfinished

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
FILES_TAG = "quality_assets/files"
FILE_VERSIONS_TAG = "quality_assets/file_versions"  # a range run of the sensor's: {file: version}


def range_tags(keys: Sequence[str]) -> dict[str, str]:
    """Tags that make a run cover `keys` (neighbours in the partitions' order) in one go."""
    return {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1], FILES_TAG: str(len(keys))}


def range_of(tags: dict[str, str]) -> tuple[str, str] | None:
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags and tags[RANGE_START_TAG] != tags[RANGE_END_TAG]:
        return tags[RANGE_START_TAG], tags[RANGE_END_TAG]
    return None


def stage_graph(assets: Iterable, dataset: str) -> dict[str, list[str]]:
    """stage -> the stages it depends on, from the dataset's asset definitions."""
    graph = {}
    for asset in assets:
        if isinstance(asset, dg.AssetsDefinition) and asset.key.path[0] == dataset and len(asset.key.path) == 2:
            graph[asset.key.path[-1]] = [key.path[-1] for key in asset.dependency_keys if key.path[0] == dataset]
    return graph


def stage_order(graph: dict[str, list[str]]) -> list[str]:
    """The stages upstream first."""
    order: list[str] = []

    def visit(stage: str) -> None:
        if stage not in order:
            for upstream in graph[stage]:
                visit(upstream)
            order.append(stage)

    for stage in graph:
        visit(stage)
    return order


def held_back(graph: dict[str, list[str]], stage: str) -> set[str]:
    """The stages a failed blocking check of `stage` keeps from running: everything downstream."""
    below = {stage}
    while True:
        more = {s for s, upstream in graph.items() if below.intersection(upstream)} - below
        if not more:
            return below - {stage}
        below |= more


def left_to_run(graph: dict[str, list[str]], keys: Sequence[str],
                events: Iterable[dg.DagsterEvent]) -> dict[str, list[str]]:
    """Per file of a range run, the stages it still needs, run alone: not materialized for it,
    and not held back by its own failed blocking checks (a rejected file, a failed error rule)."""
    done: set[tuple[str, str]] = set()
    blocked: dict[str, set[str]] = {}
    for event in events:
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            done.add((materialization.asset_key.path[-1], materialization.partition))
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if (evaluation.partition is not None and not evaluation.passed
                    and evaluation.severity == dg.AssetCheckSeverity.ERROR and evaluation.blocking):
                blocked.setdefault(evaluation.partition, set()).update(held_back(graph, evaluation.asset_key.path[-1]))
    return unfinished(keys, stage_order(graph), done, blocked)
