"""Reference ReLU, leaky ReLU and hardtanh kernels: plain loops (the oracle of ``kernels/cpu/activation.py`` and
``activation.cu``).

PyTorch's conventions: ``y = 0 if x <= 0 else x`` (a NaN passes through), and the gradient is
``gx = 0 if y <= 0 else gy`` (``threshold_backward`` on the output). Hardtanh (relu6 is
hardtanh(0, 6)): ``y = lo if x <= lo, hi if x >= hi, else x`` (a NaN passes through), and
``gx = gy if lo < y < hi else 0``: from the output, since lo < y < hi exactly when lo < x < hi
(and a NaN gets 0, as PyTorch's ``hardtanh_backward`` on the input gives). Leaky ReLU with slope
``a``: ``y = x if x > 0 else a·x`` (a NaN passes through) and ``gx = gy if s > 0 else a·gy``, where
``s`` is the input x, or for ``a >= 0`` the output y (then y > 0 exactly where x > 0).
"""
import numpy as np


def relu_forward(x):
    """y = x where x > 0 (or x is NaN), else 0; same shape and dtype as x."""
    flat = np.ascontiguousarray(x).ravel()
    y = np.empty_like(flat)
    for i in range(flat.size):
        y[i] = 0 if flat[i] <= 0 else flat[i]
    return y.reshape(x.shape)


def relu_backward(gy, y):
    """gx = gy where y > 0 (or y is NaN), else 0 (y is the forward's output)."""
    g, yf = np.ascontiguousarray(gy).ravel(), np.ascontiguousarray(y).ravel()
    gx = np.empty_like(g)
    for i in range(g.size):
        gx[i] = 0 if yf[i] <= 0 else g[i]
    return gx.reshape(gy.shape)


def hardtanh_forward(x, lo, hi):
    """y = lo where x ≤ lo, hi where x ≥ hi, else x (a NaN passes through); x's shape and dtype."""
    flat = np.ascontiguousarray(x).ravel()
    y = np.empty_like(flat)
    for i in range(flat.size):
        v = flat[i]
        y[i] = lo if v <= lo else (hi if v >= hi else v)
    return y.reshape(x.shape)


def hardtanh_backward(gy, y, lo, hi):
    """gx = gy where lo < y < hi, else 0 (y is the forward's output)."""
    g, yf = np.ascontiguousarray(gy).ravel(), np.ascontiguousarray(y).ravel()
    gx = np.empty_like(g)
    for i in range(g.size):
        gx[i] = g[i] if lo < yf[i] < hi else 0
    return gx.reshape(gy.shape)


def leaky_relu_forward(x, a):
    """y = x where x > 0, else a·x (a NaN stays NaN); x's shape and dtype."""
    flat = np.ascontiguousarray(x).ravel()
    y = np.empty_like(flat)
    for i in range(flat.size):
        y[i] = flat[i] if flat[i] > 0 else a * flat[i]
    return y.reshape(x.shape)


def leaky_relu_backward(gy, s, a):
    """gx = gy where s > 0, else a·gy (s: the forward's input, or its output when a >= 0)."""
    g, sf = np.ascontiguousarray(gy).ravel(), np.ascontiguousarray(s).ravel()
    gx = np.empty_like(g)
    for i in range(g.size):
        gx[i] = g[i] if sf[i] > 0 else a * g[i]
    return gx.reshape(gy.shape)
