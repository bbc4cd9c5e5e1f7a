"""Semantic segmentation sets from real pixels, with per-pixel class masks and instance ids.

* :func:`digit_segmentation`: M2NIST-style canvases of real MNIST digits; 11 classes
  (0 = background, ``1 + d`` = digit ``d``).
* :func:`nuclei_segmentation`: the embedded fluorescence nuclei image, split by region
  (one quadrant held out for testing); 2 classes (background / nucleus) or 3 (background /
  interior / boundary, see :func:`three_class_mask`).

Both return a :class:`SegmentationSet`, which a :class:`~minicnn.data.DataLoader` batches as
``(images float32 (B, C, H, W), masks int64 (B, H, W))``.

    >>> from minicnn.data import DataLoader, nuclei_segmentation
    >>> train = nuclei_segmentation("train", classes=3)
    >>> x, y = next(iter(DataLoader(train, batch_size=8, shuffle=True, seed=0)))
    >>> x.shape, y.shape, y.dtype
    ((8, 1, 64, 64), (8, 64, 64), dtype('int64'))
"""
import numpy as np

from minicnn.data.dataset import Dataset
from minicnn.data.datasets import digits_mean_std, nuclei_arrays, relabel_sequential
from minicnn.data.synthetic import digits_on_canvas

DIGIT_CLASSES = ("background",) + tuple(str(d) for d in range(10))
NUCLEI_CLASSES = {2: ("background", "nucleus"), 3: ("background", "interior", "boundary")}
# top-left corner (row, column) of each 256 x 256 quadrant of the 512 x 512 nuclei image
NUCLEI_QUADRANTS = ((0, 0), (0, 256), (256, 0), (256, 256))
NUCLEI_QUADRANT_NAMES = ("top-left", "top-right", "bottom-left", "bottom-right")
QUADRANT_SIZE = 256


class SegmentationSet(Dataset):
    """Images with one class label per pixel (and optionally one instance id per pixel).

    Attributes:
        images: float32 ``(N, C, H, W)``.
        masks: int64 ``(N, H, W)``, class ids in ``0..num_classes-1`` (0 = background).
        num_classes: number of classes, background included.
        class_names: tuple of ``num_classes`` names.
        instances: int32 ``(N, H, W)`` or None: 0 = background, ``1..K_n`` = the objects of
            image ``n``; a pixel has an instance id exactly when its class is not background.
        origins: int64 ``(N, 2)`` or None: the ``(row, column)`` in the source image of each
            image's top-left pixel (for sets cut from one larger image).

    ``ds[i]`` is ``(images[i], masks[i])``; ``ds.get_batch(indices)`` gathers a batch with
    one fancy index per array. There is no image transform: a geometric augmentation must
    move the masks with the images.
    """

    def __init__(self, images, masks, num_classes, class_names=None, instances=None, origins=None):
        images, masks = np.asarray(images), np.asarray(masks)
        if images.ndim != 4 or masks.ndim != 3 or images.shape[0] != masks.shape[0] \
                or images.shape[2:] != masks.shape[1:]:
            raise ValueError(f"SegmentationSet: images must be (N, C, H, W) and masks (N, H, W) with the "
                             f"same N, H, W, got images {images.shape} and masks {masks.shape}")
        if not np.issubdtype(masks.dtype, np.integer):
            raise TypeError(f"SegmentationSet: masks must hold integer class ids, got dtype {masks.dtype}")
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"SegmentationSet: num_classes must be a positive integer, got {num_classes}")
        if masks.size and (masks.min() < 0 or masks.max() >= num_classes):
            raise ValueError(f"SegmentationSet: mask ids must lie in 0..{num_classes - 1}, "
                             f"got min {masks.min()} and max {masks.max()}")
        if class_names is None:
            class_names = tuple(str(c) for c in range(num_classes))
        if len(class_names) != num_classes:
            raise ValueError(f"SegmentationSet: {len(class_names)} class_names for num_classes={num_classes}")
        if instances is not None:
            instances = np.asarray(instances)
            if instances.shape != masks.shape:
                raise ValueError(f"SegmentationSet: instances {instances.shape} must have the masks' "
                                 f"shape {masks.shape}")
            instances = instances.astype(np.int32, copy=False)
        if origins is not None:
            origins = np.asarray(origins, dtype=np.int64)
            if origins.shape != (len(masks), 2):
                raise ValueError(f"SegmentationSet: origins must be ({len(masks)}, 2), got {origins.shape}")
        self.images = images.astype(np.float32, copy=False)
        self.masks = masks.astype(np.int64, copy=False)
        self.num_classes = int(num_classes)
        self.class_names = tuple(class_names)
        self.instances = instances
        self.origins = origins

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.masks[index]

    def get_batch(self, indices, rng=None):
        """``(images[indices], masks[indices])``: float32 ``(B, C, H, W)`` and int64 ``(B, H, W)``."""
        indices = np.asarray(indices, dtype=np.int64)
        return self.images[indices], self.masks[indices]


