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
because a task owns whole images of ``gx``. Both also take the *wide* layout (``wide=True``):
``cols`` shaped (K, nb, B) instead of (nb, K, B), the same rows in another order, so that a block
of several small images is one (K, nb·B) matrix for one GEMM (each row stays contiguous, so the
copy loops vectorise as before; a strided (nb, K, B) view of such a buffer ran 2.4× slower).

Fast paths of both block kernels (the row-by-row loops cost ~1 ns an element on 14–56-wide rows,
as much as the GEMM on small images): stride 1 with OW == W, where the rows of a block read one
contiguous stretch of the plane (one vectorised copy, then the wrapped border entries zeroed), and
stride 2 with OW == ⌈W/2⌉, the same on the 4 phases ``x[a::2, b::2]`` of a plane. 4–10× faster.
"""
import math
import mmap
import threading

import numpy as np
from numba import njit, prange

from ._jit import no_refcount


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
    lo = min(OW, max(0, (a + sw - 1) // sw))
    hi = min(OW, (W - 1 + a) // sw + 1)
    return lo, max(lo, hi)


@njit(cache=True, inline="always")
def _valid_rows(rb, r0, H, ph, kh, dh):
    """[lo, hi): the block rows r whose input row r0 + r − ph + kh·dh lies in [0, H) (stride 1)."""
    a = r0 - ph + kh * dh
    lo = min(rb, max(0, -a))
    return lo, max(lo, min(rb, H - a))


@njit(cache=True, inline="always")
def _block_dims(cols, wide):
    """(nb, K, B) of a block of columns: ``cols`` is laid out (nb, K, B), or (K, nb, B) when ``wide``."""
    if wide:
        return cols.shape[1], cols.shape[0], cols.shape[2]
    return cols.shape[0], cols.shape[1], cols.shape[2]


@njit(cache=True, inline="always")
def _col_row(cols, i, k, wide):
    """Row ``k`` of image ``i`` of a block of columns (B entries, contiguous in either layout)."""
    return cols[k, i] if wide else cols[i, k]


@no_refcount
def _im2col_block_flat(x, cols, n0, c0, r0, kH, kW, ph, pw, dh, dw, OW, wide):
    """im2col_block for stride 1 and OW == W: the block rows of one (c, kh, kw) read one
    contiguous stretch of the input plane, so each is one vectorised copy, then the few border
    entries (input column outside [0, W), which the stretch wrapped onto the next row) are zeroed.
    Short rows (14, 16, 32 wide) cost a slice and a loop each in the row-by-row form: 2–3× slower."""
    nb, CK, B = _block_dims(cols, wide)
    rb, Cb = B // OW, CK // (kH * kW)
    H, W = x.shape[2], x.shape[3]
    HW = H * W
    zero = x.dtype.type(0)
    for i in range(nb):
        for c in range(Cb):
            xp = x[n0 + i, c0 + c].reshape(HW)
            for kh in range(kH):
                ra, rz = _valid_rows(rb, r0, H, ph, kh, dh)
                for kw in range(kW):
                    out = _col_row(cols, i, (c * kH + kh) * kW + kw, wide)
                    for j in range(ra * OW):
                        out[j] = zero
                    for j in range(rz * OW, B):
                        out[j] = zero
                    if rz <= ra:
                        continue
                    lo, hi = _valid_ow(OW, W, 1, pw, kw, dw)
                    # out[r·OW + ow] = xp[(r0 + r − ph + kh·dh)·W + ow + kw·dw − pw] for rows ra…rz
                    s = (r0 + ra - ph + kh * dh) * W + kw * dw - pw
                    j0, j1 = ra * OW + max(0, -s), min(rz * OW, ra * OW + HW - s)
                    if j1 > j0:
                        dst = out[j0:j1]
                        src = xp[j0 - ra * OW + s:j1 - ra * OW + s]
                        for j in range(j1 - j0):
                            dst[j] = src[j]
                    for r in range(ra, rz):
                        for ow in range(lo):
                            out[r * OW + ow] = zero
                        for ow in range(hi, OW):
                            out[r * OW + ow] = zero


@no_refcount
def _im2col_block_s2(x, cols, n0, c0, r0, kH, kW, ph, pw, OW, xq, wide):
    """im2col_block for stride 2, dilation 1 and OW == ⌈W/2⌉: each channel plane is first split
    into its 4 phases ``xq[a, b, i, j] = x[2i + a, 2j + b]`` (zero beyond the plane); entry
    (kh, kw) of the columns then reads phase ((kh − ph) mod 2, (kw − pw) mod 2) with stride 1, so
    the rows of a block are one contiguous stretch as in :func:`_im2col_block_flat` (the strided
    row-by-row gather cost ~1 ns an element). ``xq``: scratch, zeros (2, 2, ⌈H/2⌉·OW)."""
    nb, CK, B = _block_dims(cols, wide)
    rb, Cb = B // OW, CK // (kH * kW)
    H, W = x.shape[2], x.shape[3]
    H2, W2 = (H + 1) // 2, OW
    HW2 = H2 * W2
    zero = x.dtype.type(0)
    for i in range(nb):
        for c in range(Cb):
            xp = x[n0 + i, c0 + c]
            for a in range(2):
                for ih in range(a, H, 2):
                    row = xp[ih]
                    q0 = xq[a, 0, (ih // 2) * W2:(ih // 2 + 1) * W2]
                    q1 = xq[a, 1, (ih // 2) * W2:(ih // 2 + 1) * W2]
                    for j in range(W // 2):
                        q0[j] = row[2 * j]
                        q1[j] = row[2 * j + 1]
                    if W % 2 == 1:
                        q0[W // 2] = row[W - 1]
            for kh in range(kH):
                a = (kh - ph) % 2
                sr = (kh - ph - a) // 2  # phase row of output row r: r0 + r + sr
                ra, rz = _valid_rows(rb, r0, H2, -sr, 0, 1)
                for kw in range(kW):
                    b = (kw - pw) % 2
                    sc = (kw - pw - b) // 2  # phase column of output column ow: ow + sc
                    out = _col_row(cols, i, (c * kH + kh) * kW + kw, wide)
                    xp2 = xq[a, b]
                    for j in range(ra * OW):
                        out[j] = zero
                    for j in range(rz * OW, B):
                        out[j] = zero
                    if rz <= ra:
                        continue
                    lo, hi = _valid_ow(OW, W2, 1, -sc, 0, 1)
                    st = (r0 + ra + sr) * W2 + sc
                    j0, j1 = ra * OW + max(0, -st), min(rz * OW, ra * OW + HW2 - st)
                    if j1 > j0:
                        dst = out[j0:j1]
                        src = xp2[j0 - ra * OW + st:j1 - ra * OW + st]
                        for j in range(j1 - j0):
                            dst[j] = src[j]
                    for r in range(ra, rz):
                        for ow in range(lo):
                            out[r * OW + ow] = zero
                        for ow in range(hi, OW):
                            out[r * OW + ow] = zero


_ROWWISE, _FLAT, _STRIDE2, _TABLE = 0, 1, 2, 3

#: output rows shorter than this use the offset-table path (:func:`_source_offsets`)
_TABLE_MAX_OW = 16


@njit(cache=True, nogil=True)
def _block_path(W, sh, sw, dh, dw, OW):
    """Which copy strategy :func:`im2col_block` and its adjoint :func:`col2im_block_add` use
    (one rule for both, so the pair stays adjoint): ``_FLAT`` for stride 1 with OW == W (one
    stretch per column row), ``_STRIDE2`` for stride 2, dilation 1, OW == ceil(W/2) (the four
    phases of the plane), ``_TABLE`` for output rows shorter than ``_TABLE_MAX_OW`` (a gather
    through a table of source offsets: rows of 3 outputs cost more in loop set-up than in
    copying), else ``_ROWWISE``."""
    if sh == 1 and sw == 1 and OW == W:
        return _FLAT
    if sh == 2 and sw == 2 and dh == 1 and dw == 1 and OW == (W + 1) // 2:
        return _STRIDE2
    if OW < _TABLE_MAX_OW:
        return _TABLE
    return _ROWWISE


@njit(cache=True, nogil=True)
def _source_offsets(H, W, r0, rb, OW, kH, kW, sh, sw, ph, pw, dh, dw):
    """offs[kh·kW + kw, r·OW + ow] = ih·W + iw, the plane offset that column (r, ow) of the row
    (kh, kw) reads (ih = (r0 + r)·sh − ph + kh·dh, iw = ow·sw − pw + kw·dw), or −1 in the padding."""
    offs = np.empty((kH * kW, rb * OW), dtype=np.int64)
    for kh in range(kH):
        for kw in range(kW):
            for r in range(rb):
                ih = (r0 + r) * sh - ph + kh * dh
                for ow in range(OW):
                    iw = ow * sw - pw + kw * dw
                    inside = 0 <= ih < H and 0 <= iw < W
                    offs[kh * kW + kw, r * OW + ow] = ih * W + iw if inside else -1
    return offs


@njit(cache=True, nogil=True)
def im2col_block(x, cols, n0, c0, r0, kH, kW, sh, sw, ph, pw, dh, dw, OW, wide):
    """Fill ``cols`` (nb, Cb·kH·kW, rb·OW) from images ``n0…``, channels ``c0…``, output rows ``r0…``."""
    nb, CK, B = _block_dims(cols, wide)
    rb, Cb = B // OW, CK // (kH * kW)
    H, W = x.shape[2], x.shape[3]
    path = _block_path(W, sh, sw, dh, dw, OW)
    if path == _FLAT:
        _im2col_block_flat(x, cols, n0, c0, r0, kH, kW, ph, pw, dh, dw, OW, wide)
        return
    if path == _STRIDE2:
        _im2col_block_s2(x, cols, n0, c0, r0, kH, kW, ph, pw, OW, np.zeros((2, 2, (H + 1) // 2 * OW), dtype=x.dtype),
                         wide)
        return
    if path == _TABLE:
        offs = _source_offsets(H, W, r0, rb, OW, kH, kW, sh, sw, ph, pw, dh, dw)
        x3 = x.reshape(x.shape[0], x.shape[1], H * W)
        zero = cols.dtype.type(0)
        for i in range(nb):
            for c in range(Cb):
                plane = x3[n0 + i, c0 + c]
                for kk in range(kH * kW):
                    out, o = _col_row(cols, i, c * kH * kW + kk, wide), offs[kk]
                    for j in range(B):
                        q = o[j]
                        out[j] = plane[q] if q >= 0 else zero
        return
    _im2col_block_rows(x, cols, n0, c0, r0, kH, kW, sh, sw, ph, pw, dh, dw, OW, wide)


@no_refcount
def _im2col_block_rows(x, cols, n0, c0, r0, kH, kW, sh, sw, ph, pw, dh, dw, OW, wide):
    """im2col_block row by row (the general path), with no array views inside the loops: on small
    images (rows of 3…13 outputs) a slice per output row cost more than the copy (5×5 → 3×3,
    64 channels: 3.6 ms a forward)."""
    nb, CK, B = _block_dims(cols, wide)
    rb, Cb = B // OW, CK // (kH * kW)
    H, W = x.shape[2], x.shape[3]
    zero = cols.dtype.type(0)
    for i in range(nb):
        for c in range(Cb):
            xp = x[n0 + i, c0 + c]
            for kh in range(kH):
                for kw in range(kW):
                    out = _col_row(cols, i, (c * kH + kh) * kW + kw, wide)
                    lo, hi = _valid_ow(OW, W, sw, pw, kw, dw)
                    shift = kw * dw - pw
                    for r in range(rb):
                        ih = (r0 + r) * sh - ph + kh * dh
                        base = r * OW
                        if ih < 0 or ih >= H:
                            for ow in range(OW):
                                out[base + ow] = zero
                            continue
                        for ow in range(lo):
                            out[base + ow] = zero
                        if sw == 1:  # unit stride: both sides are contiguous runs
                            dst, src = out[base + lo:base + hi], xp[ih, lo + shift:hi + shift]
                            for j in range(hi - lo):
                                dst[j] = src[j]
                        else:
                            for ow in range(lo, hi):
                                out[base + ow] = xp[ih, ow * sw + shift]
                        for ow in range(hi, OW):
                            out[base + ow] = zero


@no_refcount
def _col2im_block_add_flat(cols, gx, n0, c0, r0, kH, kW, ph, pw, dh, dw, OW, wide):
    """col2im_block_add for stride 1 and OW == W, the adjoint of :func:`_im2col_block_flat`: the
    border entries of a row of ``cols`` are zeroed *in place* (``cols`` is scratch), then the
    rows of one (c, kh, kw) are added to one contiguous stretch of the plane (adding 0 is exact)."""
    nb, CK, B = _block_dims(cols, wide)
    rb, Cb = B // OW, CK // (kH * kW)
    H, W = gx.shape[2], gx.shape[3]
    HW = H * W
    zero = cols.dtype.type(0)
    for i in range(nb):
        for c in range(Cb):
            gp = gx[n0 + i, c0 + c].reshape(HW)
            for kh in range(kH):
                ra, rz = _valid_rows(rb, r0, H, ph, kh, dh)
                if rz <= ra:
                    continue
                for kw in range(kW):
                    src = _col_row(cols, i, (c * kH + kh) * kW + kw, wide)
                    lo, hi = _valid_ow(OW, W, 1, pw, kw, dw)
                    for r in range(ra, rz):
                        for ow in range(lo):
                            src[r * OW + ow] = zero
                        for ow in range(hi, OW):
                            src[r * OW + ow] = zero
                    s = (r0 + ra - ph + kh * dh) * W + kw * dw - pw
                    j0, j1 = ra * OW + max(0, -s), min(rz * OW, ra * OW + HW - s)
                    if j1 > j0:
                        a = src[j0:j1]
                        dst = gp[j0 - ra * OW + s:j1 - ra * OW + s]
                        for j in range(j1 - j0):
                            dst[j] += a[j]


@no_refcount
def _col2im_block_add_s2(cols, gx, n0, c0, r0, kH, kW, ph, pw, OW, gq, wide):
    """col2im_block_add for stride 2, dilation 1 and OW == ⌈W/2⌉, the adjoint of
    :func:`_im2col_block_s2`: the rows are added to the 4 phases of a plane with contiguous
    stretches (border entries of ``cols`` zeroed in place first), then the phases are added to
    the plane. ``gq``: scratch (2, 2, ⌈H/2⌉·OW)."""
    nb, CK, B = _block_dims(cols, wide)
    rb, Cb = B // OW, CK // (kH * kW)
    H, W = gx.shape[2], gx.shape[3]
    H2, W2 = (H + 1) // 2, OW
    HW2 = H2 * W2
    zero = cols.dtype.type(0)
    for i in range(nb):
        for c in range(Cb):
            gq[:] = 0
            for kh in range(kH):
                a = (kh - ph) % 2
                sr = (kh - ph - a) // 2
                ra, rz = _valid_rows(rb, r0, H2, -sr, 0, 1)
                if rz <= ra:
                    continue
                for kw in range(kW):
                    b = (kw - pw) % 2
                    sc = (kw - pw - b) // 2
                    src = _col_row(cols, i, (c * kH + kh) * kW + kw, wide)
                    lo, hi = _valid_ow(OW, W2, 1, -sc, 0, 1)
                    for r in range(ra, rz):
                        for ow in range(lo):
                            src[r * OW + ow] = zero
                        for ow in range(hi, OW):
                            src[r * OW + ow] = zero
                    st = (r0 + ra + sr) * W2 + sc
                    j0, j1 = ra * OW + max(0, -st), min(rz * OW, ra * OW + HW2 - st)
                    if j1 > j0:
                        s_ = src[j0:j1]
                        dst = gq[a, b, j0 - ra * OW + st:j1 - ra * OW + st]
                        for j in range(j1 - j0):
                            dst[j] += s_[j]
            gp = gx[n0 + i, c0 + c]
            for a in range(2):
                for ih in range(a, H, 2):
                    row = gp[ih]
                    q0 = gq[a, 0, (ih // 2) * W2:(ih // 2 + 1) * W2]
                    q1 = gq[a, 1, (ih // 2) * W2:(ih // 2 + 1) * W2]
                    for j in range(W // 2):
                        row[2 * j] += q0[j]
                        row[2 * j + 1] += q1[j]
                    if W % 2 == 1:
                        row[W - 1] += q0[W // 2]


@njit(cache=True, nogil=True)
def col2im_block_add(cols, gx, n0, c0, r0, kH, kW, sh, sw, ph, pw, dh, dw, OW, wide):
    """``gx[n0 + i, c0 + c, ...] += cols[i, ...]``: the adjoint of :func:`im2col_block` (scatter).
    May overwrite ``cols`` (see :func:`_col2im_block_add_flat`, :func:`_col2im_block_add_s2`)."""
    nb, CK, B = _block_dims(cols, wide)
    rb, Cb = B // OW, CK // (kH * kW)
    H, W = gx.shape[2], gx.shape[3]
    path = _block_path(W, sh, sw, dh, dw, OW)
    if path == _FLAT:
        _col2im_block_add_flat(cols, gx, n0, c0, r0, kH, kW, ph, pw, dh, dw, OW, wide)
        return
    if path == _STRIDE2:
        _col2im_block_add_s2(cols, gx, n0, c0, r0, kH, kW, ph, pw, OW, np.empty((2, 2, (H + 1) // 2 * OW), dtype=gx.dtype),
                             wide)
        return
    if path == _TABLE:  # the scatter through the same offset table (a task owns its images)
        offs = _source_offsets(H, W, r0, rb, OW, kH, kW, sh, sw, ph, pw, dh, dw)
        g3 = gx.reshape(gx.shape[0], gx.shape[1], H * W)
        for i in range(nb):
            for c in range(Cb):
                plane = g3[n0 + i, c0 + c]
                for kk in range(kH * kW):
                    src, o = _col_row(cols, i, c * kH * kW + kk, wide), offs[kk]
                    for j in range(B):
                        q = o[j]
                        if q >= 0:
                            plane[q] += src[j]
        return
    for i in range(nb):  # no array views inside the loops (see im2col_block)
        for c in range(Cb):
            gp = gx[n0 + i, c0 + c]
            for kh in range(kH):
                for kw in range(kW):
                    src = _col_row(cols, i, (c * kH + kh) * kW + kw, wide)
                    lo, hi = _valid_ow(OW, W, sw, pw, kw, dw)
                    shift = kw * dw - pw
                    for r in range(rb):
                        ih = (r0 + r) * sh - ph + kh * dh
                        if ih < 0 or ih >= H:
                            continue
                        base = r * OW
                        for ow in range(lo, hi):
                            gp[ih, ow * sw + shift] += src[base + ow]


@no_refcount
def transpose_into(src, dst):
    """dst (n, m) = srcᵀ for src (m, n): 8 rows of src at a time, each column j of them stored as
    the 8 contiguous floats dst[j, i0 : i0 + 8] (one vector store per 8 strided loads); 2.1× faster
    than NumPy's transposed copy and than 32 × 32 tiles on (64, 256) blocks of gy, measured."""
    m, n = src.shape
    m8 = m - m % 8
    for i0 in range(0, m8, 8):
        s0, s1, s2, s3 = src[i0], src[i0 + 1], src[i0 + 2], src[i0 + 3]
        s4, s5, s6, s7 = src[i0 + 4], src[i0 + 5], src[i0 + 6], src[i0 + 7]
        for j in range(n):
            d = dst[j, i0:i0 + 8]
            d[0], d[1], d[2], d[3] = s0[j], s1[j], s2[j], s3[j]
            d[4], d[5], d[6], d[7] = s4[j], s5[j], s6[j], s7[j]
    for i in range(m8, m):
        s = src[i]
        for j in range(n):
            dst[j, i] = s[j]


