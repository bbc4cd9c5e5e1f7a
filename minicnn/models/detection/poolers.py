"""Multi-scale RoI align: pool each box from the pyramid level that matches its size (FPN, eq. 1).

A box of ``w × h`` image pixels goes to level ``k = ⌊k0 + log2(√(w·h) / 224) + ε⌋`` clamped to the
levels present (``k0 = 4``, ``ε = 1e-6``: torchvision's ``LevelMapper``), and is pooled there with
:func:`~minicnn.functional.roi_align` at that level's ``spatial_scale`` (``2^-k``, inferred from the
feature-map and image sizes). A model with one feature map pools every box from it.
"""
import math

import numpy as np

from ... import nn
from ...functional import cat, roi_align
from ...tensor import Tensor, to_host

__all__ = ["LevelMapper", "MultiScaleRoIAlign", "infer_scale"]


class LevelMapper:
    """The FPN level of each box (FPN paper, eq. 1), as an index into the pooled levels.

    ``level = clamp(⌊canonical_level + log2(√area / canonical_scale) + eps⌋, k_min, k_max) − k_min``,
    computed in the boxes' floating dtype (float32 for float32 boxes, as torchvision).

    Args:
        k_min, k_max: the first and last pyramid levels pooled (e.g. 2 and 5 for P2–P5).
        canonical_scale: a box of ``canonical_scale²`` pixels maps to ``canonical_level`` (224, 4).
        eps: added before the floor so that exact powers of two land on the upper level.

    Calling it with a list of per-image ``(K_i, 4)`` boxes returns int64 ``(Σ K_i,)`` indices in
    ``0 .. k_max − k_min``.
    """

    def __init__(self, k_min, k_max, canonical_scale=224, canonical_level=4, eps=1e-6):
        if k_min > k_max:
            raise ValueError(f"LevelMapper: k_min ({k_min}) must be <= k_max ({k_max})")
        self.k_min, self.k_max = int(k_min), int(k_max)
        self.s0, self.lvl0, self.eps = canonical_scale, canonical_level, eps

    def __call__(self, boxlists):
        boxes = [np.asarray(to_host(b)).reshape(-1, 4) for b in boxlists]
        b = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32)
        dtype = b.dtype if b.dtype.kind == "f" else np.dtype(np.float32)
        b = b.astype(dtype, copy=False)
        s = np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
        with np.errstate(divide="ignore"):  # an empty box maps to the lowest level, as log2(0) = -inf
            lvl = np.floor(dtype.type(self.lvl0) + np.log2(s / dtype.type(self.s0)) + dtype.type(self.eps))
        lvl = np.clip(lvl, self.k_min, self.k_max)
        return lvl.astype(np.int64) - self.k_min


def infer_scale(feature_size, image_size):
    """``2^round(log2(H_feature / H_image))``: the power-of-two scale of a feature map (torchvision
    takes the height ratio)."""
    approx = float(feature_size[0]) / float(image_size[0])
    return 2.0 ** round(math.log2(approx))


class MultiScaleRoIAlign(nn.Module):
    """RoI align over the named maps of a feature pyramid, each box on the level of its size.

    Args:
        featmap_names: the keys of the feature dict to pool from, finest first (e.g. ``["0", "1",
            "2", "3"]`` for FPN's P2–P5).
        output_size: ``int`` or ``(PH, PW)`` (7 for the box head, 14 for the mask head).
        sampling_ratio: bilinear samples per bin and axis (2 in Faster/Mask R-CNN).
        canonical_scale, canonical_level: the :class:`LevelMapper` constants (224, 4).

    Forward ``(x, boxes, image_shapes)``:
        x: dict name -> ``Tensor[N, C, H_l, W_l]`` (all levels with the same ``C``);
        boxes: list of ``N`` per-image ``(K_i, 4)`` boxes in image pixels;
        image_shapes: list of ``(H, W)`` of the images the features were computed from (before
            padding); the scale of level ``l`` is ``2^round(log2(H_l / max H))``.

    Returns ``Tensor[Σ K_i, C, PH, PW]``, rows in the order of the boxes; ``aligned=False`` as in
    torchvision. Gradients reach the features only.
    """

    def __init__(self, featmap_names, output_size, sampling_ratio, *, canonical_scale=224, canonical_level=4):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        if len(featmap_names) == 0:
            raise ValueError("MultiScaleRoIAlign: featmap_names must name at least one feature map")
        self.featmap_names = list(featmap_names)
        self.output_size = tuple(int(s) for s in output_size)
        self.sampling_ratio = int(sampling_ratio)
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def setup_scales(self, features, image_shapes):
        """``(scales, LevelMapper)`` of the pooled feature maps for a batch of images."""
        if not image_shapes:
            raise ValueError("MultiScaleRoIAlign: image_shapes must not be empty")
        original = (max(int(s[0]) for s in image_shapes), max(int(s[1]) for s in image_shapes))
        scales = [infer_scale(f.shape[-2:], original) for f in features]
        lvl_min = -math.log2(scales[0])
        lvl_max = -math.log2(scales[-1])
        mapper = LevelMapper(int(lvl_min), int(lvl_max), self.canonical_scale, self.canonical_level)
        return scales, mapper

    def forward(self, x, boxes, image_shapes):
        missing = [k for k in self.featmap_names if k not in x]
        if missing:
            raise ValueError(f"MultiScaleRoIAlign: feature maps {missing} not in the input (keys {list(x.keys())})")
        features = [v for k, v in x.items() if k in self.featmap_names]
        if len(boxes) != features[0].shape[0]:
            raise ValueError(f"MultiScaleRoIAlign: {len(boxes)} lists of boxes for a batch of {features[0].shape[0]}")
        scales, mapper = self.setup_scales(features, image_shapes)
        rois = _roi_rows(boxes)
        if len(features) == 1:
            return roi_align(features[0], rois, self.output_size, scales[0], self.sampling_ratio)
        levels = mapper(boxes)
        pieces, order = [], []
        for level, (feature, scale) in enumerate(zip(features, scales)):
            idx = np.flatnonzero(levels == level)
            if len(idx) == 0:
                continue
            pieces.append(roi_align(feature, rois[idx], self.output_size, scale, self.sampling_ratio))
            order.append(idx)
        if not pieces:
            return roi_align(features[0], rois, self.output_size, scales[0], self.sampling_ratio)
        pooled = pieces[0] if len(pieces) == 1 else cat(pieces, axis=0)
        order = np.concatenate(order)
        if (order == np.arange(len(order))).all():
            return pooled
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return pooled[Tensor._from_array(pooled.device.from_numpy(inverse), pooled.device)]

    def extra_repr(self):
        return f"featmap_names={self.featmap_names}, output_size={self.output_size}, sampling_ratio={self.sampling_ratio}"


def _roi_rows(boxes):
    """Per-image ``(K_i, 4)`` boxes -> one ``(Σ K_i, 5)`` array of rows ``(i, x1, y1, x2, y2)``, in
    the boxes' floating dtype."""
    rows = []
    for i, b in enumerate(boxes):
        b = np.asarray(to_host(b))
        if b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(f"MultiScaleRoIAlign: boxes[{i}] must have shape (K_{i}, 4), got {b.shape}")
        dtype = b.dtype if b.dtype.kind == "f" else np.float32
        rows.append(np.concatenate([np.full((len(b), 1), i, dtype), b.astype(dtype)], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 5), np.float32)
