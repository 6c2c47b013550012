"""JSON lines staged record by record: one column per key, nested values kept as JSON text.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa

from quality_assets.contract import Dataset
from quality_assets.ingest.audit import BATCH_ROWS, ERROR_CODES, LoadAudit
from quality_assets.ingest.casting import cast_text_rows
from quality_assets.ingest.quarantine import insert_quarantine, quarantine_row
from quality_assets.ingest.records import physical_lines
from quality_assets.ingest.sniff import target_names
from quality_assets.warehouse import quote_ident


def stage_json(con, source: Path, dataset: Dataset, audit: LoadAudit) -> dict[str, str]:
    audit.parser = "python-json"
    audit.encoding = "utf-8"
    targets: list[str] = []
    columns: dict[str, str] = {}  # JSON key -> column (DuckDB names ignore case, JSON keys do not)
    con.execute("CREATE TABLE text_rows (_source_row BIGINT, _line BIGINT, _raw_line VARCHAR)")
    batch: list[dict] = []
    quarantine: list[tuple] = []
    record_no = 0
    opener = gzip.open if audit.compression == "gzip" else open
    with opener(source, "rb") as handle:
        for line_no, text, clean in physical_lines(handle, "utf-8"):
            stripped = text.strip()
            if not stripped:
                continue
            record_no += 1
            if "\x00" in stripped:
                quarantine.append(quarantine_row(record_no, line_no, None, "E_NUL", ERROR_CODES["E_NUL"], None, stripped))
                continue
            if not clean:
                quarantine.append(quarantine_row(record_no, line_no, None, "E_ENCODING", ERROR_CODES["E_ENCODING"] + " (utf-8)", None, stripped))
                continue
            try:
                value = json.loads(stripped)
            except ValueError as exc:
                quarantine.append(quarantine_row(record_no, line_no, None, "E_JSON", f"invalid JSON: {exc}", None, stripped))
                continue
            if not isinstance(value, dict):
                quarantine.append(quarantine_row(record_no, line_no, None, "E_JSON", f"expected a JSON object, found {type(value).__name__}", None, stripped))
                continue
            row = {"_source_row": record_no, "_line": line_no, "_raw_line": stripped}
            for key, item in value.items():
                name = columns.get(key)
                if name is None:
                    name = columns[key] = _json_column(dataset, str(key), targets)
                    if name not in targets:
                        targets.append(name)
                        con.execute(f"ALTER TABLE text_rows ADD COLUMN {quote_ident(name)} VARCHAR")
                row[name] = _json_text(item)
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                _append_dict_rows(con, batch, targets)
                batch = []
    _append_dict_rows(con, batch, targets)
    insert_quarantine(con, quarantine)
    audit.utf8_valid = "E_ENCODING" not in {q[3] for q in quarantine}
    return cast_text_rows(con, dataset, targets)


def _json_column(dataset: Dataset, key: str, targets: list[str]) -> str:
    """The column for a JSON key seen for the first time: its contract column (aliases and case
    ignored), else the key itself, suffixed when it differs from a taken name only in case."""
    name = target_names(dataset, [key])[0]
    if dataset.column(name) is not None:
        return name
    taken = {t.lower() for t in targets}
    candidate, suffix = name, 0
    while candidate.lower() in taken:
        suffix += 1
        candidate = f"{name}_{suffix}"
    return candidate


def _json_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _append_dict_rows(con, batch: list[dict], targets: list[str]) -> None:
    if not batch:
        return
    names = ["_source_row", "_line", "_raw_line", *targets]
    table = pa.table({
        f"c{i}": pa.array([row.get(name) for row in batch], type=pa.int64() if i < 2 else pa.string())
        for i, name in enumerate(names)
    })
    con.register("text_batch", table)
    try:
        con.execute(
            f"INSERT INTO text_rows ({', '.join(quote_ident(n) for n in names)}) SELECT "
            + ", ".join(f"c{i}" for i in range(len(names))) + " FROM text_batch"
        )
    finally:
        con.unregister("text_batch")
