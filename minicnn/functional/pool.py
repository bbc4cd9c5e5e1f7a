"""Pooling: max, average, adaptive, global, and max-unpooling (PyTorch's names and semantics).

Every op works on ``(N, C, H, W)`` planes (1-D ops add a unit ``H`` axis; unbatched inputs
add a unit ``N`` axis). The math of each kernel is in ``kernels/reference/pool.py``; the
geometry (output size, ``ceil_mode``) is ``kernels/geometry.py``.

Zero sizes follow PyTorch, op by op: max and average pooling accept an empty batch (``N = 0``);
adaptive max pooling and max-unpooling also ``C = 0`` of an unbatched ``(C, H, W)`` input;
adaptive average pooling any ``N`` and ``C``; the spatial sizes must be non-zero (there PyTorch's
``adaptive_avg_pool2d(x, 1)`` alone returns NaN, through a shortcut that its general path
refuses; we refuse it). An empty input gives the empty output and gradient (the kernels of every
device loop over no planes). Every size and element count must fit the kernels' 32-bit int
indexing (``kernels/geometry.py``).
"""
from ..autograd import Function, is_grad_enabled
from ..dtypes import check_float
from ..kernels.geometry import as_tuple, check_int32, check_numel, output_shape
from ..tensor import Tensor
from .shape import reshape


# ---- validation -------------------------------------------------------------------------------
def _check_input(x, op, spatial, nonempty_from=None):
    """``x`` must be a float Tensor of ``spatial + 1`` (unbatched) or ``spatial + 2`` dims whose
    sizes from dimension ``nonempty_from`` on are non-zero (default: all but a batched input's N;
    PyTorch's rule for each op, see the module docstring)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    names = {1: ("(C, L)", "(N, C, L)"), 2: ("(C, H, W)", "(N, C, H, W)")}[spatial]
    if x.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(f"{op}: input must be {spatial + 1}-D {names[0]} or {spatial + 2}-D {names[1]}, "
                         f"got shape {x.shape}")
    check_float(op, "input", x)
    first = x.ndim - spatial - 1 if nonempty_from is None else nonempty_from
    if 0 in x.shape[first:]:
        layout = names[x.ndim - spatial - 1][1:-1].split(", ")
        raise ValueError(f"{op}: sizes {', '.join(layout[first:])} of the input {names[x.ndim - spatial - 1]} "
                         f"must be non-zero (as in PyTorch), got shape {x.shape}")
    _check_count(op, "input", x.shape, x.device)


def _check_count(op, name, shape, device):
    """The kernels' 32-bit element-count limit: on ``cpu`` for the whole array; on ``cuda`` and
    ``cuda-emu`` for one (H, W) plane, as their wrappers launch over chunks of planes that each
    fit (kernels/cuda/_planes.py), so the whole tensor may exceed 2**31 elements there."""
    check_numel(op, name, shape if device.name == "cpu" else shape[-2:])


def _check_out_size(op, name, batch, out_hw, device):
    """Each output size, and the (N, C, OH, OW) output's element count, within the int32 limit."""
    for axis, n in enumerate(out_hw):
        check_int32(op, f"{name} (axis {axis})", n)
    _check_count(op, "output", tuple(batch) + tuple(out_hw), device)


def _window_args(op, n, kernel_size, stride, padding, dilation=1):
    kernel = as_tuple(kernel_size, n, "kernel_size", op)
    stride = kernel if stride is None or stride == [] or stride == () else as_tuple(stride, n, "stride", op)
    padding = as_tuple(padding, n, "padding", op)
    dilation = as_tuple(dilation, n, "dilation", op)
    for name, vals in (("kernel_size", kernel), ("stride", stride), ("dilation", dilation)):
        if min(vals) < 1:
            raise ValueError(f"{op}: {name} must be >= 1, got {vals}")
    if min(padding) < 0 or any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"{op}: padding must be between 0 and half of kernel_size, got padding={padding} "
                         f"for kernel_size={kernel}")
    return kernel, stride, padding, dilation


