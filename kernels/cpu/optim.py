"""Fused, in-place optimizer updates on the CPU: SGD, Adam/AdamW, RMSprop.

Each kernel makes ONE pass over flat 1-D arrays and updates the parameter and its state in place.
Written as array expressions (``buf = mu * buf + (1 - damp) * g``; ``p -= lr * g``) a step
allocates three to six temporaries the size of the parameter, and fresh memory costs a page fault
per 4 KiB page here (~1.6 µs, see DESIGN.md): on VGG-11 with 10 classes (128.8 M parameters)
that SGD step took 1.34 s of a 1.70 s training step.

The arithmetic is PyTorch's (``torch.optim``'s single-tensor CPU path), operation for operation,
in the parameter's dtype: each scalar is rounded to that dtype first, as PyTorch does, and the
products that PyTorch's vectorised CPU kernels fuse (``add(alpha=)``, ``lerp``, ``addcmul``) are
fused here too (:func:`_fma`, one rounding). Measured against PyTorch 2.13 (AVX-512 CPU, float32
and float64, 5 steps): SGD's parameters and buffers equal PyTorch's bit for bit, and so do Adam's
moments and RMSprop's averages without weight decay; Adam's and RMSprop's parameters (and
RMSprop's momentum buffer) differ by ~1 ulp of the largest parameter (float32 2.4e-7, float64
4.4e-16 at |p| ≤ 4), because PyTorch's own ``sqrt`` is not correctly rounded there (float32: off
by up to 0.73 ulp; ours is). Notation (``d`` the gradient the step uses)::

    SGD      d = ±g;  d = fma(λ, p, d)                       (weight decay λ)
             b = d (first step)  |  b = fma(1 − τ, d, μ·b)    (momentum μ, dampening τ)
             d = fma(μ, b, d) (nesterov)  |  d = b;   p = fma(−lr, d, p)
    Adam     d = ±g;  p = p·(1 − lr·λ) (AdamW)  |  d = fma(λ, p, d) (Adam, λ > 0)
             m = lerp(m, d, 1 − β₁);   v = fma((1 − β₂)·d, d, β₂·v);   v̂ = max(v̂, v) (amsgrad)
             p = p + (−s·m) / (√v̂ / c₂ + ε),   s = lr / (1 − β₁ᵗ),  c₂ = √(1 − β₂ᵗ)
    RMSprop  d = ±g;  d = fma(λ, p, d);   S = fma((1 − α)·d, d, α·S)
             centered: ḡ = lerp(ḡ, d, 1 − α),  a = √fma(−ḡ, ḡ, S) + ε;   else a = √S + ε
             μ > 0: b = μ·b + d / a,  p = fma(−lr, b, p);   else p = p + (−lr·d) / a

with ``lerp(x, y, w) = fma(w, y − x, x)`` for ``|w| < 0.5``, else ``fma(w − 1, y − x, y)``
(PyTorch's two-sided form). The kernels are split over the task pool for arrays of several MiB
(``over_chunks``); each task slices its chunk and loops from 0 (see ``activation.py``).

Step times (2026-12-07, one pinned core, one thread; "old" = the NumPy expressions these kernels
replaced, "new" = these kernels, torch = ``torch.optim`` 2.13 on one thread; one ``step()`` over all
parameters of the torchvision-shaped models with random float32 gradients, state already
allocated; median of 40 (ResNet-18) / 7 (VGG-11) steps; another process ran on the other core)::

    parameters                       SGD momentum 0.9            Adam
                                     old     new     torch       old      new     torch
    ResNet-18 (62 tensors, 11.7 M)   10.0    4.3     16.7 ms     24.0     6.3     42.1 ms
    VGG-11 (22 tensors, 132.9 M)    240      74      78   ms   1045      80      611   ms

Peak memory of the VGG-11 runs fell from 2.46 to 1.82 GB (SGD) and 2.97 to 2.24 GB (Adam): no
temporaries. The updates are memory-bound (new SGD moves 5 and Adam 7 arrays of the parameter's
size per step); the Python around one call costs ~4–6 µs per parameter (0.25–0.38 ms a step on
ResNet-18). One call over all parameters of a group (Numba typed Lists) was measured and not
kept: building three typed Lists of 62 arrays took 0.38 ms, more than it would save.
"""
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from ..optim_checks import check_step_arrays
from ._threads import over_chunks

