"""Data for the generative models: edge maps, paired and unpaired sets, images in [-1, 1].

Every set here is built from real pixels and nothing downloads:

* :func:`gan_images`: Fashion-MNIST (Debian's package) or the embedded MNIST digits for DCGAN and
  StyleGAN.
* :func:`edges_to_fashion` and :func:`nuclei_mask_to_image`: aligned ``(source, target)`` pairs
  (:class:`PairedSet`) for Pix2Pix: edge map → Fashion-MNIST item, nuclei mask → nuclei image tile.
* :func:`domain_pair`: two unpaired domains (:class:`UnpairedSet`) for CycleGAN.
* :func:`sobel_edges` and :func:`canny_edges`: the edge detectors, written here.

Images are float32 ``(N, C, H, W)`` scaled to ``[-1, 1]`` (the range of a ``tanh`` generator):
``x = 2 p / 255 - 1`` for 8-bit pixels ``p``. The 28 × 28 Fashion-MNIST and MNIST images are
padded with background (-1) to ``image_size`` (32 by default: 2 pixels on each side), so that
strided convolutions halve them down to 4 × 4 or 1 × 1.

    >>> from minicnn.data.generative import edges_to_fashion
    >>> pairs = edges_to_fashion("test", n=8)
    >>> pairs.sources.shape, pairs.targets.shape
    ((8, 1, 32, 32), (8, 1, 32, 32))
"""
import math

import numpy as np
from numba import njit

from minicnn.data.dataset import ArrayDataset, Dataset
from minicnn.data.datasets import FASHION_MNIST_ROOT, digits_arrays, fashion_mnist_arrays, nuclei_arrays
from minicnn.data.segmentation import NUCLEI_QUADRANTS, QUADRANT_SIZE, nuclei_segmentation

GAN_DATASETS = ("fashion-mnist", "digits")
DOMAIN_PAIRS = {
    "sneaker-boot": ("sneaker", "ankle boot"),
    "digits-fashion": ("digit", "fashion item"),
}
_CHUNK = 2048                              # images per chunk of the edge detectors (bounds the memory)
_TAN_22_5 = math.tan(math.pi / 8)


# ------------------------------------------------------------------------------------- edges

def _as_gray_batch(images, name):
    """(N, H, W) float64 from (H, W), (N, H, W) or (N, 1, H, W); uint8 scaled by 1/255."""
    a = np.asarray(images)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{name}: images must be (H, W), (N, H, W) or (N, 1, H, W), got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise TypeError(f"{name}: images must hold numbers, got dtype {a.dtype}")
    if a.shape[1] < 1 or a.shape[2] < 1:
        raise ValueError(f"{name}: images must have a positive height and width, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    return a.astype(np.float64)


def gaussian_kernel1d(sigma):
    """Normalised 1-D Gaussian ``w[k] ∝ exp(-k² / (2 σ²))`` for ``k = -r..r``, ``r = round(4 σ)``
    (``[1.0]`` when ``σ = 0``)."""
    if not sigma >= 0:
        raise ValueError(f"gaussian_kernel1d: sigma must be >= 0, got {sigma}")
    r = int(4.0 * sigma + 0.5)
    if r == 0:
        return np.ones(1)
    k = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-k * k / (2.0 * sigma * sigma))
    return w / w.sum()


def _blur(x, sigma):
    """Separable Gaussian blur of (N, H, W) with replicated borders, rows then columns.

    Each output is ``Σ_k w[k] x[clamp(i + k - r)]`` accumulated in the order k = 0..2r."""
    w = gaussian_kernel1d(sigma)
    r = len(w) // 2
    if r == 0:
        return x
    H, W = x.shape[1:]
    p = np.pad(x, ((0, 0), (r, r), (0, 0)), mode="edge")
    y = w[0] * p[:, 0:H]
    for k in range(1, len(w)):
        y = y + w[k] * p[:, k:k + H]
    p = np.pad(y, ((0, 0), (0, 0), (r, r)), mode="edge")
    y = w[0] * p[:, :, 0:W]
    for k in range(1, len(w)):
        y = y + w[k] * p[:, :, k:k + W]
    return y


