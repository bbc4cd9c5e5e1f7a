"""Region-of-interest pooling: ``roi_pool`` (Fast R-CNN) and ``roi_align`` (Mask R-CNN).

Both map a feature map ``x`` ``(N, C, H, W)`` and ``K`` boxes to a fixed-size ``(K, C, PH, PW)``
output. A box is a row ``(batch_index, x1, y1, x2, y2)`` of ``rois`` ``(K, 5)`` in image
coordinates; ``spatial_scale`` maps them to the feature map (``1/16`` for a stride-16 backbone).
The exact arithmetic (torchvision's) is in ``kernels/reference/roi.py``. Gradients flow to ``x``
only (as torchvision: box coordinates are not differentiated).
"""
import math

import numpy as np

from ..autograd import Function
from ..dtypes import check_float
from ..kernels.geometry import as_tuple
from ..tensor import Tensor, to_host

#: RoI coordinates times ``spatial_scale`` must lie within this bound, so that every rounded
#: coordinate and sample count is an exact integer in float32 and fits a C ``int``.
COORDINATE_LIMIT = 2.0 ** 24

#: The largest ``sampling_ratio`` roi_align takes: a bin row costs up to ``sampling_ratio``
#: sample evaluations (see :func:`roi_align`), and the grid sizes stay exact in float32 and far
#: from overflowing the kernels' 64-bit counts.
SAMPLING_RATIO_LIMIT = 2 ** 16


class RoIPool(Function):
    """Max over each of the PH×PW bins of every RoI.

    Forward: ``y[k, c, ph, pw] = max_{(h, w) in bin(k, ph, pw)} x[n_k, c, h, w]`` (0 for an empty
    bin), ``argmax`` = flat index ``h·W + w`` of the first maximum (−1 for an empty bin).
    Backward: ``gx[n_k, c].flat[argmax[k, c, ph, pw]] += gy[k, c, ph, pw]``.
    """

    @staticmethod
    def forward(ctx, x, rois, output_size=None, spatial_scale=1.0):
        y, argmax = ctx.kernels.roi_pool_forward(x, rois, output_size, spatial_scale)
        ctx.save_for_backward(rois, argmax)
        ctx.x_shape = x.shape
        return y

    @staticmethod
    def backward(ctx, gy):
        rois, argmax = ctx.saved
        return ctx.kernels.roi_pool_backward(gy, rois, argmax, ctx.x_shape), None


class RoIAlign(Function):
    """Average of bilinear samples on a regular grid inside each bin (no rounding of the box).

    Forward: ``y[k, c, ph, pw] = (1/count) Σ_s Σ_{j<4} w_{s,j} · x[n_k, c, p_{s,j}]`` over the
    ``grid_h × grid_w`` samples ``s`` of the bin (pixels ``p`` and weights ``w`` of bilinear
    interpolation), ``count = max(grid_h·grid_w, 1)``. Bilinear interpolation is separable, so
    this equals ``Σ_h Σ_w wy[h]·wx[w]·x[n_k, c, h, w]`` with per-bin row and column weights
    ``wy = (1/grid_h) Σ_iy hat(y_iy)``, ``wx`` likewise: the form the kernels evaluate.
    Backward (linear in ``x``): ``gx[n_k, c, h, w] += gy[k, c, ph, pw] · wy[h] · wx[w]``.
    """

    @staticmethod
    def forward(ctx, x, rois, output_size=None, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
        ctx.save_for_backward(rois)
        ctx.params = (x.shape, spatial_scale, sampling_ratio, aligned)
        return ctx.kernels.roi_align_forward(x, rois, output_size, spatial_scale, sampling_ratio, aligned)

    @staticmethod
    def backward(ctx, gy):
        (rois,) = ctx.saved
        x_shape, spatial_scale, sampling_ratio, aligned = ctx.params
        gx = ctx.kernels.roi_align_backward(gy, rois, x_shape, spatial_scale, sampling_ratio, aligned)
        return gx, None


# ---- argument checks (all on the host, before any kernel runs) ----------------------------------

def _check_input(x, op):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    check_float(op, "input", x)


def convert_boxes_to_roi_format(boxes, op="roi"):
    """A list of per-image ``(K_i, 4)`` boxes -> one ``(sum K_i, 5)`` NumPy array ``(i, x1, y1, x2, y2)``."""
    rows = []
    for i, b in enumerate(boxes):
        b = to_host(b)
        if b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(f"{op}: boxes[{i}] must have shape (K_{i}, 4) (x1, y1, x2, y2), got {b.shape}")
        rows.append(np.concatenate([np.full((b.shape[0], 1), i, dtype=np.float64), b.astype(np.float64)], axis=1))
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, 5))


