"""Convolution and transposed convolution (1-D and 2-D), PyTorch's names and signatures.

With ``x (N, C_in, H, W)``, ``W (C_out, C_in/G, kH, kW)``, stride ``s``, leading padding ``p``,
dilation ``d`` and ``G`` groups (output channel ``co`` of group ``g`` sees input channels
``g·Cg … (g+1)·Cg − 1``)::

    y[n, co, oh, ow] = b[co] + Σ_{c, kh, kw} W[co, c, kh, kw] · x[n, g·Cg + c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]

(``x`` is zero outside its bounds). ``y`` is linear in ``x`` and in ``W``; the device kernels
(``kernels/*/conv``) provide the map and its two adjoints:

- ``conv2d_forward``          x, W  → y
- ``conv2d_backward_input``   gy, W → gx    (the adjoint in x)
- ``conv2d_backward_weight``  x, gy → gW    (the adjoint in W)

A transposed convolution is the adjoint in x of a convolution, so it reuses the same three
kernels with the roles swapped (weight layout ``(C_in, C_out/G, kH, kW)``, as PyTorch)::

    conv_transpose2d(x, W)  = conv2d_backward_input(x, W)
    its gx                  = conv2d_forward(gy, W)
    its gW                  = conv2d_backward_weight(gy, x)     (gy plays the input, x the output gradient)

1-D ops are the 2-D ones with ``H = 1``: the arrays get a unit axis (a free view) and the
gradients lose it again. The kernels take the leading padding and the output size explicitly, so
PyTorch's asymmetric ``padding="same"`` (an odd total puts the extra zero at the end) and
``output_padding`` are no special case.

Sizes, as PyTorch: an empty batch (N = 0) gives an empty output and zero weight and bias gradients
(no kernel runs); its spatial sizes may be 0 too (where the padded input still holds a window, and
a transposed convolution's output may then be empty). Every other size must be non-zero, also
C_in (where PyTorch returns 0 output channels whatever the weight). Every size, geometry value
and element count must fit the kernels' 32-bit int indexing (``kernels/geometry.py``).
"""
import numpy as np

from ..autograd import Function
from ..dtypes import check_float
from ..kernels.geometry import as_tuple, check_numel, output_shape, transposed_output_size
from ..tensor import Tensor


def _add_unit_axis(a):
    """(N, C, L) -> (N, C, 1, L): 1-D arrays seen as 2-D with H = 1 (a view)."""
    return a[:, :, None, :]


class _ConvBase(Function):
    """Shared bookkeeping: the 1-D <-> 2-D views, which gradients backward returns, and empty batches.

    An empty batch (N = 0) runs no kernel: the output is the empty ``(0, C_out, OH, OW)`` array,
    gx is empty and gW, gb are zeros (sums over no images).

    ``fresh_grads``: every device's backward kernels return newly allocated gx, gW and gb (a
    reshaped or 1-D-sliced one is a view, which the engine still copies)."""

    fresh_grads = True

    @staticmethod
    def _prepare(ctx, x, W, dims, params):
        ctx.dims = dims
        ctx.params = params
        if dims == 1:
            x, W = _add_unit_axis(x), _add_unit_axis(W)
        ctx.save_for_backward(x, W)
        return x, W

    @staticmethod
    def _restore(ctx, gy):
        """What backward needs, as 2-D arrays: ``(x, W, gy, (stride, padding, dilation, groups))``."""
        x, W = ctx.saved
        gy = _add_unit_axis(gy) if ctx.dims == 1 else gy
        return x, W, gy, ctx.params

    @staticmethod
    def _finish(ctx, y, b):
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y[:, :, 0, :] if ctx.dims == 1 else y

    @staticmethod
    def _empty_batch_grads(ctx, x, W, C_out):
        """``(gx, gW, gb)`` of an empty batch, those wanted by ``ctx.needs_grads(3)`` (else None)."""
        needs = ctx.needs_grads(3)
        xp = ctx.xp
        return (xp.zeros_like(x) if needs[0] else None, xp.zeros_like(W) if needs[1] else None,
                xp.zeros(C_out, dtype=x.dtype) if needs[2] else None)

    @staticmethod
    def _grads(ctx, gx, gW, gb):
        """What backward returns: 1-D layers' gradients back to (N, C, L) (views), and gb only when
        the op had a bias input."""
        if ctx.dims == 1:
            gx = None if gx is None else gx[:, :, 0, :]
            gW = None if gW is None else gW[:, :, 0, :]
        return (gx, gW) if len(ctx.inputs) == 2 else (gx, gW, gb)