def _sobel(x):
    """Sobel derivatives of (N, H, W) with replicated borders: ``(gx, gy)``, gx along columns.

    ``gx = (a + 2 b + c) − (d + 2 e + f)`` with a, b, c the upper-right, right, lower-right
    neighbours and d, e, f the left ones; gy likewise with rows."""
    H, W = x.shape[1:]
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = (p[:, 0:H, 2:W + 2] + 2.0 * p[:, 1:H + 1, 2:W + 2] + p[:, 2:H + 2, 2:W + 2]) \
        - (p[:, 0:H, 0:W] + 2.0 * p[:, 1:H + 1, 0:W] + p[:, 2:H + 2, 0:W])
    gy = (p[:, 2:H + 2, 0:W] + 2.0 * p[:, 2:H + 2, 1:W + 1] + p[:, 2:H + 2, 2:W + 2]) \
        - (p[:, 0:H, 0:W] + 2.0 * p[:, 0:H, 1:W + 1] + p[:, 0:H, 2:W + 2])
    return gx, gy


def sobel_edges(images):
    """Sobel gradient magnitude ``sqrt(gx² + gy²)`` with replicated borders.

    ``gx`` is the correlation with ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` (columns), ``gy`` with
    its transpose (rows); the pixels outside the image repeat the nearest border pixel.

    Args:
        images: ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)``; uint8 pixels are scaled to [0, 1].
    Returns:
        float32 ``(N, 1, H, W)``. A unit step (0 → 1) gives 4 on both sides of the step.
    """
    x = _as_gray_batch(images, "sobel_edges")
    out = np.empty((len(x), 1) + x.shape[1:], dtype=np.float32)
    for s in range(0, len(x), _CHUNK):
        gx, gy = _sobel(x[s:s + _CHUNK])
        out[s:s + _CHUNK, 0] = np.sqrt(gx * gx + gy * gy)
    return out


@njit(cache=True)
def _non_maximum_suppression(mag, gx, gy, tan_lo, out):
    """out[n, i, j] = the pixel is a local maximum of ``mag`` across the edge.

    The gradient direction is quantised to 0°, 45°, 90° or 135° (offset ``(di, dj)`` in rows and
    columns); the pixel is kept when ``mag > mag[behind]`` and ``mag >= mag[ahead]`` (neighbours
    outside the image count as 0), so of two equal neighbours across an edge only one stays."""
    N, H, W = mag.shape
    for n in range(N):
        for i in range(H):
            for j in range(W):
                m = mag[n, i, j]
                if m <= 0.0:
                    out[n, i, j] = False
                    continue
                ax, ay = abs(gx[n, i, j]), abs(gy[n, i, j])
                if ay <= tan_lo * ax:
                    di, dj = 0, 1
                elif ax <= tan_lo * ay:
                    di, dj = 1, 0
                elif (gx[n, i, j] > 0) == (gy[n, i, j] > 0):
                    di, dj = 1, 1
                else:
                    di, dj = 1, -1
                behind, ahead = 0.0, 0.0
                if 0 <= i - di < H and 0 <= j - dj < W:
                    behind = mag[n, i - di, j - dj]
                if 0 <= i + di < H and 0 <= j + dj < W:
                    ahead = mag[n, i + di, j + dj]
                out[n, i, j] = m > behind and m >= ahead


@njit(cache=True)
def _hysteresis(mag, thin, low, high, out, stack):
    """Keep the thin pixels with ``mag >= low`` 8-connected (through such pixels) to one with
    ``mag >= high``: a flood fill from every strong pixel. ``stack`` holds H·W (row, col) pairs."""
    N, H, W = mag.shape
    for n in range(N):
        for i in range(H):
            for j in range(W):
                out[n, i, j] = False
        for i in range(H):
            for j in range(W):
                if out[n, i, j] or not thin[n, i, j] or mag[n, i, j] < high:
                    continue
                out[n, i, j] = True
                top = 0
                stack[top, 0] = i
                stack[top, 1] = j
                top += 1
                while top > 0:
                    top -= 1
                    a, b = stack[top, 0], stack[top, 1]
                    for da in range(-1, 2):
                        for db in range(-1, 2):
                            y, x = a + da, b + db
                            if 0 <= y < H and 0 <= x < W and not out[n, y, x] \
                                    and thin[n, y, x] and mag[n, y, x] >= low:
                                out[n, y, x] = True
                                stack[top, 0] = y
                                stack[top, 1] = x
                                top += 1


