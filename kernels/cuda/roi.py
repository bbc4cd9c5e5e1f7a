"""Launch wrappers of ``roi.cu`` (same signatures as ``kernels/cpu/roi.py``, plus ``be``)."""
import numpy as np

KERNELS = ("roi_pool_forward", "roi_pool_backward", "roi_align_forward", "roi_align_backward")

_CU = "roi.cu"


def _launch(be, name, dtype, total, args):
    if total > 0:
        be.function(_CU, name, dtype)(be.grid_1d(total), (be.BLOCK,), args)


def roi_pool_forward(be, x, rois, output_size, spatial_scale):
    """``(y, argmax)``: ``(K, C, PH, PW)`` maxima and int64 flat indices ``h·W + w`` (−1: empty bin)."""
    xp = be.xp
    x = xp.ascontiguousarray(x)
    rois = xp.ascontiguousarray(rois, dtype=x.dtype)
    N, C, H, W = x.shape
    PH, PW = output_size
    K = rois.shape[0]
    y = xp.zeros((K, C, PH, PW), dtype=x.dtype)
    argmax = xp.full((K, C, PH, PW), -1, dtype=np.int64)
    if x.size > 0:
        _launch(be, "roi_pool_forward", x.dtype, y.size,
                (x, rois, y, argmax, np.int64(y.size), np.int32(C), np.int32(H), np.int32(W),
                 np.int32(PH), np.int32(PW), x.dtype.type(spatial_scale)))
    return y, argmax


def roi_pool_backward(be, gy, rois, argmax, x_shape):
    """``gx``: each bin's gradient added (atomically) to the pixel that won it."""
    xp = be.xp
    gy = xp.ascontiguousarray(gy)
    rois = xp.ascontiguousarray(rois, dtype=gy.dtype)
    argmax = xp.ascontiguousarray(argmax, dtype=np.int64)
    N, C, H, W = x_shape
    PH, PW = gy.shape[2], gy.shape[3]
    gx = xp.zeros((N, C, H, W), dtype=gy.dtype)
    if gx.size > 0:
        _launch(be, "roi_pool_backward", gy.dtype, gy.size,
                (gy, rois, argmax, gx, np.int64(gy.size), np.int32(C), np.int32(H), np.int32(W),
                 np.int32(PH), np.int32(PW)))
    return gx


def roi_align_forward(be, x, rois, output_size, spatial_scale, sampling_ratio, aligned):
    """``y`` ``(K, C, PH, PW)``: the average of each bin's bilinear samples."""
    xp = be.xp
    x = xp.ascontiguousarray(x)
    rois = xp.ascontiguousarray(rois, dtype=x.dtype)
    N, C, H, W = x.shape
    PH, PW = output_size
    y = xp.zeros((rois.shape[0], C, PH, PW), dtype=x.dtype)
    if x.size > 0:
        _launch(be, "roi_align_forward", x.dtype, y.size,
                (x, rois, y, np.int64(y.size), np.int32(C), np.int32(H), np.int32(W), np.int32(PH),
                 np.int32(PW), x.dtype.type(spatial_scale), np.int32(sampling_ratio), np.int32(bool(aligned))))
    return y


def roi_align_backward(be, gy, rois, x_shape, spatial_scale, sampling_ratio, aligned):
    """``gx`` of ``x_shape``: each sample sends ``gy · w_i / count`` (atomically) to four pixels."""
    xp = be.xp
    gy = xp.ascontiguousarray(gy)
    rois = xp.ascontiguousarray(rois, dtype=gy.dtype)
    N, C, H, W = x_shape
    PH, PW = gy.shape[2], gy.shape[3]
    gx = xp.zeros((N, C, H, W), dtype=gy.dtype)
    if gx.size > 0:
        _launch(be, "roi_align_backward", gy.dtype, gy.size,
                (gy, rois, gx, np.int64(gy.size), np.int32(C), np.int32(H), np.int32(W), np.int32(PH),
                 np.int32(PW), gy.dtype.type(spatial_scale), np.int32(sampling_ratio), np.int32(bool(aligned))))
    return gx