KERNELS = ("sgd_step", "adam_step", "rmsprop_step")


@intrinsic
def _fma(typingctx, x, y, z):
    """``x·y + z`` rounded once (LLVM's ``llvm.fma``: one instruction on a CPU with FMA)."""
    if isinstance(x, types.Float) and x == y == z:
        def codegen(context, builder, signature, args):
            return builder.fma(*args)

        return x(x, y, z), codegen
    return None


_jit = njit(cache=True, nogil=True, error_model="numpy")  # numpy model: x / 0 is inf, no check in the loop


@_jit
def _lerp(x, y, w, from_end):
    """PyTorch's ``lerp(x, y, w)``: ``fma(w, y − x, x)``, or with ``w`` given as ``w − 1`` and
    ``from_end`` set (``|w| ≥ 0.5``), ``fma(w − 1, y − x, y)``."""
    if from_end:
        return _fma(w, y - x, y)
    return _fma(w, y - x, x)


@_jit
def sgd_step_raw(p, g, buf, neg_lr, wd, mu, one_minus_damp, nesterov, maximize, first, i0, i1):
    """SGD on elements i0…i1 of the flat arrays ``p``, ``g`` and (when ``mu != 0``) ``buf``."""
    p, g = p[i0:i1], g[i0:i1]
    if mu != 0:
        buf = buf[i0:i1]
    for i in range(p.size):
        d = -g[i] if maximize else g[i]
        if wd != 0:
            d = _fma(wd, p[i], d)
        if mu != 0:
            b = d if first else _fma(one_minus_damp, d, mu * buf[i])
            buf[i] = b
            d = _fma(mu, b, d) if nesterov else b
        p[i] = _fma(neg_lr, d, p[i])


@_jit
def adam_step_raw(p, g, m, v, vmax, neg_step_size, bias2_sqrt, eps, w1, w1_from_end, beta2, one_minus_beta2,
                  wd, decay, amsgrad, maximize, i0, i1):
    """Adam/AdamW on elements i0…i1 (``decay`` ≠ 1: AdamW's ``p·decay``; ``wd`` ≠ 0: Adam's L2)."""
    p, g, m, v = p[i0:i1], g[i0:i1], m[i0:i1], v[i0:i1]
    if amsgrad:
        vmax = vmax[i0:i1]
    for i in range(p.size):
        d = -g[i] if maximize else g[i]
        x = p[i]
        if decay != 1:
            x = x * decay
        if wd != 0:
            d = _fma(wd, x, d)
        mi = _lerp(m[i], d, w1, w1_from_end)
        m[i] = mi
        vi = _fma(one_minus_beta2 * d, d, beta2 * v[i])
        v[i] = vi
        if amsgrad:
            old = vmax[i]
            vi = vi if (vi > old or vi != vi) else old  # torch.maximum: a NaN wins
            vmax[i] = vi
        p[i] = x + (neg_step_size * mi) / (np.sqrt(vi) / bias2_sqrt + eps)


@_jit
def rmsprop_step_raw(p, g, s, ga, buf, neg_lr, alpha, one_minus_alpha, w, w_from_end, eps, wd, mu, centered,
                     maximize, i0, i1):
    """RMSprop on elements i0…i1 (``ga`` used when ``centered``, ``buf`` when ``mu > 0``)."""
    p, g, s = p[i0:i1], g[i0:i1], s[i0:i1]
    if centered:
        ga = ga[i0:i1]
    if mu > 0:
        buf = buf[i0:i1]
    for i in range(p.size):
        d = -g[i] if maximize else g[i]
        if wd != 0:
            d = _fma(wd, p[i], d)
        si = _fma(one_minus_alpha * d, d, alpha * s[i])
        s[i] = si
        if centered:
            gi = _lerp(ga[i], d, w, w_from_end)
            ga[i] = gi
            a = np.sqrt(_fma(-gi, gi, si)) + eps
        else:
            a = np.sqrt(si) + eps
        if mu > 0:
            b = mu * buf[i] + d / a
            buf[i] = b
            p[i] = _fma(neg_lr, b, p[i])
        else:
            p[i] = p[i] + (neg_lr * d) / a


