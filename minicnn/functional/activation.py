"""Activation functions, written once against ``xp`` (ReLU alone has device kernels).

Each op is a :class:`~minicnn.autograd.Function` whose ``backward`` is the elementwise
derivative times ``gy`` (softmax/log_softmax: the vector-Jacobian product along ``dim``).
At a kink (relu at 0) the derivative used is PyTorch's: 0 for relu at 0, the slope of the
left side for leaky_relu, 0 outside the open interval (0, 6) for relu6, and for
hardsigmoid/hardswish the values PyTorch returns at x = ±3 (see their Functions).
"""
import math

from ..autograd import Function
from ..dtypes import is_kernel_float


class ReLU(Function):
    """y = max(x, 0) (a NaN passes through);  gx = gy · [y > 0], from the saved output.
    The one activation with device kernels (``kernels/*/activation``): it follows every
    convolution, and the ``xp`` form cost 2.5 ms per call on a (64, 32, 26, 26) map.
    ``inplace``: y is written into x (``Function.apply_inplace``; the backward needs only y)."""

    fresh_grads = True

    @staticmethod
    def forward(ctx, x, inplace=False):
        if not is_kernel_float(x.dtype):  # ints, float16: no kernel, same result on every device
            y = ctx.xp.where(x > 0, x, ctx.xp.zeros_like(x))
            return _written_into(x, y) if inplace else y
        y = _kernel_output(ctx.kernels.relu_forward, x, inplace)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        return ctx.kernels.relu_backward(gy, ctx.saved[0])


class LeakyReLU(Function):
    """y = x if x > 0 else a·x;  gx = gy · (1 if x > 0 else a), a = ``negative_slope``. Device
    kernels ``leaky_relu_forward``/``leaky_relu_backward`` (other dtypes are promoted to float32
    or float64 first, ``float_inputs``). The backward reads the saved output when a >= 0 (y > 0
    exactly where x > 0), else the saved input. ``inplace``: y is written into x (a >= 0 only, as
    PyTorch: a negative slope needs x for the backward)."""

    float_inputs = True
    fresh_grads = True

    @staticmethod
    def forward(ctx, x, negative_slope=0.01, inplace=False):
        ctx.slope = negative_slope
        y = _kernel_output(ctx.kernels.leaky_relu_forward, x, inplace, negative_slope)
        ctx.save_for_backward(y if negative_slope >= 0 else x)
        return y

    @staticmethod
    def backward(ctx, gy):
        return ctx.kernels.leaky_relu_backward(gy, ctx.saved[0], ctx.slope)


class Hardtanh(Function):
    """y = clamp(x, lo, hi);  gx = gy · [lo < x < hi] = gy · [lo < y < hi], from the saved output
    (relu6 is hardtanh(0, 6)); device kernels ``hardtanh_forward``/``hardtanh_backward`` for
    float32/float64. ``inplace``: y is written into x (the backward needs only y)."""

    fresh_grads = True

    @staticmethod
    def forward(ctx, x, min_val=-1.0, max_val=1.0, inplace=False):
        if not is_kernel_float(x.dtype):  # ints, float16: no kernel, the mask saved
            ctx.save_for_backward((x > min_val) & (x < max_val))
            y = ctx.xp.clip(x, min_val, max_val).astype(x.dtype, copy=False)
            return _written_into(x, y) if inplace else y
        ctx.bounds = (min_val, max_val)
        y = _kernel_output(ctx.kernels.hardtanh_forward, x, inplace, min_val, max_val)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (saved,) = ctx.saved
        if saved.dtype == bool:
            return gy * saved
        return ctx.kernels.hardtanh_backward(gy, saved, *ctx.bounds)


def _written_into(x, y):
    """x[...] = y; x (the result of an in-place op whose kernel could not write into x itself)."""
    x[...] = y
    return x


def _kernel_output(kernel, x, inplace, *args):
    """``kernel(x, *args)``: a new array, or with ``inplace`` x itself, changed (the kernel writes
    into a C-contiguous x through ``out=``; a strided x gets the kernel's result copied in)."""
    if not inplace:
        return kernel(x, *args)
    if x.flags.c_contiguous:
        return kernel(x, *args, out=x)
    return _written_into(x, kernel(x, *args))


