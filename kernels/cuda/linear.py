"""The fully connected layer on cuda/cuda-emu: the same names and signatures as
``kernels/cpu/linear.py`` (plus ``be``), each product one GEMM of the device's array library
(cuBLAS through CuPy on ``cuda``, NumPy's BLAS on ``cuda-emu``)."""

KERNELS = ("linear_forward", "linear_backward")


def linear_forward(be, x, W, b=None):
    """y (R, out) = x (R, in) @ Wᵀ (+ b)."""
    y = x @ W.T
    if b is not None:
        y += b
    return y


def linear_backward(be, x, W, gy, needs=(True, True, True)):
    """``(gx, gW, gb)`` wanted by ``needs``: gy @ W, gyᵀ @ x, Σ_rows gy (None for the others)."""
    want_gx, want_gw, want_gb = needs
    return (gy @ W if want_gx else None), (gy.T @ x if want_gw else None), (gy.sum(axis=0) if want_gb else None)
