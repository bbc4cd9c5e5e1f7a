"""Batch normalisation on the CPU: statistics, normalisation and the backward, one channel at a time.

The math is in ``kernels/reference/batchnorm.py``. ``x`` is (N, C, *spatial), C-contiguous, seen
as (N, C, S); channel c owns the N rows ``x[n, c, :]`` of S values, and a task (a range of
channels on :func:`~._threads.over_chunks`) owns its channels' sums and outputs: no races, the
same additions in the same order on every run.

Per channel, training forward: one read of the channel for the statistics, then one read and one
write for y. The statistics are *shifted* sums in float64, K = the channel's first value:
``μ = K + Σ(x − K)/m``, ``σ² = Σ(x − K)²/m − (Σ(x − K)/m)²`` (one pass; the shift keeps the
subtraction well conditioned when |μ| ≫ σ, and a constant channel gives σ² = 0 exactly).
Backward: one read of gy and x for ``Σ gy`` and ``Σ gy·(x − μ)`` (float64), then one read of both
and one write for ``gx = k·gy + p·(x − μ) + r`` (k = γ·inv_std, p = −k·inv_std·gγ/m,
r = −k·gβ/m). x̂ is recomputed from x, never stored: a training step of (32, 64, 32, 32) float32
allocates 8 MiB (y) in the forward and 16 MiB at its peak through the backward (y, gx), where the
previous path (x̂ saved, ``mul``/``add`` outputs) held 24 and peaked at 48 (tracemalloc,
2026-12-07). A channel of the layers below is 50–130 KiB, so its second pass may find it in the
core's 1 MiB L2 cache.

The reductions are compiled with ``fastmath={"reassoc"}`` (vectorised float64 sums; their order
is fixed by the compiled code, so results are reproducible but differ from a serial sum in the last
bits), without Numba's reference counts (``_jit.no_refcount``: a view of a row costs nothing,
which matters for (N, C) inputs whose rows are one value long).

Measured 2026-12-07 (AMD EPYC, 2-core shared VM, ONE pinned core: ``taskset -c 1`` with
``MINICNN_NUM_THREADS=1``, ``torch.set_num_threads(1)``; float32; ms, the median of 21 steps,
the range over 3 runs). Forward = ``F.batch_norm(x, running_mean, running_var, γ, β)`` (training:
with the running-statistics update); backward = ``y.backward(gy)`` giving gx, gγ and gβ. "old" is
the previous path (NumPy mean/var for the running statistics, ``Normalize`` + ``mul`` + ``add``
and their backwards); PyTorch is 2.13 (CPU) ``torch.nn.functional.batch_norm``.

==================  ==========  ==========  ===========  ==========
shape               pass        old         fused        PyTorch
==================  ==========  ==========  ===========  ==========
(32, 64, 32, 32)    train fwd   5.4–6.4     0.86–1.04    3.1–3.2
(32, 64, 32, 32)    train bwd   5.5–9.9     1.15–1.21    1.8–1.9
(32, 64, 32, 32)    eval fwd    2.7–3.3     0.62–0.74    0.49–0.68
(32, 64, 32, 32)    eval bwd    4.8–5.6     1.28–1.43    2.2
(4, 256, 56, 56)    train fwd   8.9–13.5    1.67–2.19    5.0–5.2
(4, 256, 56, 56)    train bwd   9.7–13.9    1.97–2.53    2.4–3.3
(4, 256, 56, 56)    eval fwd    4.6–8.3     0.79–1.19    0.75–0.80
(4, 256, 56, 56)    eval bwd    8.9–17.0    1.83–2.18    2.0–6.1
==================  ==========  ==========  ===========  ==========

The kernels alone on (32, 64, 32, 32) (arrays in the 32 MiB L3 cache): forward about 0.2 ns an
element, backward 0.5 (its sums pass 0.2, its gx pass, which reads gy and x and writes gx, 0.25–0.3).
"""
import numpy as np

from ._jit import no_refcount_with
from ._threads import over_chunks

