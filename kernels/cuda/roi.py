"""Launch wrappers of ``roi.cu`` (same signatures as ``kernels/cpu/roi.py``, plus ``be``)."""
import numpy as np

from ._gemm import settings
from ._scatter import scatter_add

KERNELS = ("roi_pool_forward", "roi_pool_backward", "roi_align_forward", "roi_align_backward")

_CU = "roi.cu"


def _launch(be, name, arrays, total, C, H, W, PH, PW, extra=()):
    """One thread per element of a ``total``-element array (nothing to do when 0). The pool and
    align forward/backward kernels of roi.cu take ``(arrays..., long long total, int C, int H,
    int W, int PH, int PW, extra...)``."""
    if total > 0:
        args = (*arrays, np.int64(total), *(np.int32(v) for v in (C, H, W, PH, PW)), *extra)
        be.function(_CU, name, arrays[0].dtype)(be.grid_1d(total), (be.BLOCK,), args)


def _contiguous(be, a, rois):
    """``a`` and ``rois`` (cast to ``a``'s dtype) as C-contiguous arrays."""
    return be.xp.ascontiguousarray(a), be.xp.ascontiguousarray(rois, dtype=a.dtype)


def _align_args(dtype, spatial_scale, sampling_ratio, aligned):
    """The trailing ``scalar_t scale, int sampling_ratio, int aligned`` of ``roi_align_weights``."""
    return dtype.type(spatial_scale), np.int32(sampling_ratio), np.int32(bool(aligned))


def roi_pool_forward(be, x, rois, output_size, spatial_scale):
    """``(y, argmax)``: ``(K, C, PH, PW)`` maxima and int64 flat indices ``h·W + w`` (−1: empty bin)."""
    x, rois = _contiguous(be, x, rois)
    N, C, H, W = x.shape
    PH, PW = output_size
    y = be.xp.zeros((rois.shape[0], C, PH, PW), dtype=x.dtype)
    argmax = be.xp.full(y.shape, -1, dtype=np.int64)
    if x.size > 0:
        _launch(be, "roi_pool_forward", (x, rois, y, argmax), y.size, C, H, W, PH, PW,
                (x.dtype.type(spatial_scale),))
    return y, argmax


def roi_pool_backward(be, gy, rois, argmax, x_shape):
    """``gx``: each bin's gradient added (atomically) to the pixel that won it; in deterministic
    mode a sorted scatter-add instead (:func:`~._scatter.scatter_add`, bins in (k, c, ph, pw) order)."""
    gy, rois = _contiguous(be, gy, rois)
    argmax = be.xp.ascontiguousarray(argmax, dtype=np.int64)
    N, C, H, W = x_shape
    PH, PW = gy.shape[2], gy.shape[3]
    if settings.deterministic:
        xp = be.xp
        image = rois[:, 0].astype(np.int64).reshape(-1, 1, 1, 1)
        plane = (image * C + xp.arange(C, dtype=np.int64).reshape(1, -1, 1, 1)) * (H * W)
        dest = xp.where(argmax >= 0, plane + argmax, -1)
        return scatter_add(be, gy.reshape(-1), dest.reshape(-1), N * C * H * W).reshape(N, C, H, W)
    gx = be.xp.zeros((N, C, H, W), dtype=gy.dtype)
    if gx.size > 0:
        _launch(be, "roi_pool_backward", (gy, rois, argmax, gx), gy.size, C, H, W, PH, PW)
    return gx


#: Scalars of RoI align weights per launch: the RoIs are done in chunks whose ``PH·H + PW·W``
#: weights each fit (at least one RoI a chunk).
ALIGN_WORKSPACE = 2 ** 24


def _align_weight_chunks(be, rois, dtype, x_hw, output_size, spatial_scale, sampling_ratio, aligned):
    """For consecutive chunks of RoIs, ``(k0, k1, (wy, sy, wx, sx))``: the row weights ``wy``
    ``(k1 − k0, PH, H)`` and their pixel spans ``sy`` ``(k1 − k0, PH, 2)`` of every bin row, the
    column weights ``wx``/``sx`` likewise, filled by ``roi_align_weights``."""
    H, W = x_hw
    PH, PW = output_size
    K = rois.shape[0]
    step = max(1, ALIGN_WORKSPACE // (PH * H + PW * W))
    kernel = be.function(_CU, "roi_align_weights", dtype)
    for k0 in range(0, K, step):
        k1 = min(K, k0 + step)
        kc = k1 - k0
        wy, wx = be.xp.zeros((kc, PH, H), dtype=dtype), be.xp.zeros((kc, PW, W), dtype=dtype)
        sy, sx = be.xp.zeros((kc, PH, 2), dtype=np.int64), be.xp.zeros((kc, PW, 2), dtype=np.int64)
        total = kc * max(PH, PW)
        kernel(be.grid_1d(total), (be.BLOCK,),
               (rois[k0:k1], wy, sy, wx, sx, np.int64(total), *(np.int32(v) for v in (H, W, PH, PW)),
                *_align_args(dtype, spatial_scale, sampling_ratio, aligned)))
        yield k0, k1, (wy, sy, wx, sx)


def roi_align_forward(be, x, rois, output_size, spatial_scale, sampling_ratio, aligned):
    """``y`` ``(K, C, PH, PW)``: the average of each bin's bilinear samples."""
    x, rois = _contiguous(be, x, rois)
    N, C, H, W = x.shape
    PH, PW = output_size
    y = be.xp.zeros((rois.shape[0], C, PH, PW), dtype=x.dtype)
    if x.size > 0:
        for k0, k1, weights in _align_weight_chunks(be, rois, x.dtype, (H, W), output_size, spatial_scale,
                                                    sampling_ratio, aligned):
            _launch(be, "roi_align_forward", (x, rois[k0:k1], *weights, y[k0:k1]), y[k0:k1].size, C, H, W, PH, PW)
    return y


def roi_align_backward(be, gy, rois, x_shape, spatial_scale, sampling_ratio, aligned):
    """``gx`` of ``x_shape``: each bin sends ``gy · wy[h] · wx[w]`` (atomically) to the pixels it read;
    in deterministic mode each pixel gathers them instead (``roi_align_backward_gather``)."""
    gy, rois = _contiguous(be, gy, rois)
    N, C, H, W = x_shape
    PH, PW = gy.shape[2], gy.shape[3]
    gx = be.xp.zeros((N, C, H, W), dtype=gy.dtype)
    if gx.size > 0 and settings.deterministic:
        kernel = be.function(_CU, "roi_align_backward_gather", gy.dtype)
        for k0, k1, weights in _align_weight_chunks(be, rois, gy.dtype, (H, W), (PH, PW), spatial_scale,
                                                    sampling_ratio, aligned):
            kernel(be.grid_1d(gx.size), (be.BLOCK,),
                   (gy[k0:k1], rois[k0:k1], *weights, gx, np.int64(gx.size),
                    *(np.int32(v) for v in (k1 - k0, C, H, W, PH, PW))))
    elif gx.size > 0:
        for k0, k1, weights in _align_weight_chunks(be, rois, gy.dtype, (H, W), (PH, PW), spatial_scale,
                                                    sampling_ratio, aligned):
            _launch(be, "roi_align_backward", (gy[k0:k1], rois[k0:k1], *weights, gx), gy[k0:k1].size,
                    C, H, W, PH, PW)
    return gx
