"""Fast paths of the CPU max/avg pooling kernels for NON-OVERLAPPING windows.

The common case ``kernel = stride = 2`` (VGG, U-Net, LeNet) has windows that never overlap. When
``padding = 0``, ``dilation = 1``, ``stride ≥ kernel`` and no window overhangs the input (no
``ceil_mode`` tail), every input element lies in AT MOST one window, so:

- max pool forward: ``y`` and the winner's offset in its window come from one pass over the
  window rows, vectorised over the output columns (no padding or bounds tests); a second, short
  pass per output row turns the int32 offsets into the int64 flat indices ``h·W + w``;
- max pool backward is a gather, not a scatter: ``gx[h, w] = gy[oh, ow]`` if ``idx[oh, ow] = h·W + w``
  for the one window ``(oh, ow)`` holding ``(h, w)``, else 0; every element of ``gx`` is written
  exactly once (no zero-fill pass, no read-modify-write);
- avg pool backward: ``gx[h, w] = gy[oh, ow] / divisor`` inside a window, 0 in the gaps.

The results are bit-identical to the general kernels of ``pool.py`` (same comparisons in the same
scan order: strict ``>``, the first maximum wins, a NaN wins; the average sums in float64 in scan
order and divides once, as the general kernel does; a power-of-two divisor is applied as a
multiplication by its exact reciprocal, which gives the same bits). ``tests/test_pool_speed_paths.py``
checks this against the general kernels, the reference loops and PyTorch.

``kernel = stride = 2`` has its own kernels (constant offsets: the loads de-interleave into SIMD
lanes); other non-overlapping geometries use the generic ones.

Threads: each raw kernel is a serial ``nogil`` loop over planes ``[p0, p1)`` of ``P = N·C``;
:func:`_threads.over_chunks` cuts the planes into tasks for ``_threads.run_tasks`` (dynamic scheduling: a
thread that loses its core takes fewer tasks). A plane is owned by one task, so the backward has
no races. Not ``prange``: these kernels take about a millisecond, and a Numba OpenMP region can
cost more than that: with PyTorch imported before minicnn (its libgomp then starts without
``OMP_WAIT_POLICY=PASSIVE``), a 2-thread ``prange`` version of ``max_pool_2x2`` took 4–8 ms per
call instead of 1 ms on the shared 2-core machine (measured).
"""
import numpy as np
from numba import njit



def non_overlapping(in_hw, out_hw, kernel, stride, padding, dilation=(1, 1)):
    """True when every input element lies in at most one window and no window leaves the input."""
    (H, W), (OH, OW) = in_hw, out_hw
    (kh, kw), (sh, sw) = kernel, stride
    return (tuple(padding) == (0, 0) and tuple(dilation) == (1, 1) and sh >= kh and sw >= kw
            and (OH - 1) * sh + kh <= H and (OW - 1) * sw + kw <= W)


def overlapping_fast(kernel, padding, dilation):
    """True when :func:`max_pool_overlapping` applies: dilation 1 and padding at most half the
    kernel (PyTorch's own limit), so no window lies wholly in the padding."""
    return (tuple(dilation) == (1, 1) and 2 * padding[0] <= kernel[0] and 2 * padding[1] <= kernel[1])


def is_2x2(kernel, stride):
    return tuple(kernel) == (2, 2) and tuple(stride) == (2, 2)


def divisor_scale(divisor):
    """``(scale, exact)``: ``1/divisor`` and whether multiplying by it equals dividing (a power of two)."""
    exact = divisor > 0 and (divisor & (divisor - 1)) == 0
    return 1.0 / divisor, exact


