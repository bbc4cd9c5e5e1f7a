"""im2col / col2im for the CPU (Numba, parallel over (n, c) planes) and a reusable workspace.

Layout (see ``kernels/reference/conv.py``)::

    cols[n, c·kH·kW + kh·kW + kw, oh·OW + ow] = x[n, c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]   (0 outside)

``col2im`` is the adjoint, written in *gather* form: the thread that owns the plane ``(n, c)``
computes every ``x[n, c, ih, iw]`` as the sum of the column entries that read it, so no two
threads ever write the same element (no races, no atomics, a deterministic result).
An entry of row ``(kh, kw)`` read ``ih`` when ``ih + ph − kh·dh = oh·sh`` for an ``oh`` in
``[0, OH)``: the remainder must be 0 and the quotient in range.

The convolution wrappers use the *block* kernels instead: serial, ``nogil`` (they run on the
task pool of ``_threads.run_tasks``), one block of images, channels and output rows at a time,
so the columns of a block stay in cache between im2col and the GEMM that reads them::

    cols[i, c·kH·kW + kh·kW + kw, r·OW + ow] = x[n0 + i, c0 + c, (r0 + r)·sh − ph + kh·dh, ow·sw − pw + kw·dw]

``col2im_block_add`` is its adjoint in scatter form (``gx[...] += cols[...]``); it is race-free
because a task owns whole images of ``gx``.
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


@njit(cache=True, inline="always")
def _valid_ow(OW, W, sw, pw, kw, dw):
    """[lo, hi): the output columns whose input column ow·sw − pw + kw·dw lies in [0, W)."""
    a = pw - kw * dw
    lo = max(0, (a + sw - 1) // sw)
    hi = min(OW, (W - 1 + a) // sw + 1)
    return lo, max(lo, hi)


@njit(cache=True, nogil=True)
def im2col_block(x, cols, n0, c0, r0, kH, kW, sh, sw, ph, pw, dh, dw, OW):
    """Fill ``cols`` (nb, Cb·kH·kW, rb·OW) from images ``n0…``, channels ``c0…``, output rows ``r0…``."""
    nb, CK, B = cols.shape
    rb, Cb = B // OW, CK // (kH * kW)
    H, W = x.shape[2], x.shape[3]
    for i in range(nb):
        for c in range(Cb):
            for kh in range(kH):
                for kw in range(kW):
                    row = (c * kH + kh) * kW + kw
                    lo, hi = _valid_ow(OW, W, sw, pw, kw, dw)
                    shift = kw * dw - pw
                    for r in range(rb):
                        ih = (r0 + r) * sh - ph + kh * dh
                        out = cols[i, row, r * OW:(r + 1) * OW]
                        if ih < 0 or ih >= H:
                            out[:] = 0
                            continue
                        src = x[n0 + i, c0 + c, ih]
                        out[:lo] = 0
                        for ow in range(lo, hi):
                            out[ow] = src[ow * sw + shift]
                        out[hi:] = 0


@njit(cache=True, nogil=True)
def col2im_block_add(cols, gx, n0, c0, r0, kH, kW, sh, sw, ph, pw, dh, dw, OW):
    """``gx[n0 + i, c0 + c, ...] += cols[i, ...]``: the adjoint of :func:`im2col_block` (scatter)."""
    nb, CK, B = cols.shape
    rb, Cb = B // OW, CK // (kH * kW)
    H, W = gx.shape[2], gx.shape[3]
    for i in range(nb):
        for c in range(Cb):
            for kh in range(kH):
                for kw in range(kW):
                    row = (c * kH + kh) * kW + kw
                    lo, hi = _valid_ow(OW, W, sw, pw, kw, dw)
                    shift = kw * dw - pw
                    for r in range(rb):
                        ih = (r0 + r) * sh - ph + kh * dh
                        if ih < 0 or ih >= H:
                            continue
                        src = cols[i, row, r * OW:(r + 1) * OW]
                        dst = gx[n0 + i, c0 + c, ih]
                        for ow in range(lo, hi):
                            dst[ow * sw + shift] += src[ow]


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
