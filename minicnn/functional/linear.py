"""The affine map of a fully connected layer."""
from ..autograd import Function


class Linear(Function):
    """y = x Wᵀ + b.

    Shapes: x (*, in), W (out, in), b (out,), y (*, out).
    Backward (X, gY: the leading axes flattened to rows):
        gx = gy W,   gW = gYᵀ X,   gb = Σ_rows gY.
    The products are the device kernels ``linear_forward``/``linear_backward`` (on the CPU split over
    the threads for large weights, ``kernels/cpu/linear.py``).
    """

    fresh_grads = True  # the kernels return new arrays (see Function)

    @staticmethod
    def forward(ctx, x, W, b=None):
        ctx.save_for_backward(x, W)
        ctx.has_bias = b is not None
        if x.ndim == 2 and x.dtype == W.dtype and (b is None or b.dtype == W.dtype):
            return ctx.kernels.linear_forward(x, W, b)
        y = x @ W.T  # other ranks and mixed dtypes: NumPy's broadcasting and promotion rules
        return y if b is None else y + b

    @staticmethod
    def backward(ctx, gy):
        x, W = ctx.saved
        if x.ndim == 2 and x.dtype == W.dtype == gy.dtype:
            needs = ctx.needs_grads(3)  # (gx, gW, gb); False for an absent bias
            gx, gW, gb = ctx.kernels.linear_backward(x, W, gy, (needs[0], needs[1], ctx.has_bias and needs[2]))
            return (gx, gW, gb) if ctx.has_bias else (gx, gW)
        gx = gy @ W
        g2 = gy.reshape(-1, gy.shape[-1])
        gW = g2.T @ x.reshape(-1, x.shape[-1])
        if ctx.has_bias:
            return gx, gW, g2.sum(axis=0)
        return gx, gW


def linear(x, weight, bias=None):
    """Fully connected layer ``y = x Wᵀ + b`` (PyTorch's ``F.linear``).

    Args:
        x: Tensor (*, in_features).
        weight: Tensor (out_features, in_features).
        bias: Tensor (out_features,) or None.
    Shape: y is (*, out_features).
    Example: ``F.linear(x, W, b)`` with x (8, 784), W (10, 784), b (10,) gives (8, 10).
    """
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input's last dimension must be in_features={weight.shape[1]} "
            f"(input (*, {weight.shape[1]})), got input shape {x.shape}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    if bias is None:
        return Linear.apply(x, weight)
    return Linear.apply(x, weight, bias)
