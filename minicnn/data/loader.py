"""DataLoader: iterate over a dataset in (optionally shuffled) mini-batches of NumPy arrays."""
import numpy as np

from minicnn.data.dataset import Subset
from minicnn.data.transforms import apply_transform


def default_collate(samples):
    """Stack a list of samples ``[(x0, y0), (x1, y1), ...]`` into ``(X, Y)`` arrays.

    Samples that are tuples/lists are stacked field by field; anything else is
    stacked as one array.
    """
    first = samples[0]
    if isinstance(first, (tuple, list)):
        return tuple(np.stack([np.asarray(s[k]) for s in samples]) for k in range(len(first)))
    return np.stack([np.asarray(s) for s in samples])


def batch_getter(dataset):
    """Return ``f(indices, rng) -> (x, y)`` that gathers a batch at once, or None.

    Datasets with a ``get_batch`` method answer directly; a :class:`Subset`
    maps the indices through its own and asks the dataset it wraps.
    """
    if hasattr(dataset, "get_batch"):
        return dataset.get_batch
    if isinstance(dataset, Subset):
        inner = batch_getter(dataset.dataset)
        if inner is not None:
            return lambda indices, rng=None: inner(dataset.indices[indices], rng=rng)
    return None


class DataLoader:
    """Mini-batches ``(x, y)`` of a dataset as NumPy arrays.

    Args:
        dataset: a :class:`~minicnn.data.Dataset`. If it has a
            ``get_batch(indices, rng=None)`` method (``ArrayDataset``) or is a
            ``Subset`` of one, each batch is gathered with one fancy-index per array;
            otherwise items are fetched one by one and stacked.
        batch_size: samples per batch.
        shuffle: draw a new permutation of the indices at the start of every epoch.
        drop_last: drop the last batch if it has fewer than ``batch_size`` samples.
        seed: seed of the loader's ``numpy.random.Generator`` s. Two streams are
            spawned from it: one for the epoch permutations, one handed to the
            transforms as ``rng``. Same seed => same sequence of epochs
            (order and augmentation); each epoch differs from the previous one.
            ``None`` seeds from the operating system.
        transform: optional batch transform ``t(x, rng=None) -> x`` applied to
            each batch of inputs (after the dataset's own transform).
        sampler: optional iterable of dataset indices with ``len`` (such as
            :class:`minicnn.distributed.DistributedSampler`), iterated afresh every
            epoch; it replaces ``shuffle`` (which must then be False) and N is its length.

    ``len(loader)`` is ``N // batch_size`` with ``drop_last`` and
    ``ceil(N / batch_size)`` without.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 transform=None, collate_fn=default_collate, sampler=None):
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True exclude each other (the sampler orders the indices)")
        self.sampler = sampler
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.collate_fn = collate_fn
        order_seed, aug_seed = np.random.SeedSequence(seed).spawn(2)
        self._order_rng = np.random.default_rng(order_seed)
        self._aug_rng = np.random.default_rng(aug_seed)

    def __len__(self):
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def batch_indices(self):
        """The list of index arrays of one epoch (draws a new permutation if shuffling)."""
        if self.sampler is not None:
            order = np.fromiter(self.sampler, dtype=np.int64)
        else:
            n = len(self.dataset)
            order = self._order_rng.permutation(n) if self.shuffle else np.arange(n)
        return [order[i * self.batch_size:(i + 1) * self.batch_size] for i in range(len(self))]

    def __iter__(self):
        get_batch = batch_getter(self.dataset)
        for idx in self.batch_indices():
            if get_batch is not None:
                x, y = get_batch(idx, rng=self._aug_rng)
            else:
                x, y = self.collate_fn([self.dataset[int(i)] for i in idx])
            if self.transform is not None:
                x = apply_transform(self.transform, x, self._aug_rng)
            yield x, y
