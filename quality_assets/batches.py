"""Several landed files in one Dagster run: which files go together, and what a run that failed
part-way left undone for each of them.

A run over several files is a range of the dataset's dynamic partitions, so its files must be
neighbours in the partitions' order (the order they were added in). Every file keeps its own
partition, checks, audit and report; only the run's fixed cost (the run, its steps, the
warehouse opened once per step) is shared. A blocking check that fails for one file stops the
range's later steps for all of them, so the files that did not block themselves are run again
alone, each with only the stages it is missing (`unfinished`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def contiguous_batches(order: Sequence[str], wanted: Iterable[str], size: int) -> list[list[str]]:
    """`wanted` keys grouped into runs of at most `size` keys that are neighbours in `order`,
    in that order. Keys missing from `order` are an error: a range cannot hold them."""
    position = {key: i for i, key in enumerate(order)}
    missing = [key for key in wanted if key not in position]
    if missing:
        raise ValueError(f"not partitions of the dataset (yet): {missing[:5]}")
    batches: list[list[str]] = []
    for key in sorted(set(wanted), key=position.__getitem__):
        last = batches[-1] if batches else None
        if last and len(last) < size and position[last[-1]] == position[key] - 1:
            last.append(key)
        else:
            batches.append([key])
    return batches


def unfinished(keys: Sequence[str], stages: Sequence[str], done: Iterable[tuple[str, str]],
               blocked_by_itself: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Per key of a range, the stages (in `stages` order) still to run alone: those not done
    for it, less those its own failed blocking checks hold back (`blocked_by_itself`: key ->
    stages, e.g. everything after raw for a rejected file, `published` after a failed error rule)."""
    done = set(done)
    result = {}
    for key in keys:
        held = set(blocked_by_itself.get(key, ()))
        missing = [stage for stage in stages if (stage, key) not in done and stage not in held]
        if missing:
            result[key] = missing
    return result
