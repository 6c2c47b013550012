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
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from quality_assets.contract import Dataset
from quality_assets.ingest import is_temporary_name

# Dagster rejects partition keys containing "..."; control characters are refused as well, since
# a key shows up in the UI, in run keys and in file paths of the outputs.
INVALID_KEY = re.compile(r"\.\.\.|[\x00-\x1f\x7f-\x9f]")
MAX_KEY_LENGTH = 1024
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
    if not relative or len(relative) > MAX_KEY_LENGTH or INVALID_KEY.search(relative):
        return None
    try:
        relative.encode("utf-8")  # a name that is not UTF-8 on disk arrives with lone surrogates
    except UnicodeEncodeError:
        return None
    return relative


def missing_landing(dataset: Dataset) -> str | None:
    """Why the dataset's landing folder cannot be watched (it does not exist), or None."""
    root = dataset.landing_dir
    if root.is_dir():
        return None
    return f"dataset {dataset.name!r}: the landing folder {root} " + ("is not a folder" if root.exists() else "does not exist")


def list_landed(dataset: Dataset) -> tuple[list[LandedFile], list[str]]:
    """Files matching the dataset's glob, skipping hidden and temporary names, sorted by key.

    Returns the files and the relative paths skipped because they cannot be partition keys.
    """
    found, unusable = _scan(dataset)
    return [LandedFile(key, Path(path), size, mtime_ns) for key, path, size, mtime_ns in found], unusable


def _scan(dataset: Dataset) -> tuple[list[tuple[str, str, int, int]], list[str]]:
    """list_landed as plain tuples (key, path, size, mtime_ns): a tick builds LandedFile objects
    only for the files that changed, which keeps a tick over a large folder close to the cost of
    listing it."""
    root = dataset.landing_dir
    found: list[tuple[str, str, int, int]] = []
    unusable: list[str] = []
    if not root.is_dir():
        return found, unusable
    glob = dataset.glob
    for path, relative, name in _walk(str(root), dataset.recursive):
        if not (fnmatch.fnmatchcase(name, glob) or (relative != name and fnmatch.fnmatchcase(relative, glob))):
            continue
        if is_temporary_name(name):
            continue
        try:
            stat = os.stat(path)
        except OSError:
            continue  # removed or unreadable while listing; seen again next tick
        key = partition_key(relative)
        if key is None:
            unusable.append(relative)
            continue
        found.append((key, path, stat.st_size, stat.st_mtime_ns))
    found.sort()
    unusable.sort()
    return found, unusable


def _walk(root: str, recursive: bool):
    """(path, relative path, name) of the files (or links to files) under root; folders that are
    hidden or links are not entered, so every key stays inside the landing folder."""
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError:
            continue  # removed or unreadable while listing
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        stack.append((entry.path, f"{prefix}{name}/"))
                elif entry.is_file():
                    yield entry.path, f"{prefix}{name}", name
            except OSError:
                continue


def resolve_file(dataset: Dataset, key: str) -> Path:
    """The landed file behind a partition key; FileNotFoundError with a clear message if gone."""
    root = dataset.landing_dir.resolve()
    relative = PurePosixPath(key)
    path = root / key
    # The folder holding the file must be inside the landing folder; the file itself may be a
    # link, as list_landed lists links to files.
    folder = path.parent.resolve()
    if not key or relative.is_absolute() or ".." in relative.parts or (folder != root and root not in folder.parents):
        raise FileNotFoundError(f"partition {key!r} points outside the landing folder {dataset.landing_dir}")
    if not path.is_file():
        raise FileNotFoundError(
            f"file {key!r} of dataset {dataset.name!r} is no longer in {dataset.landing_dir}; "
            "it was moved or deleted after it landed"
        )
    return path.resolve()


def small_file_hash(path: Path, max_bytes: int) -> str | None:
    """sha256 prefix of a file of at most max_bytes, else None (too large to hash in a sensor tick).

    Reads at most max_bytes + 1 bytes, so a file that grew since it was listed costs no more.
    """
    digest = hashlib.sha256()
    left = max_bytes + 1
    try:
        with open(path, "rb") as fh:
            while left > 0 and (chunk := fh.read(min(left, 1 << 20))):
                left -= len(chunk)
                digest.update(chunk)
    except OSError:
        return None
    return None if left <= 0 else digest.hexdigest()[:16]


