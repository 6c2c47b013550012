"""A realistic sample landing folder and contract, with the faults real exports have."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from pathlib import Path

DEMO_CONTRACT = """\
# Demo contract written by `quality-assets demo`.
version: 1
datasets:
  orders:
    description: Orders exported nightly by the web shop, one CSV per day.
    landing:
      path: landing/orders
      glob: "*.csv"
    columns:
      order_id: {type: bigint, aliases: [OrderID]}
      customer_id: bigint
      order_date: {type: date, aliases: [date]}
      amount: {type: double, aliases: [Amount]}
      currency: string
      status: string
      express: boolean
    primary_key: [order_id]
    rules:
      - not_null: order_id
      - unique: order_id
      - range: {column: amount, min: 0}
        severity: warn
      - accepted_values: {column: currency, values: [EUR, USD, GBP]}
  customers:
    description: The CRM's customer dump, pipe-delimited, replaced weekly.
    landing:
      path: landing/customers
      glob: "*.txt*"
    csv:
      delimiter: "|"
    columns:
      customer_id: bigint
      name: string
      email: string
      country: string
      signup_date: date
    primary_key: [customer_id]
    rules:
      - not_null: email
        severity: warn
      - regex: {column: email, pattern: "^[^@ ]+@[^@ ]+$"}
        mostly: 0.95
  events:
    description: Click events from the tracking service as JSON lines.
    landing:
      path: landing/events
      glob: "*.jsonl*"
    columns:
      event_id: string
      ts: timestamp
      customer_id: bigint
      kind: string
      value: double
"""

FIRST_NAMES = ["Ana", "Bo", "Chen", "Dara", "Émile", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Lea"]
LAST_NAMES = ["Silva", "Berg", "Wang", "Okafor", "Dubois", "Adeyemi", "Larsen", "Sato", "Moreau", "Novak"]
COUNTRIES = ["DE", "FR", "NL", "GB", "US", "PT", "JP", "NG"]
STATUSES = ["paid", "paid", "paid", "shipped", "cancelled", "refunded"]


def write_demo(root: Path, seed: int = 7, days: int = 3, rows_per_day: int = 2000) -> dict[str, list[Path]]:
    """Write quality.yaml and landing files under root; returns the files per dataset."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "quality.yaml").write_text(DEMO_CONTRACT, encoding="utf-8")
    written: dict[str, list[Path]] = {"orders": [], "customers": [], "events": []}
    start = dt.date(2026, 11, 1)
    order_id = 100000
    for day in range(days):
        date = start + dt.timedelta(days=day)
        lines = ["OrderID,customer_id,date,Amount,currency,status,express"]
        for _ in range(rows_per_day):
            order_id += 1
            amount = round(rng.lognormvariate(3.5, 0.8), 2)
            lines.append(
                f"{order_id},{rng.randint(1, 500)},{date.isoformat()},{amount},"
                f"{rng.choice(['EUR', 'EUR', 'USD', 'GBP'])},{rng.choice(STATUSES)},{rng.choice(['true', 'false'])}"
            )
        if day == days - 1:
            # The faults of the latest export: a ragged row, a malformed number, a bad date,
            # a negative amount and a currency nobody agreed on.
            lines[10] = f"{order_id + 1},17,{date.isoformat()},12.50,EUR"
            lines[20] = lines[20].split(",", 1)[0] + f',42,{date.isoformat()},"12,50",EUR,paid,false'
            lines[30] = f"{order_id + 2},8,31/02/2026,19.99,EUR,paid,true"
            lines[40] = f"{order_id + 3},9,{date.isoformat()},-5.00,EUR,refunded,false"
            lines[50] = f"{order_id + 4},9,{date.isoformat()},7.00,BTC,paid,false"
        path = root / "landing" / "orders" / f"orders_{date:%Y%m%d}.csv"
        body = "\n".join(lines) + "\n"
        data = body.encode("utf-8")
        if day == days - 1:
            # A Latin-1 byte in a UTF-8 file, as written by an old export tool.
            data = data.replace(b",paid,true\n", b",pa\xefd,true\n", 1)
        _write(path, data)
        written["orders"].append(path)

    lines = ["customer_id|name|email|country|signup_date"]
    for customer in range(1, 501):
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        email = f"{name.split()[0].lower()}.{customer}@example.com" if customer % 97 else ""
        signup = start - dt.timedelta(days=rng.randint(1, 900))
        lines.append(f"{customer}|\"{name}\"|{email}|{rng.choice(COUNTRIES)}|{signup.isoformat()}")
    lines[123] = '123|"Quote | Pipe, Inc."|billing@quote-pipe.example|DE|2025-04-01'
    path = root / "landing" / "customers" / "customers_2026w45.txt.gz"
    _write(path, gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0))
    written["customers"].append(path)

    events = []
    moment = dt.datetime(2026, 11, 3, 8, 0, 0)
    for n in range(1500):
        moment += dt.timedelta(seconds=rng.randint(1, 40))
        events.append(json.dumps({
            "event_id": f"ev-{n:06d}", "ts": moment.isoformat(), "customer_id": rng.randint(1, 500),
            "kind": rng.choice(["view", "view", "click", "cart", "buy"]),
            "value": round(rng.random() * 100, 2), "context": {"page": rng.choice(["/", "/shop", "/cart"])},
        }))
    events[700] = '{"event_id": "ev-000700", "ts": "2026-11-03T12:00:00", "customer_id": '  # cut off
    events[900] = events[900].replace('"value": ', '"value": "n/a", "ignored": ', 1)
    path = root / "landing" / "events" / "events_20261103.jsonl"
    _write(path, ("\n".join(events) + "\n").encode("utf-8"))
    written["events"].append(path)
    return written


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