def canny_edges(images, sigma=1.0, low=0.1, high=0.2):
    """Canny edge detector: Gaussian blur, Sobel gradient, non-maximum suppression, hysteresis.

    1. Blur with a Gaussian of standard deviation ``sigma`` (radius ``round(4 σ)``, replicated
       borders); ``sigma=0`` skips it.
    2. Sobel derivatives ``gx, gy`` (see :func:`sobel_edges`) and the gradient magnitude
       ``m = sqrt(gx² + gy²) / 8``: the Sobel kernels sum 4 pixels × a difference over 2 pixels,
       so ``m`` estimates the change of intensity per pixel (a sharp 0 → 1 step blurred with
       σ = 1 gives m ≈ 0.32 on both sides of the step).
    3. Non-maximum suppression along the gradient direction quantised to 0°, 45°, 90°, 135°: a
       pixel stays when ``m > m(behind)`` and ``m >= m(ahead)`` (neighbours outside the image
       count as 0), so edges are one pixel thick.
    4. Double threshold and hysteresis: the remaining pixels with ``m >= high`` are edges, and so
       is every remaining pixel with ``m >= low`` 8-connected to them through such pixels.

    Args:
        images: ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)`` with intensities in [0, 1]
            (uint8 pixels are divided by 255).
        sigma: Gaussian standard deviation in pixels, >= 0.
        low, high: thresholds on ``m``, ``0 <= low <= high``.
    Returns:
        bool ``(N, 1, H, W)``. A blank image has no edge.
    """
    if not sigma >= 0:
        raise ValueError(f"canny_edges: sigma must be >= 0, got {sigma}")
    if not 0 <= low <= high:
        raise ValueError(f"canny_edges: thresholds must satisfy 0 <= low <= high, got low={low}, high={high}")
    x = _as_gray_batch(images, "canny_edges")
    N, H, W = x.shape
    out = np.empty((N, 1, H, W), dtype=bool)
    stack = np.empty((H * W, 2), dtype=np.int64)
    for s in range(0, N, _CHUNK):
        gx, gy = _sobel(_blur(x[s:s + _CHUNK], float(sigma)))
        mag = np.sqrt(gx * gx + gy * gy) / 8.0
        thin = np.empty(mag.shape, dtype=bool)
        _non_maximum_suppression(mag, gx, gy, _TAN_22_5, thin)
        edges = np.empty(mag.shape, dtype=bool)
        _hysteresis(mag, thin, float(low), float(high), edges, stack)
        out[s:s + _CHUNK, 0] = edges
    return out


# ------------------------------------------------------------------------------------- sets

class PairedSet(Dataset):
    """Aligned ``(source, target)`` image pairs for image-to-image translation (Pix2Pix).

    Args:
        sources: ``(N, C_s, H, W)``: the inputs of the generator (edge maps, masks).
        targets: ``(N, C_t, H, W)``: the images it should produce, pixel-aligned with ``sources``.
        labels: optional ``(N,)`` class ids of the targets (for evaluation).
        origins: optional ``(N, 2)`` top-left ``(row, column)`` of tiles cut from a larger image.
    Raises:
        ValueError: when the pairs are not aligned: a different number of sources and targets, or
            a different height and width.

    ``ds[i]`` is ``(sources[i], targets[i])``; ``ds.get_batch(indices)`` gathers both at once, so a
    :class:`~minicnn.data.DataLoader` yields ``(sources, targets)`` batches.
    """

    def __init__(self, sources, targets, labels=None, origins=None):
        sources, targets = np.asarray(sources), np.asarray(targets)
        if sources.ndim != 4 or targets.ndim != 4:
            raise ValueError(f"PairedSet: sources and targets must be (N, C, H, W), got sources {sources.shape} "
                             f"and targets {targets.shape}")
        if len(sources) != len(targets):
            raise ValueError(f"PairedSet: the data are not paired: {len(sources)} sources {sources.shape} but "
                             f"{len(targets)} targets {targets.shape}")
        if sources.shape[2:] != targets.shape[2:]:
            raise ValueError(f"PairedSet: the data are not paired: sources are {sources.shape[2]}x{sources.shape[3]} "
                             f"but targets {targets.shape[2]}x{targets.shape[3]} (shapes {sources.shape} and "
                             f"{targets.shape}); a pair must be pixel-aligned")
        for name, extra, width in (("labels", labels, None), ("origins", origins, 2)):
            if extra is not None:
                extra = np.asarray(extra)
                if len(extra) != len(sources) or (width is not None and extra.shape[1:] != (width,)):
                    raise ValueError(f"PairedSet: {name} must have one entry per pair ({len(sources)}), "
                                     f"got shape {extra.shape}")
        self.sources, self.targets = sources, targets
        self.labels = None if labels is None else np.asarray(labels)
        self.origins = None if origins is None else np.asarray(origins)

    def __len__(self):
        return len(self.sources)

    def __getitem__(self, index):
        return self.sources[index], self.targets[index]

    def get_batch(self, indices, rng=None):
        """``(sources[indices], targets[indices])``."""
        indices = np.asarray(indices, dtype=np.int64)
        return self.sources[indices], self.targets[indices]


