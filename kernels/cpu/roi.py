"""Numba RoI pool and RoI align (see ``kernels/reference/roi.py`` for the math).

Every quantity is computed in the dtype of ``x``. Numba promotes ``int * float32`` to float64,
so the kernels never mix Python ints into float arithmetic: the wrappers pass the constants
``half``, ``one`` and the pooled sizes as scalars of the dtype, bin counters are kept as floats
(``fph += one``), and a sample index ``a`` becomes a float as ``ty(a)``, ``ty`` the scalar type
(``np.float32`` or ``np.float64``) passed in, as C's ``(scalar_t)a``.

RoI align is evaluated in its separable form (``kernels/reference/roi.py``): per RoI, a row-weight
vector over H for each of the PH bin rows and a column-weight vector over W for each of the PW bin
columns (``_align_weights``); a bin is then ``Σ_h wy[h] · Σ_w wx[w] · x[h, w]`` over the rows and
columns it touches. Work per RoI: O(PH·S_h + PW·S_w) for the weights, S the samples of a bin row
that land in the image (at most ``sampling_ratio``, and about 2·(H + 2) with adaptive sampling
however large the box: the samples outside are skipped by bisection), plus the taps; memory per
RoI: PH·H + PW·W weights, whatever the sample count.

Forward: ``prange`` over RoIs; the weights of a RoI are shared across channels, and with many
RoIs the sums read a channels-last copy of x, so that each tap is one vectorised update of a
bin's C sums (``_roi_align_forward_channels_last``).
Backward: ``prange`` over the ``(n, c)`` planes of ``gx``; the thread that owns a plane loops over
the RoIs of image ``n`` (grouped by the wrapper), so no two threads ever write the same element
(no atomics). RoI align recomputes a RoI's weights per plane in backward (memory per thread stays
PH·H + PW·W).
"""
import numpy as np
from numba import njit, prange

KERNELS = ("roi_pool_forward", "roi_pool_backward", "roi_align_forward", "roi_align_backward")


# ---- RoI pool ---------------------------------------------------------------------------------

@njit(cache=True)
def _pool_bin(start_r, bin_size, fi, one, limit):
    """The clipped range ``[lo, hi)`` of the bin whose index (as a float) is ``fi``."""
    zero = one - one
    lo = min(max(np.floor(fi * bin_size) + start_r, zero), limit)
    hi = min(max(np.ceil((fi + one) * bin_size) + start_r, zero), limit)
    return int(lo), int(hi)


@njit(cache=True)
def _round_half_away(v, half, one):
    """C's ``round(v)``: to the nearest integer, half away from zero (exact: ``v − floor(v)`` is)."""
    r = np.floor(v)
    d = v - r
    if d > half or (d == half and v > 0):
        r += one
    return r


@njit(cache=True, parallel=True)
def _roi_pool_forward(x, rois, scale, half, one, fPH, fPW, fH, fW, y, argmax):
    N, C, H, W = x.shape
    K, _, PH, PW = y.shape
    zero = one - one
    for k in prange(K):
        n = int(rois[k, 0])
        x1r = _round_half_away(rois[k, 1] * scale, half, one)
        y1r = _round_half_away(rois[k, 2] * scale, half, one)
        x2r = _round_half_away(rois[k, 3] * scale, half, one)
        y2r = _round_half_away(rois[k, 4] * scale, half, one)
        bin_w = max(x2r - x1r + one, one) / fPW
        bin_h = max(y2r - y1r + one, one) / fPH
        fph = zero
        for ph in range(PH):
            h0, h1 = _pool_bin(y1r, bin_h, fph, one, fH)
            fpw = zero
            for pw in range(PW):
                w0, w1 = _pool_bin(x1r, bin_w, fpw, one, fW)
                for c in range(C):
                    best = -np.inf
                    best_i = -1
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            if x[n, c, h, w] > best:
                                best = x[n, c, h, w]
                                best_i = h * W + w
                    if best_i >= 0:
                        y[k, c, ph, pw] = best
                    argmax[k, c, ph, pw] = best_i
                fpw += one
            fph += one


@njit(cache=True, parallel=True)
def _roi_pool_backward(gy, argmax, roi_order, image_start, gx):
    N, C, HW = gx.shape
    K, _, PH, PW = gy.shape
    for plane in prange(N * C):
        n, c = plane // C, plane % C
        for j in range(image_start[n], image_start[n + 1]):
            k = roi_order[j]
            for ph in range(PH):
                for pw in range(PW):
                    i = argmax[k, c, ph, pw]
                    if i >= 0:
                        gx[n, c, i] += gy[k, c, ph, pw]


