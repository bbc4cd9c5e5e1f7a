"""Local response normalisation across channels (AlexNet), as PyTorch's ``F.local_response_norm``.

For channel ``c`` the window is ``W(c) = [c − ⌊n/2⌋, c + ⌊(n−1)/2⌋]`` (zero padding: PyTorch pads the
squared input by ``n//2`` before and ``(n−1)//2`` after, then average-pools with ``count_include_pad``)::

    D_c = k + (α/n) · Σ_{c' ∈ W(c)} x_{c'}²          y_c = x_c · D_c^(−β)

Backward (``j ∈ W(c)`` ⇔ ``c ∈ W'(j) = [j − ⌊(n−1)/2⌋, j + ⌊n/2⌋]``, the transposed window)::

    gx_j = gy_j · D_j^(−β) − (2αβ/n) · x_j · Σ_{c ∈ W'(j)} gy_c · x_c · D_c^(−β−1)

Written once against ``xp``; no hand kernel.
"""
from ..autograd import Function
from ..dtypes import check_float
from ..tensor import Tensor


def channel_window_sum(xp, a, before, after):
    """``s[:, c] = Σ_{c' = c−before}^{c+after} a[:, c']`` over axis 1, zeros outside (``size`` shifted adds)."""
    C = a.shape[1]
    s = xp.zeros_like(a)
    for shift in range(-before, after + 1):
        lo, hi = max(0, -shift), min(C, C - shift)  # s[:, c] += a[:, c + shift] for lo <= c < hi
        if lo < hi:
            s[:, lo:hi] += a[:, lo + shift:hi + shift]
    return s


class LocalResponseNorm(Function):
    """See the module docstring for the forward and backward formulas."""

    @staticmethod
    def forward(ctx, x, size=5, alpha=1e-4, beta=0.75, k=1.0):
        xp, t = ctx.xp, x.dtype.type
        D = t(k) + t(alpha / size) * channel_window_sum(xp, x * x, size // 2, (size - 1) // 2)
        y = x * D ** t(-beta)
        ctx.save_for_backward(x, D, y)
        ctx.params = (size, alpha, beta)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, D, y = ctx.saved
        size, alpha, beta = ctx.params
        xp, t = ctx.xp, x.dtype.type
        # gy_c · x_c · D_c^(−β−1) = gy_c · y_c / D_c
        inner = channel_window_sum(xp, gy * y / D, (size - 1) // 2, size // 2)
        return gy * D ** t(-beta) - t(2 * alpha * beta / size) * x * inner


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Normalise each element by the squares of its neighbours across channels (PyTorch's definition).

    Args:
        x: ``(N, C, *)`` with at least 3 dimensions.
        size: the number of channels in the window (``size//2`` before, ``(size−1)//2`` after).
        alpha, beta, k: ``y = x / (k + alpha/size · Σ_window x²) ** beta``.

    Shape: like ``x``.

    Example:
        >>> y = F.local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=2.0)  # AlexNet
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"local_response_norm: input must be a Tensor, got {type(x).__name__}")
    if x.ndim < 3:
        raise ValueError(f"local_response_norm: input must have at least 3 dimensions (N, C, *), got shape {x.shape}")
    check_float("local_response_norm", "input", x)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    return LocalResponseNorm.apply(x, size=size, alpha=float(alpha), beta=float(beta), k=float(k))
