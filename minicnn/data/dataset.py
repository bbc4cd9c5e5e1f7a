"""Datasets: indexable collections of ``(x, y)`` samples held as NumPy arrays.

A :class:`Dataset` only has to answer ``len(ds)`` and ``ds[i]``. Datasets that
can also answer a whole batch at once (``ds.get_batch(indices, rng=None)``) let
the :class:`~minicnn.data.loader.DataLoader` skip the per-item Python loop; the
array-backed :class:`ArrayDataset` does, and the loader sees through
(nested) :class:`Subset` s of one.
"""
import numpy as np

from minicnn.data.transforms import apply_transform


class Dataset:
    """Abstract dataset: subclasses define ``__len__`` and ``__getitem__``.

    ``ds[i]`` returns one sample, by convention a tuple ``(x, y)`` with ``x`` a
    ``(C, H, W)`` array and ``y`` a label (an integer or an array).
    """

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class ArrayDataset(Dataset):
    """A dataset over two arrays with the same first dimension (like ``TensorDataset``).

    Args:
        images: array ``(N, C, H, W)`` (any array whose first axis indexes samples).
        labels: array ``(N, ...)``: class ids ``(N,)``, or masks ``(N, H, W)``, ...
        transform: optional batch transform ``t(x, rng=None) -> x`` (or a plain
            function ``f(x) -> x``) applied to
            the images (see :mod:`minicnn.data.transforms`). A single item is
            transformed as a batch of one.

    The arrays are kept, not copied.
    """

    def __init__(self, images, labels, transform=None):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if len(images) != len(labels):
            raise ValueError(
                f"ArrayDataset: images and labels must have the same length, "
                f"got images {images.shape} and labels {labels.shape}")
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        x = self.images[index]
        if self.transform is not None:
            x = apply_transform(self.transform, x[None])[0]
        return x, self.labels[index]

    def get_batch(self, indices, rng=None):
        """Return ``(images[indices], labels[indices])`` with one fancy-index per array."""
        indices = np.asarray(indices, dtype=np.int64)
        x = self.images[indices]
        if self.transform is not None:
            x = apply_transform(self.transform, x, rng)
        return x, self.labels[indices]


class Subset(Dataset):
    """The samples ``dataset[indices[0]], dataset[indices[1]], ...``."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1:
            raise ValueError(f"Subset: indices must be 1-D, got shape {self.indices.shape}")
        n = len(dataset)
        if len(self.indices) and (self.indices.min() < -n or self.indices.max() >= n):
            raise IndexError(f"Subset: indices out of range for a dataset of length {n}")

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]


def random_split(dataset, lengths, seed=None):
    """Split ``dataset`` into disjoint random :class:`Subset` s.

    Args:
        dataset: any :class:`Dataset`.
        lengths: integer lengths summing to ``len(dataset)``, or fractions summing
            to 1. Fractions become ``floor(f * N)`` and the left-over samples
            are handed out one each to the first subsets (as PyTorch does).
        seed: seed of the ``numpy.random.Generator`` that draws the permutation.

    Returns:
        list of :class:`Subset`, in the order of ``lengths``.
    """
    n = len(dataset)
    lengths = list(lengths)
    if all(isinstance(v, float) for v in lengths) and abs(sum(lengths) - 1.0) < 1e-6:
        counts = [int(np.floor(f * n)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(int(v) != v or v < 0 for v in lengths) or sum(lengths) != n:
        raise ValueError(
            f"random_split: lengths must be non-negative integers summing to len(dataset)={n} "
            f"or fractions summing to 1, got {lengths}")
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + [int(v) for v in lengths])
    return [Subset(dataset, perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
