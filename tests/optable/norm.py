"""Op-table entries of the normalisations (references: the textbook formulas in NumPy).

Running statistics travel as keyword arrays and are wrapped on the input's device inside
``fn``; they are not differentiated.
"""
import numpy as np

import minicnn.functional as F
from minicnn import Tensor
from optable import OpInfo, Sample


def _u(rng, *shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape)


def _standardize(a, axes, eps):
    mu = a.mean(axis=axes, keepdims=True)
    var = a.var(axis=axes, keepdims=True)
    return (a - mu) / np.sqrt(var + eps)


def _channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _np_batch_norm(a, w=None, b=None, eps=1e-5, running=None):
    if running is None:
        y = _standardize(a, (0,) + tuple(range(2, a.ndim)), eps)
    else:
        mean, var = running
        y = (a - _channel(mean, a.ndim)) / np.sqrt(_channel(var, a.ndim) + eps)
    if w is not None:
        y = y * _channel(w, a.ndim) + _channel(b, a.ndim)
    return y


def _batch_norm(x, w=None, b=None, eps=1e-5, running=None):
    if running is None:
        return F.batch_norm(x, None, None, w, b, training=True, eps=eps)
    mean, var = (Tensor(r, device=x.device) for r in running)
    return F.batch_norm(x, mean, var, w, b, training=False, eps=eps)


def _np_instance_norm(a, w=None, b=None, eps=1e-5):
    y = _standardize(a, tuple(range(2, a.ndim)), eps)
    return y if w is None else y * _channel(w, a.ndim) + _channel(b, a.ndim)


def _np_layer_norm(a, w, b, shape, eps=1e-5):
    y = _standardize(a, tuple(range(a.ndim - len(shape), a.ndim)), eps)
    return y * w + b


def _np_group_norm(a, w, b, groups, eps=1e-5):
    g = a.reshape(a.shape[0], groups, -1)
    y = _standardize(g, (2,), eps).reshape(a.shape)
    return y * _channel(w, a.ndim) + _channel(b, a.ndim)


OPS = [
    OpInfo("batch_norm", _batch_norm, _np_batch_norm, lambda rng: [
        Sample((_u(rng, 5, 3), _u(rng, 3), _u(rng, 3)), name="(N, C) affine"),
        Sample((_u(rng, 2, 3, 2, 3), _u(rng, 3), _u(rng, 3)), dict(eps=1e-3), name="(N, C, H, W) affine"),
        Sample((_u(rng, 3, 2, 4),), name="(N, C, L) no affine"),
        Sample((_u(rng, 2, 3, 2, 2), _u(rng, 3), _u(rng, 3)),
               dict(running=(_u(rng, 3), rng.uniform(0.5, 2.0, 3))), name="eval, running stats"),
    ]),
    OpInfo("instance_norm", lambda x, w=None, b=None, eps=1e-5: F.instance_norm(x, None, None, w, b, eps=eps),
           _np_instance_norm, lambda rng: [
               Sample((_u(rng, 2, 3, 2, 3), _u(rng, 3), _u(rng, 3))),
               Sample((_u(rng, 2, 2, 3, 3),), dict(eps=1e-3), name="no affine"),
           ]),
    OpInfo("layer_norm", lambda x, w, b, shape: F.layer_norm(x, shape, w, b), _np_layer_norm, lambda rng: [
        Sample((_u(rng, 3, 5), _u(rng, 5), _u(rng, 5)), dict(shape=(5,))),
        Sample((_u(rng, 2, 2, 3), _u(rng, 2, 3), _u(rng, 2, 3)), dict(shape=(2, 3))),
    ]),
    OpInfo("group_norm", lambda x, w, b, groups: F.group_norm(x, groups, w, b), _np_group_norm, lambda rng: [
        Sample((_u(rng, 2, 4, 2, 2), _u(rng, 4), _u(rng, 4)), dict(groups=2)),
        Sample((_u(rng, 2, 3, 3), _u(rng, 3), _u(rng, 3)), dict(groups=3)),
    ]),
]
