"""Reading the file's bytes: the line-break scan, the hash, temporary names."""

from __future__ import annotations

import gzip
import random
import re

import pytest

from quality_assets import ingest
from quality_assets.ingest import is_temporary_name
from quality_assets.ingest.scan import LineBreaks


@pytest.mark.parametrize("name, temporary", [
    ("orders.csv", False), ("orders.csv.gz", False), ("data/orders_2024.parquet", False), ("my.file.tmp.csv", False),
    ("orders.csv.part", True), ("orders.csv.tmp", True), ("orders.CSV.PART", True), ("orders.csv.crdownload", True),
    ("orders.csv.partial", True), ("orders.csv.filepart", True), (".orders.csv.swp", True), ("orders.csv~", True),
    (".hidden.csv", True), ("~$orders.xlsx", True), ("_COPYING_orders.csv", True), ("landing/.orders.csv", True),
])
def test_is_temporary_name(name, temporary):
    assert is_temporary_name(name) is temporary


def reference_irregular(data: bytes) -> int | None:
    """Line by line: the offset of the first empty line or line break of another kind than the first."""
    kind, pos = None, 0
    for match in re.finditer(rb"\r\n|\n|\r", data):
        brk, start = match.group(), match.start()
        if start == pos and start > 0:
            return start  # nothing between two line breaks: an empty line
        if kind is None:
            kind = brk
        elif brk != kind:
            return start
        pos = match.end()
    return None


@pytest.mark.parametrize("seed", range(40))
def test_line_break_scan_finds_the_first_irregular_break(seed):
    rng = random.Random(seed)
    style = rng.choice([b"\n", b"\r\n", b"\r"])
    lines = [b"ab,c" * rng.randint(0, 3) + b"x" for _ in range(rng.randint(1, 60))]
    data = bytearray(style.join(lines) + style)
    if seed % 4:  # spoil it at a random place
        where = rng.randrange(len(data))
        data[where:where] = rng.choice([b"\n", b"\r", b"\r\n", style + style])
    data = bytes(data)
    expected = reference_irregular(data)
    for chunk in (1, 2, 3, 7, len(data) + 1):
        scan = LineBreaks()
        for i in range(0, len(data), chunk):
            scan.feed(data[i:i + chunk])
        scan.feed(b"", final=True)
        found = scan.first
        assert (found is None) == (expected is None), (data, chunk, found, expected)
        if expected is not None:
            assert abs(found - expected) <= 1, (data, chunk, found, expected)


def test_scan_file_hashes_and_scans_in_one_read(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\n1,2\n\n3,4\n")
    scan = ingest.scan_file(path)
    assert scan.sha256 == ingest.sha256_file(path)
    assert (scan.irregular_from, scan.line_breaks_known) == (7, True)
    gz = tmp_path / "f.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert ingest.scan_file(gz).line_breaks_known is False


@pytest.mark.parametrize("seed", range(40))
def test_scan_file_reads_lf_files_as_the_byte_search_does(seed, tmp_path):
    """LF blocks take the numpy path (offsets of LFs): same first irregular break and same count
    of lines ending with the delimiter as feeding every block to LineBreaks, at any block size."""
    rng = random.Random(seed)
    lines = [rng.choice([b"a,b", b"1,", b"x", b",", b""]) * rng.randint(0, 2) + b"z" for _ in range(rng.randint(1, 40))]
    data = bytearray(b"\n".join(lines) + b"\n")
    for _ in range(seed % 3):  # empty lines, and from seed 20 on a CR (the byte-search path takes over)
        where = rng.randrange(len(data) + 1)
        data[where:where] = rng.choice([b"\n", b",\n", b"\n\n"] + ([b"\r\n", b"\r"] if seed >= 20 else []))
    data = bytes(data)
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    ends = len(re.findall(rb",(?=[\r\n])", data))
    for chunk in (1, 2, 3, 7, len(data) + 1):
        expected = LineBreaks()
        for i in range(0, len(data), chunk):
            expected.feed(data[i:i + chunk])
        expected.feed(b"", final=True)
        scan = ingest.scan_file(path, chunk=chunk, delimiters=(",",))
        assert scan.irregular_from == expected.first, (data, chunk)
        assert scan.ending_with == {",": ends} and type(scan.ending_with[","]) is int, (data, chunk)
