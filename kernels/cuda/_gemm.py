"""Row-major GEMM with transpose flags: cuBLAS on ``cuda``, a NumPy twin on ``cuda-emu``.

:func:`gemm` computes ``out = alpha · op(a) @ op(b) + beta · out`` for 2-D row-major (C-order)
matrices, ``op(m) = m`` for ``"N"`` and ``mᵀ`` for ``"T"``, with no copies: a transposed operand
is read through its transpose flag, never made contiguous. On ``cuda`` it is one
``cublas<S|D>gemm`` call (cuBLAS is column-major, so the row-major product is computed as
``outᵀ = op(b)ᵀ @ op(a)ᵀ`` by swapping the operands, the standard trick); on ``cuda-emu`` the
same call, with the same argument checks, runs through NumPy's BLAS. The convolution's layout
logic (``kernels/cuda/conv.py``) is therefore exercised by every cuda-emu test.

:data:`settings` holds the two knobs the user sets through ``minicnn.backends.cuda``:
``allow_tf32`` (cuBLAS TF32 tensor-op math for float32 GEMMs; off by default) and
``workspace_limit_bytes`` (the cap of the convolution's column workspace), and the switch of
``minicnn.use_deterministic_algorithms``.
"""
import numpy as np


class CudaSettings:
    """Process-wide settings of the CUDA kernels (``minicnn.backends.cuda`` reads and writes them).

    Attributes:
        allow_tf32: let float32 GEMMs use TF32 tensor cores (10-bit mantissa inputs, float32
            accumulation): faster on Ampere and later, about 1e-3 relative error. Off by default.
        workspace_limit_bytes: the most bytes of scratch one convolution call allocates for its
            column matrices (the batch is processed in chunks of images that fit; at least one
            image per chunk). Default 256 MiB.
        deterministic: use the gather-form (atomics-free) backward kernels of roi_pool, roi_align
            and max_unpool2d (``minicnn.use_deterministic_algorithms``). Default False.
    """

    def __init__(self):
        self.allow_tf32 = False
        self.workspace_limit_bytes = 256 * 2 ** 20
        self.deterministic = False


settings = CudaSettings()


def _matrix_ld(m, what):
    """Leading dimension (elements) of a row-major 2-D matrix ``m`` (rows may be padded)."""
    if m.ndim != 2:
        raise ValueError(f"gemm: {what} must be 2-D, got shape {m.shape}")
    item = m.dtype.itemsize
    if m.strides[1] != item or m.strides[0] % item or m.strides[0] < m.shape[1] * item:
        raise ValueError(f"gemm: {what} must be row-major with unit column stride, got strides {m.strides} "
                         f"for shape {m.shape}")
    return max(1, m.strides[0] // item)


def gemm_shapes(transa, transb, a, b, out):
    """``(m, n, k)`` of ``out (m, n) = op(a) (m, k) @ op(b) (k, n)``, after checking the flags,
    dtypes and shapes; a ValueError/TypeError naming the mismatch otherwise."""
    for flag, what in ((transa, "transa"), (transb, "transb")):
        if flag not in ("N", "T"):
            raise ValueError(f"gemm: {what} must be 'N' or 'T', got {flag!r}")
    if not (a.dtype == b.dtype == out.dtype) or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"gemm: a, b and out must all be float32 or all float64, got {a.dtype}, {b.dtype}, "
                        f"{out.dtype}")
    m, k = a.shape if transa == "N" else a.shape[::-1]
    kb, n = b.shape if transb == "N" else b.shape[::-1]
    if kb != k or out.shape != (m, n):
        raise ValueError(f"gemm: op(a) is ({m}, {k}) ({transa}), op(b) is ({kb}, {n}) ({transb}), out is "
                         f"{out.shape}: expected op(b) ({k}, n) and out ({m}, n)")
    return m, n, k


def _numpy_gemm(transa, transb, a, b, out, alpha, beta):
    op_a = a if transa == "N" else a.T
    op_b = b if transb == "N" else b.T
    if beta == 0:
        np.matmul(op_a, op_b, out=out)
        if alpha != 1:
            out *= alpha
    else:
        prod = np.matmul(op_a, op_b)
        out *= beta
        out += alpha * prod if alpha != 1 else prod


def _cublas_gemm(transa, transb, a, b, out, alpha, beta, m, n, k):
    from cupy.cuda import cublas, device

    handle = device.get_cublas_handle()
    if a.dtype == np.float32:
        func, scalar = cublas.sgemm, np.float32
        math = cublas.CUBLAS_TF32_TENSOR_OP_MATH if settings.allow_tf32 else cublas.CUBLAS_DEFAULT_MATH
    else:
        func, scalar = cublas.dgemm, np.float64
        math = cublas.CUBLAS_DEFAULT_MATH
    op = {"N": cublas.CUBLAS_OP_N, "T": cublas.CUBLAS_OP_T}
    alpha_h, beta_h = np.array(alpha, dtype=scalar), np.array(beta, dtype=scalar)
    previous_pointer_mode = cublas.getPointerMode(handle)
    cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
    cublas.setMathMode(handle, math)
    try:
        # Row-major out (m, n) is column-major outᵀ (n, m) = op(b)ᵀ (n, k) @ op(a)ᵀ (k, m): pass b
        # first; a row-major matrix is its own transpose in column-major, so the flags stay as given.
        func(handle, op[transb], op[transa], n, m, k, alpha_h.ctypes.data,
             b.data.ptr, _matrix_ld(b, "b"), a.data.ptr, _matrix_ld(a, "a"),
             beta_h.ctypes.data, out.data.ptr, _matrix_ld(out, "out"))
    finally:
        cublas.setPointerMode(handle, previous_pointer_mode)


def gemm(be, transa, transb, a, b, out, alpha=1.0, beta=0.0):
    """``out = alpha · op(a) @ op(b) + beta · out`` in place (row-major 2-D arrays, no copies).

    Args:
        be: the backend (``cuda``: cuBLAS; ``cuda-emu``: NumPy).
        transa, transb: ``"N"`` (as stored) or ``"T"`` (transposed) for ``a`` and ``b``.
        a, b, out: 2-D arrays of one float dtype with unit column stride; ``out`` is ``(m, n)``.
        alpha, beta: Python floats; ``beta = 0`` ignores the old contents of ``out``.

    Returns:
        ``out``.
    """
    m, n, k = gemm_shapes(transa, transb, a, b, out)
    for mat, what in ((a, "a"), (b, "b"), (out, "out")):
        _matrix_ld(mat, what)
    if m == 0 or n == 0:
        return out
    if be.name == "cuda":
        _cublas_gemm(transa, transb, a, b, out, float(alpha), float(beta), m, n, k)
    else:
        _numpy_gemm(transa, transb, a, b, out, alpha, beta)
    return out
