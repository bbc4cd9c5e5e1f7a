"""Inverted dropout: zero elements (or whole channels) at random in training, scale the rest.

The mask is drawn on the host from a NumPy ``Generator`` (the global one of
:mod:`minicnn.random` unless ``generator`` is given) and copied to the device, so
``minicnn.manual_seed(s)`` gives the same masks on every device.
"""
from ..autograd import Function
from ..random import get_rng


class Dropout(Function):
    """y = x · m / (1 − p) with m ~ Bernoulli(1 − p) (broadcast: elementwise or per channel);
    gx = gy · m / (1 − p). The expectation of y is x, so eval mode is the identity."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x, mask=None):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, gy):
        (mask,) = ctx.saved
        return gy * mask


def _check_p(op, p):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability p must be in [0, 1], got {p}")


def _scaled_mask(x, mask_shape, p, generator):
    keep = get_rng(generator).random(mask_shape) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    return x.device.from_numpy((keep * scale).astype(x.dtype))


def dropout(x, p=0.5, training=True, generator=None):
    """Zero each element with probability ``p`` in training and scale the rest by 1/(1−p).

    Args:
        x: Tensor of any shape. p: drop probability. training: identity when False.
        generator: a ``numpy.random.Generator`` or int seed (default: the global one).
    Example: ``F.dropout(h, 0.5, training=model.training)``.
    """
    _check_p("dropout", p)
    if not training or p == 0.0:
        return x
    return Dropout.apply(x, mask=_scaled_mask(x, x.shape, p, generator))


def dropout2d(x, p=0.5, training=True, generator=None):
    """Zero whole channels: each (n, c) plane of an (N, C, H, W) or (C, H, W) input is kept
    or dropped together (spatial dropout), kept ones scaled by 1/(1−p)."""
    _check_p("dropout2d", p)
    if x.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected an input (N, C, H, W) or (C, H, W), got shape {x.shape}")
    if not training or p == 0.0:
        return x
    mask_shape = x.shape[:-2] + (1, 1)
    return Dropout.apply(x, mask=_scaled_mask(x, mask_shape, p, generator))

