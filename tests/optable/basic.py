"""Op-table entries of the foundation ops (elementwise, reductions, matmul, shape ops)."""
import numpy as np

import minicnn.functional as F
from optable import OpInfo, Sample


def _u(rng, *shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape)


def _pos(rng, *shape):
    return rng.uniform(0.5, 2.0, size=shape)


def _binary_samples(rng, positive_second=False):
    second = _pos if positive_second else _u
    return [
        Sample((_u(rng, 3, 4), second(rng, 3, 4)), name="same shape"),
        Sample((_u(rng, 2, 3, 4), second(rng, 4)), name="broadcast trailing"),
        Sample((_u(rng, 2, 1, 4), second(rng, 3, 1)), name="broadcast both"),
        Sample((_u(rng, 3), second(rng, 2, 1, 3)), name="broadcast first"),
    ]


def _unary(rng, positive=False, off_kink=False):
    if positive:
        return [Sample((_pos(rng, 3, 4),)), Sample((_pos(rng, 2, 3, 2),))]
    a = _u(rng, 3, 4)
    if off_kink:  # keep away from 0 so finite differences never cross the kink
        a = np.where(np.abs(a) < 0.1, a + 0.3, a)
    return [Sample((a,)), Sample((_u(rng, 2, 1, 3) + 5.5 if not off_kink else np.abs(_u(rng, 2, 3)) + 0.2,))]


def _reduction_samples(rng, distinct=False):
    def arr(*shape):
        if distinct:
            n = int(np.prod(shape))
            return rng.permutation((np.arange(n) - n / 2) * 0.1).reshape(shape)
        return _u(rng, *shape)

    return [
        Sample((arr(3, 4),), dict(axis=None)),
        Sample((arr(3, 4, 2),), dict(axis=1)),
        Sample((arr(3, 4, 2),), dict(axis=(0, 2), keepdims=True)),
        Sample((arr(2, 3),), dict(axis=-1, keepdims=False)),
    ]


def _np_var(a, axis=None, keepdims=False, correction=1):
    return np.var(a, axis=axis, keepdims=keepdims, ddof=correction)