# ---- wrappers: checks, scalars rounded to the parameter's dtype, the task split -----------------

def _check(op, param, **arrays):
    """:func:`~kernels.optim_checks.check_step_arrays` for NumPy arrays."""
    check_step_arrays(op, param, np.ndarray, "numpy", **arrays)


def _lerp_weight(w, dtype):
    """PyTorch's lerp weight ``w`` in ``dtype``: ``(w, False)``, or ``(w − 1, True)`` for ``|w| ≥ 0.5``."""
    w = dtype.type(w)
    return (w, False) if abs(w) < 0.5 else (w - dtype.type(1), True)


def sgd_step(param, grad, momentum_buffer, lr, weight_decay, momentum, dampening, nesterov, maximize, first_step):
    """One SGD step in place (PyTorch's formula, see the module docstring).

    Args:
        param, grad: C-contiguous arrays of one dtype and size (any shape; read as flat).
        momentum_buffer: the same, or None when ``momentum == 0``; on ``first_step`` its
            contents are ignored and it becomes the (decayed) gradient, as PyTorch's first step.
        lr, weight_decay, momentum, dampening: Python floats; nesterov, maximize, first_step: bools.
    """
    _check("sgd_step", param, grad=grad, momentum_buffer=momentum_buffer if momentum != 0 else None)
    if momentum != 0 and momentum_buffer is None:
        raise ValueError("sgd_step: momentum_buffer is required when momentum != 0")
    t = param.dtype.type
    p = param.reshape(-1)
    buf = momentum_buffer.reshape(-1) if momentum != 0 else p[:0]
    over_chunks(sgd_step_raw, p.size, p, grad.reshape(-1), buf, t(-lr), t(weight_decay), t(momentum),
                t(1 - dampening), bool(nesterov), bool(maximize), bool(first_step))


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
              decoupled, amsgrad, maximize):
    """One Adam (``decoupled=False``) or AdamW (``decoupled=True``) step in place, step number
    ``step`` ≥ 1 (already counted); ``max_exp_avg_sq`` may be None unless ``amsgrad``."""
    _check("adam_step", param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq,
           max_exp_avg_sq=max_exp_avg_sq if amsgrad else None)
    if amsgrad and max_exp_avg_sq is None:
        raise ValueError("adam_step: max_exp_avg_sq is required when amsgrad=True")
    t = param.dtype.type
    p = param.reshape(-1)
    vmax = max_exp_avg_sq.reshape(-1) if amsgrad else p[:0]
    w1, from_end = _lerp_weight(1 - beta1, param.dtype)
    step_size = lr / (1 - beta1 ** step)
    bias2_sqrt = (1 - beta2 ** step) ** 0.5
    wd = t(0) if decoupled else t(weight_decay)
    decay = t(1 - lr * weight_decay) if decoupled else t(1)
    over_chunks(adam_step_raw, p.size, p, grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1), vmax,
                t(-step_size), t(bias2_sqrt), t(eps), w1, from_end, t(beta2), t(1 - beta2), wd, decay,
                bool(amsgrad), bool(maximize))


def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps, weight_decay, momentum,
                 centered, maximize):
    """One RMSprop step in place; ``grad_avg`` may be None unless ``centered``, ``momentum_buffer``
    None unless ``momentum > 0`` (PyTorch starts both at zero)."""
    _check("rmsprop_step", param, grad=grad, square_avg=square_avg, grad_avg=grad_avg if centered else None,
           momentum_buffer=momentum_buffer if momentum > 0 else None)
    if (centered and grad_avg is None) or (momentum > 0 and momentum_buffer is None):
        raise ValueError("rmsprop_step: grad_avg is required when centered, momentum_buffer when momentum > 0")
    t = param.dtype.type
    p = param.reshape(-1)
    ga = grad_avg.reshape(-1) if centered else p[:0]
    buf = momentum_buffer.reshape(-1) if momentum > 0 else p[:0]
    w, from_end = _lerp_weight(1 - alpha, param.dtype)
    over_chunks(rmsprop_step_raw, p.size, p, grad.reshape(-1), square_avg.reshape(-1), ga, buf, t(-lr), t(alpha),
                t(1 - alpha), w, from_end, t(eps), t(weight_decay), t(momentum), bool(centered), bool(maximize))
