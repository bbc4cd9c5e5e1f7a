"""The networks and data the mpiexec scripts and tests/test_distributed.py share.

This folder has no ``test_*`` files: pytest collects none of it; tests/test_distributed.py
launches its scripts with ``mpiexec -n 2``.
"""
import numpy as np

from minicnn import nn
from minicnn.models import seed_cnn
from minicnn.random import manual_seed

LOCAL_BATCH = 4      # samples per rank and step
STEPS = 3            # SGD steps
SGD = dict(lr=0.1, momentum=0.9, weight_decay=1e-3)


def small_bn_net(seed):
    """conv(3→4, 3×3, pad 1)-BatchNorm-ReLU-maxpool(2) → conv(4→6, 3×3)-BatchNorm-ReLU →
    flatten → linear(6·2·2 → 5) on 8×8 inputs, in float64, weights drawn from ``seed``."""
    manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 5),
    ).to(np.float64)


def seed_net(seed):
    """The seed CNN (32×32×3 → 10 classes, 122,570 parameters) in float32, weights from ``seed``."""
    manual_seed(seed)
    return seed_cnn(in_channels=3, num_classes=10, image_size=32)


def batch(step, world, size, classes, dtype):
    """The combined batch of ``step``: ``world · LOCAL_BATCH`` images ``(3, size, size)`` and labels."""
    rng = np.random.default_rng(100 + step)
    n = world * LOCAL_BATCH
    x = rng.normal(size=(n, 3, size, size)).astype(dtype)
    y = rng.integers(0, classes, size=n)
    return x, y


def bn_case(world):
    """SyncBatchNorm's check: a batch split unevenly over the ranks (sizes), input and output grad."""
    rng = np.random.default_rng(7)
    sizes = [2 + 2 * r for r in range(world)]
    x = rng.normal(loc=1.5, scale=2.0, size=(sum(sizes), 4, 3, 5))
    gy = rng.normal(size=x.shape)
    weight, bias = rng.normal(size=4), rng.normal(size=4)
    return sizes, x, gy, weight, bias
