"""Elementwise ops with NumPy broadcasting, written once against ``xp``.

For ``z = f(x, y)`` with broadcasting, ``gx = unbroadcast(gz * dz/dx, x.shape)``: the gradient
of a broadcast input is the sum over the axes it was broadcast along.
"""
import numpy as np

from ..autograd import Function, unbroadcast
from ..tensor import Tensor


class Add(Function):
    """z = x + y;  gx = gz, gy = gz (un-broadcast). ``inplace``: z is written into x (``x += y``,
    a residual connection's ``out += identity``; the backward needs no saved array)."""

    @staticmethod
    def forward(ctx, x, y, inplace=False):
        ctx.shapes = (x.shape, y.shape)
        if inplace:
            x += y
            return x
        return x + y

    @staticmethod
    def backward(ctx, gz):
        sx, sy = ctx.shapes
        return unbroadcast(ctx.xp, gz, sx), unbroadcast(ctx.xp, gz, sy)


class Sub(Function):
    """z = x - y;  gx = gz, gy = -gz."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.shapes = (x.shape, y.shape)
        return x - y

    @staticmethod
    def backward(ctx, gz):
        sx, sy = ctx.shapes
        return unbroadcast(ctx.xp, gz, sx), unbroadcast(ctx.xp, -gz, sy)


class Mul(Function):
    """z = x * y;  gx = gz * y, gy = gz * x."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, gz):
        x, y = ctx.saved
        return unbroadcast(ctx.xp, gz * y, x.shape), unbroadcast(ctx.xp, gz * x, y.shape)


class Div(Function):
    """z = x / y;  gx = gz / y, gy = -gz * x / y²."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x / y

    @staticmethod
    def backward(ctx, gz):
        x, y = ctx.saved
        gx = unbroadcast(ctx.xp, gz / y, x.shape)
        gy = unbroadcast(ctx.xp, -gz * x / (y * y), y.shape)
        return gx, gy


class Neg(Function):
    """z = -x."""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, gz):
        return -gz


class Pow(Function):
    """z = x ** p for a constant exponent p;  gx = gz * p * x^(p-1)."""

    @staticmethod
    def forward(ctx, x, p):
        ctx.save_for_backward(x)
        ctx.p = p
        return x ** x.dtype.type(p)

    @staticmethod
    def backward(ctx, gz):
        (x,) = ctx.saved
        p = ctx.p
        return gz * (p * x ** x.dtype.type(p - 1))


class Exp(Function):
    """z = e^x;  gx = gz * z."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x):
        z = ctx.xp.exp(x)
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, gz):
        return gz * ctx.saved[0]


class Log(Function):
    """z = ln x;  gx = gz / x."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log(x)

    @staticmethod
    def backward(ctx, gz):
        return gz / ctx.saved[0]


class Sqrt(Function):
    """z = √x;  gx = gz / (2 z)."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x):
        z = ctx.xp.sqrt(x)
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, gz):
        return gz / (2 * ctx.saved[0])


class Abs(Function):
    """z = |x|;  gx = gz * sign(x) (0 at x = 0, as PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.abs(x)

    @staticmethod
    def backward(ctx, gz):
        return gz * ctx.xp.sign(ctx.saved[0])


class Clip(Function):
    """z = min(max(x, lo), hi);  gx = gz where lo <= x <= hi, else 0 (PyTorch's clamp)."""

    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        xp = ctx.xp
        mask = xp.ones(x.shape, dtype=bool)
        if lo is not None:
            mask &= x >= lo
        if hi is not None:
            mask &= x <= hi
        ctx.save_for_backward(mask)
        return xp.clip(x, lo, hi).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, gz):
        return gz * ctx.saved[0]