@dataclass
class TickPlan:
    to_run: list[LandedFile]  # complete files that are new or changed, oldest first
    new_keys: list[str]  # partition keys to add
    waiting: list[str]  # files still being written
    unchanged_touched: list[str]  # mtime changed, content identical: no run
    deferred: int  # complete files left for the next tick (per-tick cap)
    cursor: str
    unusable: list[str]
    cursor_reset: bool = False  # the previous cursor was unreadable: state rebuilt from the folder


def plan_tick(
    dataset: Dataset,
    cursor: str | None,
    now_ns: int,
    known_partitions: set[str],
    settle_s: float = 60.0,
    hash_max_bytes: int = 8 * 1024 * 1024,
    max_runs: int = 500,
) -> TickPlan:
    """Decide what this tick requests, from the folder listing and the previous cursor.

    A file is complete when its mtime is at least settle_s old, or when its size and mtime are
    the same as on the previous tick. A complete file runs when it is new or its size or mtime
    changed, unless it is small enough to hash and its content is the one that last ran (a
    touch). At most max_runs files run per tick (0: no cap), oldest first; the others stay in
    the cursor as complete and run on the following ticks.
    """
    state = _parse_cursor(cursor)
    seen, pending = state if state is not None else ({}, {})
    found, unusable = _scan(dataset)
    present = {key for key, *_ in found}
    new_seen = {k: v for k, v in seen.items() if k in present}
    new_pending: dict[str, str] = {}
    ready: list[tuple[LandedFile, str | None]] = []
    waiting: list[str] = []
    touched: list[str] = []
    settle_ns = int(settle_s * 1e9)
    for key, path, size, mtime_ns in found:
        version = f"{size}:{mtime_ns}"
        previous = seen.get(key)
        if previous is not None and previous["v"] == version:
            continue
        if now_ns - mtime_ns < settle_ns and pending.get(key) != version:
            new_pending[key] = version  # first sight, or changed since the last tick
            waiting.append(key)
            continue
        landed = LandedFile(key, Path(path), size, mtime_ns)
        digest = None
        if previous is not None and previous.get("h") is not None:
            digest = _hash_if_small(landed, hash_max_bytes)
            if digest == previous["h"]:
                new_seen[key] = {"v": version, "h": digest}
                touched.append(key)
                continue
        ready.append((landed, digest))
    # Oldest first, so that files deferred by the cap are not overtaken by newer arrivals.
    ready.sort(key=lambda item: (item[0].mtime_ns, item[0].key))
    cap = len(ready) if max_runs <= 0 else max_runs
    to_run: list[LandedFile] = []
    for landed, digest in ready[:cap]:
        if digest is None:
            digest = _hash_if_small(landed, hash_max_bytes)
        new_seen[landed.key] = {"v": landed.version, "h": digest}
        to_run.append(landed)
    for landed, _ in ready[cap:]:
        new_pending[landed.key] = landed.version  # complete: runs on a later tick without waiting again
    new_keys = [f.key for f in to_run if f.key not in known_partitions]
    cursor_text = json.dumps(
        {"version": CURSOR_VERSION, "seen": new_seen, "pending": new_pending},
        separators=(",", ":"), sort_keys=True,
    )
    return TickPlan(
        to_run, new_keys, waiting, touched, len(ready) - len(to_run), cursor_text, unusable,
        cursor_reset=bool(cursor) and state is None,
    )


def _hash_if_small(landed: LandedFile, max_bytes: int) -> str | None:
    return small_file_hash(landed.path, max_bytes) if landed.size <= max_bytes else None


def _parse_cursor(cursor: str | None) -> tuple[dict[str, dict], dict[str, str]] | None:
    """(seen, pending) from the cursor; None when it is unreadable or from another version."""
    if not cursor:
        return {}, {}
    try:
        data = json.loads(cursor)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or type(data.get("version")) is not int or data["version"] != CURSOR_VERSION:
        return None
    seen, pending = data.get("seen"), data.get("pending")
    if not isinstance(seen, dict) or not isinstance(pending, dict):
        return None
    if not all(isinstance(e, dict) and isinstance(e.get("v"), str) and isinstance(e.get("h"), (str, type(None)))
               for e in seen.values()):
        return None
    if not all(isinstance(v, str) for v in pending.values()):
        return None
    return seen, pending


def run_key(dataset: str, landed: LandedFile) -> str:
    return f"{dataset}:{landed.key}:{landed.version}"
