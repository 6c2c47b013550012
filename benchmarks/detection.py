"""How well and how fast the anomaly stage finds injected errors, with no contract rules.

    /work/venv/bin/python benchmarks/detection.py                       # quality, then speed at 1M and 10M rows
    /work/venv/bin/python benchmarks/detection.py --skip-speed          # quality only (~3 minutes)
    /work/venv/bin/python benchmarks/detection.py --skip-quality --speed-rows 1000000
    git worktree add /tmp/before <commit>; .venv/bin/python benchmarks/detection.py --baseline /tmp/before --speed-rows 1000000

Quality. A generated web-shop export, one daily partition per day: 17 mixed columns (integer key,
customer code, country and its currency, channel, category, quantity, unit price, amount =
quantity x price, discount with nulls, order timestamp, ship date, e-mail, SKU, rating with
nulls, weight, gift flag), weekday volume 4,000 rows and weekends 60% of it, a few percent of
day-to-day noise. 28 clean days are the history. Each scenario replaces day 29 (a Monday) and
runs the real profile stage and the anomaly stage on it (default settings, nothing tuned):

- row-level error types, each on 1%, 5% and 10% of the rows in its own partition, with ground
  truth: out-of-range values, unit mix-ups (x1000), sign flips, null bursts, invalid
  categories, broken identifier formats, duplicated keys (a later row repeating an earlier
  row), impossible combinations (half: a currency that is valid but not the country's; half: a
  price typical of a product category 3+ standard deviations (of log price) away, amount kept
  consistent: a price merely typical of a neighbouring category is not an error anyone can see);
- partition-level events: a numeric distribution shift, a categorical mix shift, a volume drop
  to 30% and a volume spike to 300%; detected when the shifted column drifts or one of its
  metrics is anomalous (row_count for volume);
- clean partitions: the last 14 history days, each against its own past, plus 3 fresh clean
  Mondays: every metric anomaly, drifted column and flagged row there is a false alarm.

Printed: precision, recall and F1 per error type and intensity, pooled overall per intensity, the
partition-level detections, and the false alarms on clean partitions.

Speed. `raw."bench"` with 20 columns (8 numeric, 2 dates, 6 categorical, 4 codes/text) made by
DuckDB from range(), one history partition and one scored partition of N rows each. Each run is
its own process reporting wall time and peak RSS: the baseline is a plain DuckDB scan of the
scored partition (count and max of every column), then the anomaly stage on it.
Targets: 1M rows in < 30 s; peak RSS < 2 GB at 10M rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quality_assets.anomalies.stage import AnomalyOptions, detect_anomalies  # noqa: E402
from quality_assets.contract import parse_contract  # noqa: E402
from quality_assets.profile import profile_partition, write_profile  # noqa: E402
from quality_assets.warehouse import Warehouse  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent / "data"
START = dt.date(2026, 1, 5)  # a Monday
HISTORY_DAYS = 28
WEEKDAY_ROWS = 4000
COUNTRIES = {"US": ("USD", 0.35), "DE": ("EUR", 0.2), "FR": ("EUR", 0.12), "GB": ("GBP", 0.15),
             "JP": ("JPY", 0.1), "CA": ("CAD", 0.08)}
CHANNELS = (["web", "app", "store"], [0.5, 0.35, 0.15])
CATEGORIES = {"books": (2.6, 0.4), "toys": (3.2, 0.5), "garden": (3.6, 0.5), "kitchen": (3.4, 0.6),
              "sports": (3.8, 0.5), "beauty": (2.9, 0.4), "electronics": (5.2, 0.7), "furniture": (5.6, 0.5)}
FIRST = ["anna", "ben", "carla", "dev", "eva", "femi", "gus", "hana", "ivan", "jun", "kai", "lea"]
LAST = ["smith", "meyer", "rossi", "tanaka", "dubois", "okafor", "novak", "silva", "kim", "brown"]
DOMAINS = ["example.com", "mail.test", "shop.example", "post.example.org"]
CONTRACT = """\
version: 1
datasets:
  shop:
    landing: landing
    partitioning: daily
    daily: {start: 2026-01-01, file_pattern: 'shop_(?P<date>\\d{8})'}
    primary_key: [order_id]