KERNELS = ("batch_norm_forward", "batch_norm_eval_forward", "batch_norm_backward")

_reduction = no_refcount_with(fastmath={"reassoc"})
_elementwise = no_refcount_with()


@_reduction
def _channel_stats(x, c, eps):
    """(μ, inv_std) of channel c of x (N, C, S) from float64 sums shifted by the channel's first value."""
    N, S = x.shape[0], x.shape[2]
    shift = np.float64(x[0, c, 0])
    s1 = 0.0
    s2 = 0.0
    for n in range(N):
        row = x[n, c]
        for i in range(S):
            d = np.float64(row[i]) - shift
            s1 += d
            s2 += d * d
    m = N * S
    mu = s1 / m
    var = max(s2 / m - mu * mu, 0.0)
    return shift + mu, 1.0 / np.sqrt(var + eps)


@_reduction
def _channel_grad_sums(gy, x, c, mu):
    """(Σ gy, Σ gy·(x − μ)) over channel c, in float64."""
    N, S = x.shape[0], x.shape[2]
    sg = 0.0
    sgd = 0.0
    for n in range(N):
        grow, xrow = gy[n, c], x[n, c]
        for i in range(S):
            g = np.float64(grow[i])
            sg += g
            sgd += g * (np.float64(xrow[i]) - mu)
    return sg, sgd


@_elementwise
def _channel_affine(x, y, c, mu, a, b):
    """y[:, c] = (x[:, c] − μ)·a + b, computed in x's dtype."""
    N, S = x.shape[0], x.shape[2]
    t = y.dtype.type
    mu_t, a_t, b_t = t(mu), t(a), t(b)
    for n in range(N):
        xrow, yrow = x[n, c], y[n, c]
        for i in range(S):
            yrow[i] = (xrow[i] - mu_t) * a_t + b_t


@_elementwise
def _channel_grad_input(gy, x, gx, c, mu, k, p, r):
    """gx[:, c] = gy·k + (x − μ)·p + r, computed in gy's dtype."""
    N, S = x.shape[0], x.shape[2]
    t = gx.dtype.type
    mu_t, k_t, p_t, r_t = t(mu), t(k), t(p), t(r)
    for n in range(N):
        grow, xrow, gxrow = gy[n, c], x[n, c], gx[n, c]
        for i in range(S):
            gxrow[i] = grow[i] * k_t + (xrow[i] - mu_t) * p_t + r_t


@_elementwise
def _channel_scale(gy, gx, c, k):
    """gx[:, c] = gy[:, c]·k (the input gradient when the statistics are constants)."""
    N, S = gy.shape[0], gy.shape[2]
    k_t = gx.dtype.type(k)
    for n in range(N):
        grow, gxrow = gy[n, c], gx[n, c]
        for i in range(S):
            gxrow[i] = grow[i] * k_t


@_elementwise
def forward_raw(x, weight, bias, y, mean, inv_std, eps, c0, c1):
    """Channels c0…c1: statistics into mean, inv_std (float64), then y = (x − μ)·inv_std·γ + β."""
    for c in range(c0, c1):
        mu, istd = _channel_stats(x, c, eps)
        mean[c] = mu
        inv_std[c] = istd
        _channel_affine(x, y, c, mu, istd * weight[c], bias[c])


@_elementwise
def eval_forward_raw(x, mean, inv_std, weight, bias, y, c0, c1):
    """Channels c0…c1: y = (x − mean)·inv_std·γ + β with given statistics."""
    for c in range(c0, c1):
        _channel_affine(x, y, c, mean[c], inv_std[c] * weight[c], bias[c])


