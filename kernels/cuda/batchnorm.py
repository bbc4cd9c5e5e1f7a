"""Launch wrappers of ``batchnorm.cu`` (same names and signatures as ``kernels/cpu/batchnorm.py``, plus ``be``).

x is (N, C, *spatial), seen as (N, C, S). Per-channel sums (statistics, gγ, gβ): one block per
channel with a fixed-order shared-memory tree reduction in double (deterministic); then one
elementwise kernel (a thread per element) for y or gx. Statistics come back as float64 (C,).
"""
import numpy as np

KERNELS = ("batch_norm_forward", "batch_norm_eval_forward", "batch_norm_backward")

_CU = "batchnorm.cu"
BN_BLOCK = 256  #: threads per block of the reductions (as in batchnorm.cu)


def _geometry(x):
    """(N, C, S, m = N·S) of x (N, C, *spatial); C and S are 32-bit in the kernels."""
    N, C = x.shape[:2]
    S = int(np.prod(x.shape[2:], dtype=np.int64))
    if C >= 2**31 or S >= 2**31:
        raise ValueError(f"batch_norm: the CUDA kernels take fewer than 2**31 channels and spatial elements, "
                         f"got input shape {tuple(x.shape)}")
    return N, C, S, N * S


def _per_channel(be, v, C, default, dtype):
    """γ or β as a contiguous (C,) array of x's dtype: ones/zeros when None."""
    if v is None:
        return be.xp.full(C, default, dtype=dtype)
    return be.xp.ascontiguousarray(v, dtype=dtype)


def _f64(be, v):
    return be.xp.ascontiguousarray(v, dtype=np.float64)


def _transform(be, x, mean, inv_std, weight, bias):
    N, C, S, _ = _geometry(x)
    y = be.xp.empty_like(x)
    if x.size:
        be.function(_CU, "batch_norm_transform", x.dtype)(
            be.grid_1d(x.size), (be.BLOCK,),
            (x, y, mean, inv_std, _per_channel(be, weight, C, 1.0, x.dtype), _per_channel(be, bias, C, 0.0, x.dtype),
             np.int64(x.size), np.int32(C), np.int32(S)))
    return y


def batch_norm_forward(be, x, weight, bias, eps):
    """Training batch norm (N·S ≥ 1): ``(y, mean, inv_std)``, see the CPU kernel of the same name."""
    x = be.xp.ascontiguousarray(x)
    N, C, S, m = _geometry(x)
    mean, inv_std = be.xp.empty(C, dtype=np.float64), be.xp.empty(C, dtype=np.float64)
    if C:
        be.function(_CU, "batch_norm_stats", x.dtype)(
            (C,), (BN_BLOCK,), (x, mean, inv_std, np.int32(C), np.int32(S), np.int64(m), np.float64(eps)))
    return _transform(be, x, mean, inv_std, weight, bias), mean, inv_std


def batch_norm_eval_forward(be, x, mean, inv_std, weight, bias):
    """y = (x − mean_c)·inv_std_c·γ_c + β_c with given float64 (C,) statistics (eval mode)."""
    x = be.xp.ascontiguousarray(x)
    return _transform(be, x, _f64(be, mean), _f64(be, inv_std), weight, bias)


def batch_norm_backward(be, gy, x, mean, inv_std, weight, needs, batch_stats):
    """``(gx, gweight, gbias)`` (None where ``needs`` says no), see the CPU kernel of the same name."""
    xp = be.xp
    gy = xp.ascontiguousarray(gy)
    N, C, S, m = _geometry(gy)
    want_gx, want_w, want_b = (bool(v) for v in needs)
    want_sums = want_w or want_b or (want_gx and batch_stats)
    x = xp.ascontiguousarray(x) if want_sums else gy  # (gy: an unread stand-in)
    mean, inv_std = _f64(be, mean), _f64(be, inv_std)
    sum_gy, sum_gy_xhat = xp.zeros(C, dtype=np.float64), xp.zeros(C, dtype=np.float64)
    if want_sums and C and m:
        be.function(_CU, "batch_norm_backward_reduce", gy.dtype)(
            (C,), (BN_BLOCK,), (gy, x, mean, inv_std, sum_gy, sum_gy_xhat, np.int32(C), np.int32(S), np.int64(m)))
    gx = None
    if want_gx:
        gx = xp.empty_like(gy)
        if gy.size:
            be.function(_CU, "batch_norm_backward_input", gy.dtype)(
                be.grid_1d(gy.size), (be.BLOCK,),
                (gy, x, gx, mean, inv_std, _per_channel(be, weight, C, 1.0, gy.dtype), sum_gy, sum_gy_xhat,
                 np.int32(bool(batch_stats)), np.int64(gy.size), np.int32(C), np.int32(S), np.int64(m)))
    return (gx, sum_gy_xhat.astype(gy.dtype) if want_w else None, sum_gy.astype(gy.dtype) if want_b else None)
