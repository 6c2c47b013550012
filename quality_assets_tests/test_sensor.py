"""The landing sensor as Dagster runs it: built by build_definitions from a contract, evaluated
with build_sensor_context against an ephemeral instance that applies the tick's partition
requests the way the daemon does. Assertions are on run requests (partition key, run key),
partition requests, skip reasons, logs and the new cursor."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterInstance

from quality_assets import landing
from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract
from quality_assets.defs.definitions import build_definitions

SENSOR = "orders_landing_sensor"
PARTITIONS = "orders_files"
HOUR_S = 3600


def contract_text(glob: str = "*.csv", recursive: bool = False) -> str:
    return (
        "datasets:\n  orders:\n"
        f"    landing: {{path: landing/orders, glob: {json.dumps(glob)}, recursive: {str(recursive).lower()}}}\n"
    )


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelname, record.getMessage()))


class LandingSensor:
    """The orders sensor of a project under tmp_path, ticked with the cursor of the previous tick."""

    def __init__(self, tmp_path: Path, instance: DagsterInstance, *, contract: str | None = None,
                 make_folder: bool = True, **env: str):
        (tmp_path / "quality.yaml").write_text(contract or contract_text())
        self.root = tmp_path / "landing" / "orders"
        if make_folder:
            self.root.mkdir(parents=True)
        # one run per file unless a test asks for ranges (test_batches.py)
        settings = settings_from_env({"QA_CONTRACTS": str(tmp_path / "quality.yaml"), "QA_FILES_PER_RUN": "1", **env})
        self.defs = build_definitions(load_contract(settings.contracts), settings)
        self.sensor = self.defs.resolve_sensor_def(SENSOR)
        self.instance = instance
        self.cursor: str | None = None
        self.logs: list[tuple[str, str]] = []

    def land(self, name: str, content: str | bytes, age_s: float = 0.0) -> Path:
        """Write a file whose mtime is age_s ago (0: just written)."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return self.touch(name, age_s)

    def touch(self, name: str, age_s: float = 0.0) -> Path:
        path = self.root / name
        mtime = time.time_ns() - int(age_s * 1e9)
        os.utime(path, ns=(mtime, mtime))
        return path

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        handler = ListHandler()
        context.log.addHandler(handler)
        result = self.sensor(context)
        assert isinstance(result, dg.SensorResult)
        self.logs = handler.records
        self.cursor = result.cursor
        for request in result.dynamic_partitions_requests:  # as the daemon does after the tick
            self.instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        return result

    def cursor_state(self) -> dict:
        return json.loads(self.cursor)

    def version_of(self, name: str) -> str:
        stat = (self.root / name).stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def run_key_of(self, name: str) -> str:
        return f"orders:{name}:{self.version_of(name)}"


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def make_sensor(tmp_path, instance):
    def make(**kwargs) -> LandingSensor:
        return LandingSensor(tmp_path, instance, **kwargs)

    return make