class UnpairedSet(Dataset):
    """Two unpaired image domains A and B (CycleGAN): ``a (N_A, C, H, W)``, ``b (N_B, C, H, W)``.

    ``len(ds) = max(N_A, N_B)``; ``ds[i] = (a[i mod N_A], b[i mod N_B])``. ``get_batch(indices, rng)``
    takes ``a[indices mod N_A]`` and, when ``rng`` is given (a DataLoader gives one), an independent
    uniform draw of B images, so no fixed A-B pairing exists.

    Attributes: ``a``, ``b``, ``labels_a``, ``labels_b`` (class ids in their source datasets) and
    ``names`` (the two domains' names).
    """

    def __init__(self, a, b, labels_a=None, labels_b=None, names=("A", "B")):
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim != 4 or b.ndim != 4 or a.shape[1:] != b.shape[1:] or not len(a) or not len(b):
            raise ValueError(f"UnpairedSet: domains must be non-empty (N, C, H, W) arrays of one image shape, "
                             f"got a {a.shape} and b {b.shape}")
        self.a, self.b = a, b
        self.labels_a = None if labels_a is None else np.asarray(labels_a)
        self.labels_b = None if labels_b is None else np.asarray(labels_b)
        self.names = tuple(names)

    def __len__(self):
        return max(len(self.a), len(self.b))

    def __getitem__(self, index):
        return self.a[index % len(self.a)], self.b[index % len(self.b)]

    def get_batch(self, indices, rng=None):
        """``(a[indices mod N_A], b[j])`` with ``j`` uniform draws from ``rng`` (``indices mod N_B`` without)."""
        indices = np.asarray(indices, dtype=np.int64)
        j = indices % len(self.b) if rng is None else rng.integers(0, len(self.b), size=len(indices))
        return self.a[indices % len(self.a)], self.b[j]


# ------------------------------------------------------------------------------------- datasets

def _check_image_size(image_size, name):
    if isinstance(image_size, bool) or int(image_size) != image_size or image_size < 28:
        raise ValueError(f"{name}: image_size must be an integer >= 28 (the 28x28 images are padded, never "
                         f"cropped), got {image_size}")
    return int(image_size)


def _pad_unit(pixels, image_size):
    """uint8 (N, 28, 28) → float32 (N, 1, S, S): ``2 p / 255 - 1``, padded with -1, centred
    (``(S - 28) // 2`` rows/columns above/left)."""
    x = pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    lo = (image_size - x.shape[1]) // 2
    hi = image_size - x.shape[1] - lo
    return np.pad(x, ((0, 0), (lo, hi), (lo, hi)), constant_values=-1.0)[:, None]


def _select(images, labels, classes, n, name):
    """The images whose label is in ``classes`` (all if None), then the first ``n`` (all if None)."""
    if classes is not None:
        classes = np.atleast_1d(np.asarray(classes))
        if classes.size == 0 or classes.min() < 0 or classes.max() > 9:
            raise ValueError(f"{name}: classes must be class ids in 0..9, got {classes.tolist()}")
        keep = np.isin(labels, classes)
        images, labels = images[keep], labels[keep]
    if n is not None:
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise ValueError(f"{name}: n must be a positive integer or None, got {n}")
        images, labels = images[:int(n)], labels[:int(n)]
    return images, labels


def _raw(dataset, split, root, name):
    if dataset == "fashion-mnist":
        return fashion_mnist_arrays(split, root)
    if dataset == "digits":
        if split not in ("train", "test"):
            raise ValueError(f"{name}: split must be 'train' or 'test', got {split!r}")
        return digits_arrays(split)
    raise ValueError(f"{name}: dataset must be one of {', '.join(GAN_DATASETS)}, got {dataset!r}")


