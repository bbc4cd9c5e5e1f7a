"""Detection and instance-segmentation sets from real pixels, with exact boxes and masks.

* :func:`digit_detection`: real MNIST digits rescaled to 20–48 px on 128 × 128 black canvases.
* :func:`fashion_detection`: the same with Fashion-MNIST items (Debian's package).
* :func:`nuclei_detection`: the embedded nuclei image split by region, one box and mask per nucleus.

Targets follow torchvision: per image ``{"boxes": float32 (G, 4), "labels": int64 (G,),
"masks": uint8 (G, H, W)}``, boxes ``(x1, y1, x2, y2)`` in continuous pixel-edge coordinates
(pixel ``(row i, column j)`` covers ``[j, j+1) × [i, i+1)``, so a box encloses the pixels
``x1 <= j < x2``, ``y1 <= i < y2``), labels ``1..K`` with 0 the background.

    >>> from minicnn.data import DataLoader
    >>> from minicnn.data.detection import digit_detection
    >>> train = digit_detection(64, split="train", seed=0)
    >>> x, targets = next(iter(DataLoader(train, batch_size=8, shuffle=True, seed=0)))
    >>> x.shape, sorted(targets[0])
    ((8, 1, 128, 128), ['boxes', 'labels', 'masks'])
"""
import numpy as np

from minicnn.data.dataset import Dataset
from minicnn.data.datasets import (FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, _embedded,
                                   digits_arrays, digits_mean_std, fashion_mnist_arrays)
from minicnn.data.segmentation import nuclei_segmentation
from minicnn.data.synthetic import _count_range

DIGIT_DETECTION_CLASSES = ("background",) + tuple(str(d) for d in range(10))
FASHION_DETECTION_CLASSES = ("background",) + FASHION_MNIST_CLASSES
NUCLEI_DETECTION_CLASSES = ("background", "nucleus")


def _check_target(n, target, shape, num_classes):
    """Target ``n`` as a dict of validated arrays; ValueError naming the image and the values."""
    if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
        raise ValueError(f"DetectionSet: target {n} must be a dict with 'boxes' and 'labels', got {type(target)}")
    boxes = np.asarray(target["boxes"], dtype=np.float64)
    labels = np.asarray(target["labels"])
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"DetectionSet: image {n}: boxes must have shape (G, 4), got {boxes.shape}")
    if labels.shape != (len(boxes),):
        raise ValueError(f"DetectionSet: image {n}: labels must have shape ({len(boxes)},), got {labels.shape}")
    if not np.isfinite(boxes).all():
        bad = int(np.argwhere(~np.isfinite(boxes))[0][0])
        raise ValueError(f"DetectionSet: image {n}: box {bad} is not finite: {boxes[bad].tolist()}")
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if degenerate.any():
        bad = int(np.flatnonzero(degenerate)[0])
        raise ValueError(f"DetectionSet: image {n}: box {bad} = {boxes[bad].tolist()} must have x1 < x2 and y1 < y2")
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 1 or labels.max() >= num_classes):
        raise ValueError(f"DetectionSet: image {n}: labels must be integers in 1..{num_classes - 1} "
                         f"(0 is background), got {labels.tolist()}")
    out = {"boxes": boxes.astype(np.float32), "labels": labels.astype(np.int64)}
    if target.get("masks") is not None:
        masks = np.asarray(target["masks"])
        if masks.shape != (len(boxes),) + shape:
            raise ValueError(f"DetectionSet: image {n}: masks must have shape {(len(boxes),) + shape} "
                             f"(one per box, the image's H, W), got {masks.shape}")
        if masks.size and not np.isin(masks, (0, 1)).all():
            raise ValueError(f"DetectionSet: image {n}: masks must hold 0/1, got values {np.unique(masks)[:5]}")
        out["masks"] = masks.astype(np.uint8)
    return out


