"""Reductions: sum, mean, max/min, var, logsumexp (with ``axis`` and ``keepdims``)."""
import builtins

from ..autograd import Function


def _axes(axis, ndim):
    """``axis`` (None, int or tuple) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    out = []
    for a in axis:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor of {ndim} dimensions")
        out.append(a % builtins.max(ndim, 1))
    return tuple(sorted(set(out)))


def _expand(g, shape, axes, keepdims):
    """Re-insert the reduced axes of ``g`` (size 1) so it broadcasts against ``shape``."""
    if not keepdims:
        kept = [1 if i in axes else n for i, n in enumerate(shape)]
        g = g.reshape(kept)
    return g


class Sum(Function):
    """y = Σ_axes x;  gx = broadcast of gy over the reduced axes."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes = _axes(axis, x.ndim)
        ctx.shape, ctx.keepdims = x.shape, keepdims
        return ctx.xp.asarray(x.sum(axis=ctx.axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx, gy):
        g = _expand(gy, ctx.shape, ctx.axes, ctx.keepdims)
        return ctx.xp.broadcast_to(g, ctx.shape).copy()


class Mean(Function):
    """y = (1/n) Σ_axes x;  gx = gy / n broadcast."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes = _axes(axis, x.ndim)
        ctx.shape, ctx.keepdims = x.shape, keepdims
        n = 1
        for a in ctx.axes:
            n *= x.shape[a]
        ctx.n = n
        return ctx.xp.asarray(x.mean(axis=ctx.axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx, gy):
        g = _expand(gy, ctx.shape, ctx.axes, ctx.keepdims) / ctx.n
        return ctx.xp.broadcast_to(g, ctx.shape).astype(gy.dtype)


class Max(Function):
    """y = max_axes x;  gx = gy split evenly among the elements equal to the maximum.

    (Like ``torch.amax``: with ties every maximal element gets ``gy / count``.)
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes = _axes(axis, x.ndim)
        ctx.shape, ctx.keepdims = x.shape, keepdims
        y = x.max(axis=ctx.axes, keepdims=True)
        mask = (x == y).astype(x.dtype)
        ctx.save_for_backward(mask / mask.sum(axis=ctx.axes, keepdims=True))
        return y if keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in ctx.axes])

    @staticmethod
    def backward(ctx, gy):
        return _expand(gy, ctx.shape, ctx.axes, ctx.keepdims) * ctx.saved[0]


class Var(Function):
    """y = Σ (x - mean)² / (n - correction);  gx = gy · 2 (x - mean) / (n - correction)."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, correction=1):
        ctx.axes = _axes(axis, x.ndim)
        ctx.shape, ctx.keepdims = x.shape, keepdims
        n = 1
        for a in ctx.axes:
            n *= x.shape[a]
        ctx.denom = builtins.max(n - correction, 0)
        d = x - x.mean(axis=ctx.axes, keepdims=True)
        ctx.save_for_backward(d)
        return ctx.xp.asarray((d * d).sum(axis=ctx.axes, keepdims=keepdims) / ctx.denom).astype(x.dtype)

    @staticmethod
    def backward(ctx, gy):
        (d,) = ctx.saved
        return _expand(gy, ctx.shape, ctx.axes, ctx.keepdims) * (2 * d / ctx.denom)


class LogSumExp(Function):
    """y = log Σ_axes e^x computed as m + log Σ e^(x-m);  gx = gy · softmax(x)."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        xp = ctx.xp
        ctx.axes = _axes(axis, x.ndim)
        ctx.shape, ctx.keepdims = x.shape, keepdims
        m = x.max(axis=ctx.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))  # an all -inf (or +inf) slice: no shift
        e = xp.exp(x - m)
        s = e.sum(axis=ctx.axes, keepdims=True)
        with _quiet(xp):  # an all -inf slice: log 0 = -inf is the right value; its softmax is undefined
            ctx.save_for_backward(e / s)
            y = m + xp.log(s)
        return y if keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in ctx.axes])

    @staticmethod
    def backward(ctx, gy):
        return _expand(gy, ctx.shape, ctx.axes, ctx.keepdims) * ctx.saved[0]


def _quiet(xp):
    """NumPy's errstate (division warnings off) on the CPU; nothing on CuPy."""
    import contextlib

    return xp.errstate(divide="ignore", invalid="ignore") if hasattr(xp, "errstate") else contextlib.nullcontext()


def sum(x, axis=None, keepdims=False):
    """Σ over ``axis`` (None: all)."""
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):
    return Max.apply(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims=False):
    from .basic import neg

    return neg(Max.apply(neg(x), axis=axis, keepdims=keepdims))


def var(x, axis=None, keepdims=False, correction=1):
    """Variance; ``correction=1`` is the unbiased estimate (PyTorch's default), 0 the population one."""
    return Var.apply(x, axis=axis, keepdims=keepdims, correction=correction)


def logsumexp(x, axis=None, keepdims=False):
    return LogSumExp.apply(x, axis=axis, keepdims=keepdims)
