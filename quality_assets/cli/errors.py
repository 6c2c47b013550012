"""Exit statuses and the error the commands raise for bad usage.

0 when everything ran and no error-severity check failed, 1 when one did (or a run failed),
2 on bad usage or a bad contract, 141 when the reader of the output went away.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the contract package loads the rules and DuckDB: not for --help
    from quality_assets.contract import Contract, Dataset

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_PIPE_CLOSED = 141  # as a program killed by SIGPIPE: `... | head` closed the output early


class UsageError(Exception):
    pass


def dataset_named(contract: Contract, name: str) -> Dataset:
    try:
        return contract.dataset(name)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def dataset_for_file(contract: Contract, path: Path, name: str | None) -> Dataset | None:
    """The dataset named, or the one whose landing folder holds the file, or None."""
    if name:
        return dataset_named(contract, name)
    resolved = path.resolve()
    return next((ds for ds in contract.datasets if ds.landing_dir.resolve() in resolved.parents), None)