class Hardsigmoid(Function):
    """y = relu6(x + 3) / 6 = clamp(x/6 + 1/2, 0, 1);  gx = gy / 6 on −3 < x < 3, else 0
    (0 at both kinks and for NaN, as PyTorch)."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x):
        three, six = x.dtype.type(3), x.dtype.type(6)
        ctx.save_for_backward((x > -three) & (x < three))
        return ctx.xp.clip(x + three, 0, six).astype(x.dtype, copy=False) / six

    @staticmethod
    def backward(ctx, gy):
        (inside,) = ctx.saved
        return ctx.xp.where(inside, gy / gy.dtype.type(6), gy.dtype.type(0))


class Hardswish(Function):
    """y = x · relu6(x + 3) / 6;  gx = gy · (0 for x ≤ −3, x/3 + 1/2 for −3 < x < 3, 1 for x ≥ 3)
    (PyTorch's choice at the kinks: 0 at x = −3, 1 at x = 3; a NaN input gets slope 1)."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x):
        three, six = x.dtype.type(3), x.dtype.type(6)
        ctx.save_for_backward(x)
        return x * ctx.xp.clip(x + three, 0, six).astype(x.dtype, copy=False) / six

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved
        xp, t = ctx.xp, x.dtype.type
        slope = xp.where(x <= t(-3), t(0), xp.where(x < t(3), x / t(3) + t(0.5), t(1)))
        return gy * slope.astype(gy.dtype, copy=False)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x) (computed without overflow);  gx = gy · y (1 − y)."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x):
        y = stable_sigmoid(ctx.xp, x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved
        return gy * y * (1 - y)


class Tanh(Function):
    """y = tanh x;  gx = gy · (1 − y²)."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x):
        y = ctx.xp.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved
        return gy * (1 - y * y)


class Softmax(Function):
    """y_i = e^(x_i − m) / Σ_j e^(x_j − m) along ``dim`` (m = max, for stability);
    gx = y · (gy − Σ_j gy_j y_j)."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x, dim=-1):
        e = ctx.xp.exp(_minus_max(x, dim))
        y = e / e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved
        return y * (gy - (gy * y).sum(axis=ctx.dim, keepdims=True))


class LogSoftmax(Function):
    """y = x − m − log Σ_j e^(x_j − m) along ``dim`` (log-sum-exp, stable for any x);
    gx = gy − softmax(x) · Σ_j gy_j."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x, dim=-1):
        shifted = _minus_max(x, dim)
        y = shifted - ctx.xp.log(ctx.xp.exp(shifted).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved
        return gy - ctx.xp.exp(y) * gy.sum(axis=ctx.dim, keepdims=True)


class GELUTanh(Function):
    """y = ½ x (1 + tanh(u)), u = √(2/π)(x + 0.044715 x³) (PyTorch's approximate='tanh');
    gx = gy · (½ (1 + t) + ½ x (1 − t²) √(2/π)(1 + 3·0.044715 x²)), t = tanh u."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x):
        k = x.dtype.type(math.sqrt(2.0 / math.pi))
        t = ctx.xp.tanh(k * (x + x.dtype.type(0.044715) * x * x * x))
        ctx.save_for_backward(x, t)
        return x.dtype.type(0.5) * x * (1 + t)

    @staticmethod
    def backward(ctx, gy):
        x, t = ctx.saved
        k = x.dtype.type(math.sqrt(2.0 / math.pi))
        du = k * (1 + x.dtype.type(3 * 0.044715) * x * x)
        return gy * (x.dtype.type(0.5) * (1 + t) + x.dtype.type(0.5) * x * (1 - t * t) * du)


def stable_sigmoid(xp, x):
    """σ(x) without overflow: e^x/(1+e^x) for x < 0, 1/(1+e^-x) otherwise."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _minus_max(x, dim):
    """``x − max(x)`` along ``dim``: every ``e^(x − m)`` is then in (0, 1], so the sums of
    softmax and log_softmax cannot overflow, and the largest term is exactly 1."""
    return x - x.max(axis=dim, keepdims=True)


def _check_dim(op, x, dim):
    if not -x.ndim <= dim < max(x.ndim, 1):
        raise ValueError(f"{op}: dim {dim} is out of range for an input of shape {x.shape}")
    return dim


def relu(x, inplace=False):
    """Rectified linear unit, ``max(x, 0)``.

    ``inplace=True`` writes the result into ``x`` and returns ``x`` (PyTorch's ``F.relu(x,
    inplace=True)``): no new array, and ``x`` becomes the ReLU's output in the graph. Safe where
    nothing else needs x's old value for its backward (a batch norm's or a convolution's output);
    where something does, its backward raises (see ``Function.apply_inplace``).

    Shape: any. Example: ``F.relu(mc.tensor([-1.0, 2.0]))`` → ``[0., 2.]``.
    """
    return ReLU.apply_inplace(x, op_name="relu_") if inplace else ReLU.apply(x)


def relu_(x):
    """``relu(x, inplace=True)``."""
    return ReLU.apply_inplace(x, op_name="relu_")


def leaky_relu(x, negative_slope=0.01, inplace=False):
    """``x`` for x > 0 else ``negative_slope · x``. ``inplace``: as :func:`relu`, for
    ``negative_slope >= 0`` (a negative slope raises ``ValueError``: its backward needs the input)
    and a float32/float64 ``x`` (``TypeError`` otherwise).

    Shape: any. Example: ``F.leaky_relu(mc.tensor([-1.0, 2.0]), 0.2)`` → ``[-0.2, 2.]``.
    """
    negative_slope = float(negative_slope)
    if not inplace:
        return LeakyReLU.apply(x, negative_slope=negative_slope)
    if not negative_slope >= 0:
        raise ValueError(f"leaky_relu_: inplace needs negative_slope >= 0 (the backward of a negative slope "
                         f"needs the input it would overwrite), got {negative_slope}")
    if not is_kernel_float(x.dtype):
        raise TypeError(f"leaky_relu_: inplace needs a float32 or float64 tensor (others are promoted to a new "
                        f"array), got {x.dtype}")
    return LeakyReLU.apply_inplace(x, negative_slope=negative_slope, op_name="leaky_relu_")


def leaky_relu_(x, negative_slope=0.01):
    """``leaky_relu(x, negative_slope, inplace=True)``."""
    return leaky_relu(x, negative_slope, inplace=True)


def hardtanh(x, min_val=-1.0, max_val=1.0, inplace=False):
    """``clamp(x, min_val, max_val)``; gradient 1 strictly inside, 0 outside. ``inplace``: as
    :func:`relu`."""
    if min_val >= max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) must be smaller than max_val ({max_val})")
    apply = Hardtanh.apply_inplace if inplace else Hardtanh.apply
    return apply(x, min_val=float(min_val), max_val=float(max_val))


def relu6(x, inplace=False):
    """``min(max(x, 0), 6)`` (MobileNet). ``inplace``: as :func:`relu`."""
    return hardtanh(x, 0.0, 6.0, inplace)


def hardsigmoid(x):
    """Piecewise-linear sigmoid ``relu6(x + 3) / 6`` (MobileNetV3): 0 for x ≤ −3, 1 for x ≥ 3.

    Shape: any. Example: ``F.hardsigmoid(mc.tensor([-4.0, 0.0, 1.5]))`` → ``[0., 0.5, 0.75]``.
    """
    return Hardsigmoid.apply(x)


def hardswish(x):
    """``x · relu6(x + 3) / 6`` (MobileNetV3, Howard et al. 2019): 0 for x ≤ −3, x for x ≥ 3.

    Shape: any. Example: ``F.hardswish(mc.tensor([-4.0, 0.0, 3.0]))`` → ``[-0., 0., 3.]``.
    """
    return Hardswish.apply(x)


def sigmoid(x):
    """Logistic function ``1 / (1 + e^-x)``, computed without overflow for large |x|."""
    return Sigmoid.apply(x)


def tanh(x):
    return Tanh.apply(x)


def softmax(x, dim=-1):
    """Softmax along ``dim`` (entries are positive and sum to 1 along ``dim``).

    Args:
        x: Tensor of any shape; dim: the axis normalised (PyTorch's name).
    Example: ``F.softmax(logits, dim=1)`` for (N, C) logits.
    """
    return Softmax.apply(x, dim=_check_dim("softmax", x, dim))


def log_softmax(x, dim=-1):
    """``log(softmax(x))`` computed as ``x − logsumexp(x)``: finite even for logits of ±1e4."""
    return LogSoftmax.apply(x, dim=_check_dim("log_softmax", x, dim))


def gelu(x, approximate="none"):
    """Gaussian error linear unit ``x·Φ(x)``.

    ``approximate="tanh"`` is the tanh formula; ``"none"`` (exact, with erf) is computed from
    the same Function pieces: y = x Φ(x), gx = gy (Φ(x) + x φ(x)).
    """
    if approximate == "tanh":
        return GELUTanh.apply(x)
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELUExact.apply(x)


class GELUExact(Function):
    """y = x Φ(x), Φ(x) = ½(1 + erf(x/√2));  gx = gy (Φ(x) + x e^(−x²/2)/√(2π))."""

    float_inputs = True

    @staticmethod
    def forward(ctx, x):
        phi = _std_normal_cdf(ctx.xp, x)
        ctx.save_for_backward(x, phi)
        return x * phi

    @staticmethod
    def backward(ctx, gy):
        x, phi = ctx.saved
        pdf = ctx.xp.exp(-0.5 * x * x) / x.dtype.type(math.sqrt(2 * math.pi))
        return gy * (phi + x * pdf)


def _std_normal_cdf(xp, x):
    """Φ(x) = ½(1 + erf(x/√2)); erf from SciPy/CuPy when present, else math.erf per element."""
    z = x / math.sqrt(2.0)
    if xp.__name__ == "numpy":
        try:
            from scipy.special import erf
        except ImportError:  # scipy is optional
            import numpy as np

            erf = np.vectorize(math.erf, otypes=[x.dtype])
    else:  # pragma: no cover - GPU only
        from cupyx.scipy.special import erf
    return (0.5 * (1 + erf(z))).astype(x.dtype, copy=False)