def requested(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [(r.partition_key, r.run_key) for r in result.run_requests]


def added(result: dg.SensorResult) -> list[str]:
    assert all(isinstance(r, dg.AddDynamicPartitionsRequest) and r.partitions_def_name == PARTITIONS
               for r in result.dynamic_partitions_requests)
    return [key for r in result.dynamic_partitions_requests for key in r.partition_keys]


def skipped(result: dg.SensorResult) -> str | None:
    return result.skip_reason.skip_message if result.skip_reason else None


def skip_text(waiting: int = 0, touched: int = 0, unusable: int = 0) -> str:
    return (f"no new or changed complete files ({waiting} still being written, "
            f"{touched} touched without changes, {unusable} with unusable names)")


def assert_quiet(result: dg.SensorResult, **counts: int) -> None:
    assert (requested(result), added(result), skipped(result)) == ([], [], skip_text(**counts))


# --- arrival --------------------------------------------------------------------------------


def test_new_file_waits_one_tick_then_runs_with_its_partition_added_in_the_same_tick(make_sensor):
    sensor = make_sensor()
    sensor.land("a.csv", "id\n1\n")  # just written: younger than the 60 s settle time

    first = sensor.tick()
    assert_quiet(first, waiting=1)
    assert ("INFO", "waiting for 1 file(s) still being written: ['a.csv']") in sensor.logs
    assert sensor.cursor_state()["pending"] == {"a.csv": sensor.version_of("a.csv")}

    second = sensor.tick()  # same size and mtime as on the first tick
    assert requested(second) == [("a.csv", sensor.run_key_of("a.csv"))]
    assert added(second) == ["a.csv"]
    assert skipped(second) is None
    assert second.run_requests[0].tags["quality_assets/dataset"] == "orders"
    assert sensor.instance.get_dynamic_partitions(PARTITIONS) == ["a.csv"]

    assert_quiet(sensor.tick())


def test_file_older_than_the_settle_time_runs_on_the_first_tick(make_sensor):
    sensor = make_sensor(QA_SENSOR_SETTLE_SECONDS="10")
    sensor.land("a.csv", "id\n1\n", age_s=11)
    sensor.land("b.csv", "id\n1\n", age_s=5)

    result = sensor.tick()

    assert requested(result) == [("a.csv", sensor.run_key_of("a.csv"))]
    assert added(result) == ["a.csv"]
    assert set(sensor.cursor_state()["pending"]) == {"b.csv"}


def test_dagster_resolves_a_run_for_a_partition_added_in_the_same_tick(tmp_path):
    """evaluate_tick validates partition keys as the daemon does (it needs a persistent instance)."""
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        sensor = LandingSensor(tmp_path, instance)
        sensor.land("a.csv", "id\n1\n", age_s=HOUR_S)
        context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                          definitions=sensor.defs)

        data = sensor.sensor.evaluate_tick(context)

    [request] = data.run_requests
    assert (request.partition_key, request.run_key) == ("a.csv", sensor.run_key_of("a.csv"))
    assert request.tags["dagster/partition"] == "a.csv"
    assert [r.partition_keys for r in data.dynamic_partitions_requests] == [["a.csv"]]


def test_file_already_partitioned_is_not_added_again_but_runs_when_changed(make_sensor):
    sensor = make_sensor()
    sensor.instance.add_dynamic_partitions(PARTITIONS, ["a.csv"])
    sensor.land("a.csv", "id\n1\n", age_s=HOUR_S)

    first = sensor.tick()
    assert requested(first) == [("a.csv", sensor.run_key_of("a.csv"))]
    assert added(first) == []

    sensor.land("a.csv", "id\n1\n2\n", age_s=HOUR_S - 1)
    second = sensor.tick()
    assert requested(second) == [("a.csv", sensor.run_key_of("a.csv"))]
    assert requested(second) != requested(first)
    assert added(second) == []
    assert sensor.instance.get_dynamic_partitions(PARTITIONS) == ["a.csv"]


def test_missing_landing_folder_is_reported_on_every_tick_then_its_files_run_once_it_exists(make_sensor):
    sensor = make_sensor(make_folder=False)
    problem = f"dataset 'orders': the landing folder {sensor.root} does not exist"

    for _ in range(2):
        result = sensor.tick()
        assert (requested(result), added(result), skipped(result)) == ([], [], problem)
        assert sensor.logs == [("ERROR", f"{problem}: create it, or fix landing.path in the contract")]
    sensor.land("a.csv", "id\n1\n", age_s=HOUR_S)
    assert [key for key, _ in requested(sensor.tick())] == ["a.csv"]


# --- changes --------------------------------------------------------------------------------


@pytest.mark.parametrize("new_content", ["id\n1\n2\n", "id\n9\n"], ids=["size_changed", "mtime_and_content_changed"])
def test_changed_file_is_requested_again_with_a_new_run_key(make_sensor, new_content):
    sensor = make_sensor()
    sensor.land("a.csv", "id\n1\n", age_s=HOUR_S)
    first = sensor.tick()

    sensor.land("a.csv", new_content)
    assert_quiet(sensor.tick(), waiting=1)
    again = sensor.tick()

    assert requested(again) == [("a.csv", sensor.run_key_of("a.csv"))]
    assert again.run_requests[0].run_key != first.run_requests[0].run_key
    assert added(again) == []


