"""Several files of a dataset in one run (a range of its dynamic partitions), for the CLI's `run`
and the landing sensor alike, and what such a run left for its files to run alone
(`quality_assets.batches` holds the plain logic)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg

from quality_assets.batches import unfinished
from quality_assets.defs.common import stage_key

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
FILES_TAG = "quality_assets/files"


def range_tags(keys: Sequence[str]) -> dict[str, str]:
    """Tags that make a run cover `keys` (neighbours in the partitions' order) in one go."""
    return {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1], FILES_TAG: str(len(keys))}


def range_of(tags: dict[str, str]) -> tuple[str, str] | None:
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags and tags[RANGE_START_TAG] != tags[RANGE_END_TAG]:
        return tags[RANGE_START_TAG], tags[RANGE_END_TAG]
    return None


def job_stages(job: dg.JobDefinition, dataset: str) -> list[str]:
    """The dataset's stages the job materializes, in the job's topological order."""
    graph = job.asset_layer.asset_graph
    keys = graph.toposorted_asset_keys
    return [key.path[-1] for key in keys if len(key.path) == 2 and key.path[0] == dataset
            and graph.get(key).is_materializable]


def held_back(job: dg.JobDefinition, dataset: str, stage: str) -> set[str]:
    """The stages a failed blocking check of `stage` keeps from running: everything downstream."""
    graph = job.asset_layer.asset_graph
    below: set[str] = set()
    todo = [stage_key(dataset, stage)]
    while todo:
        for child in graph.get(todo.pop()).child_keys:
            if child.path[0] == dataset and child.path[-1] not in below:
                below.add(child.path[-1])
                todo.append(child)
    return below


def left_to_run(job: dg.JobDefinition, dataset: str, keys: Sequence[str],
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
            stage = evaluation.asset_key.path[-1]
            if (evaluation.partition is not None and not evaluation.passed
                    and evaluation.severity == dg.AssetCheckSeverity.ERROR
                    and evaluation.blocking):
                blocked.setdefault(evaluation.partition, set()).update(held_back(job, dataset, stage))
    return unfinished(keys, job_stages(job, dataset), done, blocked)