def gan_images(dataset="fashion-mnist", split="train", image_size=32, classes=None, n=None, root=FASHION_MNIST_ROOT):
    """Real images for an unconditional GAN (DCGAN, StyleGAN), scaled to [-1, 1].

    Args:
        dataset: ``"fashion-mnist"`` (60,000 train / 10,000 test, Debian's package; a
            FileNotFoundError naming the install command when absent) or ``"digits"`` (the
            embedded 4,000 / 1,000 MNIST digits).
        split: ``"train"`` or ``"test"``.
        image_size: side S >= 28; the 28 × 28 images are padded with -1 (background) to S × S.
        classes: keep only these class ids (None: all ten).
        n: keep the first ``n`` images after the class filter (None: all).
    Returns:
        :class:`ArrayDataset`: images float32 ``(N, 1, S, S)`` = ``2 p / 255 - 1``, labels int64.
    """
    image_size = _check_image_size(image_size, "gan_images")
    images, labels = _raw(dataset, split, root, "gan_images")
    images, labels = _select(images, labels, classes, n, "gan_images")
    return ArrayDataset(_pad_unit(images, image_size), labels.astype(np.int64))


def edges_to_fashion(split="train", n=None, image_size=32, classes=None, edges="canny", sigma=1.0, low=0.05,
                     high=0.1, root=FASHION_MNIST_ROOT):
    """Pairs edge map → Fashion-MNIST item (the edges2shoes task of Pix2Pix, on real items).

    Each item is padded to ``image_size`` (black background), its edges are detected on the padded
    image in [0, 1], and both are scaled to [-1, 1]. Train and test pairs come from the package's
    own train (60,000) and test (10,000) splits.

    Args:
        split: ``"train"`` or ``"test"``.
        n: the first ``n`` items after the class filter (None: all; 60,000 train pairs take ~490 MB).
        image_size: side S >= 28.
        classes: keep only these Fashion-MNIST class ids (e.g. ``(5, 7, 9)``: the shoes).
        edges: ``"canny"`` (:func:`canny_edges` with ``sigma, low, high``; source = 1 on edges, -1
            elsewhere; thresholds half :func:`canny_edges`' defaults, so that dark items on the
            black background keep their outline) or ``"sobel"`` (:func:`sobel_edges` / 8, clipped to
            [0, 1], mapped to [-1, 1]).
    Returns:
        :class:`PairedSet`: sources float32 ``(N, 1, S, S)`` (edge maps), targets float32
        ``(N, 1, S, S)`` (items), labels int64 ``(N,)``.
    """
    image_size = _check_image_size(image_size, "edges_to_fashion")
    if edges not in ("canny", "sobel"):
        raise ValueError(f"edges_to_fashion: edges must be 'canny' or 'sobel', got {edges!r}")
    images, labels = fashion_mnist_arrays(split, root)
    images, labels = _select(images, labels, classes, n, "edges_to_fashion")
    targets = _pad_unit(images, image_size)
    unit = (targets[:, 0].astype(np.float64) + 1.0) / 2.0
    if edges == "canny":
        sources = np.where(canny_edges(unit, sigma, low, high), np.float32(1.0), np.float32(-1.0))
    else:
        sources = np.clip(sobel_edges(unit) / np.float32(8.0), 0.0, 1.0) * np.float32(2.0) - np.float32(1.0)
    return PairedSet(sources.astype(np.float32), targets, labels.astype(np.int64))


NUCLEI_MASK_MODES = ("binary", "boundary")


