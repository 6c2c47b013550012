"""Pure landing-folder logic: listing, stability, change detection, the cursor and the per-tick cap.

Time is explicit: each tick is planned at `Folder.now`, files get their mtimes through os.utime,
so no test sleeps or depends on the clock.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from quality_assets import landing
from quality_assets.contract import Dataset, parse_contract
from quality_assets.landing import (
    LandedFile,
    TickPlan,
    list_landed,
    partition_key,
    plan_tick,
    resolve_file,
    run_key,
    small_file_hash,
)

START_NS = 1_800_000_000 * 10**9
SETTLE_S = 60.0
TICK_S = 30.0


def make_dataset(tmp_path: Path, glob: str = "*.csv", recursive: bool = False) -> Dataset:
    text = (
        "datasets:\n  orders:\n"
        f"    landing: {{path: landing/orders, glob: {json.dumps(glob)}, recursive: {str(recursive).lower()}}}\n"
    )
    return parse_contract(text, tmp_path / "quality.yaml").dataset("orders")


class Folder:
    """A landing folder and the sensor's memory of it (cursor, partitions), ticking every TICK_S."""

    def __init__(self, tmp_path: Path, *, glob: str = "*.csv", recursive: bool = False,
                 settle_s: float = SETTLE_S, hash_max_bytes: int = 1024, max_runs: int = 500):
        self.dataset = make_dataset(tmp_path, glob, recursive)
        self.root = self.dataset.landing_dir
        self.root.mkdir(parents=True)
        self.now = START_NS
        self.cursor: str | None = None
        self.known: set[str] = set()
        self.options = {"settle_s": settle_s, "hash_max_bytes": hash_max_bytes, "max_runs": max_runs}

    def write(self, name: str, content: str | bytes, age_s: float = 0.0) -> Path:
        """Write a file whose mtime is age_s before the next tick."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return self.set_mtime(name, age_s)

    def set_mtime(self, name: str, age_s: float = 0.0) -> Path:
        path = self.root / name
        mtime = self.now - int(age_s * 1e9)
        os.utime(path, ns=(mtime, mtime))
        return path

    def tick(self) -> TickPlan:
        """Plan a tick, keep its cursor and partitions as the sensor would, and move the clock on."""
        plan = plan_tick(self.dataset, self.cursor, self.now, set(self.known), **self.options)
        self.cursor = plan.cursor
        self.known |= set(plan.new_keys)
        self.now += int(TICK_S * 1e9)
        return plan

    def cursor_state(self) -> dict:
        return json.loads(self.cursor)

    def version(self, name: str) -> str:
        stat = (self.root / name).stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"


def keys(plan: TickPlan) -> list[str]:
    return [f.key for f in plan.to_run]


def run_keys(folder: Folder, plan: TickPlan) -> list[str]:
    return [run_key(folder.dataset.name, f) for f in plan.to_run]


# --- listing --------------------------------------------------------------------------------


def test_list_landed_applies_glob_and_skips_hidden_and_temporary_names(tmp_path):
    folder = Folder(tmp_path)
    for name in ["b.csv", "a.csv", "notes.txt", "upload.csv.part", "x.csv.tmp", "y.csv.crdownload",
                 ".x.csv", "~$lock.csv", "data.CSV"]:
        folder.write(name, "id\n1\n")
    (folder.root / "sub").mkdir()
    folder.write("sub/c.csv", "id\n1\n")

    files, unusable = list_landed(folder.dataset)

    assert [f.key for f in files] == ["a.csv", "b.csv"]  # sorted; glob is case-sensitive; no recursion
    assert unusable == []
    a = files[0]
    assert a.path == folder.root / "a.csv"
    assert (a.size, a.mtime_ns) == (5, folder.now)
    assert a.version == f"5:{folder.now}"


def test_recursive_listing_uses_relative_paths_and_skips_hidden_folders(tmp_path):
    folder = Folder(tmp_path, recursive=True)
    folder.write("a.csv", "id\n1\n")
    folder.write("2026/01/b.csv", "id\n1\n")
    folder.write(".cache/c.csv", "id\n1\n")
    folder.write("2026/d.csv.part", "id\n1\n")

    files, _ = list_landed(folder.dataset)

    assert [f.key for f in files] == ["2026/01/b.csv", "a.csv"]


def test_glob_with_a_folder_matches_the_relative_path(tmp_path):
    folder = Folder(tmp_path, glob="eu/*.csv", recursive=True)
    folder.write("eu/a.csv", "id\n1\n")
    folder.write("us/b.csv", "id\n1\n")

    assert [f.key for f in list_landed(folder.dataset)[0]] == ["eu/a.csv"]


def test_non_recursive_listing_ignores_subfolders(tmp_path):
    folder = Folder(tmp_path, recursive=False)
    folder.write("2026/b.csv", "id\n1\n", age_s=3600)

    assert list_landed(folder.dataset) == ([], [])
    assert keys(folder.tick()) == []


@pytest.mark.parametrize("name", ["weekly...report.csv", "tab\there.csv", "bell\x07.csv", "esc\x1b.csv",
                                  "line\nbreak.csv", "del\x7f.csv"])
def test_names_that_cannot_be_partition_keys_are_returned_as_unusable(tmp_path, name):
    folder = Folder(tmp_path)
    folder.write(name, "id\n1\n", age_s=3600)
    folder.write("good.csv", "id\n1\n", age_s=3600)

    files, unusable = list_landed(folder.dataset)
    plan = folder.tick()

    assert [f.key for f in files] == ["good.csv"]
    assert unusable == [name]
    assert keys(plan) == ["good.csv"] and plan.unusable == [name]
    assert name not in folder.cursor_state()["seen"]


def test_name_that_is_not_utf8_is_unusable(tmp_path):
    folder = Folder(tmp_path)
    try:
        (folder.root / os.fsdecode(b"caf\xe9.csv")).write_text("id\n1\n")
    except (UnicodeEncodeError, OSError):
        pytest.skip("file system refuses non-UTF-8 names")

    files, unusable = list_landed(folder.dataset)

    assert files == [] and unusable == [os.fsdecode(b"caf\xe9.csv")]


def test_partition_key_rules():
    assert partition_key("2026/01/orders.csv") == "2026/01/orders.csv"
    assert partition_key("café ünïcode.csv") == "café ünïcode.csv"
    for bad in ["", "a...b.csv", "a\tb", "a\x00b", "a\x85b", "x" * 1025, "\udce9.csv"]:
        assert partition_key(bad) is None, bad


def test_missing_landing_folder_lists_nothing_and_plans_nothing(tmp_path):
    dataset = make_dataset(tmp_path)
    assert not dataset.landing_dir.exists()

    assert list_landed(dataset) == ([], [])
    plan = plan_tick(dataset, None, START_NS, set())
    assert (plan.to_run, plan.new_keys, plan.waiting, plan.unusable, plan.deferred) == ([], [], [], [], 0)
    assert json.loads(plan.cursor) == {"version": 1, "seen": {}, "pending": {}}


# --- stability ------------------------------------------------------------------------------


def test_new_file_waits_one_tick_then_runs_and_adds_its_partition(tmp_path):
    folder = Folder(tmp_path)
    folder.write("a.csv", "id\n1\n")  # mtime = the tick's time: just written

    first = folder.tick()
    assert (keys(first), first.waiting, first.new_keys) == ([], ["a.csv"], [])
    assert folder.cursor_state()["pending"] == {"a.csv": folder.version("a.csv")}

    second = folder.tick()  # unchanged size and mtime, though younger than the settle time
    assert keys(second) == ["a.csv"]
    assert second.new_keys == ["a.csv"]
    assert second.waiting == []
    assert folder.cursor_state()["pending"] == {}
    assert folder.cursor_state()["seen"]["a.csv"]["v"] == folder.version("a.csv")

    third = folder.tick()
    assert (keys(third), third.new_keys, third.waiting) == ([], [], [])


def test_file_older_than_the_settle_time_runs_on_first_sight(tmp_path):
    folder = Folder(tmp_path)
    folder.write("old.csv", "id\n1\n", age_s=SETTLE_S)

    plan = folder.tick()

    assert (keys(plan), plan.new_keys, plan.waiting) == (["old.csv"], ["old.csv"], [])


@pytest.mark.parametrize("change", ["size", "mtime"])
def test_file_still_being_written_waits_until_it_is_stable(tmp_path, change):
    folder = Folder(tmp_path)
    folder.write("big.csv", "id\n1\n")
    assert folder.tick().waiting == ["big.csv"]

    path = folder.root / "big.csv"
    if change == "size":  # appended to, mtime kept (coarse timestamps)
        stat = path.stat()
        with path.open("a") as fh:
            fh.write("2\n")
        os.utime(path, ns=(stat.st_mtime_ns, stat.st_mtime_ns))
    else:
        folder.set_mtime("big.csv")
    second = folder.tick()
    assert (keys(second), second.waiting) == ([], ["big.csv"])

    third = folder.tick()
    assert (keys(third), third.waiting) == (["big.csv"], [])


def test_file_already_partitioned_is_not_added_again_but_runs(tmp_path):
    folder = Folder(tmp_path)
    folder.known = {"a.csv"}  # e.g. added by an earlier sensor cursor, or by hand in the UI
    folder.write("a.csv", "id\n1\n", age_s=3600)

    plan = folder.tick()

    assert keys(plan) == ["a.csv"]
    assert plan.new_keys == []


# --- change detection -----------------------------------------------------------------------


def run_once(folder: Folder, name: str, content: str) -> TickPlan:
    folder.write(name, content, age_s=3600)
    plan = folder.tick()
    assert keys(plan) == [name]
    return plan


@pytest.mark.parametrize("new_content", ["id\n1\n2\n", "id\n9\n"], ids=["size_changed", "same_size_new_content"])
def test_changed_file_runs_again_with_a_new_run_key(tmp_path, new_content):
    folder = Folder(tmp_path)
    first = run_once(folder, "a.csv", "id\n1\n")

    folder.write("a.csv", new_content)  # rewritten now: waits one tick, then runs
    assert folder.tick().waiting == ["a.csv"]
    again = folder.tick()

    assert keys(again) == ["a.csv"]
    assert again.new_keys == []  # the partition exists already
    assert run_keys(folder, again) != run_keys(folder, first)
    assert run_keys(folder, again)[0].startswith("orders:a.csv:")


def test_touched_small_file_with_identical_content_does_not_run(tmp_path):
    folder = Folder(tmp_path, hash_max_bytes=1024)
    run_once(folder, "a.csv", "id\n1\n")

    folder.set_mtime("a.csv")  # touch
    assert folder.tick().waiting == ["a.csv"]
    plan = folder.tick()

    assert (keys(plan), plan.unchanged_touched) == ([], ["a.csv"])
    assert folder.cursor_state()["seen"]["a.csv"]["v"] == folder.version("a.csv")
    assert keys(folder.tick()) == []  # and it stays quiet


def test_touched_large_file_runs_again_because_the_sensor_does_not_hash_it(tmp_path, monkeypatch):
    """Hashing large files would make every tick read them; the raw asset no-ops on an identical sha256."""
    hashed: list[Path] = []
    original = landing.small_file_hash
    monkeypatch.setattr(landing, "small_file_hash", lambda path, limit: hashed.append(path) or original(path, limit))
    folder = Folder(tmp_path, hash_max_bytes=16)
    first = run_once(folder, "big.csv", "id\n" + "1\n" * 100)

    folder.set_mtime("big.csv", age_s=3600 - 1)
    again = folder.tick()

    assert keys(again) == ["big.csv"]
    assert again.unchanged_touched == []
    assert run_keys(folder, again) != run_keys(folder, first)
    assert hashed == []
    assert folder.cursor_state()["seen"]["big.csv"]["h"] is None


def test_content_changed_back_and_forth_runs_each_time(tmp_path):
    folder = Folder(tmp_path)
    run_once(folder, "a.csv", "id\n1\n")
    run_once(folder, "a.csv", "id\n2\n")
    run_once(folder, "a.csv", "id\n1\n")


# --- the cursor -----------------------------------------------------------------------------


def test_deleted_file_drops_out_of_the_cursor(tmp_path):
    folder = Folder(tmp_path)
    run_once(folder, "a.csv", "id\n1\n")
    folder.write("b.csv", "id\n1\n")  # still waiting when it disappears
    folder.tick()
    assert set(folder.cursor_state()["seen"]) == {"a.csv"}
    assert set(folder.cursor_state()["pending"]) == {"b.csv"}

    (folder.root / "a.csv").unlink()
    (folder.root / "b.csv").unlink()
    plan = folder.tick()

    assert keys(plan) == []
    assert folder.cursor_state() == {"version": 1, "seen": {}, "pending": {}}


def test_cursor_does_not_grow_across_ticks_without_changes(tmp_path):
    folder = Folder(tmp_path)
    for n in range(20):
        folder.write(f"f{n:02}.csv", "id\n1\n", age_s=3600)
    assert len(keys(folder.tick())) == 20
    settled = folder.cursor

    for _ in range(50):
        plan = folder.tick()
        assert (keys(plan), plan.waiting, plan.unchanged_touched) == ([], [], [])
        assert folder.cursor == settled


def test_cursor_carries_the_full_state_of_the_folder(tmp_path):
    folder = Folder(tmp_path)
    run_once(folder, "ran.csv", "id\n1\n")
    folder.write("writing.csv", "id\n")

    folder.tick()

    assert folder.cursor_state() == {
        "version": 1,
        "seen": {"ran.csv": {"v": folder.version("ran.csv"), "h": small_file_hash(folder.root / "ran.csv", 1024)}},
        "pending": {"writing.csv": folder.version("writing.csv")},
    }


@pytest.mark.parametrize("cursor", [
    "not json",
    "[1, 2]",
    '{"version": 0, "seen": {}, "pending": {}}',
    '{"version": true, "seen": {}, "pending": {}}',
    '{"a.csv": "5:123"}',  # an older layout: key -> version
    '{"version": 1, "seen": [], "pending": {}}',
    '{"version": 1, "seen": {"a.csv": "5:123"}, "pending": {}}',
    '{"version": 1, "seen": {}, "pending": {"a.csv": 5}}',
    "[" * 100_000,
])
def test_corrupt_or_old_cursor_rebuilds_the_state_from_the_folder(tmp_path, cursor):
    folder = Folder(tmp_path)
    first = run_once(folder, "a.csv", "id\n1\n")
    folder.write("b.csv", "id\n1\n")
    folder.cursor = cursor

    plan = folder.tick()

    assert plan.cursor_reset
    # The settled file is requested again under the same run key, which Dagster does not launch twice.
    assert run_keys(folder, plan) == run_keys(folder, first)
    assert plan.waiting == ["b.csv"]
    assert set(folder.cursor_state()["seen"]) == {"a.csv"}
    assert not folder.tick().cursor_reset


@pytest.mark.parametrize("cursor", [None, ""])
def test_no_cursor_is_a_first_tick_not_a_reset(tmp_path, cursor):
    folder = Folder(tmp_path)
    folder.cursor = cursor
    assert not folder.tick().cursor_reset


# --- the per-tick cap -----------------------------------------------------------------------


def test_per_tick_cap_defers_the_rest_to_the_next_ticks(tmp_path):
    folder = Folder(tmp_path, max_runs=3)
    names = [f"f{n}.csv" for n in range(7)]
    for name in names:
        folder.write(name, "id\n1\n", age_s=3600)

    plans = [folder.tick() for _ in range(4)]

    assert [keys(p) for p in plans] == [names[:3], names[3:6], names[6:], []]
    assert [p.deferred for p in plans] == [4, 1, 0, 0]
    assert [p.new_keys for p in plans[:3]] == [names[:3], names[3:6], names[6:]]


def test_deferred_files_are_not_overtaken_by_newer_arrivals(tmp_path):
    folder = Folder(tmp_path, max_runs=2)
    for name in ["x1.csv", "x2.csv", "x3.csv"]:
        folder.write(name, "id\n1\n", age_s=3600)
    assert keys(folder.tick()) == ["x1.csv", "x2.csv"]

    for name in ["a1.csv", "a2.csv"]:  # sort before x3.csv by name, but landed later
        folder.write(name, "id\n1\n", age_s=600)

    assert keys(folder.tick()) == ["x3.csv", "a1.csv"]
    assert keys(folder.tick()) == ["a2.csv"]


def test_deferred_file_that_changes_waits_again(tmp_path):
    folder = Folder(tmp_path, max_runs=1)
    folder.write("a.csv", "id\n1\n", age_s=3600)
    folder.write("b.csv", "id\n1\n", age_s=3600)
    assert keys(folder.tick()) == ["a.csv"]

    folder.write("b.csv", "id\n1\n2\n")
    second = folder.tick()
    assert (keys(second), second.waiting) == ([], ["b.csv"])
    assert keys(folder.tick()) == ["b.csv"]


def test_zero_cap_means_no_cap(tmp_path):
    folder = Folder(tmp_path, max_runs=0)
    for n in range(5):
        folder.write(f"f{n}.csv", "id\n1\n", age_s=3600)

    plan = folder.tick()
    assert (len(keys(plan)), plan.deferred) == (5, 0)


# --- hashing and resolving ------------------------------------------------------------------


def test_small_file_hash_reads_at_most_the_limit(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    assert small_file_hash(path, 100) == small_file_hash(path, 10_000)
    assert len(small_file_hash(path, 100)) == 16
    assert small_file_hash(path, 99) is None
    assert small_file_hash(tmp_path / "missing", 100) is None


def test_resolve_file_finds_landed_files_and_refuses_keys_outside_the_folder(tmp_path):
    folder = Folder(tmp_path, recursive=True)
    folder.write("2026/a.csv", "id\n1\n")
    (tmp_path / "secret.csv").write_text("id\n1\n")

    assert resolve_file(folder.dataset, "2026/a.csv") == (folder.root / "2026/a.csv").resolve()
    for key in ["../../secret.csv", str(tmp_path / "secret.csv"), "2026/../../../secret.csv"]:
        with pytest.raises(FileNotFoundError, match="outside the landing folder"):
            resolve_file(folder.dataset, key)
    with pytest.raises(FileNotFoundError, match="moved or deleted"):
        resolve_file(folder.dataset, "2026/gone.csv")


def test_linked_file_in_the_landing_folder_is_listed_and_resolves(tmp_path):
    folder = Folder(tmp_path, recursive=True)
    target = tmp_path / "exports" / "a.csv"
    target.parent.mkdir()
    target.write_text("id\n1\n")
    (folder.root / "a.csv").symlink_to(target)
    (folder.root / "linked_dir").symlink_to(target.parent)  # folders that are links are not entered

    files, _ = list_landed(folder.dataset)

    assert [f.key for f in files] == ["a.csv"]
    assert resolve_file(folder.dataset, "a.csv") == target.resolve()
    with pytest.raises(FileNotFoundError, match="outside the landing folder"):
        resolve_file(folder.dataset, "linked_dir/a.csv")


def test_run_key_names_dataset_file_and_version():
    landed = LandedFile("2026/a.csv", Path("/x/2026/a.csv"), 12, 345)
    assert run_key("orders", landed) == "orders:2026/a.csv:12:345"