def test_touched_small_file_with_identical_content_is_not_requested_again(make_sensor):
    sensor = make_sensor(QA_SENSOR_HASH_MAX_BYTES="64")
    sensor.land("a.csv", "id\n1\n", age_s=HOUR_S)
    assert len(sensor.tick().run_requests) == 1

    sensor.touch("a.csv")
    assert_quiet(sensor.tick(), waiting=1)
    result = sensor.tick()

    assert_quiet(result, touched=1)
    assert ("INFO", "1 file(s) touched with identical content, not run again: ['a.csv']") in sensor.logs
    assert sensor.cursor_state()["seen"]["a.csv"]["v"] == sensor.version_of("a.csv")


def test_touched_large_file_is_requested_again(make_sensor):
    """The sensor does not hash files above QA_SENSOR_HASH_MAX_BYTES (every tick would read them);
    the raw asset no-ops when the sha256 is unchanged."""
    sensor = make_sensor(QA_SENSOR_HASH_MAX_BYTES="64")
    sensor.land("big.csv", "id\n" + "1\n" * 100, age_s=HOUR_S)
    first = sensor.tick()

    sensor.touch("big.csv", age_s=HOUR_S - 1)
    again = sensor.tick()

    assert requested(again) == [("big.csv", sensor.run_key_of("big.csv"))]
    assert again.run_requests[0].run_key != first.run_requests[0].run_key


def test_file_still_being_written_waits_until_size_and_mtime_are_stable(make_sensor):
    sensor = make_sensor()
    sensor.land("a.csv", "id\n")
    for rows in range(1, 4):
        with (sensor.root / "a.csv").open("a") as fh:
            fh.write(f"{rows}\n")
        assert_quiet(sensor.tick(), waiting=1)

    result = sensor.tick()

    assert requested(result) == [("a.csv", sensor.run_key_of("a.csv"))]
    assert (sensor.root / "a.csv").read_text() == "id\n1\n2\n3\n"


# --- what is never requested ----------------------------------------------------------------


def test_temporary_hidden_and_non_matching_files_are_never_requested(make_sensor):
    sensor = make_sensor()
    for name in ["a.csv.part", "a.csv.tmp", "a.csv.crdownload", ".x.csv", "notes.txt", "a.parquet"]:
        sensor.land(name, "id\n1\n", age_s=HOUR_S)

    for _ in range(2):
        assert_quiet(sensor.tick())
    assert sensor.cursor_state() == {"version": 1, "seen": {}, "pending": {}}

    os.replace(sensor.root / "a.csv.part", sensor.root / "a.csv")  # the writer's final rename
    assert requested(sensor.tick()) == [("a.csv", sensor.run_key_of("a.csv"))]


@pytest.mark.parametrize("recursive", [True, False])
def test_recursive_option(make_sensor, recursive):
    sensor = make_sensor(contract=contract_text(recursive=recursive))
    sensor.land("top.csv", "id\n1\n", age_s=HOUR_S)
    sensor.land("2026/01/nested.csv", "id\n1\n", age_s=HOUR_S)

    result = sensor.tick()

    expected = ["top.csv", "2026/01/nested.csv"] if recursive else ["top.csv"]  # oldest first
    assert requested(result) == [(key, sensor.run_key_of(key)) for key in expected]
    assert added(result) == expected


@pytest.mark.parametrize("name", ["orders...2026.csv", "orders\x1b.csv", "orders\t2026.csv"])
def test_file_whose_name_cannot_be_a_partition_key_is_skipped_with_the_reason_logged(make_sensor, name):
    sensor = make_sensor()
    sensor.land(name, "id\n1\n", age_s=HOUR_S)

    result = sensor.tick()

    assert_quiet(result, unusable=1)
    assert ("WARNING", f"skipping {name!r}: the name cannot be a Dagster partition key (it contains '...' "
                       "or a control character, is not UTF-8, or is too long); rename the file") in sensor.logs


# --- the cursor -----------------------------------------------------------------------------


def test_deleted_file_drops_out_of_the_cursor(make_sensor):
    sensor = make_sensor()
    sensor.land("a.csv", "id\n1\n", age_s=HOUR_S)
    sensor.land("b.csv", "id\n1\n", age_s=HOUR_S)
    sensor.tick()
    assert set(sensor.cursor_state()["seen"]) == {"a.csv", "b.csv"}

    (sensor.root / "a.csv").unlink()
    assert_quiet(sensor.tick())

    assert set(sensor.cursor_state()["seen"]) == {"b.csv"}
    assert sensor.cursor_state()["pending"] == {}


