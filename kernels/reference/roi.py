"""Reference RoI pooling (Fast R-CNN) and RoI align (Mask R-CNN): plain loops.

Shapes: ``x`` is ``(N, C, H, W)``; ``rois`` is ``(K, 5)`` rows ``(n, x1, y1, x2, y2)`` in image
coordinates, ``n`` the batch index; the output is ``(K, C, PH, PW)``. Every quantity below is
computed in the dtype of ``x`` (float32 stays float32), exactly as the device kernels do, so that
the integer bin boundaries agree bit for bit on every device.

roi_pool (torchvision semantics)::

    x1r = round(x1·s), y1r, x2r, y2r likewise      (C round(): half away from zero, −0.5 -> −1)
    roi_w = max(x2r − x1r + 1, 1),  roi_h = max(y2r − y1r + 1, 1)  (inclusive pixel count)
    bin_h = roi_h / PH,  bin_w = roi_w / PW
    rows of bin ph: [clip(floor(ph·bin_h) + y1r), clip(ceil((ph+1)·bin_h) + y1r))   clip to [0, H]
    y[k, c, ph, pw] = max of x[n, c] over the bin, 0 for an empty bin
    argmax = h·W + w of the FIRST maximum in scan order (strict >), −1 for an empty bin
    backward: gx[n, c].flat[argmax] += gy[k, c, ph, pw]

roi_align (torchvision semantics)::

    off = 0.5 if aligned else 0;  x1' = x1·s − off, …
    roi_w = x2' − x1' (at least 1 when not aligned), bin_w = roi_w / PW, likewise h
    grid_h = sampling_ratio if > 0 else ceil(roi_h / PH)      (samples per bin and axis)
    sample (iy, ix) of bin (ph, pw):  y = y1' + ph·bin_h + (iy + 0.5)·bin_h / grid_h
    y[k, c, ph, pw] = Σ_samples bilinear(x[n, c], y, x) / max(grid_h·grid_w, 1)
    bilinear: 0 when y < −1 or y > H or x < −1 or x > W; else y, x clamped below at 0;
    y_low = ⌊y⌋ (clamped to H−1, where y snaps to H−1), y_high = min(y_low + 1, H−1);
    weights (1−ly)(1−lx), (1−ly)lx, ly(1−lx), ly·lx with ly = y − y_low, lx = x − x_low.
    backward: each sample adds gy·w_i / count to the four pixels it read.

The device kernels evaluate roi_align in its separable form. The test ``y < −1 or y > H or
x < −1 or x > W`` is a product of a row test and a column test, and each of the four weights is a
row factor (1−ly or ly) times a column factor, so with ``count = grid_h·grid_w``::

    y[k, c, ph, pw] = Σ_h Σ_w wy[h] · wx[w] · x[n, c, h, w]
    wy[h] = (1/grid_h) Σ_iy hat_h(y_iy),  wx[w] = (1/grid_w) Σ_ix hat_w(x_ix)

``hat_h(y)`` the weight the clamped row coordinate gives row h (0 outside [−1, H]). That is
O(grid_h + grid_w) per bin instead of O(grid_h·grid_w), the same value up to the rounding of the
sums; the kernels also skip the samples outside [−1, H] (the coordinates are monotone in iy).
This file keeps the sample-by-sample loops: the definition, and the tests' oracle.
"""
import math

import numpy as np


def _round_half_away(v, t):
    """C's ``round(v)`` in the dtype ``t``: half away from zero (NOT Python's half-to-even
    ``round``, NOT ``floor(v + 0.5)``, which rounds −0.5 to 0 and 0.49999997 to 1)."""
    r = np.floor(v)
    d = v - r  # exact
    return r + t(1) if d > t(0.5) or (d == t(0.5) and v > 0) else r


def _roi_pool_bin(start_r, bin_size, i, n, t):
    """The clipped half-open range ``[lo, hi)`` of bin ``i`` along one axis of length ``n``."""
    lo = np.floor(t(i) * bin_size) + start_r
    hi = np.ceil(t(i + 1) * bin_size) + start_r
    lo = min(max(lo, t(0)), t(n))
    hi = min(max(hi, t(0)), t(n))
    return int(lo), int(hi)


def _roi_pool_geometry(roi, output_size, spatial_scale, t):
    """``(n, x1r, y1r, bin_h, bin_w)`` of one RoI, in dtype ``t``."""
    s = t(spatial_scale)
    x1r = _round_half_away(roi[1] * s, t)
    y1r = _round_half_away(roi[2] * s, t)
    x2r = _round_half_away(roi[3] * s, t)
    y2r = _round_half_away(roi[4] * s, t)
    roi_w = max(x2r - x1r + t(1), t(1))
    roi_h = max(y2r - y1r + t(1), t(1))
    PH, PW = output_size
    return int(roi[0]), x1r, y1r, roi_h / t(PH), roi_w / t(PW)


def roi_pool_forward(x, rois, output_size, spatial_scale):
    """``(y, argmax)``: bin maxima ``(K, C, PH, PW)`` and the flat index ``h·W + w`` (int64)."""
    N, C, H, W = x.shape
    PH, PW = output_size
    t = x.dtype.type
    K = rois.shape[0]
    y = np.zeros((K, C, PH, PW), dtype=x.dtype)
    argmax = np.full((K, C, PH, PW), -1, dtype=np.int64)
    for k in range(K):
        n, x1r, y1r, bin_h, bin_w = _roi_pool_geometry(rois[k].astype(x.dtype), output_size, spatial_scale, t)
        for ph in range(PH):
            h0, h1 = _roi_pool_bin(y1r, bin_h, ph, H, t)
            for pw in range(PW):
                w0, w1 = _roi_pool_bin(x1r, bin_w, pw, W, t)
                for c in range(C):
                    best, best_i = -math.inf, -1
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            if x[n, c, h, w] > best:
                                best, best_i = x[n, c, h, w], h * W + w
                    if best_i >= 0:
                        y[k, c, ph, pw] = best
                        argmax[k, c, ph, pw] = best_i
    return y, argmax