@_elementwise
def backward_raw(gy, x, mean, inv_std, weight, gx, gweight, gbias, want_gx, want_sums, batch_stats, c0, c1):
    """Channels c0…c1: gβ = Σ gy and gγ = Σ gy·x̂ into gbias, gweight (float64, when ``want_sums``),
    then gx (when ``want_gx``): the training formula when ``batch_stats``, else gx = γ·inv_std·gy."""
    m = x.shape[0] * x.shape[2]
    for c in range(c0, c1):
        mu, istd = mean[c], inv_std[c]
        sg, sgd = 0.0, 0.0
        if want_sums:
            sg, sgd = _channel_grad_sums(gy, x, c, mu)
            gbias[c] = sg
            gweight[c] = sgd * istd
        if want_gx:
            k = weight[c] * istd
            if batch_stats:
                _channel_grad_input(gy, x, gx, c, mu, k, -k * istd * istd * sgd / m, -k * sg / m)
            else:
                _channel_scale(gy, gx, c, k)


def _as_nc_s(a):
    """a (N, C, *spatial) as a (N, C, S) view."""
    return a.reshape(a.shape[0], a.shape[1], int(np.prod(a.shape[2:], dtype=np.int64)))


def _per_channel(v, C, default):
    """γ or β as float64 (C,): ones/zeros when None."""
    return np.full(C, default) if v is None else np.ascontiguousarray(v, dtype=np.float64)


def batch_norm_forward(x, weight, bias, eps):
    """Training batch norm of x (N, C, *spatial), N·S ≥ 1: returns ``(y, mean, inv_std)``, y of x's
    shape and dtype, mean and inv_std = 1/√(σ² + ε) float64 (C,) (σ² the biased variance over N and
    the spatial axes); weight/bias (C,) or None."""
    x = np.ascontiguousarray(x)
    C = x.shape[1]
    y = np.empty_like(x)
    mean, inv_std = np.empty(C), np.empty(C)
    x3 = _as_nc_s(x)
    over_chunks(forward_raw, C, x3, _per_channel(weight, C, 1.0), _per_channel(bias, C, 0.0),
                _as_nc_s(y), mean, inv_std, float(eps))
    return y, mean, inv_std


def batch_norm_eval_forward(x, mean, inv_std, weight, bias):
    """y = (x − mean_c)·inv_std_c·γ_c + β_c with given float64 (C,) statistics (eval mode)."""
    x = np.ascontiguousarray(x)
    C = x.shape[1]
    y = np.empty_like(x)
    over_chunks(eval_forward_raw, C, _as_nc_s(x), np.ascontiguousarray(mean, dtype=np.float64),
                np.ascontiguousarray(inv_std, dtype=np.float64), _per_channel(weight, C, 1.0),
                _per_channel(bias, C, 0.0), _as_nc_s(y))
    return y


def batch_norm_backward(gy, x, mean, inv_std, weight, needs, batch_stats):
    """``(gx, gweight, gbias)`` of batch norm, those that ``needs`` (three booleans) asks for, else
    None. ``batch_stats``: mean/inv_std were the batch's (training formula) or constants (eval:
    gx = γ·inv_std·gy; x is then read only for gweight). gx has gy's shape and dtype; gweight,
    gbias are (C,) in gy's dtype."""
    gy = np.ascontiguousarray(gy)
    N, C = gy.shape[:2]
    want_gx, want_w, want_b = (bool(v) for v in needs)
    want_sums = want_w or want_b or (want_gx and batch_stats)
    x = np.ascontiguousarray(x) if want_sums else gy  # (gy: an unread stand-in)
    gx = np.empty_like(gy) if want_gx else np.empty((0,) * gy.ndim, gy.dtype)
    gweight, gbias = np.zeros(C), np.zeros(C)
    over_chunks(backward_raw, C, _as_nc_s(gy), _as_nc_s(x), np.ascontiguousarray(mean, dtype=np.float64),
                np.ascontiguousarray(inv_std, dtype=np.float64), _per_channel(weight, C, 1.0),
                _as_nc_s(gx) if want_gx else np.empty((0, 0, 0), gy.dtype), gweight, gbias,
                want_gx, want_sums, bool(batch_stats))
    return (gx if want_gx else None, gweight.astype(gy.dtype) if want_w else None,
            gbias.astype(gy.dtype) if want_b else None)