def test_cursor_does_not_grow_across_ticks_without_changes(make_sensor):
    sensor = make_sensor()
    for n in range(50):
        sensor.land(f"f{n:02}.csv", "id\n1\n", age_s=HOUR_S)
    assert len(sensor.tick().run_requests) == 50
    settled = sensor.cursor

    for _ in range(30):
        assert_quiet(sensor.tick())
        assert sensor.cursor == settled


@pytest.mark.parametrize("cursor", ["{not json", '{"version": 0, "files": ["a.csv"]}', '["a.csv"]'])
def test_corrupt_or_old_cursor_is_rebuilt_and_already_run_files_keep_their_run_keys(make_sensor, cursor):
    sensor = make_sensor()
    sensor.land("a.csv", "id\n1\n", age_s=HOUR_S)
    first = sensor.tick()
    sensor.cursor = cursor

    rebuilt = sensor.tick()

    # Same run key: Dagster does not launch a run twice for one run key of a sensor.
    assert requested(rebuilt) == requested(first)
    assert added(rebuilt) == []  # the partition exists
    assert sensor.logs[0][0] == "WARNING" and "cursor was unreadable" in sensor.logs[0][1]
    assert set(sensor.cursor_state()["seen"]) == {"a.csv"}
    assert_quiet(sensor.tick())


# --- volume ---------------------------------------------------------------------------------


def test_per_tick_cap_defers_the_rest_without_losing_or_repeating_any(make_sensor):
    sensor = make_sensor(QA_SENSOR_MAX_RUNS_PER_TICK="2")
    names = [f"f{n}.csv" for n in range(5)]
    for name in names:
        sensor.land(name, "id\n1\n", age_s=HOUR_S)

    ticks = [sensor.tick()]
    assert ("INFO", "3 complete file(s) left for the next tick (at most 2 runs per tick)") in sensor.logs
    ticks += [sensor.tick() for _ in range(3)]

    assert [[key for key, _ in requested(t)] for t in ticks[:3]] == [names[0:2], names[2:4], names[4:]]
    assert [added(t) for t in ticks[:3]] == [names[0:2], names[2:4], names[4:]]
    assert_quiet(ticks[3])
    all_requests = [request for t in ticks for request in requested(t)]
    assert sorted(all_requests) == sorted((n, sensor.run_key_of(n)) for n in names)
    assert sorted(sensor.instance.get_dynamic_partitions(PARTITIONS)) == names


def test_folder_of_5000_files_in_one_tick_without_hashing_large_files(make_sensor, monkeypatch):
    """Timing is in benchmarks/sensor.py; here only Dagster's own sensor timeout bounds it."""
    hashed: list[Path] = []
    original = landing.small_file_hash
    monkeypatch.setattr(landing, "small_file_hash", lambda path, limit: hashed.append(path) or original(path, limit))
    sensor = make_sensor(QA_SENSOR_MAX_RUNS_PER_TICK="5000", QA_SENSOR_HASH_MAX_BYTES="64")
    old = time.time_ns() - HOUR_S * 10**9
    names = [f"part_{n:05}.csv" for n in range(5000)]
    small = set(names[:10])
    for name in names:
        path = sensor.root / name
        path.write_text("id\n1\n" if name in small else "id\n" + "1234567\n" * 10)
        os.utime(path, ns=(old, old))

    started = time.perf_counter()
    result = sensor.tick()
    elapsed = time.perf_counter() - started

    assert elapsed < 60
    assert [key for key, _ in requested(result)] == names
    assert requested(result)[0] == (names[0], sensor.run_key_of(names[0]))
    assert len({run for _, run in requested(result)}) == 5000
    assert added(result) == names
    assert sorted(p.name for p in hashed) == sorted(small)  # only files within the hash limit
    assert len(sensor.cursor_state()["seen"]) == 5000

    hashed.clear()
    assert_quiet(sensor.tick())
    assert hashed == []