class Conv2d(_ConvBase):
    """y = conv(x, W) + b (see the module docstring); 1-D when ``dims == 1``.

    Backward:  gx = conv2d_backward_input(gy, W),  gW = conv2d_backward_weight(x, gy),
    gb[co] = Σ_{n, oh, ow} gy[n, co, oh, ow], through the kernel ``conv2d_backward``, which computes
    the wanted ones in one call.
    """

    @staticmethod
    def forward(ctx, x, W, b=None, dims=2, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                out_hw=None):
        x, W = _ConvBase._prepare(ctx, x, W, dims, (stride, padding, dilation, groups))
        if x.shape[0] == 0:
            return _ConvBase._finish(ctx, ctx.xp.zeros((0, W.shape[0]) + tuple(out_hw), dtype=x.dtype), None)
        y = ctx.kernels.conv2d_forward(x, W, stride, padding, dilation, groups, out_hw, b)  # b fused
        return _ConvBase._finish(ctx, y, None)

    @staticmethod
    def backward(ctx, gy):
        x, W, gy, (stride, padding, dilation, groups) = _ConvBase._restore(ctx, gy)
        if x.shape[0] == 0:
            return _ConvBase._grads(ctx, *_ConvBase._empty_batch_grads(ctx, x, W, W.shape[0]))
        needs = ctx.needs_grads(3)
        # one kernel call for the wanted gradients (the CPU fuses them for 3×3 depthwise layers)
        gx, gW, gb = ctx.kernels.conv2d_backward(x, W, gy, stride, padding, dilation, groups, needs)
        return _ConvBase._grads(ctx, gx, gW, gb)


class ConvTranspose2d(_ConvBase):
    """y = conv2d_backward_input(x, W) + b: the adjoint of a convolution; W is (C_in, C_out/G, kH, kW).

    Backward:  gx = conv2d_forward(gy, W),  gW = conv2d_backward_weight(gy, x),  gb = Σ gy, through
    the kernel ``conv_transpose2d_backward`` (the CPU builds the columns of gy once for both products).
    """

    @staticmethod
    def forward(ctx, x, W, b=None, dims=2, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                out_hw=None):
        x, W = _ConvBase._prepare(ctx, x, W, dims, (stride, padding, dilation, groups))
        if x.shape[0] == 0:
            y = ctx.xp.zeros((0, W.shape[1] * groups) + tuple(out_hw), dtype=x.dtype)
        else:
            y = ctx.kernels.conv2d_backward_input(x, W, out_hw, stride, padding, dilation, groups)
        return _ConvBase._finish(ctx, y, b)

    @staticmethod
    def backward(ctx, gy):
        x, W, gy, (stride, padding, dilation, groups) = _ConvBase._restore(ctx, gy)
        if x.shape[0] == 0:
            return _ConvBase._grads(ctx, *_ConvBase._empty_batch_grads(ctx, x, W, W.shape[1] * groups))
        needs = ctx.needs_grads(3)
        gx, gW, gb = ctx.kernels.conv_transpose2d_backward(x, W, gy, stride, padding, dilation, groups, needs)
        return _ConvBase._grads(ctx, gx, gW, gb)


# ---- validation ---------------------------------------------------------------------------------
_LAYOUT = {1: "(N, C, L)", 2: "(N, C, H, W)"}


def _weight_layout(channels, dims):
    """``"(C_out, C_in/groups, kH, kW)"`` and the like, for error messages."""
    return f"({channels}, k)" if dims == 1 else f"({channels}, kH, kW)"


def _check_tensors(op, x, weight, bias, dims, weight_layout):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if not isinstance(weight, Tensor):
        raise TypeError(f"{op}: weight must be a Tensor, got {type(weight).__name__}")
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"{op}: bias must be a Tensor or None, got {type(bias).__name__}")
    if x.ndim != dims + 2:
        raise ValueError(f"{op}: expected a {dims + 2}-D input {_LAYOUT[dims]}, got shape {x.shape}")
    if weight.ndim != dims + 2:
        raise ValueError(f"{op}: expected a {dims + 2}-D weight {weight_layout}, got shape {weight.shape}")
    check_float(op, "input", x)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{op}: {name} dtype {t.dtype} differs from the input dtype {x.dtype}")
    # PyTorch's rules, but for C_in = 0, where PyTorch returns an output of 0 channels whatever the weight
    if x.shape[1] == 0:
        raise ValueError(f"{op}: the input has 0 channels (shape {x.shape} {_LAYOUT[dims]}); at least 1 is needed")
    if 0 in x.shape[2:] and x.shape[0] > 0:
        raise ValueError(f"{op}: a spatial size of the input is 0 (shape {x.shape} {_LAYOUT[dims]}), which only an "
                         f"empty batch (N = 0) may have")
    if 0 in weight.shape:
        raise ValueError(f"{op}: the weight must be non-empty, got shape {weight.shape} {weight_layout}")
    check_numel(op, "input", x.shape)
    check_numel(op, "weight", weight.shape)


