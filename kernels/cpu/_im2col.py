"""im2col / col2im for the CPU (Numba, parallel over (n, c) planes) and a reusable workspace.

Layout (see ``kernels/reference/conv.py``)::

    cols[n, c·kH·kW + kh·kW + kw, oh·OW + ow] = x[n, c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]   (0 outside)

``col2im`` is the adjoint, written in *gather* form: the thread that owns the plane ``(n, c)``
computes every ``x[n, c, ih, iw]`` as the sum of the column entries that read it, so no two
threads ever write the same element (no races, no atomics, a deterministic result).
An entry of row ``(kh, kw)`` read ``ih`` when ``ih + ph − kh·dh = oh·sh`` for an ``oh`` in
``[0, OH)``: the remainder must be 0 and the quotient in range.
"""
import threading

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def im2col_raw(x, cols, kH, kW, sh, sw, ph, pw, dh, dw, OH, OW):
    """Fill ``cols`` (N, C·kH·kW, OH·OW) from ``x`` (N, C, H, W)."""
    N, C, H, W = x.shape
    for plane in prange(N * C):
        n, c = plane // C, plane % C
        for kh in range(kH):
            for kw in range(kW):
                row = (c * kH + kh) * kW + kw
                for oh in range(OH):
                    ih = oh * sh - ph + kh * dh
                    base = oh * OW
                    if ih < 0 or ih >= H:
                        for ow in range(OW):
                            cols[n, row, base + ow] = 0
                        continue
                    for ow in range(OW):
                        iw = ow * sw - pw + kw * dw
                        if iw >= 0 and iw < W:
                            cols[n, row, base + ow] = x[n, c, ih, iw]
                        else:
                            cols[n, row, base + ow] = 0


@njit(cache=True, parallel=True)
def col2im_raw(cols, x, kH, kW, sh, sw, ph, pw, dh, dw, OH, OW):
    """Fill ``x`` (N, C, H, W) with the adjoint of :func:`im2col_raw` applied to ``cols`` (gather)."""
    N, C, H, W = x.shape
    for plane in prange(N * C):
        n, c = plane // C, plane % C
        for ih in range(H):
            for iw in range(W):
                acc = 0.0
                for kh in range(kH):
                    th = ih + ph - kh * dh
                    if th < 0 or th % sh != 0 or th // sh >= OH:
                        continue
                    oh = th // sh
                    for kw in range(kW):
                        tw = iw + pw - kw * dw
                        if tw < 0 or tw % sw != 0 or tw // sw >= OW:
                            continue
                        acc += cols[n, (c * kH + kh) * kW + kw, oh * OW + tw // sw]
                x[n, c, ih, iw] = acc


class Workspace:
    """A per-thread scratch buffer that grows and is reused (first touch of fresh memory is costly
    on small machines: ~1.6 µs per 4 KiB page). ``get`` returns a view valid until the next
    ``get`` of the same thread, so a caller must not hand it out of the kernel wrapper."""

    def __init__(self):
        self._local = threading.local()

    def get(self, shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.nbytes < nbytes:
            buf = np.empty(max(nbytes, 1), dtype=np.uint8)
            self._local.buf = buf
        return buf[:nbytes].view(dtype).reshape(shape)

    def release(self):
        """Free this thread's buffer."""
        self._local.buf = None


#: The workspace of the im2col columns (one per thread).
COLS = Workspace()
