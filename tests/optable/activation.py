"""Op-table entries of the activations (references: NumPy formulas in float64).

Samples keep away from kinks (relu at 0, relu6 at 0 and 6, hardsigmoid/hardswish at ±3) so
finite differences never cross one.
"""
import math

import numpy as np

import minicnn.functional as F
from optable import OpInfo, Sample


def _u(rng, *shape, lo=-3.0, hi=3.0):
    return rng.uniform(lo, hi, size=shape)


def _off(a, kinks, gap=0.1):
    """Shift entries within ``gap`` of a kink by 2·gap, so no kink lies within reach of eps."""
    for k in kinks:
        a = np.where(np.abs(a - k) < gap, a + 2 * gap, a)
    return a


def _np_softmax(a, dim):
    e = np.exp(a - a.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def _np_log_softmax(a, dim):
    s = a - a.max(axis=dim, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=dim, keepdims=True))


def _np_gelu(a, approximate="none"):
    if approximate == "tanh":
        return 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))
    return a * 0.5 * (1 + np.vectorize(math.erf)(a / math.sqrt(2)))


def _np_hardsigmoid(a):
    return np.minimum(np.maximum(a + 3.0, 0.0), 6.0) / 6.0


def _kinked(rng, kinks=(0.0,), lo=-3.0, hi=3.0):
    return [Sample((_off(_u(rng, 3, 4, lo=lo, hi=hi), kinks),)),
            Sample((_off(_u(rng, 2, 3, 2, lo=lo, hi=hi), kinks),))]


def _smooth(rng):
    return [Sample((_u(rng, 3, 4),)), Sample((_u(rng, 2, 1, 5) * 4,), name="wide range")]


def _softmax_samples(rng):
    return [
        Sample((_u(rng, 3, 4),), dict(dim=1)),
        Sample((_u(rng, 2, 3, 2),), dict(dim=0)),
        Sample((_u(rng, 2, 3, 2),), dict(dim=-1)),
        Sample((_u(rng, 2, 4) + np.array([[1000.0], [-1000.0]]),), dict(dim=1), name="large logits"),
    ]


OPS = [
    OpInfo("relu", F.relu, lambda a: np.maximum(a, 0), lambda rng: _kinked(rng)),
    OpInfo("leaky_relu", lambda x, negative_slope=0.01: F.leaky_relu(x, negative_slope),
           lambda a, negative_slope=0.01: np.where(a > 0, a, negative_slope * a),
           lambda rng: [Sample(s.arrays, dict(negative_slope=0.2)) for s in _kinked(rng)] + _kinked(rng)),
    OpInfo("relu6", F.relu6, lambda a: np.clip(a, 0, 6), lambda rng: _kinked(rng, (0.0, 6.0), -2.0, 8.0)),
    OpInfo("hardtanh", lambda x, lo, hi: F.hardtanh(x, lo, hi), lambda a, lo, hi: np.clip(a, lo, hi),
           lambda rng: [Sample(_kinked(rng, (-0.5, 1.5))[0].arrays, dict(lo=-0.5, hi=1.5))]),
    OpInfo("hardsigmoid", F.hardsigmoid, _np_hardsigmoid, lambda rng: _kinked(rng, (-3.0, 3.0), -5.0, 5.0)),
    OpInfo("hardswish", F.hardswish, lambda a: a * _np_hardsigmoid(a),
           lambda rng: _kinked(rng, (-3.0, 3.0), -5.0, 5.0)),
    OpInfo("sigmoid", F.sigmoid, lambda a: 0.5 * (1 + np.tanh(a / 2)),
           lambda rng: _smooth(rng) + [Sample((np.array([-800.0, -30.0, 0.0, 30.0, 800.0]),), name="saturated")]),
    OpInfo("tanh", F.tanh, np.tanh, _smooth),
    OpInfo("gelu", lambda x, approximate="none": F.gelu(x, approximate), _np_gelu,
           lambda rng: _smooth(rng) + [Sample((_u(rng, 3, 4),), dict(approximate="tanh"))]),
    OpInfo("softmax", lambda x, dim: F.softmax(x, dim), _np_softmax, _softmax_samples),
    OpInfo("log_softmax", lambda x, dim: F.log_softmax(x, dim), _np_log_softmax, _softmax_samples),
]