def _as_planes(x, spatial):
    """``x`` as a 4-D (N, C, H, W) Tensor, and a function restoring the caller's layout."""
    shape = x.shape
    if spatial == 1:
        batch = shape[:1] if x.ndim == 3 else (1,)
        x = reshape(x, batch + (shape[-2], 1, shape[-1]))
    elif x.ndim == 3:
        x = reshape(x, (1,) + shape)
    lead = shape[:-spatial]

    def restore(t):
        return reshape(t, lead + t.shape[4 - spatial:])

    return x, restore


# ---- max pooling ------------------------------------------------------------------------------
class MaxPool2d(Function):
    """y[n,c,i,j] = max_{a<kh, b<kw} x[n, c, i·sh − ph + a·dh, j·sw − pw + b·dw] (padding = −∞);
    idx = h·W + w of the FIRST maximum in scan order (strict >).

    gx[n,c].flat[idx[n,c,i,j]] += gy[n,c,i,j]: the winner takes the whole gradient.

    ``indices=False`` (only where no gradient will be taken and the caller wants no indices):
    ``y`` alone, without the int64 index array (twice the bytes of a float32 ``y``).
    """

    fresh_grads = True  # every device's backward kernel returns a new array (see Function)

    @staticmethod
    def forward(ctx, x, kernel=None, stride=None, padding=None, dilation=None, ceil_mode=False, indices=True):
        y, idx = ctx.kernels.max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode, indices=indices)
        if not indices:
            return y
        ctx.save_for_backward(idx)
        ctx.geometry = (x.shape[2:], kernel, stride, padding, dilation)
        return y, idx

    @staticmethod
    def backward(ctx, gy, gidx):
        (idx,) = ctx.saved
        return ctx.kernels.max_pool2d_backward(gy, idx, *ctx.geometry)


