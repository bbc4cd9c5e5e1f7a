"""torchvision's ``AnchorGenerator`` as a module over an :class:`ImageList` and feature maps.

For feature map ``i`` of size ``(H_i, W_i)`` in a padded batch of size ``(H, W)``, the stride is
``(H // H_i, W // W_i)`` (integer division) and every cell ``(r, c)`` holds the cell anchors of
``sizes[i] × aspect_ratios[i]`` (:func:`minicnn.functional.boxes.cell_anchors`: zero-centred,
rounded) shifted by ``(c·sw, r·sh, c·sw, r·sh)``. Anchors are ordered by map, then row-major cell,
then ratio-major cell anchor: the order in which the heads flatten their outputs.

:class:`DefaultBoxGenerator` (SSD's default boxes) sizes its boxes as fractions of the image instead.
"""
import math

import numpy as np

from ... import nn
from ...functional.boxes import cell_anchors, generate_anchors
from ...tensor import Tensor


class AnchorGenerator(nn.Module):
    """Anchors over several feature maps (torchvision's ``AnchorGenerator``).

    Args:
        sizes: one tuple of sizes (pixels, the square root of the anchor area) per feature map,
            e.g. ``((32,), (64,), (128,), (256,), (512,))`` for an FPN.
        aspect_ratios: one tuple of ``height / width`` ratios per feature map.

    ``forward(image_list, feature_maps)`` returns a list (one per image) of
    ``Tensor[Σ_i H_i·W_i·A_i, 4]`` (no grad, on the feature maps' device), ``A_i =
    len(sizes[i])·len(aspect_ratios[i])``. ``cell_anchors`` holds the base anchors per map.
    """

    def __init__(self, sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)):
        super().__init__()
        if not isinstance(sizes[0], (list, tuple)):
            sizes = tuple((s,) for s in sizes)
        if not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = (aspect_ratios,) * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise ValueError(f"AnchorGenerator: sizes ({len(sizes)} maps) and aspect_ratios ({len(aspect_ratios)} "
                             "maps) must have one tuple per feature map")
        self.sizes = tuple(tuple(s) for s in sizes)
        self.aspect_ratios = tuple(tuple(r) for r in aspect_ratios)
        self.cell_anchors = [cell_anchors(s, r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def num_anchors_per_location(self):
        """``[len(sizes[i]) · len(aspect_ratios[i])]`` per feature map."""
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def extra_repr(self):
        return f"sizes={self.sizes}, aspect_ratios={self.aspect_ratios}"

    def forward(self, image_list, feature_maps):
        grid_sizes = [tuple(int(v) for v in fm.shape[-2:]) for fm in feature_maps]
        if len(grid_sizes) != len(self.cell_anchors):
            raise ValueError(f"AnchorGenerator: {len(grid_sizes)} feature maps but sizes/aspect_ratios for "
                             f"{len(self.cell_anchors)}; there must be one tuple of sizes per feature map")
        H, W = (int(v) for v in image_list.tensors.shape[-2:])
        for g in grid_sizes:
            if min(g) < 1 or g[0] > H or g[1] > W:
                raise ValueError(f"AnchorGenerator: feature map of size {g} does not fit the image batch ({H}, {W})")
        strides = [(H // g[0], W // g[1]) for g in grid_sizes]
        device = feature_maps[0].device
        anchors = generate_anchors(grid_sizes, strides, self.sizes, self.aspect_ratios, dtype=np.float32,
                                   device=device.name)
        return [anchors for _ in image_list.image_sizes]


class DefaultBoxGenerator(nn.Module):
    """SSD's default boxes (Liu et al. 2016, §2.2; torchvision's ``DefaultBoxGenerator``).

    Feature map ``k`` of ``m`` gets the scale ``s_k = s_min + (s_max − s_min)·k/(m − 1)``
    (``min_ratio``, ``max_ratio``; one map: ``s_0 = min_ratio, s_1 = max_ratio``) and
    ``s_m = 1``, or the given ``scales`` (``m + 1`` values). Its boxes, as fractions of the image
    (width, height): ``(s_k, s_k)``, ``(s'_k, s'_k)`` with ``s'_k = sqrt(s_k·s_{k+1})``, and for
    each ratio ``a`` of ``aspect_ratios[k]`` the pair ``(s_k·√a, s_k/√a)``, ``(s_k/√a, s_k·√a)``:
    ``2 + 2·len(aspect_ratios[k])`` boxes per cell (6 for ratios ``[2, 3]``: {1, 2, 3, 1/2, 1/3}
    plus the extra square). Centres: cell ``(i, j)`` at ``((j + ½)/f_x, (i + ½)/f_y)`` with
    ``f = (H_img/step_k, W_img/step_k)`` when ``steps`` are given, else the map's size. With
    ``clip`` the fractional widths and heights are clamped to ``[0, 1]`` (centre form).

    Args:
        aspect_ratios: one list of ratios (>= 1 suffices: each adds its inverse) per feature map.
        min_ratio, max_ratio: ``s_min``, ``s_max`` (0.15, 0.9) when ``scales`` is None.
        scales: ``m + 1`` scales (SSD300: 0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05).
        steps: one stride in pixels per map (SSD300: 8, 16, 32, 64, 100, 300), or None.
        clip: clamp the sizes to the image.

    ``forward(image_list, feature_maps)`` -> one ``Tensor[Σ_k H_k·W_k·A_k, 4]`` per image of
    boxes ``(cx − w/2, cy − h/2, cx + w/2, cy + h/2)`` in pixels of the padded batch ``(H, W)``,
    ordered by map, then row-major cell, then the box order above (the heads' flattening order).
    """

    def __init__(self, aspect_ratios, min_ratio=0.15, max_ratio=0.9, scales=None, steps=None, clip=True):
        super().__init__()
        if not isinstance(aspect_ratios, (list, tuple)) or len(aspect_ratios) == 0 or \
                not all(isinstance(r, (list, tuple)) for r in aspect_ratios):
            raise ValueError(f"DefaultBoxGenerator: aspect_ratios must be a non-empty list of lists (one per feature "
                             f"map), got {aspect_ratios!r}")
        if any(not a > 0 for r in aspect_ratios for a in r):
            raise ValueError(f"DefaultBoxGenerator: aspect ratios must be positive, got {aspect_ratios!r}")
        if steps is not None and len(aspect_ratios) != len(steps):
            raise ValueError(f"DefaultBoxGenerator: aspect_ratios ({len(aspect_ratios)} maps) and steps "
                             f"({len(steps)}) should have the same length")
        m = len(aspect_ratios)
        if scales is None:
            if m > 1:
                scales = [min_ratio + (max_ratio - min_ratio) * k / (m - 1.0) for k in range(m)] + [1.0]
            else:
                scales = [min_ratio, max_ratio]
        if len(scales) != m + 1 or any(not s > 0 for s in scales):
            raise ValueError(f"DefaultBoxGenerator: scales must be {m + 1} positive numbers (one per feature map "
                             f"and one more), got {list(scales)!r}")
        self.aspect_ratios = [list(r) for r in aspect_ratios]
        self.steps, self.clip = (None if steps is None else list(steps)), bool(clip)
        self.scales = [float(s) for s in scales]
        self._wh_pairs = self._generate_wh_pairs(m)

    def _generate_wh_pairs(self, num_outputs):
        """Per map a float32 ``(A_k, 2)`` array of (width, height) fractions, in the box order above."""
        pairs = []
        for k in range(num_outputs):
            s_k, s_prime = self.scales[k], math.sqrt(self.scales[k] * self.scales[k + 1])
            wh = [[s_k, s_k], [s_prime, s_prime]]
            for ar in self.aspect_ratios[k]:
                w, h = s_k * math.sqrt(ar), s_k / math.sqrt(ar)
                wh.extend([[w, h], [h, w]])
            pairs.append(np.asarray(wh, dtype=np.float32))
        return pairs

    def num_anchors_per_location(self):
        """``[2 + 2·len(aspect_ratios[k])]`` per feature map."""
        return [2 + 2 * len(r) for r in self.aspect_ratios]

    def extra_repr(self):
        return f"aspect_ratios={self.aspect_ratios}, clip={self.clip}, scales={self.scales}, steps={self.steps}"

    def _grid_default_boxes(self, grid_sizes, image_size):
        """``(Σ_k H_k·W_k·A_k, 4)`` float32 boxes ``(cx, cy, w, h)`` as fractions of the image."""
        out = []
        for k, (fh, fw) in enumerate(grid_sizes):
            if self.steps is not None:
                fy, fx = image_size[0] / self.steps[k], image_size[1] / self.steps[k]
            else:
                fy, fx = fh, fw
            cx = (np.arange(fw, dtype=np.float32) + np.float32(0.5)) / np.float32(fx)
            cy = (np.arange(fh, dtype=np.float32) + np.float32(0.5)) / np.float32(fy)
            cy, cx = np.meshgrid(cy, cx, indexing="ij")
            wh = np.clip(self._wh_pairs[k], 0, 1) if self.clip else self._wh_pairs[k]
            A = len(wh)
            centres = np.repeat(np.stack([cx.reshape(-1), cy.reshape(-1)], axis=1), A, axis=0)
            out.append(np.concatenate([centres, np.tile(wh, (fh * fw, 1))], axis=1))
        return np.concatenate(out, axis=0)

    def forward(self, image_list, feature_maps):
        grid_sizes = [tuple(int(v) for v in fm.shape[-2:]) for fm in feature_maps]
        if len(grid_sizes) != len(self.aspect_ratios):
            raise ValueError(f"DefaultBoxGenerator: {len(grid_sizes)} feature maps but aspect_ratios for "
                             f"{len(self.aspect_ratios)}; there must be one list of ratios per feature map")
        H, W = (int(v) for v in image_list.tensors.shape[-2:])
        boxes = self._grid_default_boxes(grid_sizes, (H, W))
        size = np.array([W, H], dtype=np.float32)
        corners = np.concatenate([(boxes[:, :2] - np.float32(0.5) * boxes[:, 2:]) * size,
                                  (boxes[:, :2] + np.float32(0.5) * boxes[:, 2:]) * size], axis=1)
        device = feature_maps[0].device
        t = Tensor._from_array(device.from_numpy(corners.astype(feature_maps[0].dtype)), device)
        return [t for _ in image_list.image_sizes]
