"""What torchvision's detectors do to images before the network and to detections after it.

:class:`GeneralizedRCNNTransform`, per image ``(C, H, W)`` of a list (sizes may differ):

1. normalise: ``(x − mean[c]) / std[c]``;
2. resize: ``scale = min(min_size / min(H, W), max_size / max(H, W))``, output
   ``(⌊H·scale⌋, ⌊W·scale⌋)`` (bilinear, ``align_corners=False``, sampling at the ratio of the
   sizes: torchvision's ``recompute_scale_factor=True``), or exactly ``fixed_size = (W, H)``;
   target boxes are multiplied by ``(W'/W, H'/H)`` (float32 ratios), masks resized with nearest;
3. batch: zero-pad every image at the bottom/right to the largest ``H``, ``W`` of the batch
   rounded up to a multiple of ``size_divisible`` (32), into one ``(N, C, H_pad, W_pad)`` tensor.

It returns an :class:`ImageList` (the batch and the resized sizes ``(H', W')`` before padding) and
the transformed targets; :meth:`GeneralizedRCNNTransform.postprocess` maps detections back to the
original image sizes.
"""
import math

import numpy as np

from ... import functional as F
from ... import nn
from ...autograd import no_grad
from ...functional.resample import UpsampleBilinear2d, linear_table
from ...tensor import Tensor, to_host


class ImageList:
    """A padded batch ``tensors`` ``(N, C, H_pad, W_pad)`` and each image's size ``image_sizes``
    ``[(H_i, W_i)]`` before padding (torchvision's ``ImageList``)."""

    def __init__(self, tensors, image_sizes):
        self.tensors = tensors
        self.image_sizes = [tuple(int(v) for v in s) for s in image_sizes]

    def to(self, device):
        """The same batch on ``device``."""
        return ImageList(self.tensors.to(device), self.image_sizes)


def resize_boxes(boxes, original_size, new_size):
    """Scale ``(K, 4)`` boxes from ``original_size = (H, W)`` to ``new_size = (H', W')``: x by
    ``W'/W``, y by ``H'/H`` (ratios rounded to float32 as torchvision's)."""
    b = np.asarray(to_host(boxes), dtype=np.float32).reshape(-1, 4)
    rh = np.float32(new_size[0]) / np.float32(original_size[0])
    rw = np.float32(new_size[1]) / np.float32(original_size[1])
    return b * np.array([rw, rh, rw, rh], dtype=np.float32)


def resize_bilinear(image, size):
    """Resize a ``(C, H, W)`` Tensor to ``size = (H', W')`` bilinearly (``align_corners=False``),
    PyTorch's taps and weights; differentiable."""
    x = image.reshape(1, *image.shape)
    y = UpsampleBilinear2d.apply(x, tables_h=linear_table(image.shape[1], size[0], False, dtype=image.dtype),
                                 tables_w=linear_table(image.shape[2], size[1], False, dtype=image.dtype))
    return y.reshape(*y.shape[1:])


def _resized_size(h, w, min_size, max_size):
    """torchvision's scale rule: ``scale = min(min_size/min(h, w), max_size/max(h, w))``,
    size ``(⌊h·scale⌋, ⌊w·scale⌋)``; returns ``(scale, size)``."""
    scale = min(min_size / min(h, w), max_size / max(h, w))
    return scale, (int(math.floor(float(h) * scale)), int(math.floor(float(w) * scale)))


