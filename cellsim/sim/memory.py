"""Arrays that start on a cache-line boundary.

A 256-byte RAM row or a 32-byte event row that starts mid-line spans one line
more than it needs, and the engine prefetches a RAM row as its four lines from
the row's start: numpy only promises 16-byte alignment, and the fifth line of
a row at offset 16 (the clock and counter words, written first) missed the
cache in every update (perf, 1 worker on a 72x72 grid)."""
import numpy as np

LINE = 64  # bytes in a cache line


def aligned_empty(shape, dtype) -> np.ndarray:
    """np.empty(shape, dtype), its first byte on a LINE boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = np.empty(nbytes + LINE, np.uint8)
    skip = (-buffer.ctypes.data) % LINE
    return buffer[skip:skip + nbytes].view(dtype).reshape(shape)


def aligned_copy(array: np.ndarray) -> np.ndarray:
    out = aligned_empty(array.shape, array.dtype)
    out[...] = array
    return out