def _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, spatial, op):
    _check_input(x, op, spatial)
    kernel, stride, padding, dilation = _window_args(op, spatial, kernel_size, stride, padding, dilation)
    if spatial == 1:
        kernel, stride, padding, dilation = ((1,) + kernel, (1,) + stride, (0,) + padding, (1,) + dilation)
    x4, restore = _as_planes(x, spatial)
    out = output_shape(x4.shape[2:], kernel, stride, padding, dilation, ceil_mode, op)  # geometry errors name op
    _check_count(op, "output", x4.shape[:2] + out, x.device)
    if not (return_indices or (is_grad_enabled() and x.requires_grad)):  # eval, no_grad: y alone
        return restore(MaxPool2d.apply(x4, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                                       ceil_mode=bool(ceil_mode), indices=False))
    y, idx = MaxPool2d.apply(x4, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                             ceil_mode=bool(ceil_mode))
    return (restore(y), restore(idx)) if return_indices else restore(y)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling (PyTorch's ``F.max_pool2d``).

    Args:
        x: ``(N, C, H, W)`` or ``(C, H, W)``.
        kernel_size: window size, an int or a pair.
        stride: window step, an int or a pair (default: kernel_size).
        padding: an int or a pair, ≤ kernel/2; padded positions count as −∞.
        dilation: spacing of the window's taps, an int or a pair.
        ceil_mode: round the output size up (a window starting in the right padding is dropped).
        return_indices: also return the int64 flat index ``h·W + w`` of each maximum.

    Shape: ``(N, C, OH, OW)`` with ``OH = floor((H + 2p − d(k−1) − 1)/s) + 1`` (ceil with ceil_mode).
    The first maximum of a window (scan order) wins and takes the whole gradient; a NaN wins.
    A window holding no input position (possible with dilation: all its taps in the padding)
    gives ``−inf`` as in PyTorch, index ``−1`` (PyTorch returns an out-of-range index) and no gradient.

    Example:
        >>> y, idx = F.max_pool2d(x, 2, return_indices=True)
    """
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2, "max_pool2d")


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """1-D max pooling over ``(N, C, L)`` or ``(C, L)``; indices index ``L``. See :func:`max_pool2d`."""
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1, "max_pool1d")


# ---- average pooling --------------------------------------------------------------------------
class AvgPool2d(Function):
    """y[n,c,i,j] = Σ_{window ∩ input} x / divisor, PyTorch's divisor: the window clipped to the
    padded extent [−p, n+p) (count_include_pad) or to the input (otherwise), or divisor_override.

    gx[h, w] = Σ_{windows ∋ (h, w)} gy / divisor.
    """

    fresh_grads = True  # every device's backward kernel returns a new array (see Function)

    @staticmethod
    def forward(ctx, x, kernel=None, stride=None, padding=None, ceil_mode=False, count_include_pad=True,
                divisor_override=0):
        ctx.geometry = (x.shape[2:], kernel, stride, padding, count_include_pad, divisor_override)
        return ctx.kernels.avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad,
                                              divisor_override)

    @staticmethod
    def backward(ctx, gy):
        return ctx.kernels.avg_pool2d_backward(gy, *ctx.geometry)


def _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, spatial, op):
    _check_input(x, op, spatial)
    kernel, stride, padding, _ = _window_args(op, spatial, kernel_size, stride, padding)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, int) or divisor_override < 1:
            raise ValueError(f"{op}: divisor_override must be a positive int or None, got {divisor_override!r}")
    if spatial == 1:
        kernel, stride, padding = (1,) + kernel, (1,) + stride, (0,) + padding
    x4, restore = _as_planes(x, spatial)
    out = output_shape(x4.shape[2:], kernel, stride, padding, (1, 1), ceil_mode, op)
    _check_count(op, "output", x4.shape[:2] + out, x.device)
    y = AvgPool2d.apply(x4, kernel=kernel, stride=stride, padding=padding, ceil_mode=bool(ceil_mode),
                        count_include_pad=bool(count_include_pad), divisor_override=divisor_override or 0)
    return restore(y)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling (PyTorch's ``F.avg_pool2d``, same divisor in every case).

    Args:
        x: ``(N, C, H, W)`` or ``(C, H, W)``.
        kernel_size: window size, an int or a pair.
        stride: window step, an int or a pair (default: kernel_size).
        padding: an int or a pair, ≤ kernel/2; padded positions are zeros.
        ceil_mode: round the output size up (a window starting in the right padding is dropped).
        count_include_pad: divide by the window clipped to the padded extent (True) or to the input.
        divisor_override: divide every window by this int instead.

    Shape: ``(N, C, OH, OW)``, ``OH = floor((H + 2p − k)/s) + 1`` (ceil with ceil_mode).

    Example:
        >>> y = F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
    """
    return _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 2,
                     "avg_pool2d")


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """1-D average pooling over ``(N, C, L)`` or ``(C, L)``. See :func:`avg_pool2d`."""
    return _avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1, "avg_pool1d")


# ---- adaptive pooling -------------------------------------------------------------------------
def _adaptive_size(op, output_size, in_hw):
    """``output_size`` (int, pair, None entries = keep the input size) as a pair of ints >= 1."""
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != 2:
            raise ValueError(f"{op}: output_size must be an int or 2 ints, got {tuple(output_size)}")
        size = tuple(n if s is None else s for s, n in zip(output_size, in_hw))
    else:
        size = (output_size, output_size)
    for s in size:
        if isinstance(s, bool) or not hasattr(s, "__index__") or int(s) < 1:
            raise ValueError(f"{op}: output_size must be positive ints, got {output_size!r}")
    return tuple(int(s) for s in size)