def _check_groups(op, groups, C_in):
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if C_in % groups:
        raise ValueError(f"{op}: input channels ({C_in}) must be divisible by groups ({groups})")
    return int(groups)


def _check_bias(op, bias, C_out):
    if bias is not None and bias.shape != (C_out,):
        raise ValueError(f"{op}: expected a bias of shape ({C_out},) (one per output channel), got {bias.shape}")


def _conv_padding(op, padding, kernel, stride, dilation, dims):
    """(leading padding per axis, symmetric padding for the output size or None, is_same)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * dims, (0,) * dims, False
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' needs stride 1 (as in PyTorch), got stride {stride}")
            # total d·(k−1) zeros per axis; PyTorch puts the odd one at the end (right/bottom)
            return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation)), None, True
        raise ValueError(f"{op}: padding must be an int, {dims} ints, 'same' or 'valid', got {padding!r}")
    p = as_tuple(padding, dims, "padding", op)
    return p, p, False


def _conv(op, dims, x, weight, bias, stride, padding, dilation, groups):
    _check_tensors(op, x, weight, bias, dims, _weight_layout("C_out, C_in/groups", dims))
    C_in, C_out = x.shape[1], weight.shape[0]
    groups = _check_groups(op, groups, C_in)
    if C_out % groups:
        raise ValueError(f"{op}: output channels (weight.shape[0] = {C_out}) must be divisible by groups ({groups})")
    if weight.shape[1] * groups != C_in:
        raise ValueError(
            f"{op}: weight of shape {weight.shape} expects {weight.shape[1] * groups} input channels "
            f"(weight.shape[1] * groups = {weight.shape[1]} * {groups}), the input {x.shape} has {C_in}"
        )
    _check_bias(op, bias, C_out)
    kernel = tuple(weight.shape[2:])
    stride = as_tuple(stride, dims, "stride", op)
    dilation = as_tuple(dilation, dims, "dilation", op)
    lead, sym, same = _conv_padding(op, padding, kernel, stride, dilation, dims)
    sizes = x.shape[2:]
    if same:  # the output has the input's size; the padded input always holds one window
        right = tuple(d * (k - 1) - p for k, d, p in zip(kernel, dilation, lead))
        output_shape(sizes, kernel, stride, right, dilation, op=op)  # checks kernel, dilation >= 1
        out = tuple(sizes)
    else:
        out = output_shape(sizes, kernel, stride, sym, dilation, op=op)
    check_numel(op, "output", (x.shape[0], C_out) + tuple(out))
    return _apply_2d(Conv2d, dims, x, weight, bias, stride, lead, dilation, groups, out)


def _conv_transpose(op, dims, x, weight, bias, stride, padding, output_padding, groups, dilation):
    _check_tensors(op, x, weight, bias, dims, _weight_layout("C_in, C_out/groups", dims))
    C_in = x.shape[1]
    groups = _check_groups(op, groups, C_in)
    if weight.shape[0] != C_in:
        raise ValueError(
            f"{op}: weight of shape {weight.shape} (C_in, C_out/groups, ...) expects {weight.shape[0]} "
            f"input channels, the input {x.shape} has {C_in}"
        )
    C_out = weight.shape[1] * groups
    _check_bias(op, bias, C_out)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or {dims} ints, got {padding!r}")
    kernel = tuple(weight.shape[2:])
    stride = as_tuple(stride, dims, "stride", op)
    padding = as_tuple(padding, dims, "padding", op)
    dilation = as_tuple(dilation, dims, "dilation", op)
    output_padding = as_tuple(output_padding, dims, "output_padding", op)
    for axis, (k, s, p, d) in enumerate(zip(kernel, stride, padding, dilation)):
        if k < 1 or s < 1 or d < 1 or p < 0:
            raise ValueError(f"{op}: kernel, stride, dilation must be >= 1 and padding >= 0, got kernel={k}, "
                             f"stride={s}, padding={p}, dilation={d} (axis {axis})")
    min_size = 0 if x.shape[0] == 0 else 1  # an empty batch may also have an empty output map (PyTorch)
    out = tuple(transposed_output_size(n, k, s, p, d, op_, op=op, axis=axis, min_size=min_size)
                for axis, (n, k, s, p, d, op_) in enumerate(zip(x.shape[2:], kernel, stride, padding, dilation,
                                                               output_padding)))
    check_numel(op, "output", (x.shape[0], C_out) + out)
    return _apply_2d(ConvTranspose2d, dims, x, weight, bias, stride, padding, dilation, groups, out)


def _apply_2d(fn, dims, x, weight, bias, stride, padding, dilation, groups, out):
    """Run ``fn`` (Conv2d or ConvTranspose2d) on validated arguments; 1-D geometry gets the
    unit H axis (stride 1, padding 0, dilation 1, output size 1) in front."""
    if dims == 1:
        stride, padding, dilation, out = (1,) + stride, (0,) + padding, (1,) + dilation, (1,) + out
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return fn.apply(*inputs, dims=dims, stride=stride, padding=padding, dilation=dilation, groups=groups,
                    out_hw=out)


# ---- public API ---------------------------------------------------------------------------------
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in every deep-learning library).

    Args:
        x: input ``(N, C_in, H, W)``.
        weight: ``(C_out, C_in/groups, kH, kW)``.
        bias: ``(C_out,)`` or None.
        stride, dilation: int or (int, int).
        padding: int, (int, int), ``"valid"`` (no padding) or ``"same"`` (output size = input
            size; stride 1 only; an odd total padding puts the extra zero row/column at the
            bottom/right, as PyTorch).
        groups: input and output channels are split into ``groups`` independent convolutions.

    Shape:
        ``(N, C_out, OH, OW)`` with ``OH = floor((H + 2·ph − dh·(kH−1) − 1) / sh) + 1`` (same for W).

    Example:
        >>> import numpy as np, minicnn as mc, minicnn.functional as F
        >>> x = mc.Tensor(np.ones((1, 1, 4, 4)))
        >>> F.conv2d(x, mc.Tensor(np.ones((2, 1, 3, 3))), padding=1).shape
        (1, 2, 4, 4)
    """
    return _conv("conv2d", 2, x, weight, bias, stride, padding, dilation, groups)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution: :func:`conv2d` with ``H = 1`` (a free reshape, same kernels).

    Args:
        x: ``(N, C_in, L)``; weight: ``(C_out, C_in/groups, k)``; bias: ``(C_out,)`` or None;
        stride, padding (int, ``"same"``, ``"valid"``), dilation, groups: as :func:`conv2d`.

    Shape:
        ``(N, C_out, OL)``, ``OL = floor((L + 2p − d·(k−1) − 1) / s) + 1``.

    Example:
        >>> import numpy as np, minicnn as mc, minicnn.functional as F
        >>> F.conv1d(mc.Tensor(np.ones((1, 2, 8))), mc.Tensor(np.ones((3, 2, 3))), stride=2).shape
        (1, 3, 3)
    """
    return _conv("conv1d", 1, x, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution ("deconvolution"): the gradient of :func:`conv2d` w.r.t. its input.

    Args:
        x: input ``(N, C_in, H, W)``.
        weight: ``(C_in, C_out/groups, kH, kW)`` (PyTorch's layout).
        bias: ``(C_out,)`` or None.
        stride, padding, dilation: those of the convolution this one transposes.
        output_padding: extra rows/columns at the bottom/right of the output (smaller than the
            stride or the dilation), to pick one of the input sizes a strided conv maps to H.
        groups: as :func:`conv2d`.

    Shape:
        ``(N, C_out, OH, OW)``, ``OH = (H−1)·sh − 2·ph + dh·(kH−1) + 1 + output_padding``.

    Example:
        >>> import numpy as np, minicnn as mc, minicnn.functional as F
        >>> x = mc.Tensor(np.ones((1, 4, 5, 5)))
        >>> F.conv_transpose2d(x, mc.Tensor(np.ones((4, 2, 3, 3))), stride=2, padding=1, output_padding=1).shape
        (1, 2, 10, 10)
    """
    return _conv_transpose("conv_transpose2d", 2, x, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-D transposed convolution: :func:`conv_transpose2d` with ``H = 1``.

    Args: as :func:`conv_transpose2d`, with ``x (N, C_in, L)`` and ``weight (C_in, C_out/groups, k)``.

    Shape:
        ``(N, C_out, OL)``, ``OL = (L−1)·s − 2p + d·(k−1) + 1 + output_padding``.

    Example:
        >>> import numpy as np, minicnn as mc, minicnn.functional as F
        >>> F.conv_transpose1d(mc.Tensor(np.ones((1, 2, 4))), mc.Tensor(np.ones((2, 3, 3))), stride=2).shape
        (1, 3, 9)
    """
    return _conv_transpose("conv_transpose1d", 1, x, weight, bias, stride, padding, output_padding, groups, dilation)
