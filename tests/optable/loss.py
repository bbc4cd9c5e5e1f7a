"""Op-table entries of the losses (references: plain NumPy formulas, float64).

Targets travel as positional integer arrays (not differentiated) or float arrays (then the
gradient with respect to the target is checked too). Regression samples keep the residual
away from the kinks (0 for l1, ±beta for smooth_l1).
"""
import numpy as np

import minicnn.functional as F
from optable import OpInfo, Sample


def _u(rng, *shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape)


def _reduce(loss, reduction, denom=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (loss.size if denom is None else denom)


def _np_log_softmax(a, axis=1):
    s = a - a.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def _np_nll(logp, t, weight=None, ignore_index=-100, reduction="mean"):
    """Loops over every sample/pixel: ℓ = −w[t]·logp[n, t, ...]; weighted mean."""
    C = logp.shape[1]
    w = np.ones(C) if weight is None else weight
    lp = np.moveaxis(logp, 1, -1).reshape(-1, C)
    tt = t.reshape(-1)
    loss, wsum = np.zeros(tt.size), 0.0
    for i, c in enumerate(tt):
        if c != ignore_index:
            loss[i] = -w[c] * lp[i, c]
            wsum += w[c]
    return _reduce(loss.reshape(t.shape), reduction, wsum)


def _np_cross_entropy(x, t, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    logp = _np_log_softmax(x)
    C = x.shape[1]
    if t.dtype.kind == "f":
        q = t * (1 - label_smoothing) + label_smoothing / C
        w = np.ones(C) if weight is None else weight
        loss = -(logp * q * w.reshape((1, C) + (1,) * (x.ndim - 2))).sum(axis=1)
        return _reduce(loss, reduction)
    nll = _np_nll(logp, t, weight, ignore_index, reduction)
    if label_smoothing == 0:
        return nll
    w = np.ones(C) if weight is None else weight
    valid = t != ignore_index
    smooth = -(logp * w.reshape((1, C) + (1,) * (x.ndim - 2))).sum(axis=1) * valid
    denom = w[np.where(valid, t, 0)][valid].sum()
    return (1 - label_smoothing) * nll + label_smoothing / C * _reduce(smooth, reduction, denom)


def _ce_samples(rng):
    w = rng.uniform(0.5, 2.0, 4)
    seg_t = rng.integers(0, 3, size=(2, 2, 3))
    seg_t[0, 0, 1] = seg_t[1, 1, 2] = 255
    probs = rng.dirichlet(np.ones(3), size=4)
    return [
        Sample((_u(rng, 5, 4), rng.integers(0, 4, 5))),
        Sample((_u(rng, 5, 4), rng.integers(0, 4, 5)), dict(weight=w, reduction="sum")),
        Sample((_u(rng, 5, 4), np.array([0, 3, -100, 1, 3])), dict(weight=w), name="weighted mean, ignore"),
        Sample((_u(rng, 5, 4), rng.integers(0, 4, 5)), dict(reduction="none", label_smoothing=0.2)),
        Sample((_u(rng, 5, 4), np.array([1, -100, 2, 3, 0])), dict(weight=w, label_smoothing=0.1)),
        Sample((_u(rng, 2, 3, 2, 3), seg_t), dict(ignore_index=255), name="segmentation (N,C,H,W)"),
        Sample((_u(rng, 4, 3), probs), dict(label_smoothing=0.1), name="probability targets"),
    ]


def _np_bce(x, y, weight=None, reduction="mean"):
    w = 1.0 if weight is None else weight
    return _reduce(-w * (y * np.log(x) + (1 - y) * np.log(1 - x)), reduction)


def _np_bce_logits(x, y, weight=None, reduction="mean", pos_weight=None):
    p = 1 / (1 + np.exp(-x))
    pw = 1.0 if pos_weight is None else pos_weight
    w = 1.0 if weight is None else weight
    return _reduce(-w * (pw * y * np.log(p) + (1 - y) * np.log(1 - p)), reduction)


def _np_smooth_l1(x, y, reduction="mean", beta=1.0):
    d = np.abs(x - y)
    loss = d if beta == 0 else np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return _reduce(loss, reduction)


def _np_focal(x, y, alpha=0.25, gamma=2.0, reduction="none"):
    p = 1 / (1 + np.exp(-x))
    ce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return _reduce(loss, reduction)


def _residual_pair(rng, shape, kinks):
    """(x, y) with x − y kept ≥ 0.1 away from every kink."""
    x = _u(rng, *shape)
    d = _u(rng, *shape)
    for k in kinks:
        d = np.where(np.abs(np.abs(d) - k) < 0.1, d + 0.3 * np.sign(d + 1e-9), d)
    return x, x - d


def _regression(rng, kinks, **extra):
    return [
        Sample(_residual_pair(rng, (3, 4), kinks), dict(extra)),
        Sample(_residual_pair(rng, (2, 3, 2), kinks), dict(extra, reduction="sum")),
        Sample(_residual_pair(rng, (5,), kinks), dict(extra, reduction="none")),
    ]


OPS = [
    OpInfo("cross_entropy", lambda x, t, **k: F.cross_entropy(x, t, **k), _np_cross_entropy, _ce_samples,
           grad_inputs=[0]),
    OpInfo("nll_loss", lambda x, t, **k: F.nll_loss(x, t, **k), _np_nll, lambda rng: [
        Sample((_np_log_softmax(_u(rng, 5, 3)), np.array([0, 2, 1, -100, 2])), dict(weight=np.array([0.5, 1.0, 2.0]))),
        Sample((_np_log_softmax(_u(rng, 2, 3, 2, 2)), rng.integers(0, 3, (2, 2, 2))), dict(reduction="none")),
    ], grad_inputs=[0]),
    OpInfo("binary_cross_entropy", lambda x, y, **k: F.binary_cross_entropy(x, y, **k), _np_bce, lambda rng: [
        Sample((rng.uniform(0.05, 0.95, (3, 4)), rng.uniform(0, 1, (3, 4)))),
        Sample((rng.uniform(0.05, 0.95, (6,)), (rng.uniform(size=6) > 0.5).astype(float)),
               dict(weight=rng.uniform(0.5, 2, 6), reduction="sum")),
    ]),
    OpInfo("binary_cross_entropy_with_logits", lambda x, y, **k: F.binary_cross_entropy_with_logits(x, y, **k),
           _np_bce_logits, lambda rng: [
               Sample((_u(rng, 3, 4, lo=-4, hi=4), rng.uniform(0, 1, (3, 4)))),
               Sample((_u(rng, 3, 4), (rng.uniform(size=(3, 4)) > 0.5).astype(float)),
                      dict(pos_weight=rng.uniform(0.5, 3, 4), weight=rng.uniform(0.5, 2, (3, 4)), reduction="none")),
           ]),
    OpInfo("mse_loss", lambda x, y, **k: F.mse_loss(x, y, **k),
           lambda x, y, reduction="mean": _reduce((x - y) ** 2, reduction), lambda rng: _regression(rng, ())),
    OpInfo("l1_loss", lambda x, y, **k: F.l1_loss(x, y, **k),
           lambda x, y, reduction="mean": _reduce(np.abs(x - y), reduction), lambda rng: _regression(rng, (0.0,))),
    OpInfo("smooth_l1_loss", lambda x, y, **k: F.smooth_l1_loss(x, y, **k), _np_smooth_l1,
           lambda rng: _regression(rng, (0.0, 1.0)) + _regression(rng, (0.0, 0.5), beta=0.5)),
    OpInfo("sigmoid_focal_loss", lambda x, y, **k: F.sigmoid_focal_loss(x, y, **k), _np_focal, lambda rng: [
        Sample((_u(rng, 3, 4), (rng.uniform(size=(3, 4)) > 0.7).astype(float))),
        Sample((_u(rng, 2, 5), (rng.uniform(size=(2, 5)) > 0.5).astype(float)),
               dict(alpha=-1, gamma=1.5, reduction="mean")),
    ], grad_inputs=[0]),
]