def nuclei_mask_to_image(split="train", tile=64, stride=32, quadrant=3, mask="binary"):
    """Pairs nuclei mask → nuclei image tile, from the embedded 512 × 512 fluorescence image.

    The region split is :func:`~minicnn.data.nuclei_segmentation`'s: the held-out ``quadrant``
    (256 × 256) is the test region, cut into non-overlapping ``tile × tile`` tiles; the train
    tiles start every ``stride`` pixels inside the other three quadrants, so no train tile
    reaches into the test region. The image is scaled to [-1, 1] by the minimum and maximum of
    the three training quadrants (test pixels beyond them are clipped).

    Args:
        split: ``"train"`` or ``"test"``.
        tile: tile side, 1..256.
        stride: step between training tiles.
        quadrant: the held-out quadrant, 0..3 (top-left, top-right, bottom-left, bottom-right).
        mask: ``"binary"``: 1 on nuclei, -1 on background; ``"boundary"``: 1 inside nuclei, 0 on
            their one-pixel boundary (two pixels between touching nuclei, see
            :func:`~minicnn.data.three_class_mask`), -1 on background, so touching nuclei stay apart.
    Returns:
        :class:`PairedSet`: sources (masks) and targets (images) float32 ``(T, 1, tile, tile)``,
        ``origins`` the top-left (row, column) of each tile in the 512 × 512 image. With the
        defaults: 147 train tiles and 16 test tiles.
    """
    if mask not in NUCLEI_MASK_MODES:
        raise ValueError(f"nuclei_mask_to_image: mask must be 'binary' or 'boundary', got {mask!r}")
    seg = nuclei_segmentation(split, classes=3, tile=tile, stride=stride, quadrant=quadrant)
    tile = int(tile)
    if split == "test":                  # one 256 x 256 image: cut it into non-overlapping tiles
        starts = range(0, QUADRANT_SIZE - tile + 1, tile)
        r0, c0 = (int(v) for v in seg.origins[0])
        cells = [(y, x) for y in starts for x in starts]
        labels = np.stack([seg.masks[0, y:y + tile, x:x + tile] for y, x in cells])
        origins = np.array([(r0 + y, c0 + x) for y, x in cells], dtype=np.int64)
    else:
        labels, origins = seg.masks, seg.origins
    raw = nuclei_arrays()[0].astype(np.float64)
    q = QUADRANT_SIZE
    train = [k for k in range(4) if k != quadrant]
    pixels = np.concatenate([raw[r:r + q, c:c + q].ravel() for r, c in (NUCLEI_QUADRANTS[k] for k in train)])
    lo, hi = pixels.min(), pixels.max()
    image = np.clip(2.0 * (raw - lo) / (hi - lo) - 1.0, -1.0, 1.0).astype(np.float32)
    targets = np.stack([image[r:r + tile, c:c + tile] for r, c in origins])[:, None]
    values = np.array([-1.0, 1.0, 1.0 if mask == "binary" else 0.0], dtype=np.float32)
    sources = values[labels][:, None]
    return PairedSet(sources, targets, origins=origins)


def domain_pair(name, split="train", image_size=32, n=None, root=FASHION_MNIST_ROOT):
    """Two unpaired real image domains for CycleGAN, both scaled to [-1, 1] and padded 28 → S.

    * ``"sneaker-boot"``: Fashion-MNIST sneakers (class 7) ↔ ankle boots (class 9): 6,000 / 6,000
      train and 1,000 / 1,000 test images.
    * ``"digits-fashion"``: embedded MNIST digits (4,000 train / 1,000 test) ↔ Fashion-MNIST items of
      all classes, the first as many as there are digits in the split.

    Args:
        name: ``"sneaker-boot"`` or ``"digits-fashion"``.
        split: ``"train"`` or ``"test"`` (each domain from its own dataset's split).
        image_size: side S >= 28 (padding with -1, 2 pixels a side for 32).
        n: at most ``n`` images per domain (None: as above).
    Returns:
        :class:`UnpairedSet` with ``a`` and ``b`` float32 ``(N, 1, S, S)``, their class ids
        ``labels_a`` / ``labels_b``, and ``names``.
    """
    image_size = _check_image_size(image_size, "domain_pair")
    if name not in DOMAIN_PAIRS:
        raise ValueError(f"domain_pair: name must be one of {', '.join(DOMAIN_PAIRS)}, got {name!r}")
    images, labels = fashion_mnist_arrays(split, root)
    if name == "sneaker-boot":
        a, la = _select(images, labels, (7,), n, "domain_pair")
        b, lb = _select(images, labels, (9,), n, "domain_pair")
    else:
        a, la = _select(*_raw("digits", split, root, "domain_pair"), None, n, "domain_pair")
        b, lb = _select(images, labels, None, len(a), "domain_pair")
    return UnpairedSet(_pad_unit(a, image_size), _pad_unit(b, image_size), la.astype(np.int64),
                       lb.astype(np.int64), DOMAIN_PAIRS[name])


__all__ = ["DOMAIN_PAIRS", "GAN_DATASETS", "NUCLEI_MASK_MODES", "PairedSet",
           "UnpairedSet", "canny_edges", "domain_pair", "edges_to_fashion", "gan_images", "gaussian_kernel1d",
           "nuclei_mask_to_image", "sobel_edges"]
