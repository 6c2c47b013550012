"""A polluted-CSV corpus of our own, by family, through the raw stage with auto-detection.

    .venv/bin/python benchmarks/csv_robustness.py               # every family
    .venv/bin/python benchmarks/csv_robustness.py --family preamble_footer --keep /tmp/corpus

Each family writes a few files whose every data record carries a unique id (first column) and
is either good (its fields must load, aligned) or bad (it must be quarantined, never loaded); a
footer's lines (totals, notes after the table) are bad too.
Each file goes through `quality_assets.ingest.load_file` with a contract that names no column
and no dialect. Per family:

- `F1`: record F1 of the loaded rows against the good records (a loaded row counts when its id
  is a good record's and every field matches, as text, number, date or NULL for empty);
- `lost`: good or bad records neither loaded nor in `qa.quarantine`, and footer lines not in
  `qa.quarantine` (must be 0);
- `misaligned`: loaded rows whose id is a record's but whose fields do not match it, whose
  record is bad, or that are no record at all (a footer line loaded as a row) (must be 0);
- `unaudited`: files without a `qa.files` row (must be 0).
Targets: 0 lost, 0 misaligned, 0 unaudited, F1 >= 0.99 in every family.
"""

from __future__ import annotations

import argparse
import codecs
import datetime as dt
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quality_assets.contract import parse_contract  # noqa: E402
from quality_assets.ingest import load_file  # noqa: E402
from quality_assets.warehouse import Warehouse  # noqa: E402

HEADER = ["id", "name", "amount", "day", "note"]


@dataclass
class CorpusFile:
    name: str
    data: bytes
    good: dict[int, list[str]] = field(default_factory=dict)  # id -> field texts, in HEADER order
    bad: dict[int, str] = field(default_factory=dict)  # id -> the record's line text
    lines: dict[int, str] = field(default_factory=dict)  # id -> line text of every record
    footer: list[str] = field(default_factory=list)  # lines after the table that must be quarantined


def record(i: int) -> list[str]:
    amount = "" if i % 7 == 0 else f"{(i * 37) % 1000 / 10:.1f}"
    note = "" if i % 5 == 0 else f"note {i}"
    return [str(i), f"name {i}", amount, (dt.date(2026, 1, 1) + dt.timedelta(days=i % 300)).isoformat(), note]


def quoted(fields: list[str], delimiter: str = ",", quote: str = '"') -> str:
    out = []
    for value in fields:
        if delimiter in value or quote in value or "\n" in value:
            value = quote + value.replace(quote, quote * 2) + quote
        out.append(value)
    return delimiter.join(out)


def build(name: str, rows: list[tuple[str, int | None, bool]], encoding: str = "utf-8",
          prefix: str = "", suffix: str = "", newline: str = "\n") -> CorpusFile:
    """rows: (line text, id or None for a non-record line, good?)."""
    file = CorpusFile(name, b"")
    text = prefix + newline.join(line for line, _, _ in rows) + newline + suffix
    file.data = codecs.encode(text, encoding)
    for line, i, good in rows:
        if i is None:
            continue
        file.lines[i] = line
        if good:
            file.good[i] = record(i)
        else:
            file.bad[i] = line
    return file


def plain(n: int, start: int = 1, delimiter: str = ",") -> list[tuple[str, int, bool]]:
    return [(quoted(record(i), delimiter), i, True) for i in range(start, start + n)]


def header(delimiter: str = ",") -> tuple[str, None, bool]:
    return (delimiter.join(HEADER), None, True)