class GeneralizedRCNNTransform(nn.Module):
    """Normalise, resize and batch images (and their targets) for a torchvision-style detector.

    Args:
        min_size: the shorter side after resizing (an int, or a tuple: training draws one at
            random per image, eval uses the last).
        max_size: the longer side is at most this.
        image_mean, image_std: per-channel statistics (ImageNet's for the torchvision models).
        size_divisible: the padded batch's ``H``, ``W`` are multiples of this (32).
        fixed_size: ``(W, H)`` to resize every image to exactly, ignoring min/max size.
        seed: the seed of the random choice of ``min_size`` in training.

    ``forward(images, targets=None) -> (ImageList, targets)``: ``images`` a list of ``(C, H_i, W_i)``
    float Tensors or arrays; ``targets`` a list of dicts with ``boxes`` ``(G, 4)`` and optionally
    ``masks`` ``(G, H_i, W_i)`` (other keys are passed through); returned targets hold NumPy
    arrays (boxes float32, masks uint8), ready for the NumPy target assignment.
    """

    def __init__(self, min_size, max_size, image_mean, image_std, size_divisible=32, fixed_size=None, seed=0):
        super().__init__()
        if not isinstance(min_size, (list, tuple)):
            min_size = (min_size,)
        if len(min_size) == 0 or any(not s > 0 for s in min_size) or not max_size > 0:
            raise ValueError(f"GeneralizedRCNNTransform: min_size and max_size must be positive, got "
                             f"{min_size!r} and {max_size!r}")
        if len(image_mean) != len(image_std) or any(not s > 0 for s in image_std):
            raise ValueError(f"GeneralizedRCNNTransform: image_mean {list(image_mean)} and image_std "
                             f"{list(image_std)} must have one entry per channel, std > 0")
        if fixed_size is not None and len(fixed_size) != 2:
            raise ValueError(f"GeneralizedRCNNTransform: fixed_size must be (W, H), got {fixed_size!r}")
        self.min_size, self.max_size = tuple(min_size), max_size
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.size_divisible, self.fixed_size = int(size_divisible), fixed_size
        self.rng = np.random.default_rng(seed)

    def extra_repr(self):
        return (f"min_size={self.min_size}, max_size={self.max_size}, mean={self.image_mean}, "
                f"std={self.image_std}, size_divisible={self.size_divisible}")

    # ---- single images ------------------------------------------------------------------------
    def _as_image(self, image, i):
        if not isinstance(image, Tensor):
            arr = np.asarray(image)
            if arr.dtype.kind != "f":
                raise TypeError(f"GeneralizedRCNNTransform: image {i} must be a float image in [0, 1], got dtype {arr.dtype}")
            image = Tensor(arr)
        if image.ndim != 3:
            raise ValueError(f"GeneralizedRCNNTransform: images must be a list of 3-D (C, H, W) tensors, "
                             f"image {i} has shape {tuple(image.shape)}")
        if image.dtype.kind != "f":
            raise TypeError(f"GeneralizedRCNNTransform: image {i} must be floating point, got dtype {image.dtype}")
        if image.shape[0] != len(self.image_mean):
            raise ValueError(f"GeneralizedRCNNTransform: image {i} has {image.shape[0]} channels, image_mean "
                             f"has {len(self.image_mean)}")
        if min(image.shape[1:]) < 1:
            raise ValueError(f"GeneralizedRCNNTransform: image {i} is empty, shape {tuple(image.shape)}")
        return image

    def normalize(self, image):
        """``(image − mean[:, None, None]) / std[:, None, None]`` of a ``(C, H, W)`` Tensor."""
        xp = image.device.xp
        mean = xp.asarray(self.image_mean, dtype=image.dtype)[:, None, None]
        std = xp.asarray(self.image_std, dtype=image.dtype)[:, None, None]
        return Tensor._from_array((image.data - mean) / std, image.device)

    def resize(self, image, target=None):
        """Resize a ``(C, H, W)`` Tensor (and its target) by the rule of the module docstring."""
        h, w = image.shape[-2:]
        if self.training and len(self.min_size) > 1:
            size = self.min_size[int(self.rng.integers(len(self.min_size)))]
        else:
            size = self.min_size[-1]
        if self.fixed_size is not None:
            out = (int(self.fixed_size[1]), int(self.fixed_size[0]))
        else:
            _, out = _resized_size(h, w, size, self.max_size)
        same = tuple(out) == (h, w)             # nothing to resample (e.g. canvases already at min_size)
        if not same:
            image = resize_bilinear(image, out)
        if target is None:
            return image, target
        target = dict(target)
        if "boxes" in target:
            target["boxes"] = resize_boxes(target["boxes"], (h, w), out)
        if "masks" in target:
            masks = np.asarray(to_host(target["masks"]))
            if len(masks) and same:
                masks = masks.astype(np.uint8)
            elif len(masks):
                m = Tensor(masks[:, None].astype(np.float32))
                masks = F.interpolate(m, size=out, mode="nearest").numpy()[:, 0].astype(np.uint8)
            else:
                masks = np.zeros((0,) + out, dtype=np.uint8)
            target["masks"] = masks
        return image, target

    def batch_images(self, images):
        """Zero-pad ``(C, H_i, W_i)`` Tensors into ``(N, C, H_pad, W_pad)``, ``H_pad = ⌈max H_i / d⌉·d``."""
        c = images[0].shape[0]
        d = float(self.size_divisible)
        hmax = int(math.ceil(max(im.shape[1] for im in images) / d) * d)
        wmax = int(math.ceil(max(im.shape[2] for im in images) / d) * d)
        dev = images[0].device
        batch = dev.xp.zeros((len(images), c, hmax, wmax), dtype=images[0].dtype)
        for i, im in enumerate(images):
            batch[i, :, :im.shape[1], :im.shape[2]] = im.data
        return Tensor._from_array(batch, dev)

    def forward(self, images, targets=None):
        if not isinstance(images, (list, tuple)) or len(images) == 0:
            raise ValueError(f"GeneralizedRCNNTransform: images must be a non-empty list of (C, H, W) tensors, "
                             f"got {type(images).__name__}")
        if targets is not None and len(targets) != len(images):
            raise ValueError(f"GeneralizedRCNNTransform: {len(targets)} targets for {len(images)} images")
        with no_grad():
            images = [self._as_image(im, i) for i, im in enumerate(images)]
            devices = {im.device for im in images}
            if len(devices) > 1:
                raise ValueError(f"GeneralizedRCNNTransform: images are on several devices {sorted(d.name for d in devices)}")
            out_images, out_targets = [], [] if targets is not None else None
            for i, image in enumerate(images):
                target = targets[i] if targets is not None else None
                image, target = self.resize(self.normalize(image), target)
                out_images.append(image)
                if targets is not None:
                    out_targets.append(target)
            sizes = [tuple(im.shape[-2:]) for im in out_images]
            return ImageList(self.batch_images(out_images), sizes), out_targets

    def postprocess(self, result, image_shapes, original_image_sizes):
        """Map each image's detections from its resized size back to its original size: boxes by
        :func:`resize_boxes`; ``masks`` ``(D, 1, M, M)`` pasted into the original image by
        ``roi_heads.paste_masks_in_image`` (Mask R-CNN). Returns ``result`` (unchanged in training)."""
        if self.training:
            return result
        for pred, im_s, o_im_s in zip(result, image_shapes, original_image_sizes):
            pred["boxes"] = resize_boxes(pred["boxes"], im_s, o_im_s)
            if "masks" in pred:
                from .roi_heads import paste_masks_in_image  # Mask R-CNN's paste, with its model
                pred["masks"] = paste_masks_in_image(pred["masks"], pred["boxes"], o_im_s)
        return result
