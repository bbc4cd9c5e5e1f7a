"""Scatter-add without atomics, for ``minicnn.use_deterministic_algorithms(True)``.

``out[dest[i]] += values[i]`` done as a gather: sort the sources by ``(dest, i)`` (a ``lexsort``,
whose NumPy twin runs on cuda-emu), find each destination's range of sorted sources by binary
search, and let one thread per output element add its range in increasing ``i`` (``segment.cu``).
The result is the same on every run, and equals a sequential loop over ``i`` bit for bit.
"""
import numpy as np


def scatter_add(be, values, dest, size):
    """``out`` (``size``,) with ``out[j] = Σ_{i: dest[i] = j} values[i]`` (in increasing ``i``).

    Args:
        values: 1-D float array of the contributions.
        dest: 1-D int64 array of their destinations, ``−1`` for none; else in ``[0, size)``.
        size: number of output elements.
    """
    xp = be.xp
    values = xp.ascontiguousarray(values)
    dest = xp.ascontiguousarray(dest, dtype=np.int64)
    out = xp.zeros(size, dtype=values.dtype)
    if size == 0 or dest.size == 0:
        return out
    order = xp.ascontiguousarray(xp.lexsort(xp.stack([xp.arange(dest.size, dtype=np.int64), dest])), dtype=np.int64)
    sorted_dest = dest[order]
    targets = xp.arange(size, dtype=np.int64)
    starts = xp.ascontiguousarray(xp.searchsorted(sorted_dest, targets, side="left"), dtype=np.int64)
    ends = xp.ascontiguousarray(xp.searchsorted(sorted_dest, targets, side="right"), dtype=np.int64)
    be.function("segment.cu", "segment_sum", values.dtype)(
        be.grid_1d(size), (be.BLOCK,), (values, order, starts, ends, out, np.int64(size)))
    return out
