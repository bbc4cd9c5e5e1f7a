"""Reference ReLU kernels: plain loops (the oracle of ``kernels/cpu/activation.py`` and ``activation.cu``).

PyTorch's conventions: ``y = 0 if x <= 0 else x`` (a NaN passes through), and the gradient is
``gx = 0 if y <= 0 else gy`` (``threshold_backward`` on the output).
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
