"""Launch wrappers of ``roi.cu`` (same signatures as ``kernels/cpu/roi.py``, plus ``be``)."""
import numpy as np

KERNELS = ("roi_pool_forward", "roi_pool_backward", "roi_align_forward", "roi_align_backward")

_CU = "roi.cu"


def _launch(be, name, arrays, total, C, H, W, PH, PW, extra=()):
    """One thread per element of a ``total``-element array (nothing to do when 0). Every kernel of
    roi.cu takes ``(arrays..., long long total, int C, int H, int W, int PH, int PW, extra...)``."""
    if total > 0:
        args = (*arrays, np.int64(total), *(np.int32(v) for v in (C, H, W, PH, PW)), *extra)
        be.function(_CU, name, arrays[0].dtype)(be.grid_1d(total), (be.BLOCK,), args)


def _contiguous(be, a, rois):
    """``a`` and ``rois`` (cast to ``a``'s dtype) as C-contiguous arrays."""
    return be.xp.ascontiguousarray(a), be.xp.ascontiguousarray(rois, dtype=a.dtype)


def _align_args(dtype, spatial_scale, sampling_ratio, aligned):
    """The trailing ``scalar_t scale, int sampling_ratio, int aligned`` of the align kernels."""
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
    """``gx``: each bin's gradient added (atomically) to the pixel that won it."""
    gy, rois = _contiguous(be, gy, rois)
    argmax = be.xp.ascontiguousarray(argmax, dtype=np.int64)
    N, C, H, W = x_shape
    PH, PW = gy.shape[2], gy.shape[3]
    gx = be.xp.zeros((N, C, H, W), dtype=gy.dtype)
    if gx.size > 0:
        _launch(be, "roi_pool_backward", (gy, rois, argmax, gx), gy.size, C, H, W, PH, PW)
    return gx


def roi_align_forward(be, x, rois, output_size, spatial_scale, sampling_ratio, aligned):
    """``y`` ``(K, C, PH, PW)``: the average of each bin's bilinear samples."""
    x, rois = _contiguous(be, x, rois)
    N, C, H, W = x.shape
    PH, PW = output_size
    y = be.xp.zeros((rois.shape[0], C, PH, PW), dtype=x.dtype)
    if x.size > 0:
        _launch(be, "roi_align_forward", (x, rois, y), y.size, C, H, W, PH, PW,
                _align_args(x.dtype, spatial_scale, sampling_ratio, aligned))
    return y


def roi_align_backward(be, gy, rois, x_shape, spatial_scale, sampling_ratio, aligned):
    """``gx`` of ``x_shape``: each sample sends ``gy · w_i / count`` (atomically) to four pixels."""
    gy, rois = _contiguous(be, gy, rois)
    N, C, H, W = x_shape
    PH, PW = gy.shape[2], gy.shape[3]
    gx = be.xp.zeros((N, C, H, W), dtype=gy.dtype)
    if gx.size > 0:
        _launch(be, "roi_align_backward", (gy, rois, gx), gy.size, C, H, W, PH, PW,
                _align_args(gy.dtype, spatial_scale, sampling_ratio, aligned))
    return gx