class Maximum(Function):
    """z = max(x, y) elementwise; ties send the gradient to x (as a convention, documented)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x >= y)
        ctx.shapes = (x.shape, y.shape)
        return ctx.xp.maximum(x, y)

    @staticmethod
    def backward(ctx, gz):
        (mask,) = ctx.saved
        sx, sy = ctx.shapes
        return unbroadcast(ctx.xp, gz * mask, sx), unbroadcast(ctx.xp, gz * ~mask, sy)


class Where(Function):
    """z = where(cond, x, y);  gx = gz where cond, gy = gz elsewhere (un-broadcast)."""

    @staticmethod
    def forward(ctx, x, y, cond=None):
        ctx.cond = cond
        ctx.shapes = (x.shape, y.shape)
        return ctx.xp.where(cond, x, y)

    @staticmethod
    def backward(ctx, gz):
        xp, cond = ctx.xp, ctx.cond
        sx, sy = ctx.shapes
        zero = xp.zeros((), dtype=gz.dtype)
        return (unbroadcast(xp, xp.where(cond, gz, zero), sx),
                unbroadcast(xp, xp.where(cond, zero, gz), sy))


class ToDevice(Function):
    """A copy on another device and/or dtype; the gradient goes back the same way."""

    @staticmethod
    def forward(ctx, x, device=None, dtype=None):
        ctx.src_device, ctx.src_dtype = ctx.device, x.dtype
        a = device.from_numpy(ctx.device.to_numpy(x)) if device.name != ctx.device.name else x
        if a is x or "cuda" not in (device.name, ctx.device.name):  # cpu <-> cuda-emu share host memory
            a = a.copy()
        if dtype is not None:
            a = a.astype(dtype, copy=False)
        ctx.device = device  # outputs live on the target device
        ctx.xp = device.xp
        return a

    @staticmethod
    def backward(ctx, gz):
        g = ctx.src_device.from_numpy(ctx.device.to_numpy(gz)) if ctx.src_device != ctx.device else gz
        return g.astype(ctx.src_dtype, copy=False)


def _dtype_arg(dtype):
    return None if dtype is None else np.dtype(dtype)


def to_device(x, device, dtype=None):
    """``x`` copied to ``device`` (a Device) and cast to ``dtype``; differentiable."""
    return ToDevice.apply(x, device=device, dtype=_dtype_arg(dtype))


def add(x, y):
    """x + y with broadcasting."""
    return Add.apply(x, y)


def add_(x, y):
    """``x += y`` in place, recorded in the graph (``x`` becomes the sum; see
    ``Function.apply_inplace``); returns x. ``y`` must broadcast to x's shape without changing it,
    and the sum must keep x's dtype."""
    if not isinstance(x, Tensor):
        raise TypeError(f"add_: x must be a Tensor, got {type(x).__name__}")
    xd, other = x.data, (y.data if isinstance(y, Tensor) else y)
    shape = np.broadcast_shapes(xd.shape, tuple(getattr(other, "shape", np.shape(other))))
    # a Python number adapts to x's dtype (NumPy's rule for ``x += 2.0``); an array's dtype counts
    dtype = np.result_type(xd.dtype, other.dtype) if hasattr(other, "dtype") else np.result_type(xd.dtype.type(0), other)
    if shape != xd.shape or dtype != xd.dtype:
        raise ValueError(f"add_: x + y has shape {shape} and dtype {dtype}, which cannot be written into x of "
                         f"shape {xd.shape} and dtype {xd.dtype} (y: shape {tuple(np.shape(other))})")
    return Add.apply_inplace(x, y, op_name="add_")


def sub(x, y):
    """x - y with broadcasting."""
    return Sub.apply(x, y)


def mul(x, y):
    """x * y with broadcasting."""
    return Mul.apply(x, y)


def div(x, y):
    """x / y with broadcasting."""
    return Div.apply(x, y)


def neg(x):
    return Neg.apply(x)


def pow(x, p):
    """x ** p for a Python number p."""
    if isinstance(p, Tensor):
        return exp(mul(p, log(x)))
    return Pow.apply(x, p=float(p))


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def abs(x):
    return Abs.apply(x)


def clip(x, lo=None, hi=None):
    """Clamp to [lo, hi] (either may be None)."""
    return Clip.apply(x, lo=lo, hi=hi)


clamp = clip


def maximum(x, y):
    return Maximum.apply(x, y)


def minimum(x, y):
    return neg(maximum(neg(x), neg(y)))


def where(cond, x, y):
    """``x`` where ``cond`` else ``y`` (cond: a boolean Tensor or array, not differentiated)."""
    c = cond.data if isinstance(cond, Tensor) else cond
    return Where.apply(x, y, cond=c)


def clone(x):
    return mul(x, 1.0)
