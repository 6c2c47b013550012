"""Character shapes of text values, one definition for the profile, `suggest` and the row
detector: an upper-case letter (of any script) becomes A, any other letter a, a digit 0-9
becomes 9, every other character stays ('SKU-00042' -> 'AAA-99999', 'Zürich' -> 'Aaaaaa');
coarse shapes also collapse runs of A, a, 9 and whitespace ('A-9', 'Aa'). Computed over an
Arrow string buffer (`shapes`) or in DuckDB SQL (`shape_sql`), with the same result;
`shape_regex` turns a shape of ASCII text into the regex of the values that have it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

# per character, in RE2 (DuckDB's and Arrow's regex engine)
LETTERS = (("\\p{Lu}", "A"), ("[\\p{Ll}\\p{Lt}\\p{Lm}\\p{Lo}]", "a"), ("[0-9]", "9"))
COARSE = (("A+", "A"), ("a+", "a"), ("9+", "9"), ("\\s+", " "))
# ASCII text, mapped byte by byte: A-Z to A, a-z to a, 0-9 to 9, every other byte unchanged
SHAPE_BYTES = np.arange(256, dtype=np.uint8)
SHAPE_BYTES[ord("A"):ord("Z") + 1] = ord("A")
SHAPE_BYTES[ord("a"):ord("z") + 1] = ord("a")
SHAPE_BYTES[ord("0"):ord("9") + 1] = ord("9")
# coarse shapes of ASCII text: the runs collapsed, one class each (RE2's \s is [\t\n\f\r ])
RUN_CLASS = np.zeros(256, dtype=np.uint8)
for _code, _byte in enumerate(("A", "a", "9"), start=1):
    RUN_CLASS[ord(_byte)] = _code
RUN_CLASS[[ord(c) for c in "\t\n\f\r "]] = 4


def shapes(values: pa.Array | pa.ChunkedArray, coarse: bool = False) -> pa.Array:
    """Character shapes ('SKU-00042' -> 'AAA-99999'; coarse: runs collapsed, 'A-9'): ASCII text is
    mapped over the string buffer's bytes in one vectorised pass, other text letter by letter."""
    import pyarrow as pa  # lazy: the profile and `suggest` use the SQL form, and load faster without Arrow
    import pyarrow.compute as pc
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    values = pc.cast(values, pa.large_string())
    validity, offsets, data = values.buffers()
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None and data.size else np.zeros(0, np.uint8)
    if raw.size and raw.max() >= 0x80:  # letters beyond ASCII: by their Unicode category
        out = values
        for pattern, replacement in LETTERS:
            out = pc.replace_substring_regex(out, pattern, replacement)
    elif coarse:
        return _collapsed(values, SHAPE_BYTES[raw], np.frombuffer(offsets, dtype=np.int64))
    else:
        return pa.Array.from_buffers(pa.large_string(), len(values), [validity, offsets, pa.py_buffer(SHAPE_BYTES[raw])],
                                     offset=values.offset)
    if coarse:
        for pattern, replacement in COARSE:
            out = pc.replace_substring_regex(out, pattern, replacement)
    return out


def _collapsed(values: pa.LargeStringArray, mapped: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """Coarse shapes of ASCII text whose characters are already mapped (A, a, 9): each run of one
    class kept as its first byte (a whitespace run as one space), what the COARSE regexes give."""
    import pyarrow as pa

    offsets = offsets[values.offset:values.offset + len(values) + 1]
    start = int(offsets[0])
    data = mapped[start:int(offsets[-1])]
    runs = RUN_CLASS[data]
    repeat = np.zeros(data.size, dtype=bool)
    repeat[1:] = (runs[1:] == runs[:-1]) & (runs[1:] != 0)
    firsts = offsets[:-1] - start
    repeat[firsts[firsts < data.size]] = False  # a run never continues into the next value
    keep = ~repeat
    out = data[keep]
    out[runs[keep] == 4] = ord(" ")
    kept = np.zeros(values.offset + len(values) + 1, dtype=np.int64)
    kept[values.offset:] = np.concatenate(([0], np.cumsum(keep)))[offsets - start]
    return pa.Array.from_buffers(pa.large_string(), len(values),
                                 [values.buffers()[0], pa.py_buffer(kept), pa.py_buffer(out)], offset=values.offset)


def shape_sql(expr: str, coarse: bool = False) -> str:
    """The shape of the text SQL expression `expr`, as DuckDB SQL (what `shapes` computes)."""
    out = expr
    for pattern, replacement in LETTERS + (COARSE if coarse else ()):
        out = f"regexp_replace({out}, '{pattern}', '{replacement}', 'g')"
    return out


REGEX_SPECIAL = set(".^$*+?()[]{}|\\")


def shape_regex(shape: str, loose: bool) -> str:
    """A shape ('AAA-9999', or a coarse 'A-9' when `loose`) as an anchored regex that RE2 and
    Python share, matching every ASCII value of that shape (Python's `re` has no Unicode letter
    categories: `suggest` measures what the regex accepts)."""
    classes = {"A": "[A-Z]", "a": "[a-z]", "9": "[0-9]"}
    parts = []
    for match in re.finditer(r"(.)\1*", shape, re.DOTALL):
        char, count = match.group(1), len(match.group(0))
        if char in classes:
            parts.append(classes[char] + ("+" if loose else f"{{{count}}}" if count > 1 else ""))
        elif loose and char == " ":
            parts.append("\\s+")  # a coarse shape's space stands for a run of whitespace
        else:
            text = ("\\" + char) if char in REGEX_SPECIAL else char
            parts.append(text * count if count <= 3 else f"{'(?:' + text + ')' if len(text) > 1 else text}{{{count}}}")
    return "^" + "".join(parts) + "$"
