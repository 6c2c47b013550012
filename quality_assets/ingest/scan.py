"""Reading a file's bytes: sha256, format and compression, blank and binary heads, UTF-8 validity,
transcoding, and where its line breaks stop being regular.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy

SNIFF_BYTES = 256 * 1024


def sha256_file(path: Path, chunk: int = 8 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FileScan:
    sha256: str
    irregular_from: int | None  # first byte offset with irregular line breaks (None: none)
    line_breaks_known: bool  # False for compressed files: their text was not scanned
    ending_with: dict[str, int] = field(default_factory=dict)  # delimiter -> lines ending with it
    nul_bytes: int = 0  # NUL bytes in the (uncompressed) file
    bytes_read: int = 0  # bytes hashed: the file's size as this read saw it

    def may_hold_nul(self) -> bool:
        """Whether a record may hold a NUL byte (always for unscanned, compressed files)."""
        return not self.line_breaks_known or self.nul_bytes > 0

    def may_end_with(self, delimiter: str) -> bool:
        """Whether some line may end with `delimiter` (always for unscanned, compressed files)."""
        return not self.line_breaks_known or self.ending_with.get(delimiter, 1) > 0


class FileChanged(Exception):
    """The file changed while it was read: what was parsed is not what was hashed."""


def check_unchanged(path: Path, before: os.stat_result, scan: FileScan) -> None:
    """Raise FileChanged unless the file has the size and mtime it had before the load and the
    scan hashed exactly that many bytes: the audit's sha256 and bytes are then of the bytes the
    parser read."""
    try:
        after = path.stat()
    except FileNotFoundError:
        raise FileChanged("the file was removed while it was read") from None
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise FileChanged(f"the file changed while it was read ({before.st_size:,} -> {after.st_size:,} bytes, "
                          f"mtime {before.st_mtime_ns / 1e9:.6f} -> {after.st_mtime_ns / 1e9:.6f})")
    if scan.bytes_read != before.st_size:
        raise FileChanged(f"the file changed while it was read ({before.st_size:,} bytes listed, "
                          f"{scan.bytes_read:,} bytes read)")


def scan_file(path: Path, sha256: str | None = None, chunk: int = 8 * 1024 * 1024,
              delimiters: tuple[str, ...] = ()) -> FileScan:
    """The file's sha256 (unless given) and, for uncompressed files, where its line breaks stop
    being regular and how many lines end with each of `delimiters`, from one read."""
    digest = hashlib.sha256()
    breaks = LineBreaks()
    ending = dict.fromkeys((d.encode() for d in delimiters), 0)
    nul_bytes = bytes_read = 0
    scratch = [numpy.empty(chunk, dtype=bool), numpy.empty(chunk, dtype=bool)]  # reused: no page faults per block
    last = b""
    with open(path, "rb") as handle:
        block = handle.read(chunk)
        compressed = block[:2] == b"\x1f\x8b"
        while block:
            bytes_read += len(block)
            if sha256 is None:
                digest.update(block)
            if not compressed:
                if b"\x00" in block:  # memchr: far cheaper than counting when there is none
                    nul_bytes += block.count(b"\x00")
                if b"\r" in block or not (breaks.first is not None or breaks.lf_so_far()):
                    breaks.feed(block)
                    if ending:
                        _count_line_ends(block, last, ending, scratch)
                else:  # the usual LF file: one pass finds its line breaks, for both questions
                    data = numpy.frombuffer(block, dtype=numpy.uint8)
                    newlines = numpy.flatnonzero(numpy.equal(data, 10, out=scratch[0][:len(data)]))
                    breaks.feed_lf(block, newlines)
                    _count_lf_line_ends(data, newlines, last, ending)
                last = block[-1:]
            block = handle.read(chunk)
    breaks.feed(b"", final=True)
    return FileScan(sha256 or digest.hexdigest(), breaks.first if not compressed else None, not compressed,
                    {d.decode(): n for d, n in ending.items()}, nul_bytes, bytes_read)


def _count_line_ends(block: bytes, last: bytes, ending: dict[bytes, int], scratch: list) -> None:
    """Add to `ending` the lines of `block` that end with each delimiter (a line break right after
    it; `last` is the byte before the block). numpy compares bytes ~3x faster than bytes.count
    finds a two-byte needle; the boolean buffers are reused."""
    data = numpy.frombuffer(block, dtype=numpy.uint8)
    n = len(data) - 1
    breaks_at, hits = scratch[0][:n], scratch[1][:n]
    numpy.equal(data[1:], 10, out=breaks_at)
    if b"\r" in block:
        numpy.logical_or(breaks_at, data[1:] == 13, out=breaks_at)
    starts_with_break = block[:1] in (b"\n", b"\r")
    for delimiter in ending:
        numpy.equal(data[:-1], delimiter[0], out=hits)
        numpy.logical_and(hits, breaks_at, out=hits)
        ending[delimiter] += int(numpy.count_nonzero(hits)) + (starts_with_break and last == delimiter)


def _count_lf_line_ends(data, newlines, last: bytes, ending: dict[bytes, int]) -> None:
    """_count_line_ends for a block without CR, from the offsets of its LFs."""
    if not ending or not len(newlines):
        return
    at_start = bool(newlines[0] == 0)  # the line ended in the previous block: `last` says with what
    before = data[(newlines[1:] if at_start else newlines) - 1]
    for delimiter in ending:
        ending[delimiter] += int(numpy.count_nonzero(before == delimiter[0])) + (at_start and last == delimiter)


class LineBreaks:
    """Finds the first byte offset where a text's line breaks stop being regular: an empty line,
    or a line break of another kind (LF, CRLF, CR) than the first one. Searches in C (find,
    count); a regular expression only inside a CRLF block whose counts disagree."""

    _STRAY_IN_CRLF = re.compile(rb"(?<!\r)\n|\r(?!\n)")

    def __init__(self) -> None:
        self.kind: bytes | None = None
        self.offset = 0  # file offset of the next byte fed, minus the held bytes
        self.held = b""
        self.first: int | None = None

    def feed(self, block: bytes, final: bool = False) -> None:
        if self.first is not None:
            return
        chunk = self.held + block
        start = self.offset
        if final:
            self.held = b""
        else:
            # A trailing run of CR/LF may continue in the next block: judge it with that.
            body = chunk.rstrip(b"\r\n")
            chunk, self.held = body, chunk[len(body):]
        self.offset = start + len(chunk)
        found = self._find(chunk)
        if found is not None:
            self.first = start + found

    def lf_so_far(self) -> bool:
        """Whether every line break fed so far is an LF (or there was none), none held but LFs."""
        return self.kind in (None, b"\n") and b"\r" not in self.held

    def feed_lf(self, block: bytes, newlines) -> None:
        """feed(block) for a block without CR while lf_so_far(), given the offsets of its LFs
        (numpy): an empty line is two LFs in a row, found from the offsets, not by a byte search."""
        if self.first is not None:
            return
        held = len(self.held)
        start = self.offset
        chunk = self.held + block
        body = len(chunk.rstrip(b"\n"))
        self.held = chunk[body:]
        self.offset = start + body
        breaks = numpy.concatenate((numpy.arange(held), newlines + held)) if held else newlines
        breaks = breaks[:numpy.searchsorted(breaks, body)]  # those in the body; the rest are held
        if len(breaks) and self.kind is None:
            self.kind = b"\n"
        pairs = numpy.flatnonzero(numpy.diff(breaks) == 1)
        if len(pairs):
            self.first = start + int(breaks[pairs[0]])

    def _find(self, chunk: bytes) -> int | None:
        has_cr = b"\r" in chunk
        hits = [chunk.find(b"\n\n")]
        if has_cr:
            hits += [chunk.find(b"\r\r"), chunk.find(b"\n\r\n")]
        if self.kind is None:
            lf, cr = chunk.find(b"\n"), chunk.find(b"\r")
            if lf >= 0 or cr >= 0:
                i = min(p for p in (lf, cr) if p >= 0)
                self.kind = b"\r\n" if chunk[i:i + 2] == b"\r\n" else chunk[i:i + 1]
        if self.kind == b"\n" and has_cr:
            hits.append(chunk.find(b"\r"))
        elif self.kind == b"\r":
            hits.append(chunk.find(b"\n"))
        elif self.kind == b"\r\n":
            crlf = chunk.count(b"\r\n")
            if not (crlf == chunk.count(b"\n") == chunk.count(b"\r")):
                stray = self._STRAY_IN_CRLF.search(chunk)
                hits.append(stray.start() if stray else -1)
        hits = [h for h in hits if h >= 0]
        return min(hits) if hits else None


def is_blank(head: bytes) -> bool:
    """Nothing but a byte-order mark and whitespace."""
    for bom in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        if head.startswith(bom):
            head = head[len(bom):]
            if bom != codecs.BOM_UTF8:
                head = head.replace(b"\x00", b"")
            break
    return not head.strip()


def peek(source: Path) -> tuple[bytes, str | None]:
    with open(source, "rb") as handle:
        magic = handle.read(4)
    if magic[:2] == b"\x1f\x8b":
        try:
            with gzip.open(source, "rb") as handle:
                return handle.read(SNIFF_BYTES), "gzip"
        except (OSError, EOFError):
            return magic, "gzip"
    with open(source, "rb") as handle:
        return handle.read(SNIFF_BYTES), None


def detect_format(source: Path, head: bytes) -> str:
    if head[:4] == b"PAR1":
        return "parquet"
    name = source.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "json"
    if head.lstrip()[:1] == b"{":
        return "json"
    return "csv"


def read_text_sample(source: Path, compression: str | None, encoding: str) -> str:
    opener = gzip.open if compression == "gzip" else open
    with opener(source, "rb") as handle:
        raw = handle.read(SNIFF_BYTES)
    return raw.decode(encoding, errors="replace").lstrip("\ufeff")


def transcode(source: Path, compression: str | None, encoding: str, workdir: Path) -> Path:
    target = workdir / "transcoded.csv"
    opener = gzip.open if compression == "gzip" else open
    with opener(source, "rb") as raw, open(target, "w", encoding="utf-8", newline="") as out:
        reader = codecs.getreader(encoding)(raw, errors="replace")
        while chunk := reader.read(4 * 1024 * 1024):
            out.write(chunk.lstrip("\ufeff") if out.tell() == 0 else chunk)
    return target


def is_utf8(source: Path, compression: str | None) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    opener = gzip.open if compression == "gzip" else open
    try:
        with opener(source, "rb") as handle:
            while block := handle.read(8 * 1024 * 1024):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def irregular_line_breaks(source: Path, compression: str | None, end: int) -> bool:
    """Whether the first `end` bytes of the (decompressed) file hold an empty line or more than
    one kind of line break (LF, CRLF, CR). Counts bytes in C, never loops over lines."""
    opener = gzip.open if compression == "gzip" else open
    kinds: set[str] = set()
    held = b""
    with opener(source, "rb") as handle:
        remaining = end + 2
        while True:
            block = handle.read(min(max(remaining, 0), 8 * 1024 * 1024))
            remaining -= len(block)
            chunk = held + block
            held = b""
            if block and remaining > 0:
                # A trailing run of CR/LF may continue in the next block: judge it with that.
                body = chunk.rstrip(b"\r\n")
                chunk, held = body, chunk[len(body):]
            if _line_break_kinds(chunk, kinds):
                return True
            if not block or remaining <= 0:
                return False


def _line_break_kinds(chunk: bytes, kinds: set[str]) -> bool:
    """Add the kinds of line break in chunk to kinds; True when irregular (empty line or mixed)."""
    if b"\n\n" in chunk or b"\r\r" in chunk or b"\n\r\n" in chunk:
        return True
    crlf, lf, cr = chunk.count(b"\r\n"), chunk.count(b"\n"), chunk.count(b"\r")
    if crlf:
        kinds.add("crlf")
    if lf > crlf:
        kinds.add("lf")
    if cr > crlf:
        kinds.add("cr")
    return len(kinds) > 1


TEXT_CONTROLS = frozenset(b"\t\n\r\f\v\x1a")  # \x1a: the end-of-file mark of old DOS exports
BINARY_CONTROL_SHARE = 0.05
BINARY_INVALID_SHARE = 0.2


def binary_reason(head: bytes, encoding: str) -> str | None:
    """Why the first block is not text (too many control bytes, or too little valid UTF-8), or
    None when it is text: a NUL or two inside records is then a record's fault, not the file's."""
    if not head or encoding.startswith("utf-16") or head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    controls = sum(head.count(bytes([b])) for b in range(32) if b not in TEXT_CONTROLS) + head.count(b"\x7f")
    if controls > BINARY_CONTROL_SHARE * len(head):
        return f"{controls / len(head):.0%} control bytes in the first {len(head):,} bytes"
    if encoding in ("utf-8", "utf8"):
        invalid = head.decode("utf-8", errors="replace").count("\ufffd")
        if invalid > BINARY_INVALID_SHARE * len(head):
            return f"{invalid / len(head):.0%} of the first {len(head):,} bytes are not UTF-8"
    return None