OPS = [
    OpInfo("add", F.add, np.add, lambda rng: _binary_samples(rng)),
    OpInfo("sub", F.sub, np.subtract, lambda rng: _binary_samples(rng)),
    OpInfo("mul", F.mul, np.multiply, lambda rng: _binary_samples(rng)),
    OpInfo("div", F.div, np.divide, lambda rng: _binary_samples(rng, positive_second=True)),
    OpInfo("maximum", F.maximum, np.maximum,
           lambda rng: [Sample((_u(rng, 3, 4), _u(rng, 3, 4) + 0.05)), Sample((_u(rng, 2, 3), _u(rng, 3)))]),
    OpInfo("neg", F.neg, np.negative, lambda rng: _unary(rng)),
    OpInfo("pow", lambda x, p: F.pow(x, p), lambda a, p: a ** p,
           lambda rng: [Sample((_pos(rng, 3, 4),), dict(p=p)) for p in (2, 3, 0.5, -1.5)]),
    OpInfo("exp", F.exp, np.exp, lambda rng: _unary(rng)),
    OpInfo("log", F.log, np.log, lambda rng: _unary(rng, positive=True)),
    OpInfo("sqrt", F.sqrt, np.sqrt, lambda rng: _unary(rng, positive=True)),
    OpInfo("abs", F.abs, np.abs, lambda rng: _unary(rng, off_kink=True)),
    OpInfo("clip", lambda x, lo=None, hi=None: F.clip(x, lo, hi), lambda a, lo=None, hi=None: np.clip(a, lo, hi),
           lambda rng: [Sample((np.array([[-1.5, -0.7, 0.2], [0.66, 1.2, 1.9]]),), dict(lo=-1.0, hi=1.0)),
                        Sample((np.array([-0.3, 0.45, 2.0]),), dict(lo=0.0))]),
    OpInfo("where", lambda x, y, cond=None: F.where(cond, x, y), lambda a, b, cond=None: np.where(cond, a, b),
           lambda rng: [Sample((_u(rng, 3, 4), _u(rng, 4)), dict(cond=rng.uniform(size=(3, 4)) > 0.5))]),
    OpInfo("sum", lambda x, **k: F.sum(x, **k), lambda a, **k: np.sum(a, **k), lambda rng: _reduction_samples(rng)),
    OpInfo("mean", lambda x, **k: F.mean(x, **k), lambda a, **k: np.mean(a, **k), lambda rng: _reduction_samples(rng)),
    OpInfo("max", lambda x, **k: F.max(x, **k), lambda a, **k: np.max(a, **k), lambda rng: _reduction_samples(rng, True)),
    OpInfo("min", lambda x, **k: F.min(x, **k), lambda a, **k: np.min(a, **k), lambda rng: _reduction_samples(rng, True)),
    OpInfo("var", lambda x, **k: F.var(x, **k), _np_var,
           lambda rng: _reduction_samples(rng) + [Sample((_u(rng, 4, 3),), dict(axis=0, correction=0))]),
    OpInfo("logsumexp", lambda x, **k: F.logsumexp(x, **k),
           lambda a, axis=None, keepdims=False: np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims)),
           lambda rng: _reduction_samples(rng)),
    OpInfo("matmul", F.matmul, np.matmul, lambda rng: [
        Sample((_u(rng, 3, 4), _u(rng, 4, 2)), name="2d"),
        Sample((_u(rng, 2, 3, 4), _u(rng, 4, 5)), name="batched x"),
        Sample((_u(rng, 2, 1, 3, 4), _u(rng, 3, 4, 2)), name="broadcast batch"),
        Sample((_u(rng, 4), _u(rng, 4, 3)), name="vector @ matrix"),
        Sample((_u(rng, 2, 3, 4), _u(rng, 4)), name="matrix @ vector"),
        Sample((_u(rng, 4), _u(rng, 4)), name="dot"),
    ]),
    OpInfo("reshape", lambda x, shape: F.reshape(x, shape), lambda a, shape: a.reshape(shape),
           lambda rng: [Sample((_u(rng, 2, 3, 4),), dict(shape=(6, 4))), Sample((_u(rng, 6),), dict(shape=(3, -1)))]),
    OpInfo("permute", lambda x, dims: F.permute(x, dims), lambda a, dims: a.transpose(dims),
           lambda rng: [Sample((_u(rng, 2, 3, 4),), dict(dims=(2, 0, 1)))]),
    OpInfo("transpose", lambda x, d0, d1: F.transpose(x, d0, d1), lambda a, d0, d1: np.swapaxes(a, d0, d1),
           lambda rng: [Sample((_u(rng, 2, 3, 4),), dict(d0=0, d1=2))]),
    OpInfo("flatten", lambda x, **k: F.flatten(x, **k),
           lambda a, start_dim=0: a.reshape(a.shape[:start_dim] + (-1,)),
           lambda rng: [Sample((_u(rng, 2, 3, 4),), dict(start_dim=1)), Sample((_u(rng, 2, 3),))]),
    OpInfo("cat", lambda *xs, axis=0: F.cat(list(xs), axis=axis), lambda *a, axis=0: np.concatenate(a, axis=axis),
           lambda rng: [Sample((_u(rng, 2, 3), _u(rng, 2, 1), _u(rng, 2, 2)), dict(axis=1))]),
    OpInfo("stack", lambda *xs, axis=0: F.stack(list(xs), axis=axis), lambda *a, axis=0: np.stack(a, axis=axis),
           lambda rng: [Sample((_u(rng, 2, 3), _u(rng, 2, 3)), dict(axis=2)), Sample((_u(rng, 3), _u(rng, 3)))]),
    OpInfo("split", lambda x, s, axis=0: F.split(x, s, axis=axis),
           lambda a, s, axis=0: tuple(np.split(a, np.cumsum(s)[:-1], axis=axis)) if not isinstance(s, int)
           else tuple(np.array_split(a, range(s, a.shape[axis], s), axis=axis)),
           lambda rng: [Sample((_u(rng, 5, 3),), dict(s=2)), Sample((_u(rng, 2, 6),), dict(s=[1, 4, 1], axis=1))]),
    OpInfo("getitem", lambda x, index: F.getitem(x, index), lambda a, index: a[index],
           lambda rng: [
               Sample((_u(rng, 4, 5),), dict(index=(slice(1, 3), slice(None, None, 2))), name="slices"),
               Sample((_u(rng, 4, 5),), dict(index=(1,)), name="int"),
               Sample((_u(rng, 4, 5),), dict(index=(np.array([0, 2, 2, 3]),)), name="repeated ints"),
               Sample((_u(rng, 4, 5),), dict(index=(rng.uniform(size=(4, 5)) > 0.5,)), name="bool mask"),
               Sample((_u(rng, 3, 4, 5),), dict(index=(slice(None), np.array([1, 1]), np.array([0, 4]))), name="mixed"),
           ]),
    OpInfo("pad", lambda x, pad, mode="constant", value=0.0: F.pad(x, pad, mode, value),
           lambda a, pad, mode="constant", value=0.0: _np_pad(a, pad, mode, value),
           lambda rng: [
               Sample((_u(rng, 2, 3, 4),), dict(pad=(1, 2)), name="constant last"),
               Sample((_u(rng, 1, 2, 4, 5),), dict(pad=(1, 2, 2, 0), value=0.5), name="constant 2d"),
               Sample((_u(rng, 1, 2, 4, 5),), dict(pad=(3, 2, 1, 3), mode="reflect"), name="reflect"),
               Sample((_u(rng, 1, 2, 4, 5),), dict(pad=(2, 2, 1, 1), mode="replicate"), name="replicate"),
           ]),
]


def _np_pad(a, pad, mode, value):
    width = [(0, 0)] * a.ndim
    for k in range(len(pad) // 2):
        width[a.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    if mode == "constant":
        return np.pad(a, width, mode="constant", constant_values=value)
    return np.pad(a, width, mode={"reflect": "reflect", "replicate": "edge"}[mode])
