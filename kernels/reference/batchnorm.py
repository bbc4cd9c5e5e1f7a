"""Reference batch-normalisation kernels: plain loops (the oracle of ``kernels/cpu/batchnorm.py``
and ``batchnorm.cu``).

``x`` is (N, C, *spatial); channel c has the m = N·S values x[n, c, s] (S = product of the
spatial sizes, 1 when there are none). With μ_c = mean and σ²_c = biased variance of those values:

    inv_std_c = 1 / √(σ²_c + ε),   x̂ = (x − μ_c)·inv_std_c,   y = x̂·γ_c + β_c.

Training backward (the statistics are functions of x):

    gβ_c = Σ gy,   gγ_c = Σ gy·x̂,   gx = γ_c·inv_std_c·(gy − gβ_c/m − x̂·gγ_c/m).

With fixed statistics (eval: running mean and variance) the same y is an affine map of x, and
``gx = γ_c·inv_std_c·gy``; gγ and gβ are unchanged. γ = 1 and β = 0 when weight/bias are None.
Statistics and sums are float64; mean and inv_std come back as float64 (C,) arrays, y, gx, gγ, gβ
in x's dtype.
"""
import math

import numpy as np


def _channels(a):
    """a (N, C, *spatial) as (N, C, S) float64."""
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(a.shape[0], a.shape[1], -1)


def _per_channel(v, C, default):
    return np.full(C, default) if v is None else np.asarray(v, dtype=np.float64)


def batch_norm_forward(x, weight, bias, eps):
    """(y, mean, inv_std) of a training step: the batch's per-channel statistics normalise x."""
    x3 = _channels(x)
    N, C, S = x3.shape
    m = N * S
    mean, inv_std = np.empty(C), np.empty(C)
    for c in range(C):
        total = 0.0
        for n in range(N):
            for s in range(S):
                total += x3[n, c, s]
        mean[c] = total / m
        sq = 0.0
        for n in range(N):
            for s in range(S):
                sq += (x3[n, c, s] - mean[c]) ** 2
        inv_std[c] = 1.0 / math.sqrt(sq / m + eps)
    y = batch_norm_eval_forward(x, mean, inv_std, weight, bias)
    return y, mean, inv_std


def batch_norm_eval_forward(x, mean, inv_std, weight, bias):
    """y = (x − mean_c)·inv_std_c·γ_c + β_c with given statistics, in x's dtype and shape."""
    x3 = _channels(x)
    N, C, S = x3.shape
    w, b = _per_channel(weight, C, 1.0), _per_channel(bias, C, 0.0)
    y = np.empty_like(x3)
    for n in range(N):
        for c in range(C):
            for s in range(S):
                y[n, c, s] = (x3[n, c, s] - mean[c]) * inv_std[c] * w[c] + b[c]
    return y.reshape(np.shape(x)).astype(np.asarray(x).dtype)


def batch_norm_backward(gy, x, mean, inv_std, weight, needs, batch_stats):
    """(gx, gweight, gbias), each None unless ``needs`` (three booleans) asks for it.

    ``batch_stats``: True when mean and inv_std were the batch's own (training), False when they
    were fixed (eval); see the module docstring for both formulas."""
    g3, x3 = _channels(gy), _channels(x)
    N, C, S = x3.shape
    m = N * S
    w = _per_channel(weight, C, 1.0)
    gb, gw = np.zeros(C), np.zeros(C)
    for c in range(C):
        for n in range(N):
            for s in range(S):
                gb[c] += g3[n, c, s]
                gw[c] += g3[n, c, s] * (x3[n, c, s] - mean[c]) * inv_std[c]
    gx = np.empty_like(x3)
    for n in range(N):
        for c in range(C):
            for s in range(S):
                g = g3[n, c, s]
                if batch_stats:
                    xhat = (x3[n, c, s] - mean[c]) * inv_std[c]
                    g = g - gb[c] / m - xhat * gw[c] / m
                gx[n, c, s] = w[c] * inv_std[c] * g
    dtype = np.asarray(x).dtype
    out = (gx.reshape(np.shape(x)).astype(dtype), gw.astype(dtype), gb.astype(dtype))
    return tuple(o if wanted else None for o, wanted in zip(out, needs))