# ---- max pooling ----------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def max_pool_2x2(x, y, idx, p0, p1):
    """x (P, H, W) -> y, idx (P, OH, OW); windows ``[2·oh, 2·oh+2) × [2·ow, 2·ow+2)``.

    Two passes per output row: the maxima and the winner's int32 offset in its window (0, 1, W,
    W + 1), then the int64 flat indices (mixing int64 into the first loop halves its SIMD width)."""
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    c1, cW, cW1 = np.int32(1), np.int32(W), np.int32(W + 1)
    code = np.empty(OW, dtype=np.int32)  # scratch row, one per task
    for p in range(p0, p1):
        for oh in range(OH):
            r0 = x[p, 2 * oh]
            r1 = x[p, 2 * oh + 1]
            yr = y[p, oh]
            for ow in range(OW):
                best = r0[2 * ow]  # = the general kernel's first step from -inf (a -inf keeps index 0)
                c = np.int32(0)
                v = r0[2 * ow + 1]
                take = (v > best) | (v != v)  # strict >: the first maximum wins; a NaN wins
                best = v if take else best
                c = c1 if take else c
                v = r1[2 * ow]
                take = (v > best) | (v != v)
                best = v if take else best
                c = cW if take else c
                v = r1[2 * ow + 1]
                take = (v > best) | (v != v)
                best = v if take else best
                c = cW1 if take else c
                yr[ow] = best
                code[ow] = c
            ir = idx[p, oh]
            base = 2 * oh * W
            for ow in range(OW):
                ir[ow] = base + 2 * ow + code[ow]


@njit(cache=True, nogil=True)
def max_pool_non_overlapping(x, y, idx, kh, kw, sh, sw, p0, p1):
    """Generic non-overlapping windows: one pass per window tap (scan order), each vectorised over
    ``ow``, keeping the winner's int32 offset ``i·W + j``; then the int64 flat indices."""
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    code = np.empty(OW, dtype=np.int32)  # scratch row, one per task
    for p in range(p0, p1):
        for oh in range(OH):
            h0 = oh * sh
            yr = y[p, oh]
            xr = x[p, h0]
            for ow in range(OW):
                yr[ow] = xr[ow * sw]
                code[ow] = 0
            for i in range(kh):
                xr = x[p, h0 + i]
                for j in range(1 if i == 0 else 0, kw):
                    tap = np.int32(i * W + j)
                    for ow in range(OW):
                        v = xr[ow * sw + j]
                        best = yr[ow]
                        take = (v > best) | (v != v)
                        yr[ow] = v if take else best
                        code[ow] = tap if take else code[ow]
            ir = idx[p, oh]
            for ow in range(OW):
                ir[ow] = h0 * W + ow * sw + code[ow]