def _check_rois(rois, x, spatial_scale, op):
    """Validated ``(K, 5)`` RoIs as a Tensor on ``x``'s device in ``x``'s dtype."""
    if isinstance(rois, (list, tuple)) and all(isinstance(b, Tensor) or hasattr(b, "shape") for b in rois):
        host = convert_boxes_to_roi_format(rois, op)  # per-image (K_i, 4) boxes
    else:
        host = to_host(rois)
    if host.ndim != 2 or host.shape[1] != 5:
        raise ValueError(
            f"{op}: rois must have shape (K, 5) rows (batch_index, x1, y1, x2, y2), or be a list of "
            f"per-image (K_i, 4) boxes; got shape {host.shape}")
    if host.dtype.kind not in "fiu":
        raise TypeError(f"{op}: rois must be numeric, got dtype {host.dtype}")
    host = host.astype(np.float64)
    if not np.isfinite(host).all():
        bad = int(np.argwhere(~np.isfinite(host))[0][0])
        raise ValueError(f"{op}: rois must be finite, row {bad} is {host[bad].tolist()}")
    batch = host[:, 0]
    if (batch != np.floor(batch)).any():
        bad = int(np.argwhere(batch != np.floor(batch))[0][0])
        raise ValueError(f"{op}: rois[:, 0] (batch index) must hold integers, row {bad} has {batch[bad]}")
    N = x.shape[0]
    if ((batch < 0) | (batch >= N)).any():
        bad = int(np.argwhere((batch < 0) | (batch >= N))[0][0])
        raise ValueError(
            f"{op}: rois[:, 0] (batch index) must be in [0, {N}) for an input with N={N}, "
            f"row {bad} has {int(batch[bad])}")
    if host.shape[0] and np.abs(host[:, 1:]).max() * spatial_scale > COORDINATE_LIMIT:
        raise ValueError(
            f"{op}: rois coordinates times spatial_scale must lie within ±2**24, "
            f"got {np.abs(host[:, 1:]).max() * spatial_scale:g}")
    return Tensor._from_array(x.device.from_numpy(host.astype(x.dtype)), x.device)


def _check_params(output_size, spatial_scale, op):
    size = as_tuple(output_size, 2, "output_size", op)
    if min(size) < 1:
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    if isinstance(spatial_scale, bool) or not isinstance(spatial_scale, (int, float, np.floating, np.integer)):
        raise TypeError(f"{op}: spatial_scale must be a number, got {spatial_scale!r}")
    if not (math.isfinite(spatial_scale) and spatial_scale > 0):
        raise ValueError(f"{op}: spatial_scale must be finite and > 0, got {spatial_scale!r}")
    return size, float(spatial_scale)


# ---- public functions ----------------------------------------------------------------------------

