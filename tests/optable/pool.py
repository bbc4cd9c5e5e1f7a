"""Op-table entries of pooling: max/avg (1-D, 2-D), adaptive avg/max, global avg, max_unpool2d.

References are the plain loops of ``kernels/reference/pool.py``; the adapters below parse the
PyTorch-style arguments on their own. Max-type samples use all-distinct, well-spaced values so
every window has a unique winner (finite differences never cross a kink).
"""
import numpy as np

import minicnn.functional as F
from minicnn.kernels.reference import pool as R
from optable import OpInfo, Sample


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _distinct(rng, *shape):
    n = int(np.prod(shape))
    return rng.permutation((np.arange(n) - n / 2) * 0.1).reshape(shape)


def _u(rng, *shape):
    return rng.uniform(-1.0, 1.0, size=shape)


def ref_max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    k = _pair(kernel_size)
    y, idx = R.max_pool2d_forward(x, k, _pair(stride) if stride else k, _pair(padding), _pair(dilation), ceil_mode)
    return (y, idx) if return_indices else y


def ref_max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    out = ref_max_pool2d(x[:, :, None, :], (1, kernel_size), (1, stride or kernel_size), (0, padding),
                         (1, dilation), ceil_mode, return_indices)
    return tuple(o[:, :, 0, :] for o in out) if return_indices else out[:, :, 0, :]


def ref_avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                   divisor_override=None):
    k = _pair(kernel_size)
    return R.avg_pool2d_forward(x, k, _pair(stride) if stride else k, _pair(padding), ceil_mode,
                                count_include_pad, divisor_override)


def ref_avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return R.avg_pool2d_forward(x[:, :, None, :], (1, kernel_size), (1, stride or kernel_size), (0, padding),
                                ceil_mode, count_include_pad)[:, :, 0, :]


def ref_adaptive_max_pool2d(x, output_size, return_indices=False):
    y, idx = R.adaptive_max_pool2d_forward(x, _pair(output_size))
    return (y, idx) if return_indices else y


def ref_max_unpool2d(x, idx, kernel_size, stride=None, padding=0, output_size=None):
    k, p = _pair(kernel_size), _pair(padding)
    s = _pair(stride) if stride else k
    hw = output_size[-2:] if output_size else tuple((n - 1) * si - 2 * pi + ki
                                                    for n, si, pi, ki in zip(x.shape[2:], s, p, k))
    return R.max_unpool2d_forward(x, idx, hw)


def _unpool_samples(rng):
    x = _u(rng, 2, 2, 3, 3)
    # indices of a 2x2/stride-2 max pool of a 6x6 plane: one per window, no duplicates
    win = rng.integers(0, 2, size=(2, 2, 3, 3, 2))
    rows = 2 * np.arange(3)[:, None] + win[..., 0]
    cols = 2 * np.arange(3)[None, :] + win[..., 1]
    pooled_idx = (rows * 6 + cols).astype(np.int64)
    dup_idx = rng.integers(0, 4, size=(1, 2, 2, 3)).astype(np.int64)  # many duplicates: scatter-ADD
    return [
        Sample((x, pooled_idx), dict(kernel_size=2), name="indices of a max pool"),
        Sample((_u(rng, 1, 2, 2, 3), dup_idx), dict(kernel_size=2, stride=1, output_size=(3, 4)),
               name="duplicate indices add"),
        Sample((_u(rng, 1, 1, 3, 2), rng.permutation(20)[:6].reshape(1, 1, 3, 2).astype(np.int64)),
               dict(kernel_size=(2, 3), stride=(2, 3), padding=(1, 1), output_size=(1, 1, 5, 4)), name="padding, 4-entry output_size"),
    ]


OPS = [
    OpInfo("max_pool2d", lambda x, **k: F.max_pool2d(x, **k), ref_max_pool2d, lambda rng: [
        Sample((_distinct(rng, 2, 2, 5, 6),), dict(kernel_size=2), name="2x2"),
        Sample((_distinct(rng, 1, 2, 7, 6),), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                                   return_indices=True), name="3x3 s2 p1 ceil, indices"),
        Sample((_distinct(rng, 1, 1, 7, 8),), dict(kernel_size=(3, 2), stride=(1, 3), padding=(1, 0),
                                                   dilation=(2, 3), return_indices=True), name="dilated, asymmetric"),
        Sample((_distinct(rng, 1, 2, 6, 5),), dict(kernel_size=(3, 2), stride=2, padding=1, dilation=2,
                                                   ceil_mode=True), name="overlapping, dilated, ceil"),
    ]),
    OpInfo("max_pool1d", lambda x, **k: F.max_pool1d(x, **k), ref_max_pool1d, lambda rng: [
        Sample((_distinct(rng, 2, 3, 9),), dict(kernel_size=3, stride=2, padding=1, return_indices=True)),
        Sample((_distinct(rng, 1, 2, 8),), dict(kernel_size=2, dilation=3, stride=1, ceil_mode=True)),
    ]),
    OpInfo("avg_pool2d", lambda x, **k: F.avg_pool2d(x, **k), ref_avg_pool2d, lambda rng: [
        Sample((_u(rng, 2, 2, 5, 6),), dict(kernel_size=2), name="2x2"),
        Sample((_u(rng, 1, 2, 6, 7),), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
               name="ceil overhang, count_include_pad"),
        Sample((_u(rng, 1, 2, 6, 7),), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                            count_include_pad=False), name="ceil, exclude pad"),
        Sample((_u(rng, 1, 1, 5, 5),), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), divisor_override=4),
               name="divisor_override"),
    ]),
    OpInfo("avg_pool1d", lambda x, **k: F.avg_pool1d(x, **k), ref_avg_pool1d, lambda rng: [
        Sample((_u(rng, 2, 2, 8),), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        Sample((_u(rng, 1, 3, 7),), dict(kernel_size=2, stride=1, padding=1, count_include_pad=False)),
    ]),
    OpInfo("adaptive_avg_pool2d", lambda x, **k: F.adaptive_avg_pool2d(x, **k),
           lambda x, output_size: R.adaptive_avg_pool2d_forward(x, _pair(output_size)), lambda rng: [
               Sample((_u(rng, 2, 2, 5, 7),), dict(output_size=(3, 4)), name="overlapping bins"),
               Sample((_u(rng, 1, 2, 3, 2),), dict(output_size=(5, 4)), name="more bins than inputs"),
           ]),
    OpInfo("adaptive_max_pool2d", lambda x, **k: F.adaptive_max_pool2d(x, **k), ref_adaptive_max_pool2d,
           lambda rng: [
               Sample((_distinct(rng, 2, 2, 5, 7),), dict(output_size=(3, 4), return_indices=True)),
               Sample((_distinct(rng, 1, 2, 3, 2),), dict(output_size=(4, 3))),
           ]),
    OpInfo("global_avg_pool2d", F.global_avg_pool2d, lambda x: x.mean(axis=(2, 3), keepdims=True),
           lambda rng: [Sample((_u(rng, 2, 3, 4, 5),))]),
    OpInfo("max_unpool2d", lambda x, idx, **k: F.max_unpool2d(x, idx, **k), ref_max_unpool2d, _unpool_samples),
]