def _typed_constants(dtype, spatial_scale, output_size, x_shape):
    """The scalars the kernels need, as values of ``dtype`` (see the module docstring)."""
    t = np.dtype(dtype).type
    PH, PW = output_size
    H, W = x_shape[2], x_shape[3]
    return t(spatial_scale), t(0.5), t(1), t(PH), t(PW), t(H), t(W)


def _group_by_image(rois, N):
    """``(order, start)``: RoI indices sorted (stably) by batch index, and where image n starts."""
    batch = rois[:, 0].astype(np.int64)
    order = np.argsort(batch, kind="stable").astype(np.int64)
    start = np.searchsorted(batch[order], np.arange(N + 1)).astype(np.int64)
    return order, start


def roi_pool_forward(x, rois, output_size, spatial_scale):
    """``(y, argmax)``: ``(K, C, PH, PW)`` maxima and int64 flat indices ``h·W + w`` (−1: empty bin)."""
    x = np.ascontiguousarray(x)
    rois = np.ascontiguousarray(rois, dtype=x.dtype)
    PH, PW = output_size
    K, C = rois.shape[0], x.shape[1]
    y = np.zeros((K, C, PH, PW), dtype=x.dtype)
    argmax = np.full((K, C, PH, PW), -1, dtype=np.int64)
    scale, half, one, fPH, fPW, fH, fW = _typed_constants(x.dtype, spatial_scale, output_size, x.shape)
    if K > 0 and x.size > 0:
        _roi_pool_forward(x, rois, scale, half, one, fPH, fPW, fH, fW, y, argmax)
    return y, argmax


def roi_pool_backward(gy, rois, argmax, x_shape):
    """``gx``: each bin's gradient added to the pixel that won it."""
    gy = np.ascontiguousarray(gy)
    argmax = np.ascontiguousarray(argmax, dtype=np.int64)
    N, C, H, W = x_shape
    gx = np.zeros((N, C, H * W), dtype=gy.dtype)
    order, start = _group_by_image(np.asarray(rois), N)
    if gy.size > 0:
        _roi_pool_backward(gy, argmax, order, start, gx)
    return gx.reshape(N, C, H, W)


# ---- RoI align --------------------------------------------------------------------------------

@njit(cache=True)
def _align_geometry(roi, scale, half, one, fPH, fPW, sampling_ratio, aligned):
    """``(n, y1, x1, bin_h, bin_w, grid_h, grid_w)``, the grid sizes as int64."""
    zero = one - one
    off = half if aligned else zero
    x1 = roi[1] * scale - off
    y1 = roi[2] * scale - off
    roi_w = (roi[3] * scale - off) - x1
    roi_h = (roi[4] * scale - off) - y1
    if not aligned:  # force malformed RoIs to be at least 1x1
        roi_w = max(roi_w, one)
        roi_h = max(roi_h, one)
    if sampling_ratio > 0:
        grid_h = grid_w = sampling_ratio
    else:
        grid_h = int(max(np.ceil(roi_h / fPH), zero))
        grid_w = int(max(np.ceil(roi_w / fPW), zero))
    return int(roi[0]), y1, x1, roi_h / fPH, roi_w / fPW, grid_h, grid_w


@njit(cache=True)
def _sample(start, bin_size, fp, fi, grid, half):
    """``start + p·bin + (i + 0.5)·bin / grid`` in that order (as the reference)."""
    return (start + fp * bin_size) + ((fi + half) * bin_size) / grid


@njit(cache=True)
def _first_sample_past(start, bin_size, fp, grid, bound, strict, ty):
    """The first sample index ``a`` in ``[0, grid]`` whose coordinate is past ``bound`` (``> bound``,
    or ``>=`` unless ``strict``; ``<``/``<=`` when ``bin_size < 0``), by bisection: the coordinates
    are monotone in ``a``, every rounding step of ``_sample`` being monotone."""
    half = ty(0.5)
    fgrid = ty(grid)
    increasing = bin_size >= 0
    lo, hi = 0, grid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        v = _sample(start, bin_size, fp, ty(mid), fgrid, half)
        if increasing:
            past = v > bound if strict else v >= bound
        else:
            past = v < bound if strict else v <= bound
        if past:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True)