"""
ROW_TYPES = ["out_of_range", "unit_x1000", "sign_flip", "null_burst", "invalid_category",
             "broken_identifier", "duplicate_key", "impossible_combination"]
INTENSITIES = [0.01, 0.05, 0.10]


def day_rows(day: dt.date, rng: np.random.Generator) -> int:
    weekend = day.weekday() >= 5
    return int(WEEKDAY_ROWS * (0.6 if weekend else 1.0) * rng.normal(1, 0.03))


def generate(day: dt.date, n: int, first_id: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    country = rng.choice(list(COUNTRIES), n, p=[v[1] for v in COUNTRIES.values()])
    category = rng.choice(list(CATEGORIES), n, p=[0.2, 0.1, 0.1, 0.15, 0.1, 0.15, 0.12, 0.08])
    mu = np.array([CATEGORIES[c][0] for c in category])
    sigma = np.array([CATEGORIES[c][1] for c in category])
    price = np.round(np.exp(rng.normal(mu, sigma)), 2)
    quantity = np.minimum(rng.geometric(0.45, n), 30)
    seconds = rng.integers(0, 86400, n)
    order_ts = np.datetime64(day, "s") + seconds.astype("timedelta64[s]")
    discount = np.round(rng.beta(2, 12, n), 3).astype(object)
    discount[rng.random(n) < 0.05] = None
    rating = rng.choice([1, 2, 3, 4, 5], n, p=[0.05, 0.07, 0.18, 0.35, 0.35]).astype(object)
    rating[rng.random(n) < 0.4] = None
    first, last = rng.choice(FIRST, n), rng.choice(LAST, n)
    email = np.array([f"{f}.{s}{k}@{d}" for f, s, k, d in zip(first, last, rng.integers(1, 999, n),
                                                               rng.choice(DOMAINS, n), strict=True)])
    return {
        "order_id": np.arange(first_id, first_id + n, dtype=np.int64),
        "customer": np.array([f"C-{x:06d}" for x in rng.integers(1, 60_000, n)]),
        "country": country,
        "currency": np.array([COUNTRIES[c][0] for c in country]),
        "channel": rng.choice(CHANNELS[0], n, p=CHANNELS[1]),
        "category": category,
        "quantity": quantity.astype(np.int64),
        "unit_price": price,
        "amount": np.round(price * quantity, 2),
        "discount": discount,
        "order_ts": order_ts,
        "ship_date": (np.datetime64(day, "D") + rng.integers(0, 8, n).astype("timedelta64[D]")),
        "email": email,
        "sku": np.array([f"SKU-{x:05d}" for x in rng.integers(0, 100_000, n)]),
        "rating": rating,
        "weight_kg": np.round(np.abs(rng.normal(1.8, 0.6, n)) + 0.05, 3),
        "is_gift": rng.random(n) < 0.08,
    }


def inject(kind: str, data: dict, share: float, rng: np.random.Generator) -> set[int]:
    """Inject one error type into `share` of the rows; returns the 1-based source rows affected."""
    n = len(data["order_id"])
    k = max(1, round(share * n))
    for column in ("sku", "channel", "country", "currency"):  # fixed-width numpy strings would truncate
        data[column] = data[column].astype(object)
    rows = np.sort(rng.choice(np.arange(1, n), k, replace=False))
    if kind == "out_of_range":
        for i in rows:
            column = ["weight_kg", "quantity", "discount"][i % 3]
            if column == "weight_kg":
                data[column][i] = round(float(rng.uniform(30, 200)), 3)
            elif column == "quantity":
                data[column][i] = int(rng.integers(200, 5000))
            else:
                data[column][i] = round(float(rng.uniform(1.5, 9)), 3)
    elif kind == "unit_x1000":
        data["weight_kg"][rows] = data["weight_kg"][rows] * 1000  # grams in a kilogram column
    elif kind == "sign_flip":
        data["amount"][rows] = -data["amount"][rows]
    elif kind == "null_burst":
        start = int(rng.integers(1, n - k))
        rows = np.arange(start, start + k)  # a run of consecutive rows lost their country
        data["country"][rows] = None
    elif kind == "invalid_category":
        data["channel"][rows] = rng.choice(["WEB", "mobile-app", "unknown", "web "], k)
    elif kind == "broken_identifier":
        for j, i in enumerate(rows):
            sku = data["sku"][i]
            data["sku"][i] = [sku.replace("-", ""), sku.lower(), sku[:-2], sku + "X", "SKU_" + sku[4:]][j % 5]
    elif kind == "duplicate_key":
        for i in rows:  # a later row repeats an earlier one
            source = int(rng.integers(0, i))
            for column in data:
                data[column][i] = data[column][source]
    elif kind == "impossible_combination":
        for j, i in enumerate(rows):
            if j % 2 == 0:  # a valid currency, not the country's
                own = COUNTRIES[data["country"][i]][0]
                data["currency"][i] = rng.choice([c for c, _ in COUNTRIES.values() if c != own])
            else:  # a price typical of a category 3+ standard deviations away; amount stays quantity x price
                mu, sigma = CATEGORIES[data["category"][i]]
                other = rng.choice([c for c, (m, _) in CATEGORIES.items() if abs(m - mu) >= 3 * sigma])
                data["unit_price"][i] = round(float(np.exp(CATEGORIES[other][0])), 2)
                data["amount"][i] = round(data["unit_price"][i] * data["quantity"][i], 2)
    else:
        raise ValueError(kind)
    return {int(i) + 1 for i in rows}


def shift(kind: str, data: dict, rng: np.random.Generator) -> str:
    """A partition-level event; returns the column (or 'row_count') it should show in."""
    if kind == "numeric_shift":
        data["weight_kg"] = np.round(data["weight_kg"] + 0.6, 3)  # one standard deviation heavier
        return "weight_kg"
    if kind == "category_shift":
        n = len(data["channel"])
        data["channel"] = rng.choice(CHANNELS[0], n, p=[0.2, 0.65, 0.15])  # the app takes over
        return "channel"
    raise ValueError(kind)


def to_table(data: dict, key: str) -> pa.Table:
    n = len(data["order_id"])
    columns = {name: pa.array(list(values) if values.dtype == object else values) for name, values in data.items()}
    columns["_partition_key"] = pa.array([key] * n)
    columns["_source_row"] = pa.array(np.arange(1, n + 1, dtype=np.int64))
    columns["_run_id"] = pa.array(["load"] * n)
    return pa.table(columns)


class Shop:
    def __init__(self, root: Path):
        self.root = root
        self.dataset = parse_contract(CONTRACT, root / "quality.yaml").dataset("shop")
        self.warehouse = Warehouse(root / "shop.duckdb", memory_limit="1GB")
        self.next_id = 1

    def write(self, key: str, data: dict, profile: bool = True) -> None:
        with self.warehouse.connect() as con:
            con.register("part", to_table(data, key))
            exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' "
                                 "AND table_name = 'shop'").fetchall()[0][0]
            if exists:
                con.execute('DELETE FROM raw."shop" WHERE _partition_key = ?', [key])
                con.execute('INSERT INTO raw."shop" SELECT * FROM part')
            else:
                con.execute('CREATE TABLE raw."shop" AS SELECT * FROM part')
            con.unregister("part")
            if profile:
                write_profile(con, "shop", key, f"profile-{key}", profile_partition(con, self.dataset, key))

    def detect(self, key: str, run: str):
        return detect_anomalies(self.warehouse, self.dataset, key, run, AnomalyOptions(max_rows=1_000_000))


def prf(flagged: set[int], truth: set[int]) -> tuple[float, float, float]:
    hits = len(flagged & truth)
    precision = hits / len(flagged) if flagged else (1.0 if not truth else 0.0)
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def quality(root: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    shop = Shop(root)
    started = time.perf_counter()
    days = [START + dt.timedelta(days=i) for i in range(HISTORY_DAYS + 1)]
    for i, day in enumerate(days[:-1]):
        n = day_rows(day, rng)
        shop.write(day.isoformat(), generate(day, n, shop.next_id, rng))
        shop.next_id += n
        print(f"\rhistory: day {i + 1}/{HISTORY_DAYS}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    target = days[-1].isoformat()

    clean_alarms = []
    for day in days[14:-1]:  # clean history days against their own past
        result = shop.detect(day.isoformat(), f"clean-{day}")
        clean_alarms.append((day.isoformat(), result))
        print(f"\rclean days: {day}", end="", file=sys.stderr, flush=True)
    for j in range(3):  # fresh clean Mondays
        data = generate(days[-1], day_rows(days[-1], rng), shop.next_id, rng)
        shop.write(target, data)
        clean_alarms.append((f"{target} (clean #{j + 1})", shop.detect(target, f"fresh-{j}")))
    print(file=sys.stderr)

    rows: list[dict] = []
    pooled: dict[float, list[tuple[set, set]]] = {s: [] for s in INTENSITIES}
    for kind in ROW_TYPES:
        for share in INTENSITIES:
            data = generate(days[-1], day_rows(days[-1], rng), shop.next_id, rng)
            truth = inject(kind, data, share, rng)
            shop.write(target, data)
            result = shop.detect(target, f"{kind}-{share}")
            flagged = {r["_source_row"] for r in result.rows}
            p, r, f = prf(flagged, truth)
            rows.append({"type": kind, "intensity": share, "injected": len(truth), "flagged": len(flagged),
                         "precision": p, "recall": r, "f1": f,
                         "metric_alarms": len(result.metric_anomalies), "drifted": len(result.drifted_columns)})
            pooled[share].append((flagged, truth))
            print(f"\r{kind} {share:.0%}: p {p:.2f} r {r:.2f}        ", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    events = []
    for kind in ("numeric_shift", "category_shift", "volume_drop", "volume_spike"):
        n = day_rows(days[-1], rng)
        if kind == "volume_drop":
            n = int(n * 0.3)
        elif kind == "volume_spike":
            n = int(n * 3)
        data = generate(days[-1], n, shop.next_id, rng)
        expected = shift(kind, data, rng) if kind.endswith("shift") else "row_count"
        shop.write(target, data)
        result = shop.detect(target, kind)
        drifted = expected in result.drifted_columns
        metrics = [f"{m.column_name or ''}.{m.metric}".lstrip(".") for m in result.metric_anomalies]
        found = drifted or any(m.split(".")[0] == expected or m == expected for m in metrics)
        events.append({"event": kind, "expected in": expected, "detected": found, "drifted": result.drifted_columns,
                       "metric anomalies": metrics})
    return {"rows": rows, "pooled": pooled, "events": events, "clean": clean_alarms,
            "seconds": time.perf_counter() - started}


def print_quality(report: dict) -> None:
    print("\nRow-level detection (anomaly stage only, default settings, no rules)\n")
    print(f"{'error type':<24} {'intensity':>9} {'injected':>8} {'flagged':>7} {'precision':>9} {'recall':>7} {'F1':>6}")
    for row in report["rows"]:
        print(f"{row['type']:<24} {row['intensity']:>9.0%} {row['injected']:>8} {row['flagged']:>7} "
              f"{row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>6.3f}")
    print()
    for share, pairs in report["pooled"].items():
        flagged = sum(len(f) for f, _ in pairs)
        hits = sum(len(f & t) for f, t in pairs)
        truth = sum(len(t) for _, t in pairs)
        p = hits / flagged if flagged else 0.0
        r = hits / truth if truth else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        print(f"{'overall':<24} {share:>9.0%} {truth:>8} {flagged:>7} {p:>9.3f} {r:>7.3f} {f1:>6.3f}")
    print("\nPartition-level events\n")
    for event in report["events"]:
        print(f"{event['event']:<16} expected in {event['expected in']:<10} detected: {str(event['detected']):<5} "
              f"drifted {event['drifted']} metrics {event['metric anomalies']}")
    print("\nClean partitions (every alarm is false)\n")
    metric_alarms = drift_alarms = flagged = 0
    for key, result in report["clean"]:
        metric_alarms += len(result.metric_anomalies)
        drift_alarms += len(result.drifted_columns)
        flagged += result.rows_flagged
        if result.metric_anomalies or result.drifted_columns:
            print(f"  {key}: metrics {[m.reason for m in result.metric_anomalies]} drift {result.drifted_columns}")
    rows = sum(r.rows_scored for _, r in report["clean"])
    print(f"{len(report['clean'])} clean partitions: {metric_alarms} metric alarms, {drift_alarms} drift alarms, "
          f"{flagged} of {rows:,} rows flagged ({flagged / rows:.3%})")
    print(f"\nquality run: {report['seconds']:.0f} s")


SPEED_SQL = """
CREATE OR REPLACE TABLE raw."bench" AS
SELECT
  CASE WHEN p = 0 THEN 'history-' || (i % 3) ELSE 'scored' END AS _partition_key,
  i + 1 AS _source_row, 'load' AS _run_id,
  p * {rows} + i AS id,
  (hash(i, 1) % 100000) / 100.0 AS price,
  1 + hash(i, 2) % 12 AS qty,
  exp(3 + ((hash(i, 3) % 1000) / 1000.0 - 0.5) * 2) AS amount,
  (hash(i, 4) % 1000) / 1000.0 AS score,
  CASE WHEN hash(i, 5) % 10 = 0 THEN NULL ELSE (hash(i, 5) % 30) / 100.0 END AS discount,
  (hash(i, 6) % 5000) / 10.0 AS weight,
  CAST(hash(i, 7) % 200 AS BIGINT) - 100 AS balance,
  (hash(i, 8) % 365) AS age_days,
  DATE '2026-01-01' + CAST(hash(i, 9) % 30 AS INTEGER) AS order_date,
  TIMESTAMP '2026-01-01' + to_seconds(CAST(hash(i, 10) % 2592000 AS BIGINT)) AS created_at,
  ['EU', 'US', 'APAC', 'LATAM'][1 + CAST(hash(i, 11) % 4 AS BIGINT)] AS region,
  ['paid', 'shipped', 'refunded'][1 + CAST(hash(i, 12) % 3 AS BIGINT)] AS status,
  ['web', 'app', 'store'][1 + CAST(hash(i, 13) % 3 AS BIGINT)] AS channel,
  ['EUR', 'USD', 'GBP', 'JPY', 'CAD'][1 + CAST(hash(i, 14) % 5 AS BIGINT)] AS currency,
  CAST(hash(i, 15) % 2 = 0 AS BOOLEAN) AS is_gift,
  'S' || CAST(hash(i, 16) % 50 AS VARCHAR) AS store,
  'SKU-' || lpad(CAST(hash(i, 17) % 100000 AS VARCHAR), 5, '0') AS sku,
  'C-' || lpad(CAST(hash(i, 18) % 1000000 AS VARCHAR), 7, '0') AS customer,
  'note ' || repeat('x', CAST(hash(i, 19) % 40 AS INTEGER)) AS note,
  lower(['anna', 'ben', 'carla'][1 + CAST(hash(i, 20) % 3 AS BIGINT)]) || '.' || CAST(hash(i, 21) % 1000 AS VARCHAR) || '@example.com' AS email