def roi_pool(input, boxes, output_size, spatial_scale=1.0):
    """RoI max pooling (Fast R-CNN), torchvision's ``roi_pool``.

    Each box is rounded to feature-map pixels (``round(v·spatial_scale)``, C's ``round``: half
    away from zero, as torchvision; the same on every device), covers ``x2r − x1r + 1`` columns
    (at least 1), and is cut into ``PH × PW`` bins ``[floor(i·bin), ceil((i+1)·bin))`` clipped to
    the map; each bin gives its maximum (0 if empty).

    Args:
        input: ``Tensor[N, C, H, W]``.
        boxes: ``Tensor[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` (an array works too), or a
            list of ``N`` per-image ``Tensor[K_i, 4]``.
        output_size: ``int`` or ``(PH, PW)``.
        spatial_scale: feature-map size / image size (> 0).

    Shape:
        output: ``Tensor[K, C, PH, PW]``; gradient to ``input`` only.

    Example:
        >>> x = mc.randn(1, 8, 32, 32)
        >>> y = F.roi_pool(x, mc.tensor([[0, 16., 16., 300., 200.]]), 7, spatial_scale=1 / 16)
        >>> y.shape
        (1, 8, 7, 7)
    """
    op = "roi_pool"
    _check_input(input, op)
    size, scale = _check_params(output_size, spatial_scale, op)
    rois = _check_rois(boxes, input, scale, op)
    return RoIPool.apply(input, rois, output_size=size, spatial_scale=scale)


def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """RoI align (Mask R-CNN), torchvision's ``roi_align``.

    The box is not rounded: each of its ``PH × PW`` bins averages ``grid_h × grid_w`` bilinear
    samples (``sampling_ratio`` per axis, or ``ceil(roi_h / PH)`` when ``sampling_ratio <= 0``).
    ``aligned=True`` shifts the box by −0.5 pixel (pixel centres at half-integers, Detectron2's
    choice) and drops the minimum 1×1 box size.

    Cost: the average is evaluated in separable form (see :class:`RoIAlign`), samples outside the
    map skipped, so a RoI costs O(PH·S_h + PW·S_w) plus the taps, not O(PH·PW·grid_h·grid_w):
    ``S`` = the samples of one bin row that land on the map, at most ``sampling_ratio``, and
    about ``2·(H + 2)`` with adaptive sampling however large the box (a box of 10⁶ pixels has
    10¹² samples a bin grid, nearly all outside). Memory: ``PH·H + PW·W`` weights a RoI.

    Args:
        input: ``Tensor[N, C, H, W]``.
        boxes: ``Tensor[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)``, or a list of per-image
            ``Tensor[K_i, 4]``.
        output_size: ``int`` or ``(PH, PW)``.
        spatial_scale: feature-map size / image size (> 0).
        sampling_ratio: samples per bin and axis, at most ``SAMPLING_RATIO_LIMIT`` (65536);
            ``<= 0`` adapts to the box size.
        aligned: use the half-pixel offset.

    Shape:
        output: ``Tensor[K, C, PH, PW]``; gradient to ``input`` only.

    Example:
        >>> y = F.roi_align(mc.randn(2, 4, 16, 16), mc.tensor([[1, 2., 2., 9.5, 12.]]), (3, 3), aligned=True)
        >>> y.shape
        (1, 4, 3, 3)
    """
    op = "roi_align"
    _check_input(input, op)
    size, scale = _check_params(output_size, spatial_scale, op)
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, (int, np.integer)):
        raise TypeError(f"{op}: sampling_ratio must be an int, got {sampling_ratio!r}")
    if sampling_ratio > SAMPLING_RATIO_LIMIT:
        raise ValueError(f"{op}: sampling_ratio must be <= {SAMPLING_RATIO_LIMIT}, got {sampling_ratio} "
                         f"(samples per bin and axis; <= 0 adapts them to the box size)")
    if not isinstance(aligned, (bool, np.bool_)):
        raise TypeError(f"{op}: aligned must be a bool, got {aligned!r}")
    rois = _check_rois(boxes, input, scale, op)
    return RoIAlign.apply(input, rois, output_size=size, spatial_scale=scale,
                          sampling_ratio=max(int(sampling_ratio), 0), aligned=bool(aligned))