@njit(cache=True, nogil=True)
def max_pool_overlapping(x, y, idx, kh, kw, sh, sw, ph, pw, p0, p1):
    """Any windows with dilation 1 and padding ``ph <= kh/2``, ``pw <= kw/2`` (so every window holds
    an input position), e.g. ResNet's 3×3 stride-2 pad-1 stem pool; the general kernel's results.

    Per output row: the window rows inside the input ``[hs, he)``; the output columns whose window
    lies inside the input (``ow_lo <= ow < ow_hi``) run one pass per tap in scan order (row, then
    column), vectorised over ``ow`` (no bounds tests), starting from the window's first position
    and keeping the winner's int32 offset from it; the few border columns run the general loop.
    ``v > best or v != v``: the first maximum wins, and a NaN wins (the last NaN, as PyTorch).
    Strides 1 and 2 call the (inlined) tap loop with the stride a literal: LLVM then vectorises the
    loads (stride 2: SIMD shuffles), 6 ms instead of 21 for 3×3 stride 2 on 256 planes of 112×112,
    one thread; with the stride a variable the loop stays scalar."""
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    ow_lo = min(OW, (pw + sw - 1) // sw)                 # first column with w0 = ow·sw − pw >= 0
    ow_hi = max(ow_lo, min(OW, (W - kw + pw) // sw + 1))  # past the last with w0 + kw <= W
    n, start = ow_hi - ow_lo, ow_lo * sw - pw
    code = np.empty(max(n, 1), dtype=np.int32)           # scratch row, one per task
    for p in range(p0, p1):
        for oh in range(OH):
            h0 = oh * sh - ph
            hs, he = max(h0, 0), min(h0 + kh, H)
            if n > 0:
                yr = y[p, oh, ow_lo:ow_hi]
                if sw == 1:    # a literal stride (inlined): vector loads
                    _window_taps(x[p], yr, code, hs, he, start, kw, 1, n)
                elif sw == 2:  # a literal stride: SIMD shuffles
                    _window_taps(x[p], yr, code, hs, he, start, kw, 2, n)
                else:
                    _window_taps(x[p], yr, code, hs, he, start, kw, sw, n)
                ir = idx[p, oh, ow_lo:ow_hi]
                first = hs * W + start
                for k in range(n):
                    ir[k] = first + k * sw + code[k]
            yr, ir = y[p, oh], idx[p, oh]
            for ow in range(0, ow_lo):
                _border_window(x[p], yr, ir, ow, hs, he, sw, pw, kw)
            for ow in range(ow_hi, OW):
                _border_window(x[p], yr, ir, ow, hs, he, sw, pw, kw)


@njit(cache=True, inline="always")
def _window_taps(xp, yr, code, hs, he, start, kw, sw, n):
    """yr[k], code[k]: the maximum of window k (columns ``start + k·sw + [0, kw)``, rows
    ``[hs, he)``) and its offset ``(h − hs)·W + j`` from the window's first position."""
    W = xp.shape[1]
    xr = xp[hs, start:]
    for k in range(n):
        yr[k] = xr[k * sw]
        code[k] = 0
    for h in range(hs, he):
        for j in range(1 if h == hs else 0, kw):
            xr = xp[h, start + j:]
            tap = np.int32((h - hs) * W + j)
            for k in range(n):
                v = xr[k * sw]
                best = yr[k]
                take = (v > best) | (v != v)
                yr[k] = v if take else best
                code[k] = tap if take else code[k]


@njit(cache=True, inline="always")
def _border_window(xp, yr, ir, ow, hs, he, sw, pw, kw):
    """The general loop for output column ``ow`` of one row (rows ``[hs, he)``, columns clipped)."""
    W = xp.shape[1]
    w0 = ow * sw - pw
    ws, we = max(w0, 0), min(w0 + kw, W)
    best = xp[hs, ws]
    best_i = hs * W + ws
    for h in range(hs, he):
        for w in range(ws, we):
            v = xp[h, w]
            if v > best or v != v:
                best = v
                best_i = h * W + w
    yr[ow] = best
    ir[ow] = best_i


@njit(cache=True, nogil=True)
def scatter_add_planes(src, idx, out, p0, p1):
    """``out[p] = 0; out[p, idx[p, k]] += src[p, k]`` for k ascending (idx < 0 skipped), planes
    ``[p0, p1)`` of flat ``(P, K)`` / ``(P, H·W)`` arrays: the backward of overlapping windows, a
    plane per task (no races; the general kernel's order of additions, so the same bits)."""
    K = src.shape[1]
    for p in range(p0, p1):
        o = out[p]
        o[:] = 0
        s, ix = src[p], idx[p]
        for k in range(K):
            i = ix[k]
            if i >= 0:
                o[i] += s[k]


@njit(cache=True, nogil=True)
def max_pool_backward_2x2(gy, idx, gx, p0, p1):
    """gx (P, H, W): each element gets ``gy`` of its window when it is that window's argmax, else 0.
    The argmax offsets in their windows (0, 1, W, W + 1) go to an int32 row first, so the
    write loops compare int32 with float32 payloads (full SIMD width)."""
    P, H, W = gx.shape
    OH, OW = gy.shape[1], gy.shape[2]
    zero = gx.dtype.type(0)
    code = np.empty(OW, dtype=np.int32)  # scratch row, one per task
    for p in range(p0, p1):
        for oh in range(OH):
            g = gy[p, oh]
            ir = idx[p, oh]
            base = 2 * oh * W
            for ow in range(OW):
                code[ow] = np.int32(ir[ow] - (base + 2 * ow))
            for i in range(2):
                row = gx[p, 2 * oh + i]
                left, right = np.int32(i * W), np.int32(i * W + 1)
                for ow in range(OW):
                    c = code[ow]
                    v = g[ow] + zero  # + 0: a -0.0 gradient becomes +0.0, as in the general scatter-add
                    row[2 * ow] = v if c == left else zero
                    row[2 * ow + 1] = v if c == right else zero
                for w in range(2 * OW, W):
                    row[w] = zero
        for h in range(2 * OH, H):
            gx[p, h, :] = zero


@njit(cache=True, nogil=True)
def max_pool_backward_non_overlapping(gy, idx, gx, kh, kw, sh, sw, p0, p1):
    """Generic non-overlapping backward, one input row at a time. For row ``h`` of window row ``oh``,
    ``idx − h·W − ow·sw`` lies in ``[0, kw)`` exactly when the argmax is in this row (``kw ≤ W``)."""
    P, H, W = gx.shape
    OH, OW = gy.shape[1], gy.shape[2]
    zero = gx.dtype.type(0)
    for p in range(p0, p1):
        for h in range(H):
            oh = h // sh
            row = gx[p, h]
            if oh >= OH or h - oh * sh >= kh:  # a gap row or a row below the last window
                row[:] = zero
                continue
            g = gy[p, oh]
            ir = idx[p, oh]
            for ow in range(OW):
                off = ir[ow] - (h * W + ow * sw)
                v = g[ow] + zero
                for j in range(kw):
                    row[ow * sw + j] = v if off == j else zero
                for w in range(ow * sw + kw, min(ow * sw + sw, W)):  # the gap after the window
                    row[w] = zero
            for w in range(OW * sw, W):
                row[w] = zero


# ---- average pooling ------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def avg_pool_2x2(x, y, scale, divisor, exact, p0, p1):
    """y = (x00 + x01 + x10 + x11) / divisor, summed in float64 in scan order like the general kernel.

    The general kernel starts from ``total = 0.0``; starting from ``x00`` instead differs only in
    the sign of a zero sum (``0.0 + -0.0 = +0.0``), which the final ``+ 0.0`` restores."""
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    top = np.empty(OW)  # float64 sums of the top row pairs
    for p in range(p0, p1):
        for oh in range(OH):
            r0 = x[p, 2 * oh]
            r1 = x[p, 2 * oh + 1]
            yr = y[p, oh]
            for ow in range(OW):
                top[ow] = np.float64(r0[2 * ow]) + np.float64(r0[2 * ow + 1])
            for ow in range(OW):
                total = (top[ow] + r1[2 * ow]) + r1[2 * ow + 1] + 0.0
                yr[ow] = total * scale if exact else total / divisor


@njit(cache=True, nogil=True)
def avg_pool_non_overlapping(x, y, kh, kw, sh, sw, scale, divisor, exact, p0, p1):
    """Generic non-overlapping windows: float64 row accumulator, one pass per tap (scan order)."""
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    total = np.zeros(OW)  # float64, like the general kernel's ``total = 0.0``
    for p in range(p0, p1):
        for oh in range(OH):
            total[:] = 0.0
            for i in range(kh):
                xr = x[p, oh * sh + i]
                for j in range(kw):
                    for ow in range(OW):
                        total[ow] += xr[ow * sw + j]
            yr = y[p, oh]
            for ow in range(OW):
                yr[ow] = total[ow] * scale if exact else total[ow] / divisor


@njit(cache=True, nogil=True)
def avg_pool_backward_non_overlapping(gy, gx, kh, kw, sh, sw, scale, divisor, exact, p0, p1):
    """gx[h, w] = gy[oh, ow] / divisor inside window (oh, ow), 0 outside every window; each row of
    ``gy / divisor`` is computed once (float64, then rounded, as the general kernel does)."""
    P, H, W = gx.shape
    OH, OW = gy.shape[1], gy.shape[2]
    zero = gx.dtype.type(0)
    g = np.empty(OW, dtype=gx.dtype)
    for p in range(p0, p1):
        for oh in range(OH):
            gr = gy[p, oh]
            for ow in range(OW):
                q = gr[ow] * scale if exact else gr[ow] / divisor
                g[ow] = 0.0 + q  # the general kernel adds into zeros: -0.0 becomes +0.0
            for i in range(sh):
                h = oh * sh + i
                if h >= H:
                    break
                row = gx[p, h]
                if i >= kh:
                    row[:] = zero
                    continue
                if kw == 2 and sw == 2:  # the common case, constant offsets
                    for ow in range(OW):
                        row[2 * ow] = g[ow]
                        row[2 * ow + 1] = g[ow]
                else:
                    for ow in range(OW):
                        for j in range(kw):
                            row[ow * sw + j] = g[ow]
                        for w in range(ow * sw + kw, min(ow * sw + sw, W)):  # the gap after the window
                            row[w] = zero
                for w in range(OW * sw, W):
                    row[w] = zero
        for h in range(OH * sh, H):
            gx[p, h, :] = zero