def _axis_weights(start, bin_size, fp, grid, L, ty, w, span):
    """Bin ``p``'s weights along an axis of length ``L``: ``w[i] = Σ_a hat_i(v_a) / grid`` over its
    samples ``v_a`` inside ``[-1, L]``, hat_i the 1-D bilinear weight of pixel i with torchvision's
    clamping (``v <= 0`` reads pixel 0, ``v >= L − 1`` pixel L − 1 with weight 1). ``w`` must be zero
    on entry; ``span`` receives the range ``[lo, hi)`` of the pixels touched (empty: ``lo == hi``)."""
    zero, one, half = ty(0), ty(1), ty(0.5)
    fgrid = ty(grid)
    lower, upper = -one, ty(L)
    if bin_size >= 0:
        a0 = _first_sample_past(start, bin_size, fp, grid, lower, False, ty)
        a1 = _first_sample_past(start, bin_size, fp, grid, upper, True, ty)
    else:  # an inverted aligned box with a fixed sampling ratio: the coordinates decrease
        a0 = _first_sample_past(start, bin_size, fp, grid, upper, False, ty)
        a1 = _first_sample_past(start, bin_size, fp, grid, lower, True, ty)
    lo, hi = L, 0
    for a in range(a0, a1):
        v = _sample(start, bin_size, fp, ty(a), fgrid, half)
        if v <= zero:
            v = zero
        low = int(v)
        if low >= L - 1:  # v snaps to the last pixel: weight 1
            w[L - 1] += one
            lo = min(lo, L - 1)
            hi = L
        else:
            frac = v - np.floor(v)  # floor(v) == low as a float, since v >= 0
            w[low] += one - frac
            w[low + 1] += frac
            lo = min(lo, low)
            hi = max(hi, low + 2)
    if grid > 0:
        for i in range(lo, hi):
            w[i] /= fgrid
    span[0] = lo
    span[1] = max(lo, hi)


@njit(cache=True)
def _align_weights(roi, scale, half, one, fPH, fPW, sampling_ratio, aligned, ty, wy, sy, wx, sx):
    """Fill ``wy`` (PH, H) / ``sy`` (PH, 2) and ``wx`` (PW, W) / ``sx`` (PW, 2) with the row and column
    weights and spans of every bin of ``roi`` (see ``_axis_weights``); returns the batch index.
    The arrays must be zero outside the spans they hold on entry (they are zero afterwards too)."""
    PH, H = wy.shape
    PW, W = wx.shape
    n, y1, x1, bin_h, bin_w, gh, gw = _align_geometry(roi, scale, half, one, fPH, fPW, sampling_ratio, aligned)
    fp = one - one
    for ph in range(PH):
        wy[ph, sy[ph, 0]:sy[ph, 1]] = 0
        _axis_weights(y1, bin_h, fp, gh, H, ty, wy[ph], sy[ph])
        fp += one
    fp = one - one
    for pw in range(PW):
        wx[pw, sx[pw, 0]:sx[pw, 1]] = 0
        _axis_weights(x1, bin_w, fp, gw, W, ty, wx[pw], sx[pw])
        fp += one
    return n


@njit(cache=True)
def _weight_tables(PH, PW, H, W, ty):
    """Zeroed ``(wy, sy, wx, sx)`` for ``_align_weights``."""
    return (np.zeros((PH, H), dtype=ty), np.zeros((PH, 2), dtype=np.int64),
            np.zeros((PW, W), dtype=ty), np.zeros((PW, 2), dtype=np.int64))


@njit(cache=True, parallel=True)
def _roi_align_forward(x, rois, scale, half, one, fPH, fPW, sampling_ratio, aligned, ty, y):
    """Channel by channel: for few RoIs (the weights computed once per RoI)."""
    N, C, H, W = x.shape
    K, _, PH, PW = y.shape
    zero = one - one
    for k in prange(K):
        wy, sy, wx, sx = _weight_tables(PH, PW, H, W, ty)
        n = _align_weights(rois[k], scale, half, one, fPH, fPW, sampling_ratio, aligned, ty, wy, sy, wx, sx)
        for c in range(C):
            for ph in range(PH):
                for pw in range(PW):
                    acc = zero
                    for h in range(sy[ph, 0], sy[ph, 1]):
                        row = zero
                        for w in range(sx[pw, 0], sx[pw, 1]):
                            row += wx[pw, w] * x[n, c, h, w]
                        acc += wy[ph, h] * row
                    y[k, c, ph, pw] = acc


