"""Character shapes of text values, computed over the Arrow string buffer."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

COARSE = (("A+", "A"), ("a+", "a"), ("9+", "9"), ("\\s+", " "))
# byte -> shape byte: A-Z to A, a-z to a, 0-9 to 9; every other byte (UTF-8 included) unchanged
SHAPE_BYTES = np.arange(256, dtype=np.uint8)
SHAPE_BYTES[ord("A"):ord("Z") + 1] = ord("A")
SHAPE_BYTES[ord("a"):ord("z") + 1] = ord("a")
SHAPE_BYTES[ord("0"):ord("9") + 1] = ord("9")


def shapes(values: pa.Array | pa.ChunkedArray, coarse: bool = False) -> pa.Array:
    """Character shapes ('SKU-00042' -> 'AAA-99999'; coarse: runs collapsed, 'A-9'), mapped over
    the string buffer's bytes in one vectorised pass."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    values = pc.cast(values, pa.large_string())
    validity, offsets, data = values.buffers()
    mapped = SHAPE_BYTES[np.frombuffer(data, dtype=np.uint8)] if data is not None and data.size else np.zeros(0, np.uint8)
    out = pa.Array.from_buffers(pa.large_string(), len(values), [validity, offsets, pa.py_buffer(mapped.tobytes())],
                                offset=values.offset)
    if coarse:
        for pattern, replacement in COARSE:
            out = pc.replace_substring_regex(out, pattern, replacement)
    return out
