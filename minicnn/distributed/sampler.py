"""DistributedSampler: each rank's share of a dataset's indices, reshuffled every epoch."""
import math

import numpy as np


class DistributedSampler:
    """The indices rank ``rank`` of ``num_replicas`` trains on in one epoch (PyTorch's sampler).

    Every rank draws the same permutation of ``range(dataset_len)`` from ``seed + epoch``
    (``numpy.random.default_rng``), makes it a multiple of ``num_replicas`` long and takes every
    ``num_replicas``-th index starting at ``rank``:

    - ``drop_last=False``: the permutation is padded by wrapping around to its start, so each
      rank gets ``ceil(N / R)`` indices (a few samples appear twice in an epoch);
    - ``drop_last=True``: its tail is dropped, so each rank gets ``floor(N / R)`` indices.

    The shards of one epoch are disjoint except for the padding, and together cover every index
    (all but the dropped tail with ``drop_last``). Call :meth:`set_epoch` before each epoch to
    reshuffle; without it every epoch repeats the same order.

    Args:
        dataset_len: N, the number of samples.
        num_replicas: R, the number of ranks (default: ``minicnn.distributed.world_size()``).
        rank: this rank (default: ``minicnn.distributed.rank()``).
        shuffle: permute the indices (otherwise ``0..N-1`` in order, then split).
        seed: the seed every rank shares.
        drop_last: drop the tail instead of padding.
    """

    def __init__(self, dataset_len, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        from . import comm

        if num_replicas is None:
            num_replicas = comm.world_size()
        if rank is None:
            rank = comm.rank()
        for name, value in (("dataset_len", dataset_len), ("num_replicas", num_replicas), ("rank", rank),
                            ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"DistributedSampler: {name} must be an integer, got {value!r}")
        if dataset_len < 0 or num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: expected dataset_len >= 0, num_replicas >= 1 and "
                             f"0 <= rank < num_replicas, got dataset_len={dataset_len}, num_replicas={num_replicas}, "
                             f"rank={rank}")
        self.dataset_len, self.num_replicas, self.rank = int(dataset_len), int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        if drop_last:
            self.num_samples = self.dataset_len // self.num_replicas
        else:
            self.num_samples = math.ceil(self.dataset_len / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch):
        """Use the permutation of ``seed + epoch`` from now on (the same on every rank)."""
        self.epoch = int(epoch)

    def indices(self):
        """This rank's indices of the current epoch, an int64 array of length ``num_samples``."""
        n = self.dataset_len
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.total_size > n:
            order = np.resize(order, self.total_size)  # repeats from the start: the wrapped padding
        else:
            order = order[:self.total_size]
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64)

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        return self.num_samples

    def __repr__(self):
        return (f"DistributedSampler(dataset_len={self.dataset_len}, num_replicas={self.num_replicas}, "
                f"rank={self.rank}, shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last})")