@njit(cache=True, parallel=True)
def _roi_align_forward_channels_last(xT, H, W, rois, scale, half, one, fPH, fPW, sampling_ratio, aligned, ty, y):
    """The same sums from ``xT`` (N, H·W, C), x with the channels last: each tap adds
    ``w · xT[n, p, :]``, a contiguous row of C values, to C sums (a vectorised loop over channels
    instead of one gathered load per channel and tap; same order of additions per channel, so the
    same results)."""
    C = xT.shape[2]
    K, _, PH, PW = y.shape
    for k in prange(K):
        wy, sy, wx, sx = _weight_tables(PH, PW, H, W, ty)
        n = _align_weights(rois[k], scale, half, one, fPH, fPW, sampling_ratio, aligned, ty, wy, sy, wx, sx)
        acc = np.empty(C, dtype=y.dtype)
        row = np.empty(C, dtype=y.dtype)
        for ph in range(PH):
            for pw in range(PW):
                acc[:] = 0
                for h in range(sy[ph, 0], sy[ph, 1]):
                    row[:] = 0
                    for w in range(sx[pw, 0], sx[pw, 1]):
                        wt, src = wx[pw, w], xT[n, h * W + w]
                        for c in range(C):
                            row[c] += wt * src[c]
                    wt = wy[ph, h]
                    for c in range(C):
                        acc[c] += wt * row[c]
                for c in range(C):
                    y[k, c, ph, pw] = acc[c]


@njit(cache=True, parallel=True)
def _roi_align_backward(gy, rois, roi_order, image_start, scale, half, one, fPH, fPW,
                        sampling_ratio, aligned, ty, gx):
    N, C, H, W = gx.shape[0], gx.shape[1], gx.shape[2], gx.shape[3]
    K, _, PH, PW = gy.shape
    for plane in prange(N * C):
        n, c = plane // C, plane % C
        wy, sy, wx, sx = _weight_tables(PH, PW, H, W, ty)
        for j in range(image_start[n], image_start[n + 1]):
            k = roi_order[j]
            _align_weights(rois[k], scale, half, one, fPH, fPW, sampling_ratio, aligned, ty, wy, sy, wx, sx)
            for ph in range(PH):
                for pw in range(PW):
                    g = gy[k, c, ph, pw]
                    for h in range(sy[ph, 0], sy[ph, 1]):
                        gh = g * wy[ph, h]
                        for w in range(sx[pw, 0], sx[pw, 1]):
                            gx[n, c, h, w] += gh * wx[pw, w]


#: RoI align's forward reads x with the channels last (a transposed copy of x first) from this
#: many output bins (all RoIs) per input position (all images) on. On 2×256×50×50 with 7×7 bins and
#: sampling ratio 2: 2,000 RoIs 57 ms instead of 383, 10 RoIs 1.8 vs 2.3, 2 RoIs 1.5 vs 0.5 (the
#: copy then costs more than it saves), measured
_CHANNELS_LAST_MIN_BINS_PER_POSITION = 0.08


def _align_constants(dtype, spatial_scale, output_size, sampling_ratio):
    t = np.dtype(dtype).type
    PH, PW = output_size
    return t(spatial_scale), t(0.5), t(1), t(PH), t(PW), int(max(sampling_ratio, 0)), t


def roi_align_forward(x, rois, output_size, spatial_scale, sampling_ratio, aligned):
    """``y`` ``(K, C, PH, PW)``: the average of each bin's bilinear samples."""
    x = np.ascontiguousarray(x)
    rois = np.ascontiguousarray(rois, dtype=x.dtype)
    PH, PW = output_size
    K, C = rois.shape[0], x.shape[1]
    y = np.zeros((K, C, PH, PW), dtype=x.dtype)
    scale, half, one, fPH, fPW, sr, ty = _align_constants(x.dtype, spatial_scale, output_size, sampling_ratio)
    if K == 0 or x.size == 0:
        return y
    N, _, H, W = x.shape
    if K * PH * PW >= _CHANNELS_LAST_MIN_BINS_PER_POSITION * N * H * W:
        xT = np.ascontiguousarray(x.reshape(N, C, H * W).transpose(0, 2, 1))
        _roi_align_forward_channels_last(xT, H, W, rois, scale, half, one, fPH, fPW, sr, bool(aligned), ty, y)
    else:
        _roi_align_forward(x, rois, scale, half, one, fPH, fPW, sr, bool(aligned), ty, y)
    return y


def roi_align_backward(gy, rois, x_shape, spatial_scale, sampling_ratio, aligned):
    """``gx`` of ``x_shape``: each bin sends ``gy · wy[h] · wx[w]`` to the pixels ``(h, w)`` it read."""
    gy = np.ascontiguousarray(gy)
    rois = np.ascontiguousarray(rois, dtype=gy.dtype)
    N, C, H, W = x_shape
    gx = np.zeros((N, C, H, W), dtype=gy.dtype)
    order, start = _group_by_image(rois, N)
    scale, half, one, fPH, fPW, sr, ty = _align_constants(gy.dtype, spatial_scale, gy.shape[2:], sampling_ratio)
    if gy.size > 0 and gx.size > 0:
        _roi_align_backward(gy, rois, order, start, scale, half, one, fPH, fPW, sr, bool(aligned), ty, gx)
    return gx