def _mapped_bytes(nbytes):
    """A uint8 array of ``nbytes`` in its own anonymous memory map, outside malloc's heap. The
    workspaces live for the whole process while activations come and go around them: on the heap
    (where ``_threads.tune_malloc`` sends blocks up to 64 MiB) each workspace pinned the region
    around it, and the freed activations beside it could not merge into larger free blocks.
    Private (copy-on-write), not Python's default shared mapping: a forked process (a data-loader
    worker, a distributed rank) must not write into its parent's workspaces."""
    private = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}
    return np.frombuffer(mmap.mmap(-1, max(nbytes, 1), **private), dtype=np.uint8)


class Workspace:
    """A per-thread scratch buffer that grows and is reused (first touch of fresh memory is costly
    on small machines: ~1.6 µs per 4 KiB page). ``get`` returns a view valid until the next
    ``get`` of the same thread, so a caller must not hand it out of the kernel wrapper."""

    def __init__(self):
        self._local = threading.local()

    def get(self, shape, dtype):
        """The view (``shape``, ``dtype``) of this thread's buffer. The last view is kept and handed
        out again for the same shape and dtype: a task calls this with the GIL held, and the
        general path (size, view, reshape) took ~4 µs, enough to hold up the other thread's
        return from its GEMM or Numba kernel (see ``_threads``)."""
        local = self._local
        if getattr(local, "key", None) == (shape, dtype):
            return local.view
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        buf = getattr(local, "buf", None)
        if buf is None or buf.nbytes < nbytes:
            buf = _mapped_bytes(nbytes)
            local.buf = buf
        local.view = buf[:nbytes].view(dtype).reshape(shape)
        local.key = (shape, dtype)
        return local.view

    def get_rows_apart(self, shape, dtype):
        """Like :meth:`get` for a (K, C, T) array, with one unused channel more, (K, C + 1, T), when the
        K matrices would otherwise start a multiple of 4 KiB apart. The Winograd transforms write
        (or read) 16 or 36 of them side by side; addresses a multiple of 4 KiB apart fall into one
        set of the 12-way L1 cache and evict each other: the F(2×2) input transform of
        (8, 256, 14, 14), whose (16, 256, 448) V has matrices 112 × 4 KiB apart, took 2.9 ms
        instead of 1.8 with them offset (measured). Callers pass ``[:, :C]`` to the GEMMs."""
        K, C, T = shape
        if (C * T * np.dtype(dtype).itemsize) % 4096 == 0:
            C += 1
        return self.get((K, C, T), dtype)

    def release(self):
        """Free this thread's buffer."""
        self._local.buf = self._local.view = self._local.key = None


#: The workspace of the im2col columns (one per thread).
COLS = Workspace()