class AdaptiveAvgPool2d(Function):
    """y[i, j] = mean of x over bin rows [⌊iH/OH⌋, ⌈(i+1)H/OH⌉) × bin columns (likewise);
    gx = Σ_{bins ∋ (h, w)} gy / bin size."""

    fresh_grads = True  # every device's backward kernel returns a new array (see Function)

    @staticmethod
    def forward(ctx, x, out_hw=None):
        ctx.in_hw = x.shape[2:]
        return ctx.kernels.adaptive_avg_pool2d_forward(x, out_hw)

    @staticmethod
    def backward(ctx, gy):
        return ctx.kernels.adaptive_avg_pool2d_backward(gy, ctx.in_hw)


class AdaptiveMaxPool2d(Function):
    """y, idx = max (first maximum, strict >) and its flat index over each adaptive bin;
    gx[n,c].flat[idx] += gy."""

    fresh_grads = True  # every device's backward kernel returns a new array (see Function)

    @staticmethod
    def forward(ctx, x, out_hw=None):
        y, idx = ctx.kernels.adaptive_max_pool2d_forward(x, out_hw)
        ctx.save_for_backward(idx)
        ctx.in_hw = x.shape[2:]
        return y, idx

    @staticmethod
    def backward(ctx, gy, gidx):
        return ctx.kernels.adaptive_max_pool2d_backward(gy, ctx.saved[0], ctx.in_hw)


def adaptive_avg_pool2d(x, output_size):
    """Average over ``output_size`` bins per axis, bin ``i`` = ``[⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉)`` (PyTorch's rule).

    Args:
        x: ``(N, C, H, W)`` or ``(C, H, W)``.
        output_size: ``OH`` (square) or ``(OH, OW)``; a None entry keeps that input size.

    Example:
        >>> F.adaptive_avg_pool2d(x, (7, 7)).shape  # (N, C, 7, 7)
    """
    op = "adaptive_avg_pool2d"
    _check_input(x, op, 2, nonempty_from=x.ndim - 2)
    x4, restore = _as_planes(x, 2)
    out_hw = _adaptive_size(op, output_size, x4.shape[2:])
    _check_out_size(op, "output_size", x4.shape[:2], out_hw, x.device)
    return restore(AdaptiveAvgPool2d.apply(x4, out_hw=out_hw))


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """Max over adaptive bins (see :func:`adaptive_avg_pool2d`); ``return_indices`` adds int64
    flat indices ``h·W + w``. The first maximum of a bin wins and takes the gradient."""
    op = "adaptive_max_pool2d"
    _check_input(x, op, 2, nonempty_from=1)
    x4, restore = _as_planes(x, 2)
    out_hw = _adaptive_size(op, output_size, x4.shape[2:])
    _check_out_size(op, "output_size", x4.shape[:2], out_hw, x.device)
    y, idx = AdaptiveMaxPool2d.apply(x4, out_hw=out_hw)
    return (restore(y), restore(idx)) if return_indices else restore(y)


def global_avg_pool2d(x):
    """The mean over ``(H, W)`` keeping unit axes: ``adaptive_avg_pool2d(x, 1)``, shape ``(N, C, 1, 1)``."""
    return adaptive_avg_pool2d(x, 1)


# ---- max unpooling ----------------------------------------------------------------------------
class MaxUnpool2d(Function):
    """Scatter-ADD: y[n,c].flat[idx[n,c,i,j]] += x[n,c,i,j] (zeros elsewhere);
    gather backward: gx[n,c,i,j] = gy[n,c].flat[idx[n,c,i,j]] (correct with duplicate indices)."""

    fresh_grads = True  # every device's backward kernel returns a new array (see Function)

    @staticmethod
    def forward(ctx, x, indices=None, out_hw=None):
        ctx.save_for_backward(indices)
        return ctx.kernels.max_unpool2d_forward(x, indices, out_hw)

    @staticmethod
    def backward(ctx, gy):
        return ctx.kernels.max_unpool2d_backward(gy, ctx.saved[0])