def three_class_mask(instances):
    """Background / interior / boundary labels of an instance mask (the 3-class nuclei target).

    For ``instances`` int ``(..., H, W)`` (0 = background, one id per object), the result
    (int64, same shape) is 0 on background, 2 (boundary) on an object pixel that has a
    4-neighbour (up, down, left, right) *inside the array* with a different id (background or
    another object), and 1 (interior) on the other object pixels. The boundary is thus one
    pixel wide along an object's outline, two pixels (one per object) where two objects touch;
    neighbours beyond the array's edge do not count, so cutting an image does not draw
    boundaries along the cut.
    """
    inst = np.asarray(instances)
    if inst.ndim < 2:
        raise ValueError(f"three_class_mask: instances must be (..., H, W), got shape {inst.shape}")
    differs = np.zeros(inst.shape, dtype=bool)
    horizontal = inst[..., :, 1:] != inst[..., :, :-1]
    vertical = inst[..., 1:, :] != inst[..., :-1, :]
    differs[..., :, :-1] |= horizontal
    differs[..., :, 1:] |= horizontal
    differs[..., :-1, :] |= vertical
    differs[..., 1:, :] |= vertical
    out = (inst > 0).astype(np.int64)
    out[(inst > 0) & differs] = 2
    return out


def digit_segmentation(n, canvas=64, digits_per_image=(1, 3), split="train", seed=0, threshold=0.5,
                       normalize=True):
    """M2NIST-style semantic segmentation: real MNIST digits on black canvases, one class per pixel.

    The canvases are those of :func:`~minicnn.data.digits_on_canvas` with the same arguments
    (``allow_overlap=False``: digit boxes never intersect). Pixel ``(i, j)`` is labelled
    ``1 + d`` when it belongs to a digit of class ``d`` and that digit's intensity there
    (``pixel / 255`` of the original 8-bit digit) is ``>= threshold``, else 0 (background),
    so the faint anti-aliased rim of a stroke is background when ``threshold > 0``.

    Args:
        n: number of canvases.
        canvas: side of the square canvas (>= 28).
        digits_per_image: an int, or ``(lo, hi)`` for a count drawn uniformly in ``lo..hi``.
        split: ``"train"`` draws digits from the embedded training digits, ``"test"`` from the
            held-out test digits (disjoint pools).
        seed: seed of the generator; the same arguments give the same set.
        threshold: intensity in ``[0, 1]`` from which a digit pixel is foreground.
        normalize: images ``(x - mean) / std`` with the embedded training digits' statistics
            (:func:`~minicnn.data.digits_mean_std`, about 0.13 and 0.31); else ``x`` in ``[0, 1]``.
    Returns:
        :class:`SegmentationSet`: images ``(n, 1, canvas, canvas)``, masks with 11 classes
        (``DIGIT_CLASSES``), instances ``k + 1`` on the labelled pixels of the ``k``-th digit
        pasted on the canvas.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"digit_segmentation: n must be a positive integer, got {n}")
    if int(canvas) != canvas or canvas < 28:
        raise ValueError(f"digit_segmentation: canvas must be an integer >= 28, got {canvas}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"digit_segmentation: threshold must lie in [0, 1], got {threshold}")
    if split not in ("train", "test"):
        raise ValueError(f"digit_segmentation: split must be 'train' or 'test', got {split!r}")
    try:
        s = digits_on_canvas(int(n), int(canvas), digits_per_image, split, seed)
    except ValueError as e:                          # a bad digits_per_image
        raise ValueError(f"digit_segmentation: {e}") from None
    masks = np.zeros((len(s),) + s.images.shape[2:], dtype=np.int64)
    instances = np.zeros(masks.shape, dtype=np.int32)
    for i in range(len(s)):
        bright = s.images[i, 0] >= np.float32(threshold)
        for k, (label, digit_mask) in enumerate(zip(s.labels[i], s.masks[i])):
            on = digit_mask & bright                 # boxes are disjoint: the canvas pixel is the digit's
            masks[i][on] = 1 + label
            instances[i][on] = k + 1
    images = s.images
    if normalize:
        mean, std = digits_mean_std()
        images = (images - np.float32(mean)) / np.float32(std)
    return SegmentationSet(images, masks, len(DIGIT_CLASSES), DIGIT_CLASSES, instances)


def nuclei_segmentation(split="train", classes=2, tile=64, stride=32, quadrant=3):
    """The embedded nuclei image (512 x 512) as a segmentation set split by region.

    The image is cut into four 256 x 256 quadrants (``quadrant`` 0..3 = top-left, top-right,
    bottom-left, bottom-right). The held-out quadrant is the test split, one image; the train
    split is the tiles of ``tile x tile`` starting at ``0, stride, 2 stride, ...`` (while they
    fit) *inside* each of the other three quadrants, so no tile reaches into the test region.
    Every label is computed within its quadrant, and the images are standardised
    ``(img - mean) / std`` with the mean and std of the three training quadrants' pixels, so
    nothing of the test region shapes the training data.

    Args:
        split: ``"train"`` (tiles of three quadrants) or ``"test"`` (the held-out quadrant).
        classes: 2: background (0) / nucleus (1); 3: background (0) / interior (1) /
            boundary (2) of :func:`three_class_mask` (a 1-pixel boundary inside each nucleus,
            2 pixels between touching nuclei), as in the U-Net paper's 3-class setting.
        tile: side of the training tiles, 1..256.
        stride: step between training tiles.
        quadrant: the held-out quadrant, 0..3.
    Returns:
        :class:`SegmentationSet` with images ``(T, 1, tile, tile)`` (train; 147 tiles with the
        defaults) or ``(1, 1, 256, 256)`` (test), ``instances`` renumbered ``1..K`` within each
        image, and ``origins`` the top-left ``(row, column)`` of each image in the 512 x 512 one.
    """
    if split not in ("train", "test"):
        raise ValueError(f"nuclei_segmentation: split must be 'train' or 'test', got {split!r}")
    if classes not in NUCLEI_CLASSES:
        raise ValueError(f"nuclei_segmentation: classes must be 2 or 3, got {classes}")
    if quadrant not in (0, 1, 2, 3):
        raise ValueError(f"nuclei_segmentation: quadrant must be 0..3 ({', '.join(NUCLEI_QUADRANT_NAMES)}), "
                         f"got {quadrant}")
    if int(tile) != tile or not 1 <= tile <= QUADRANT_SIZE:
        raise ValueError(f"nuclei_segmentation: tile must be an integer in 1..{QUADRANT_SIZE}, got {tile}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"nuclei_segmentation: stride must be a positive integer, got {stride}")
    quadrant, tile, stride = int(quadrant), int(tile), int(stride)
    raw, raw_mask = nuclei_arrays()
    instances = relabel_sequential(raw_mask)
    q = QUADRANT_SIZE
    train_quadrants = [k for k in range(4) if k != quadrant]
    train_pixels = np.concatenate([raw[r:r + q, c:c + q].ravel() for r, c in
                                   (NUCLEI_QUADRANTS[k] for k in train_quadrants)]).astype(np.float64)
    image = ((raw.astype(np.float64) - train_pixels.mean()) / train_pixels.std()).astype(np.float32)

    def semantic(inst):
        return (inst > 0).astype(np.int64) if classes == 2 else three_class_mask(inst)

    windows = []                                     # (row, col, side, labels of the quadrant)
    if split == "test":
        r, c = NUCLEI_QUADRANTS[quadrant]
        windows.append((r, c, q, semantic(instances[r:r + q, c:c + q])))
    else:
        for k in train_quadrants:
            r, c = NUCLEI_QUADRANTS[k]
            labels = semantic(instances[r:r + q, c:c + q])
            for y in range(0, q - tile + 1, stride):
                for x in range(0, q - tile + 1, stride):
                    windows.append((r + y, c + x, tile, labels[y:y + tile, x:x + tile]))
    images = np.stack([image[r:r + s, c:c + s] for r, c, s, _ in windows])[:, None]
    masks = np.stack([lab for _, _, _, lab in windows])
    inst = np.stack([relabel_sequential(instances[r:r + s, c:c + s]) for r, c, s, _ in windows])
    origins = np.array([(r, c) for r, c, _, _ in windows], dtype=np.int64)
    return SegmentationSet(images, masks, classes, NUCLEI_CLASSES[classes], inst, origins)
