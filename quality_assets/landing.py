"""The landing folder: which files are there, which are complete, which are new or changed.

The sensor keeps its whole view of each folder in the cursor and rebuilds it every tick from a
directory listing, so a file that changes is seen again and a file that disappears drops out
(the cursor never grows beyond the folder). Content hashes are taken only for small files; a
large file whose size and mtime changed is requested anyway and the raw asset skips it when its
sha256 is unchanged.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from quality_assets.contract import Dataset
from quality_assets.ingest import is_temporary_name

# Dagster rejects partition keys containing these.
INVALID_KEY_PARTS = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")
CURSOR_VERSION = 1


@dataclass(frozen=True)
class LandedFile:
    key: str  # partition key: the path relative to the landing folder
    path: Path
    size: int
    mtime_ns: int

    @property
    def version(self) -> str:
        return f"{self.size}:{self.mtime_ns}"


def partition_key(relative: str) -> str | None:
    """The partition key for a relative path, or None when Dagster cannot hold it."""
    if not relative or any(part in relative for part in INVALID_KEY_PARTS) or len(relative) > 1024:
        return None
    return relative


def list_landed(dataset: Dataset) -> tuple[list[LandedFile], list[str]]:
    """Files matching the dataset's glob, skipping hidden and temporary names.

    Returns the files and the relative paths skipped because they cannot be partition keys.
    """
    root = dataset.landing_dir
    files: list[LandedFile] = []
    unusable: list[str] = []
    if not root.is_dir():
        return files, unusable
    for path, relative in _walk(root, dataset.recursive):
        if is_temporary_name(relative) or not fnmatch.fnmatchcase(Path(relative).name, dataset.glob) and not fnmatch.fnmatchcase(relative, dataset.glob):
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue  # removed while listing
        key = partition_key(relative)
        if key is None:
            unusable.append(relative)
            continue
        files.append(LandedFile(key, path, stat.st_size, stat.st_mtime_ns))
    files.sort(key=lambda f: f.key)
    return files, unusable


def _walk(root: Path, recursive: bool):
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            relative = f"{prefix}{entry.name}"
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                if recursive:
                    stack.append((Path(entry.path), relative + "/"))
            elif entry.is_file():
                yield Path(entry.path), relative


def resolve_file(dataset: Dataset, key: str) -> Path:
    """The landed file behind a partition key; FileNotFoundError with a clear message if gone."""
    path = (dataset.landing_dir / key).resolve()
    if dataset.landing_dir.resolve() not in path.parents:
        raise FileNotFoundError(f"partition {key!r} points outside the landing folder {dataset.landing_dir}")
    if not path.is_file():
        raise FileNotFoundError(
            f"file {key!r} of dataset {dataset.name!r} is no longer in {dataset.landing_dir}; "
            "it was moved or deleted after it landed"
        )
    return path


def small_file_hash(path: Path, max_bytes: int) -> str | None:
    """sha256 prefix of a file up to max_bytes, else None (too large to hash in a sensor tick)."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        return None


@dataclass
class TickPlan:
    to_run: list[LandedFile]  # complete files that are new or changed
    new_keys: list[str]  # partition keys to add
    waiting: list[str]  # files still being written
    unchanged_touched: list[str]  # mtime changed, content identical: no run
    deferred: int  # complete files left for the next tick (per-tick cap)
    cursor: str
    unusable: list[str]


def plan_tick(
    dataset: Dataset,
    cursor: str | None,
    now_ns: int,
    known_partitions: set[str],
    settle_s: float = 60.0,
    hash_max_bytes: int = 8 * 1024 * 1024,
    max_runs: int = 500,
) -> TickPlan:
    """Decide what this tick requests, from the folder listing and the previous cursor."""
    state = _parse_cursor(cursor)
    seen: dict[str, dict] = state["seen"]
    pending: dict[str, str] = state["pending"]
    files, unusable = list_landed(dataset)
    present = {f.key for f in files}
    new_seen = {k: v for k, v in seen.items() if k in present}
    new_pending: dict[str, str] = {}
    to_run: list[LandedFile] = []
    waiting: list[str] = []
    touched: list[str] = []
    deferred = 0
    for landed in files:
        previous = seen.get(landed.key)
        if previous and previous["v"] == landed.version:
            continue
        settled = (now_ns - landed.mtime_ns) / 1e9 >= settle_s
        if pending.get(landed.key) != landed.version and not settled:
            new_pending[landed.key] = landed.version  # first sight or still growing
            waiting.append(landed.key)
            continue
        digest = small_file_hash(landed.path, hash_max_bytes)
        if previous and digest and previous.get("h") == digest:
            new_seen[landed.key] = {"v": landed.version, "h": digest}
            touched.append(landed.key)
            continue
        if len(to_run) >= max_runs:
            new_pending[landed.key] = landed.version
            deferred += 1
            continue
        to_run.append(landed)
        new_seen[landed.key] = {"v": landed.version, "h": digest}
    new_keys = [f.key for f in to_run if f.key not in known_partitions]
    cursor_text = json.dumps(
        {"version": CURSOR_VERSION, "seen": new_seen, "pending": new_pending},
        separators=(",", ":"), sort_keys=True,
    )
    return TickPlan(to_run, new_keys, waiting, touched, deferred, cursor_text, unusable)


def _parse_cursor(cursor: str | None) -> dict:
    if not cursor:
        return {"seen": {}, "pending": {}}
    try:
        data = json.loads(cursor)
    except ValueError:
        return {"seen": {}, "pending": {}}
    if not isinstance(data, dict) or data.get("version") != CURSOR_VERSION:
        return {"seen": {}, "pending": {}}
    return {"seen": dict(data.get("seen", {})), "pending": dict(data.get("pending", {}))}


def run_key(dataset: str, landed: LandedFile) -> str:
    return f"{dataset}:{landed.key}:{landed.version}"
