"""torchvision's ``AnchorGenerator`` as a module over an :class:`ImageList` and feature maps.

For feature map ``i`` of size ``(H_i, W_i)`` in a padded batch of size ``(H, W)``, the stride is
``(H // H_i, W // W_i)`` (integer division) and every cell ``(r, c)`` holds the cell anchors of
``sizes[i] × aspect_ratios[i]`` (:func:`minicnn.functional.boxes.cell_anchors`: zero-centred,
rounded) shifted by ``(c·sw, r·sh, c·sw, r·sh)``. Anchors are ordered by map, then row-major cell,
then ratio-major cell anchor: the order in which the heads flatten their outputs.
"""
import numpy as np

from ... import nn
from ...functional.boxes import cell_anchors, generate_anchors


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