def families() -> dict[str, list[CorpusFile]]:
    f: dict[str, list[CorpusFile]] = {}
    # Extra and missing delimiters in rows: the record is quarantined, its neighbours load.
    rows = [header(), *plain(200)]
    for at, extra in ((20, ",surplus"), (40, ","), (60, ",,"), (80, ",x,y")):
        line = quoted(record(at)) + extra
        rows[at] = (line, at, False)
    missing = [header(), *plain(200)]
    for at in (30, 90, 150):
        fields = record(at)
        missing[at] = (",".join(fields[:2] + fields[3:]), at, False)
    f["delimiters_in_rows"] = [build("extra.csv", rows), build("missing.csv", missing)]
    # Extra and missing delimiters in the header.
    f["delimiters_in_header"] = [
        build("header_trailing.csv", [(",".join(HEADER) + ",", None, True), *plain(100)]),
        build("header_and_rows_trailing.csv", [(",".join(HEADER) + ",", None, True),
                                               *[(line + ",", i, g) for line, i, g in plain(100)]]),
        build("rows_trailing.csv", [header(), *[(line + ",", i, g) for line, i, g in plain(100)]]),
    ]
    # Stray quotes: a quote inside an unquoted field; a field quoted in the middle.
    stray = [header(), *plain(100)]
    stray_file = build("stray.csv", stray)
    for at in (10, 50):  # a quote inside an unquoted field is a literal character
        fields = record(at)
        fields[4] = f'5" screen {at}'
        stray_file.good[at] = fields
        line = ",".join(fields)
        stray_file.lines[at] = line
        stray_file.data = stray_file.data.replace((quoted(record(at)) + "\n").encode(), (line + "\n").encode())
    f["stray_quotes"] = [stray_file]
    # Line breaks: CRLF, CR, none at the end, mixed, blank lines between records.
    f["line_breaks"] = [
        build("crlf.csv", [header(), *plain(100)], newline="\r\n"),
        build("cr.csv", [header(), *plain(100)], newline="\r"),
        build("blank_lines.csv", [header(), *[item for line, i, g in plain(100) for item in
                                              ([(line, i, g), ("", None, True)] if i % 10 == 0 else [(line, i, g)])]]),
    ]
    no_final_newline = build("no_final_newline.csv", [header(), *plain(100)])
    no_final_newline.data = no_final_newline.data.rstrip(b"\n")
    f["line_breaks"].append(no_final_newline)
    mixed = build("mixed.csv", [header(), *plain(100)])
    mixed.data = mixed.data.replace(b"\n", b"\r\n", 40)
    f["line_breaks"].append(mixed)
    # Preambles and footers: a footer's lines are quarantined, the records before them load.
    def footed(name: str, footer: list[str], rows=None, newline: str = "\n", **kwargs) -> CorpusFile:
        file = build(name, rows or [header(), *plain(100)], suffix="".join(f"{line}{newline}" for line in footer),
                     newline=newline, **kwargs)
        file.footer = [line for line in footer if line.strip()]
        return file

    truncated = [header(), *plain(100), (",".join(record(101)[:2]), 101, False)]
    f["preamble_footer"] = [
        build("preamble.csv", [header(), *plain(100)], prefix="Sales export\nGenerated 2026-01-31 by ERP\n\n"),
        footed("footer.csv", ["", "Total,,12345.6,,"]),
        footed("grand_total.csv", ["Grand total: 100 records", "Generated 2026-02-01 by ERP"]),
        footed("short_total.csv", ["Total,12345.6"]),
        footed("quoted_notes.csv", ["", '"Note: amounts in EUR, VAT included"', '"Source: ERP, export 7"']),
        footed("preamble_and_footer_crlf.csv", ["TOTAL,,12345.6,,", "End of report"], newline="\r\n",
               prefix="Sales export\r\n\r\n"),
        footed("truncated_then_total.csv", ["Total,,5.0,,"], rows=truncated),  # the cut record stays E_COLUMN_COUNT
        build("last_record_named_total.csv", [header(), *plain(99),  # a record, not a footer: its id fits
                                              (quoted([*record(100)[:1], "Total", *record(100)[2:]]), 100, True)]),
    ]
    f["preamble_footer"][-1].good[100][1] = "Total"
    # Several tables in one file: the second table's records do not fit the first's header.
    second = [("code,label", None, True)] + [(f"C{i},label {i}", None, True) for i in range(5)]
    f["several_tables"] = [build("two_tables.csv", [header(), *plain(100), ("", None, True), *second])]
    # Mixed dialects across files: semicolon, tab, pipe, single quotes.
    f["dialects"] = [
        build("semicolon.csv", [header(";"), *plain(100, delimiter=";")]),
        build("tab.tsv", [header("\t"), *plain(100, delimiter="\t")]),
        build("pipe.txt", [header("|"), *plain(100, delimiter="|")]),
        build("single_quote.csv", [header(), *[("'" + "','".join(record(i)) + "'", i, True) for i in range(1, 101)]]),
    ]
    # Encodings: UTF-8 with a byte-order mark, UTF-16.
    bom = build("bom.csv", [header(), *plain(100)], encoding="utf-8-sig")
    utf16 = build("utf16.csv", [header(), *plain(100)], encoding="utf-16")
    f["encodings"] = [bom, utf16]
    # Damaged headers: a blank name, a duplicate, a header shorter than the records.
    f["damaged_headers"] = [
        build("blank_name.csv", [("id,,amount,day,note", None, True), *plain(100)]),
        build("duplicate_name.csv", [("id,name,name,day,note", None, True), *plain(100)]),
        build("short_header.csv", [("id,name,amount,day", None, True), *plain(100)]),
    ]
    return f