def _unpool_size(op, in_hw, kernel, stride, padding, output_size):
    """PyTorch's ``_unpool_output_size``: the default ``(n−1)·s − 2p + k``, or ``output_size``
    (last two entries used when it has 4) within ``(default − s, default + s)``."""
    default = tuple((n - 1) * s - 2 * p + k for n, s, p, k in zip(in_hw, stride, padding, kernel))
    if output_size is None:
        size = default
    else:
        size = tuple(output_size.shape if isinstance(output_size, Tensor) else output_size)
        if len(size) == 4:
            size = size[2:]
        if len(size) != 2:
            raise ValueError(f"{op}: output_size must have 2 or 4 entries, got {tuple(size)}")
        for d, (s, dflt, st) in enumerate(zip(size, default, stride)):
            if not dflt - st < s < dflt + st:
                raise ValueError(f"{op}: invalid output_size {tuple(size)}: entry {d} must be between "
                                 f"{dflt - st} and {dflt + st} (exclusive)")
        size = tuple(int(s) for s in size)
    if min(size) < 1:
        raise ValueError(f"{op}: the output would be empty: size {size}")
    return size


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The (partial) inverse of :func:`max_pool2d` (SegNet's decoder): each value goes back to
    the position its index names, zeros elsewhere.

    Unlike PyTorch, duplicate indices are ADDED: PyTorch writes ``y.flat[idx] = x`` (with duplicates
    the last write wins, and on a GPU which write is last is unspecified); minicnn specifies
    scatter-ADD, so with duplicates the output is the SUM of the values sent there. On ``cpu`` the
    values are added in input order; on ``cuda`` the kernel adds with float atomics, so with
    duplicates the order of the additions, and the last bits of the sum (a float32 sum of k terms:
    up to about (k−1)·2⁻²⁴ of the sum of their magnitudes), may change from run to run;
    ``minicnn.use_deterministic_algorithms(True)`` adds them in input order there too. Without
    duplicates (indices from a max pool with stride ≥ kernel) every output gets at most one value
    and all devices and PyTorch agree exactly.
    Backward gathers ``gx = gy.flat[idx]``, correct with or without duplicates.

    Args:
        x: ``(N, C, H, W)`` or ``(C, H, W)``.
        indices: int Tensor/array of ``x``'s shape, each in ``[0, OH·OW)`` (checked before any kernel).
        kernel_size: the pooling's window size, an int or a pair.
        stride: the pooling's step, an int or a pair (default: kernel_size).
        padding: the pooling's padding, an int or a pair.
        output_size: ``(OH, OW)`` (or ``(N, C, OH, OW)``); default ``(H−1)·s − 2p + k``.

    Shape: ``(N, C, OH, OW)``.

    Example:
        >>> y, idx = F.max_pool2d(x, 2, return_indices=True)
        >>> F.max_unpool2d(y, idx, 2).shape == x.shape
    """
    op = "max_unpool2d"
    _check_input(x, op, 2, nonempty_from=1)
    kernel = as_tuple(kernel_size, 2, "kernel_size", op)
    stride = kernel if stride is None else as_tuple(stride, 2, "stride", op)
    padding = as_tuple(padding, 2, "padding", op)
    idx = indices.data if isinstance(indices, Tensor) else x.device.xp.asarray(indices)
    if tuple(idx.shape) != x.shape:
        raise ValueError(f"{op}: indices must have the shape of the input {x.shape}, got {tuple(idx.shape)}")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be integers, got dtype {idx.dtype}")
    x4, restore = _as_planes(x, 2)
    out_hw = _unpool_size(op, x4.shape[2:], kernel, stride, padding, output_size)
    _check_out_size(op, "output size", x4.shape[:2], out_hw, x.device)
    plane = out_hw[0] * out_hw[1]
    lo, hi = (int(idx.min()), int(idx.max())) if idx.size else (0, 0)
    if lo < 0 or hi >= plane:
        raise ValueError(f"{op}: indices must lie in [0, {plane}) for an output plane of {out_hw}, "
                         f"found values in [{lo}, {hi}]")
    idx4 = idx.astype("int64", copy=False).reshape(x4.shape)
    return restore(MaxUnpool2d.apply(x4, indices=idx4, out_hw=out_hw))