FROM range({rows}) t(i), (VALUES (0), (1)) v(p)
"""


def speed_warehouse(rows: int) -> Path:
    # the history in three partitions: relations and drift are judged from min_history (3) on
    path = DATA_DIR / f"detection_{rows}_h3.duckdb"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        print(f"generating {rows:,} + {rows:,} rows x 20 columns ...", file=sys.stderr, flush=True)
        warehouse = Warehouse(path, memory_limit="4GB")
        with warehouse.connect() as con:
            con.execute(SPEED_SQL.format(rows=rows))
    return path


def child(mode: str, path: str) -> None:
    """One measurement in its own process; prints a JSON line."""
    started, cpu = time.perf_counter(), time.process_time()
    warehouse = Warehouse(path, memory_limit="1GB")
    if mode == "scan":
        with warehouse.connect() as con:
            columns = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE "
                                                 "table_schema = 'raw' AND table_name = 'bench'").fetchall()]
            aggregates = ", ".join(f'max("{c}")' for c in columns)
            con.execute(f'SELECT count(*), {aggregates} FROM raw."bench" WHERE _partition_key = ?', ["scored"]).fetchall()
        detail = ""
    else:
        dataset = parse_contract("version: 1\ndatasets:\n  bench:\n    landing: landing\n    primary_key: [id]\n",
                                 Path(path).parent / "quality.yaml").dataset("bench")
        result = detect_anomalies(warehouse, dataset, "scored", "bench-run")
        detail = f"{result.rows_flagged:,} flagged, {len(result.features)} features"
    print(json.dumps({"mode": mode, "wall": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "detail": detail}))


def speed(rows_list: list[int]) -> None:
    print("\nSpeed (each measurement in its own process)\n")
    print(f"{'rows':>11} {'run':<10} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12} {'x scan':>7}  detail")
    for rows in rows_list:
        path = speed_warehouse(rows)
        # the stage writes its results: measure on a copy so every invocation starts alike
        work = Path(tempfile.mkdtemp(prefix="detection-", dir=DATA_DIR))
        try:
            copy = work / "bench.duckdb"
            shutil.copy(path, copy)
            scan = None
            for mode in ("scan", "anomalies"):
                out = subprocess.run([sys.executable, __file__, "--child", mode, str(copy)], capture_output=True,
                                     text=True, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                scan = scan or result["wall"]
                print(f"{rows:>11,} {mode:<10} {result['wall']:>8.2f} {result['cpu']:>8.2f} {result['rss_mb']:>12.0f} "
                      f"{result['wall'] / scan:>7.1f}  {result['detail']}", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def compare(rows_list: list[int], baseline: Path, rounds: int) -> None:
    """This tree's anomaly stage against another tree's (`--baseline`, e.g. a worktree of an older
    commit) on the same data, alternating, each run in its own process; best of the rounds."""
    theirs = baseline / "benchmarks" / "detection.py"
    print(f"\nSpeed against {baseline} (best of {rounds} alternating rounds, each run in its own process; "
          "scan: the plain scan of speed())\n")
    print(f"{'rows':>11} {'tree':<9} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12} {'ratio':>7} {'x scan':>7}  detail")
    for rows in rows_list:
        path = speed_warehouse(rows)
        best: dict[str, dict] = {}
        load = [os.getloadavg()[0]]
        for _ in range(rounds):
            for label, script, mode in (("scan", Path(__file__), "scan"), ("baseline", theirs, "anomalies"),
                                        ("this", Path(__file__), "anomalies")):
                work = Path(tempfile.mkdtemp(prefix="detection-", dir=DATA_DIR))
                try:
                    shutil.copy(path, work / "bench.duckdb")
                    out = subprocess.run([sys.executable, str(script), "--child", mode, str(work / "bench.duckdb")],
                                         capture_output=True, text=True, check=True)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                if label not in best or result["wall"] < best[label]["wall"]:
                    best[label] = result
            load.append(os.getloadavg()[0])
        for label in ("scan", "baseline", "this"):
            r = best[label]
            print(f"{rows:>11,} {label:<9} {r['wall']:>8.2f} {r['cpu']:>8.2f} {r['rss_mb']:>12.0f} "
                  f"{r['wall'] / best['baseline']['wall']:>7.2f} {r['wall'] / best['scan']['wall']:>7.1f}  {r['detail']}",
                  flush=True)
        print(f"{'':>11} CPU ratio this / baseline {best['this']['cpu'] / best['baseline']['cpu']:.2f}; "
              f"load average (1 min) {min(load):.1f}-{max(load):.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--speed-rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--baseline", type=Path, help="another tree (a worktree of an older commit) to compare speed with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.baseline:
        compare(args.speed_rows, args.baseline.resolve(), args.rounds)
        return
    if not args.skip_quality:
        root = Path(tempfile.mkdtemp(prefix="detection-quality-"))
        try:
            print_quality(quality(root, args.seed))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    if not args.skip_speed:
        speed(args.speed_rows)


if __name__ == "__main__":
    main()