class DetectionSet(Dataset):
    """Images with a variable number of boxed (and optionally masked) objects each.

    Args:
        images: float ``(N, C, H, W)``.
        targets: N dicts ``{"boxes": (G, 4), "labels": (G,), "masks": (G, H, W) (optional)}``;
            ``G = 0`` (an image without objects) is allowed.
        num_classes: classes including the background 0; labels must lie in ``1..num_classes-1``.
        class_names: ``num_classes`` names (index 0 the background).
        transform: optional ``t(images, targets, rng=None) -> (images, targets)`` applied to every
            batch (e.g. :class:`RandomHorizontalFlip`).
        sources: optional per-image int64 arrays: which source item each object was cut from.

    Every box must be finite with ``x1 < x2`` and ``y1 < y2`` (a degenerate box has no regression
    target); else a ValueError naming the image index and the values. ``ds[i]`` is
    ``(image (C, H, W), target)``; a :class:`~minicnn.data.DataLoader` batches it as
    ``(images (B, C, H, W), [targets])``.
    """

    def __init__(self, images, targets, num_classes, class_names=None, transform=None, sources=None):
        images = np.asarray(images)
        if images.ndim != 4 or images.dtype.kind != "f":
            raise ValueError(f"DetectionSet: images must be a float array (N, C, H, W), got {images.dtype} "
                             f"{images.shape}")
        if len(targets) != len(images):
            raise ValueError(f"DetectionSet: {len(targets)} targets for {len(images)} images")
        if int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"DetectionSet: num_classes (with background) must be an integer >= 2, got {num_classes}")
        self.images = images.astype(np.float32, copy=False)
        self.targets = [_check_target(n, t, images.shape[2:], int(num_classes)) for n, t in enumerate(targets)]
        self.num_classes = int(num_classes)
        self.class_names = tuple(class_names) if class_names is not None else tuple(map(str, range(num_classes)))
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"DetectionSet: {len(self.class_names)} class_names for num_classes={num_classes}")
        self.transform = transform
        self.sources = sources

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        x, t = self.get_batch([index])
        return x[0], t[0]

    def get_batch(self, indices, rng=None):
        """``(images[indices] (B, C, H, W), [targets])``, the transform applied (with ``rng``)."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        x = self.images[indices]
        targets = [{k: v.copy() for k, v in self.targets[i].items()} for i in indices]
        if self.transform is not None:
            x, targets = self.transform(x, targets, rng=rng)
        return x, targets


def detection_collate(samples):
    """``[(image, target), ...] -> (images stacked (B, C, H, W), [targets])`` (targets stay a list)."""
    return np.stack([np.asarray(s[0]) for s in samples]), [s[1] for s in samples]


def hflip_detection(images, targets, which=None):
    """Mirror images left-right with their targets: ``x' = W − x`` so ``(x1, x2) -> (W − x2, W − x1)``;
    masks are mirrored with the images. ``which`` (bool ``(B,)``) picks the images (default: all)."""
    images = np.array(images, copy=True)
    W = images.shape[-1]
    which = np.ones(len(images), dtype=bool) if which is None else np.asarray(which, dtype=bool)
    out = []
    for i, t in enumerate(targets):
        t = dict(t)
        if which[i]:
            images[i] = images[i][..., ::-1]
            b = np.array(t["boxes"], dtype=np.float32, copy=True).reshape(-1, 4)
            b[:, [0, 2]] = W - b[:, [2, 0]]
            t["boxes"] = b
            if t.get("masks") is not None:
                t["masks"] = np.ascontiguousarray(np.asarray(t["masks"])[..., ::-1])
        out.append(t)
    return images, out


class RandomHorizontalFlip:
    """Flip each image and its boxes and masks with probability ``p`` (see :func:`hflip_detection`)."""

    def __init__(self, p=0.5, seed=None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must lie in [0, 1], got {p}")
        self.p = float(p)
        self.rng = np.random.default_rng(seed)

    def __call__(self, images, targets, rng=None):
        rng = self.rng if rng is None else rng
        return hflip_detection(images, targets, rng.random(len(images)) < self.p)


def resize_bilinear(image, size):
    """Resize a 2-D array to ``size = (h, w)``, bilinear with ``align_corners=False`` (as
    ``F.interpolate``): output pixel ``i`` samples the input at ``(i + 0.5)·H/h − 0.5``, clamped
    to ``[0, H − 1]``."""
    a = np.asarray(image, dtype=np.float64)
    H, W = a.shape
    h, w = size

    def taps(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
        i0 = np.floor(src).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    r0, r1, fr = taps(H, h)
    c0, c1, fc = taps(W, w)
    rows = a[r0] * (1 - fr)[:, None] + a[r1] * fr[:, None]
    return rows[:, c0] * (1 - fc) + rows[:, c1] * fc


def _tight(patch):
    """``patch`` cropped to its nonzero pixels (an all-zero patch stays as is)."""
    rows, cols = np.flatnonzero(patch.any(1)), np.flatnonzero(patch.any(0))
    if len(rows) == 0:
        return patch
    return patch[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _scaled_item(item, side, threshold):
    """An 8-bit item cropped to its nonzero pixels, resized so its longer side is ``side``, values
    below ``threshold`` set to 0, cropped again to the remaining pixels: float32 in [0, 1]."""
    crop = _tight(item).astype(np.float64) / 255.0
    h, w = crop.shape
    scale = side / max(h, w)
    out = resize_bilinear(crop, (max(1, round(h * scale)), max(1, round(w * scale))))
    out[out < threshold] = 0.0
    return _tight(out).astype(np.float32)


def _iou_with(box, boxes):
    """IoU of one box ``(4,)`` with ``(K, 4)`` boxes -> ``(K,)``."""
    if len(boxes) == 0:
        return np.zeros(0)
    b = np.asarray(boxes, dtype=np.float64)
    w = np.clip(np.minimum(box[2], b[:, 2]) - np.maximum(box[0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], b[:, 3]) - np.maximum(box[1], b[:, 1]), 0, None)
    inter = w * h
    return inter / ((box[2] - box[0]) * (box[3] - box[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)


def compose_canvases(name, n, items, item_labels, canvas, per_image, size_range, max_iou, threshold, seed,
                     max_tries=50):
    """Paste rescaled items on black ``canvas × canvas`` images; the engine of the canvas sets.

    Per image, a count is drawn in ``per_image = (lo, hi)``; per object an item ``d`` (uniform in
    the pool), a side ``s`` (uniform integer in ``size_range``) and up to ``max_tries`` positions,
    the first whose box has IoU ``< max_iou`` with every box already placed being taken (else the
    object is dropped). The item is cropped to its nonzero pixels, resized bilinearly so its longer
    side is ``s``, its values below ``threshold`` zeroed and cropped again: its mask is its
    nonzero pixels and its box is tight to them. Overlapping items combine by ``max``.

    Returns ``(images float32 (n, 1, canvas, canvas), targets, sources)`` with labels
    ``item_labels[d] + 1`` and ``sources`` the pool indices ``d`` per image.
    """
    lo_s, hi_s = (int(v) for v in size_range)
    if not 1 <= lo_s <= hi_s <= canvas:
        raise ValueError(f"{name}: size_range must satisfy 1 <= lo <= hi <= canvas ({canvas}), got {size_range}")
    if not 0.0 < max_iou <= 1.0:
        raise ValueError(f"{name}: max_iou must lie in (0, 1], got {max_iou}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"{name}: threshold must lie in [0, 1), got {threshold}")
    if int(n) != n or n < 1:
        raise ValueError(f"{name}: n must be a positive integer, got {n}")
    try:
        lo, hi = _count_range(per_image)
    except ValueError:
        raise ValueError(f"{name}: objects per image must be >= 1 (an int or (lo, hi)), got {per_image}") from None
    rng = np.random.default_rng(seed)
    images = np.zeros((int(n), 1, canvas, canvas), dtype=np.float32)
    targets, sources = [], []
    for i in range(int(n)):
        boxes, labels, masks, ids = [], [], [], []
        for _ in range(rng.integers(lo, hi + 1)):
            d = int(rng.integers(len(items)))
            patch = _scaled_item(items[d], int(rng.integers(lo_s, hi_s + 1)), threshold)
            h, w = patch.shape
            for _ in range(max_tries):
                x, y = int(rng.integers(canvas - w + 1)), int(rng.integers(canvas - h + 1))
                box = (x, y, x + w, y + h)
                if not (_iou_with(box, boxes) >= max_iou).any():
                    break
            else:
                continue                                   # no place: drop this object
            region = images[i, 0, y:y + h, x:x + w]
            np.maximum(region, patch, out=region)
            mask = np.zeros((canvas, canvas), dtype=np.uint8)
            mask[y:y + h, x:x + w] = patch > 0
            boxes.append(box), labels.append(int(item_labels[d]) + 1), masks.append(mask), ids.append(d)
        targets.append({"boxes": np.array(boxes, dtype=np.float32).reshape(-1, 4),
                        "labels": np.array(labels, dtype=np.int64),
                        "masks": np.array(masks, dtype=np.uint8).reshape(-1, canvas, canvas)})
        sources.append(np.array(ids, dtype=np.int64))
    return images, targets, sources


def _canvas_args(name, canvas, split):
    if int(canvas) != canvas or canvas < 28:
        raise ValueError(f"{name}: canvas must be an integer >= 28, got {canvas}")
    if split not in ("train", "test"):
        raise ValueError(f"{name}: split must be 'train' or 'test', got {split!r}")


def digit_detection(n, canvas=128, digits_per_image=(1, 6), size_range=(20, 48), max_iou=0.25, split="train",
                    seed=0, threshold=0.2, normalize=False, transform=None):
    """Real MNIST digits on black canvases with tight boxes and instance masks (11 classes).

    See :func:`compose_canvases`: digits of the embedded ``split`` (train: 4,000 digits, test:
    1,000; disjoint pools), their longer side rescaled to ``size_range`` pixels, placed at IoU
    ``< max_iou`` with the digits already placed. A digit's pixels are those whose rescaled
    intensity (``pixel/255`` resized) is ``>= threshold`` (default 0.2; fainter ones are set to 0),
    its mask is those pixels and its box is tight to them. Labels ``1 + digit``.

    Args:
        n: number of canvases; canvas: their side (>= 28); digits_per_image: int or ``(lo, hi)``.
        normalize: standardise images with the embedded training digits' mean and std.
        transform: stored on the set (e.g. :class:`RandomHorizontalFlip`).

    Returns:
        :class:`DetectionSet` (``sources``: indices of the digits in ``digits_arrays("all")``).
    """
    _canvas_args("digit_detection", canvas, split)
    items, labels = digits_arrays(split)
    images, targets, sources = compose_canvases("digit_detection", n, items, labels, int(canvas), digits_per_image,
                                                size_range, max_iou, threshold, seed)
    pool = _embedded("mnist5k.npz")[f"{split}_idx"]
    sources = [pool[s].astype(np.int64) for s in sources]
    if normalize:
        mean, std = digits_mean_std()
        images = (images - np.float32(mean)) / np.float32(std)
    return DetectionSet(images, targets, len(DIGIT_DETECTION_CLASSES), DIGIT_DETECTION_CLASSES, transform, sources)


def fashion_detection(n, canvas=128, items_per_image=(1, 6), size_range=(20, 48), max_iou=0.25, split="train",
                      seed=0, threshold=0.02, normalize=False, transform=None, root=None):
    """Fashion-MNIST items on black canvases (11 classes), as :func:`digit_detection`.

    Items come from Debian's ``dataset-fashion-mnist`` package (train: 60,000, test: 10,000;
    disjoint); without it a FileNotFoundError names the install command. The default
    ``threshold`` is lower than the digits' (0.02): garments have dark regions inside them.
    Labels ``1 + class`` (:data:`FASHION_DETECTION_CLASSES`); ``sources`` index the split's arrays.
    """
    _canvas_args("fashion_detection", canvas, split)
    items, labels = fashion_mnist_arrays(split) if root is None else fashion_mnist_arrays(split, root)
    images, targets, sources = compose_canvases("fashion_detection", n, items, labels, int(canvas), items_per_image,
                                                size_range, max_iou, threshold, seed)
    if normalize:
        images = (images - np.float32(FASHION_MNIST_MEAN)) / np.float32(FASHION_MNIST_STD)
    return DetectionSet(images, targets, len(FASHION_DETECTION_CLASSES), FASHION_DETECTION_CLASSES, transform,
                        sources)


def nuclei_detection(split="train", tile=64, stride=32, quadrant=3, min_pixels=1, transform=None):
    """The embedded nuclei image as an instance set split by region: a box and a mask per nucleus.

    The images and instance ids are those of :func:`~minicnn.data.nuclei_segmentation` (train:
    tiles inside three quadrants; test: the held-out ``quadrant``, 256 × 256; standardised with
    the training quadrants' statistics). Each instance id of an image with at least
    ``min_pixels`` pixels in it gives a mask (its pixels) and a box tight to them (a nucleus cut
    by the tile's edge is boxed where it is visible); label 1 (nucleus).
    """
    seg = nuclei_segmentation(split, 2, tile, stride, quadrant)
    targets = []
    for inst in seg.instances:
        ids, counts = np.unique(inst[inst > 0], return_counts=True)
        ids = ids[counts >= min_pixels]
        masks = (inst[None] == ids[:, None, None]).astype(np.uint8)
        rows, cols = masks.any(2), masks.any(1)
        H, W = inst.shape
        boxes = np.stack([cols.argmax(1), rows.argmax(1), W - cols[:, ::-1].argmax(1),
                          H - rows[:, ::-1].argmax(1)], -1).reshape(-1, 4)
        targets.append({"boxes": boxes.astype(np.float32), "labels": np.ones(len(ids), dtype=np.int64),
                        "masks": masks})
    return DetectionSet(seg.images, targets, len(NUCLEI_DETECTION_CLASSES), NUCLEI_DETECTION_CLASSES, transform)


class CanvasStream:
    """Fresh canvases every epoch: a loader of ``(images (B, C, H, W), [targets])`` batches.

    Batch ``b`` of epoch ``e`` is ``make(batch_size, seed=(seed, e, b))``, e.g.
    ``make = functools.partial(digit_detection, split="train")``: new canvases of the same item
    pool each time (new items, sizes, positions and counts), so there is no fixed training set
    to memorise. The same ``seed`` gives the same batches; epochs differ from each other. The
    epoch counter advances at each full pass (or set it with :meth:`set_epoch`).

    Args:
        make: ``make(n, seed=...) -> DetectionSet`` (its ``transform``, if any, is applied).
        images_per_epoch: canvases per epoch (the last batch may be smaller).
        batch_size: canvases per batch.
        seed: a non-negative integer.

    ``len(stream)`` is ``ceil(images_per_epoch / batch_size)``.
    """

    def __init__(self, make, images_per_epoch, batch_size, seed=0):
        for name, v in (("images_per_epoch", images_per_epoch), ("batch_size", batch_size)):
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"CanvasStream: {name} must be a positive integer, got {v!r}")
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(f"CanvasStream: seed must be a non-negative integer, got {seed!r}")
        self.make, self.images_per_epoch, self.batch_size = make, int(images_per_epoch), int(batch_size)
        self.seed, self.epoch = int(seed), 0

    def __len__(self):
        return -(-self.images_per_epoch // self.batch_size)

    def set_epoch(self, epoch):
        """Make the next pass the canvases of ``epoch``."""
        self.epoch = int(epoch)

    def batch(self, epoch, index):
        """Batch ``index`` of ``epoch``: ``(images, [targets])``."""
        n = min(self.batch_size, self.images_per_epoch - index * self.batch_size)
        ds = self.make(n, seed=(self.seed, int(epoch), int(index)))
        rng = np.random.default_rng((self.seed, int(epoch), int(index), 1))
        return ds.get_batch(np.arange(n), rng=rng)

    def __iter__(self):
        epoch = self.epoch
        for b in range(len(self)):
            yield self.batch(epoch, b)
        self.epoch = epoch + 1