def roi_pool_backward(gy, rois, argmax, x_shape):
    """``gx`` of shape ``x_shape``: each bin's gradient goes to the pixel that won it."""
    N, C, H, W = x_shape
    gx = np.zeros((N, C, H * W), dtype=gy.dtype)
    K, _, PH, PW = gy.shape
    for k in range(K):
        n = int(rois[k, 0])
        for c in range(C):
            for ph in range(PH):
                for pw in range(PW):
                    i = argmax[k, c, ph, pw]
                    if i >= 0:
                        gx[n, c, i] += gy[k, c, ph, pw]
    return gx.reshape(N, C, H, W)


def _roi_align_geometry(roi, output_size, spatial_scale, sampling_ratio, aligned, t):
    """``(n, y1', x1', bin_h, bin_w, grid_h, grid_w)`` of one RoI, in dtype ``t``."""
    s = t(spatial_scale)
    off = t(0.5) if aligned else t(0)
    x1, y1 = roi[1] * s - off, roi[2] * s - off
    x2, y2 = roi[3] * s - off, roi[4] * s - off
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # force malformed RoIs to be at least 1×1
        roi_w, roi_h = max(roi_w, t(1)), max(roi_h, t(1))
    PH, PW = output_size
    if sampling_ratio > 0:
        grid_h = grid_w = sampling_ratio
    else:
        grid_h = max(int(np.ceil(roi_h / t(PH))), 0)
        grid_w = max(int(np.ceil(roi_w / t(PW))), 0)
    return int(roi[0]), y1, x1, roi_h / t(PH), roi_w / t(PW), grid_h, grid_w


def _sample_coordinate(start, bin_size, p, i, grid, t):
    """``start + p·bin + (i + 0.5)·bin / grid``, evaluated in that order in dtype ``t``."""
    return (start + t(p) * bin_size) + ((t(i) + t(0.5)) * bin_size) / t(grid)


def bilinear_weights(y, x, H, W, t):
    """``[(pixel_index, weight)] * 4`` of the bilinear sample at ``(y, x)`` (torchvision rules)."""
    if y < -1 or y > H or x < -1 or x > W:
        return []
    y, x = max(y, t(0)), max(x, t(0))
    y_low, x_low = int(y), int(x)
    if y_low >= H - 1:
        y_low = y_high = H - 1
        y = t(y_low)
    else:
        y_high = y_low + 1
    if x_low >= W - 1:
        x_low = x_high = W - 1
        x = t(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - t(y_low), x - t(x_low)
    hy, hx = t(1) - ly, t(1) - lx
    return [(y_low * W + x_low, hy * hx), (y_low * W + x_high, hy * lx),
            (y_high * W + x_low, ly * hx), (y_high * W + x_high, ly * lx)]


def _roi_align_samples(roi, output_size, spatial_scale, sampling_ratio, aligned, H, W, t):
    """``(n, count, samples)``: ``samples[ph][pw]`` lists ``(pixel_index, weight)`` pairs."""
    n, y1, x1, bin_h, bin_w, gh, gw = _roi_align_geometry(roi, output_size, spatial_scale,
                                                        sampling_ratio, aligned, t)
    PH, PW = output_size
    samples = [[[] for _ in range(PW)] for _ in range(PH)]
    for ph in range(PH):
        for pw in range(PW):
            for iy in range(gh):
                yy = _sample_coordinate(y1, bin_h, ph, iy, gh, t)
                for ix in range(gw):
                    xx = _sample_coordinate(x1, bin_w, pw, ix, gw, t)
                    samples[ph][pw].extend(bilinear_weights(yy, xx, H, W, t))
    return n, max(gh * gw, 1), samples


def roi_align_forward(x, rois, output_size, spatial_scale, sampling_ratio, aligned):
    """``y`` of shape ``(K, C, PH, PW)``: the average of the bilinear samples of each bin."""
    N, C, H, W = x.shape
    PH, PW = output_size
    t = x.dtype.type
    K = rois.shape[0]
    y = np.zeros((K, C, PH, PW), dtype=x.dtype)
    planes = x.reshape(N, C, H * W)
    for k in range(K):
        n, count, samples = _roi_align_samples(rois[k].astype(x.dtype), output_size, spatial_scale,
                                               sampling_ratio, aligned, H, W, t)
        for c in range(C):
            for ph in range(PH):
                for pw in range(PW):
                    acc = t(0)
                    for i, w in samples[ph][pw]:
                        acc += w * planes[n, c, i]
                    y[k, c, ph, pw] = acc / t(count)
    return y


def roi_align_backward(gy, rois, x_shape, spatial_scale, sampling_ratio, aligned):
    """``gx`` of shape ``x_shape``: each sample sends ``gy · w_i / count`` to the pixels it read."""
    N, C, H, W = x_shape
    t = gy.dtype.type
    K, _, PH, PW = gy.shape
    gx = np.zeros((N, C, H * W), dtype=gy.dtype)
    for k in range(K):
        n, count, samples = _roi_align_samples(rois[k].astype(gy.dtype), (PH, PW), spatial_scale,
                                               sampling_ratio, aligned, H, W, t)
        for c in range(C):
            for ph in range(PH):
                for pw in range(PW):
                    for i, w in samples[ph][pw]:
                        gx[n, c, i] += gy[k, c, ph, pw] * w / t(count)
    return gx.reshape(N, C, H, W)