def normalise(expected: str, value) -> bool:
    if value is None:
        return expected == ""
    if isinstance(value, bool):
        return expected.lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return float(expected) == float(value)
        except ValueError:
            return False
    if isinstance(value, (dt.date, dt.datetime)):
        return str(value)[: len(expected)] == expected
    return str(value) == expected


def evaluate(files: list[CorpusFile], root: Path) -> dict:
    landing = root / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    contract = parse_contract("datasets:\n  corpus:\n    landing: landing\n", root / "quality.yaml")
    dataset = contract.dataset("corpus")
    tp = fp = fn = lost = misaligned = unaudited = 0
    for file in files:
        warehouse = Warehouse(root / f"wh_{file.name}.duckdb", lock_timeout_s=30, memory_limit="512MB")
        path = landing / file.name
        path.write_bytes(file.data)
        try:
            load_file(warehouse, path, dataset, file.name, "bench")
        except Exception as exc:  # a crash is a finding: its records are lost, the file unaudited
            print(f"  {file.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        with warehouse.connect() as con:
            audited = con.execute("SELECT count(*) FROM qa.files WHERE partition_key = ?", [file.name]).fetchone()[0]
            has_raw = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw'").fetchone()[0]
            rel = con.execute('SELECT * EXCLUDE (_partition_key, _run_id) FROM raw."corpus" ORDER BY _source_row') \
                if has_raw else None
            names = [d[0] for d in rel.description] if rel else []
            loaded = [dict(zip(names, row, strict=True)) for row in rel.fetchall()] if rel else []
            quarantined = {(r[0] or "").strip("\r\n") for r in con.execute("SELECT raw_line FROM qa.quarantine").fetchall()}
        unaudited += audited == 0
        fields = [n for n in names if n != "_source_row"]
        matched: set[int] = set()
        for row in loaded:
            values = [row[n] for n in fields]
            key = values[0] if values else None
            try:
                rid = int(float(key)) if key is not None else None
            except (TypeError, ValueError):
                rid = None
            if rid in file.good and len(values) >= len(HEADER) and all(
                    normalise(e, v) for e, v in zip(file.good[rid], values, strict=False)) \
                    and all(v is None for v in values[len(HEADER):]):
                tp += 1
                matched.add(rid)
            else:
                fp += 1
                # a row of a record's id whose fields differ, of a bad record, or of no record (a footer's)
                misaligned += rid in file.good or rid in file.bad or rid is None
        fn += len(set(file.good) - matched)
        loaded_ids = set()
        for row in loaded:
            value = row[fields[0]] if fields else None
            try:
                loaded_ids.add(int(float(value)))
            except (TypeError, ValueError):
                pass
        for rid, line in file.lines.items():
            if rid not in loaded_ids and line.strip("\r\n") not in quarantined:
                lost += 1
        lost += sum(line not in quarantined for line in file.footer)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"files": len(files), "good": sum(len(f.good) for f in files),
            "bad": sum(len(f.bad) + len(f.footer) for f in files),
            "f1": f1, "lost": lost, "misaligned": misaligned, "unaudited": unaudited}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", action="append", help="run only these families")
    parser.add_argument("--keep", type=Path, help="write the corpus and warehouses here and keep them")
    args = parser.parse_args()
    corpus = families()
    chosen = args.family or list(corpus)
    root = args.keep or Path(tempfile.mkdtemp(prefix="csv-robustness-"))
    print(f"{'family':22} {'files':>5} {'good':>5} {'bad':>4} {'F1':>6} {'lost':>5} {'misaligned':>10} {'unaudited':>9}  target")
    failing = []
    try:
        for name in chosen:
            print(f"{name} ...", file=sys.stderr, flush=True)
            r = evaluate(corpus[name], root / name)
            ok = r["lost"] == 0 and r["misaligned"] == 0 and r["unaudited"] == 0 and r["f1"] >= 0.99
            failing += [] if ok else [name]
            print(f"{name:22} {r['files']:5} {r['good']:5} {r['bad']:4} {r['f1']:6.3f} {r['lost']:5} "
                  f"{r['misaligned']:10} {r['unaudited']:9}  {'ok' if ok else 'FAIL'}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n{len(chosen) - len(failing)} of {len(chosen)} families meet the targets (0 lost, 0 misaligned, "
          f"0 unaudited, F1 >= 0.99)" + (f"; failing: {', '.join(failing)}" if failing else ""))


if __name__ == "__main__":
    main()
