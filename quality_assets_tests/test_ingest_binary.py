"""Binary and NUL, one rule: a NUL inside a record quarantines that record (E_NUL) wherever it
sits; a file that is mostly not text is rejected whole, with the reason, before raw."""

from __future__ import annotations

import gzip
import json
import random

import pytest
from conftest import simple_dataset
from ingest_support import ORDERS, check, file_audit, values

from quality_assets.ingest.scan import binary_reason

N = 20_000  # about 400 KB: row N - 2 lies far beyond the 256 KiB the sniffer reads


def orders_with_nul(bad: set[int], n: int = N) -> str:
    return "id,name,amount\n" + "".join(f"{i},n{i}{chr(0) if i in bad else ''}x,{i}.5\n" for i in range(1, n + 1))


@pytest.mark.parametrize("where", ["in_the_sniff_sample", "far_beyond_it", "both"])
@pytest.mark.parametrize("container", ["plain", "gzip", "cp1252"])
def test_nul_in_a_record_quarantines_that_record_wherever_it_sits(harness, tmp_path, where, container):
    bad = {"in_the_sniff_sample": {3}, "far_beyond_it": {N - 2}, "both": {3, N - 2}}[where]
    data = orders_with_nul(bad).encode("cp1252" if container == "cp1252" else "utf-8")
    name = "o.csv"
    if container == "gzip":
        data, name = gzip.compress(data), "o.csv.gz"
    csv = {"encoding": "cp1252"} if container == "cp1252" else None
    loaded = check(harness.load(harness.write(name, data), simple_dataset(tmp_path, ORDERS, csv)), N)
    assert loaded.audit.status == "loaded_with_errors"
    assert [(q["source_row"], q["error_code"]) for q in loaded.quarantine] == [(b, "E_NUL") for b in sorted(bad)]
    assert loaded.audit.rows_loaded == N - len(bad)
    assert all("\x00" not in row["name"] for row in loaded.raw)


def test_nul_in_a_json_line_quarantines_that_line(harness, tmp_path):
    lines = [json.dumps({"id": i, "name": f"n{i}" + ("\x00" if i == 2 else "")}) for i in range(1, 4)]
    text = "\n".join(line.replace("\\u0000", "\x00") for line in lines) + "\n"
    loaded = check(harness.load(harness.write("o.jsonl", text), simple_dataset(tmp_path)), 3)
    assert [(q["source_row"], q["error_code"]) for q in loaded.quarantine] == [(2, "E_NUL")]
    assert values(loaded, "id") == [(1,), (3,)]


def random_bytes(seed: int, n: int, values: range = range(256)) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.choice(values) for _ in range(n))


@pytest.mark.parametrize("content", [
    bytes(range(256)) * 64,  # every byte value
    random_bytes(7, 50_000),  # compressed or encrypted data
    b"\x89PNG\r\n\x1a\n" + random_bytes(8, 5_000),
], ids=["all_bytes", "random", "png"])
def test_mostly_binary_file_is_rejected_whole_with_the_reason(harness, tmp_path, content):
    loaded = check(harness.load(harness.write("blob.csv", content), simple_dataset(tmp_path, ORDERS)), 0)
    assert loaded.audit.status == "rejected" and loaded.audit.error_codes == {"E_BINARY": 1}
    assert "control bytes" in loaded.audit.message or "not UTF-8" in loaded.audit.message
    assert file_audit(harness, "blob.csv")["message"] == loaded.audit.message
    assert loaded.raw == []


def test_text_that_is_mostly_not_utf8_is_rejected(harness, tmp_path):
    content = random_bytes(9, 10_000, range(0x80, 0x100))
    loaded = check(harness.load(harness.write("latin.csv", content), simple_dataset(tmp_path, ORDERS)), 0)
    assert loaded.audit.status == "rejected"
    assert "not UTF-8" in loaded.audit.message


def test_binary_reason_judges_the_share_not_the_presence():
    text = b"id,name\n" + b"".join(b"%d,name %d\n" % (i, i) for i in range(1000))
    assert binary_reason(text, "utf-8") is None
    assert binary_reason(text[:100] + b"\x00" + text[100:], "utf-8") is None  # one NUL: a record's fault
    assert binary_reason("a,b\n1,2\n".encode("utf-16"), "utf-8") is None  # UTF-16: NULs are text
    assert "control bytes" in binary_reason(b"\x00\x01\x02binary" * 50, "utf-8")
