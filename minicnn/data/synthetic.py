"""Localisation, detection and instance sets composed from real data, with exact targets.

* :func:`digits_on_canvas`: real MNIST digits (the embedded split) pasted on a
  larger black canvas; boxes and masks come from the digits' nonzero pixels.
* :func:`nuclei_tiles`: tiles of the embedded nuclei image with the boxes and
  masks of the nuclei they contain.

Conventions: boxes are ``(x1, y1, x2, y2)`` in continuous pixel-edge
coordinates, pixel ``(row i, column j)`` covering ``[j, j+1) x [i, i+1)``; so a
box encloses the pixels ``x1 <= j < x2``, ``y1 <= i < y2`` and its area
``(x2 - x1) (y2 - y1)`` counts them. (torchvision's ``masks_to_boxes`` returns
``x2 = last column``, one less.) Class labels are 0-based; background is not a
class.
"""
from dataclasses import dataclass

import numpy as np

from minicnn.data.datasets import digits_arrays, load_nuclei


@dataclass
class InstanceSet:
    """Images with a variable number of objects each.

    Attributes:
        images: float32 ``(N, 1, H, W)``.
        boxes: list of N float32 arrays ``(K_n, 4)``, ``(x1, y1, x2, y2)``.
        labels: list of N int64 arrays ``(K_n,)``.
        masks: list of N bool arrays ``(K_n, H, W)``, one mask per object.
    """
    images: np.ndarray
    boxes: list
    labels: list
    masks: list

    def __len__(self):
        return len(self.images)

    def __getitem__(self, n):
        """Image ``n`` and its targets as a dict (the detection-metrics format)."""
        return self.images[n], {"boxes": self.boxes[n], "labels": self.labels[n], "masks": self.masks[n]}

    def instance_masks(self):
        """int32 ``(N, H, W)``: 0 = background, ``k + 1`` where object ``k`` is (later objects on top)."""
        out = np.zeros((len(self),) + self.images.shape[2:], dtype=np.int32)
        for n, m in enumerate(self.masks):
            for k in range(len(m)):
                out[n][m[k]] = k + 1
        return out

    def as_localization(self):
        """For one object per image: ``(images, labels (N,), boxes (N, 4))`` as stacked arrays."""
        counts = {len(b) for b in self.boxes}
        if counts != {1}:
            raise ValueError(f"as_localization: needs exactly one object per image, got counts {sorted(counts)}")
        return self.images, np.concatenate(self.labels), np.concatenate(self.boxes)


def _count_range(digits_per_image):
    if np.ndim(digits_per_image) == 0:
        lo = hi = int(digits_per_image)
    else:
        lo, hi = (int(v) for v in digits_per_image)
    if not 1 <= lo <= hi:
        raise ValueError(f"digits_on_canvas: digits_per_image must be >= 1 (an int or (lo, hi)), "
                         f"got {digits_per_image}")
    return lo, hi


def digits_on_canvas(n, canvas=64, digits_per_image=1, split="train", seed=None,
                     allow_overlap=False, max_tries=50):
    """Paste real MNIST digits at random positions on ``canvas x canvas`` black images.

    Each digit is cropped to its nonzero pixels before pasting, so its box is
    exact: ``(x, y, x + w, y + h)`` for a crop of ``h x w`` pasted with its
    top-left pixel at column ``x``, row ``y``; its mask is its nonzero pixels.
    Overlapping digits combine by ``max``.

    Args:
        n: number of images.
        canvas: side of the square canvas, at least 28.
        digits_per_image: an int, or ``(lo, hi)`` for a count drawn uniformly in
            ``lo..hi`` per image.
        split: which embedded digits to draw from (``"train"`` / ``"test"``), so
            test canvases use held-out digits.
        seed: seed of the ``numpy.random.Generator``; same seed => same set.
        allow_overlap: if False, a digit whose box would intersect an earlier
            box of the same image is re-placed (up to ``max_tries`` times, then
            dropped, so an image may hold fewer digits than drawn; the first
            always fits).
    Returns:
        :class:`InstanceSet` with images in ``[0, 1]`` and labels ``0..9``.
    """
    if canvas < 28:
        raise ValueError(f"digits_on_canvas: canvas must be >= 28, got {canvas}")
    lo, hi = _count_range(digits_per_image)
    source, source_labels = digits_arrays(split)
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, canvas, canvas), dtype=np.float32)
    all_boxes, all_labels, all_masks = [], [], []
    for i in range(n):
        boxes, labels, masks = [], [], []
        for _ in range(rng.integers(lo, hi + 1)):
            d = rng.integers(len(source))
            rows, cols = np.flatnonzero(source[d].any(1)), np.flatnonzero(source[d].any(0))
            crop = source[d][rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32) / 255.0
            h, w = crop.shape
            for _ in range(max_tries):
                x, y = rng.integers(canvas - w + 1), rng.integers(canvas - h + 1)
                box = (x, y, x + w, y + h)
                if allow_overlap or all(box[0] >= b[2] or b[0] >= box[2] or box[1] >= b[3] or b[1] >= box[3]
                                        for b in boxes):
                    break
            else:
                continue                                   # no free spot: drop this digit
            region = images[i, 0, y:y + h, x:x + w]
            np.maximum(region, crop, out=region)
            mask = np.zeros((canvas, canvas), dtype=bool)
            mask[y:y + h, x:x + w] = crop > 0
            boxes.append(box)
            labels.append(source_labels[d])
            masks.append(mask)
        all_boxes.append(np.array(boxes, dtype=np.float32).reshape(-1, 4))
        all_labels.append(np.array(labels, dtype=np.int64))
        all_masks.append(np.array(masks, dtype=bool).reshape(-1, canvas, canvas))
    return InstanceSet(images, all_boxes, all_labels, all_masks)


def nuclei_tiles(tile=128, stride=None, min_pixels=1):
    """Cut the embedded nuclei image (512 x 512) into square tiles with instance targets.

    Args:
        tile: tile side; tiles start at ``0, stride, 2 stride, ...`` while they fit.
        stride: step between tiles (default ``tile``: no overlap).
        min_pixels: keep a nucleus in a tile if at least this many of its pixels are inside.
    Returns:
        :class:`InstanceSet`: images ``(T, 1, tile, tile)`` (the standardised
        image of :func:`load_nuclei`), one box/mask per nucleus visible in the
        tile (box of its visible pixels), labels all 0 (the class "nucleus").
    """
    image, mask = load_nuclei()
    stride = tile if stride is None else stride
    size = image.shape[0]
    if not 0 < tile <= size:
        raise ValueError(f"nuclei_tiles: tile must be in 1..{size}, got {tile}")
    starts = range(0, size - tile + 1, stride)
    images, all_boxes, all_labels, all_masks = [], [], [], []
    for y in starts:
        for x in starts:
            m = mask[y:y + tile, x:x + tile]
            ids, counts = np.unique(m[m > 0], return_counts=True)
            ids = ids[counts >= min_pixels]
            masks = m[None] == ids[:, None, None]                       # (K, tile, tile)
            rows, cols = masks.any(2), masks.any(1)                     # (K, tile)
            boxes = np.stack([cols.argmax(1), rows.argmax(1),
                              tile - cols[:, ::-1].argmax(1), tile - rows[:, ::-1].argmax(1)], -1)
            images.append(image[y:y + tile, x:x + tile])
            all_boxes.append(boxes.astype(np.float32).reshape(-1, 4))
            all_labels.append(np.zeros(len(ids), dtype=np.int64))
            all_masks.append(masks)
    return InstanceSet(np.stack(images)[:, None].copy(), all_boxes, all_labels, all_masks)
