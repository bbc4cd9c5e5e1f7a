"""Shape ops: reshape, transpose/permute, flatten, cat/stack/split, indexing, pad."""
import numpy as np

from ..autograd import Function
from ..tensor import Tensor


class Reshape(Function):
    """y = x viewed with a new shape (same elements, C order);  gx = gy reshaped back."""

    @staticmethod
    def forward(ctx, x, shape=None):
        ctx.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot view shape {tuple(x.shape)} as {tuple(shape)}") from None

    @staticmethod
    def backward(ctx, gy):
        return gy.reshape(ctx.shape)


class Permute(Function):
    """y = x with axes reordered: y.shape[i] = x.shape[dims[i]];  gx = gy permuted by the inverse."""

    @staticmethod
    def forward(ctx, x, dims=None):
        if sorted(d % x.ndim for d in dims) != list(range(x.ndim)):
            raise ValueError(f"permute: dims {tuple(dims)} is not a permutation of {x.ndim} axes")
        ctx.dims = tuple(d % x.ndim for d in dims)
        return x.transpose(ctx.dims)

    @staticmethod
    def backward(ctx, gy):
        return gy.transpose(np.argsort(ctx.dims))


class Cat(Function):
    """y = concatenation of the inputs along ``axis``;  each gx is its slice of gy."""

    @staticmethod
    def forward(ctx, *xs, axis=0):
        ctx.axis = axis % xs[0].ndim
        ctx.sizes = [x.shape[ctx.axis] for x in xs]
        for i, x in enumerate(xs):
            if x.ndim != xs[0].ndim or any(
                a != b for k, (a, b) in enumerate(zip(x.shape, xs[0].shape)) if k != ctx.axis
            ):
                raise ValueError(
                    f"cat: input {i} has shape {tuple(x.shape)}, input 0 has {tuple(xs[0].shape)}; "
                    f"all but axis {axis} must match"
                )
        return ctx.xp.concatenate(xs, axis=ctx.axis)

    @staticmethod
    def backward(ctx, gy):
        bounds = np.cumsum(ctx.sizes)[:-1]
        return tuple(ctx.xp.split(gy, bounds, axis=ctx.axis))


class Split(Function):
    """ys = consecutive pieces of x along ``axis`` of the given sizes;  gx = concat of the gys."""

    @staticmethod
    def forward(ctx, x, sizes=None, axis=0):
        ctx.axis = axis % x.ndim
        if int(np.sum(sizes)) != x.shape[ctx.axis]:
            raise ValueError(f"split: sizes {sizes} do not add up to {x.shape[ctx.axis]} (axis {axis} of {tuple(x.shape)})")
        bounds = np.cumsum(sizes)[:-1]
        return tuple(ctx.xp.split(x, bounds, axis=ctx.axis))

    @staticmethod
    def backward(ctx, *gys):
        return ctx.xp.concatenate(gys, axis=ctx.axis)


class GetItem(Function):
    """y = x[index] (slices, integers, integer arrays, boolean masks);  gx = scatter-add of gy.

    Scatter-*add* (``xp.add.at``) so repeated integer indices accumulate their gradients.
    """

    @staticmethod
    def forward(ctx, x, index=None):
        ctx.index = index
        ctx.shape = x.shape
        y = x[index]
        return ctx.xp.asarray(y)

    @staticmethod
    def backward(ctx, gy):
        xp = ctx.xp
        gx = xp.zeros(ctx.shape, dtype=gy.dtype)
        if _is_basic_index(ctx.index):
            gx[ctx.index] = gy  # basic indexing never repeats an element
        else:
            xp.add.at(gx, ctx.index, gy)
        return gx


def _is_basic_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in items)


class Pad(Function):
    """Constant/reflect/replicate padding, PyTorch's ``F.pad`` convention.

    ``pad = (left_last, right_last, left_second_last, right_second_last, ...)`` pads the last
    axes first. Forward gathers ``y = x[src]`` along each padded axis (``src`` maps an output
    position to an input position; -1 marks a constant); backward scatter-adds ``gy`` back, so a
    reflected input element receives the gradient of every output that copies it.
    """

    @staticmethod
    def forward(ctx, x, pad=(), mode="constant", value=0.0):
        xp = ctx.xp
        ctx.maps = []
        y = x
        for k in range(len(pad) // 2):
            axis = x.ndim - 1 - k
            src = _pad_source(x.shape[axis], pad[2 * k], pad[2 * k + 1], mode)
            ctx.maps.append((axis, src))
            y = _gather(xp, y, axis, src, value)
        ctx.shape = x.shape
        return y

    @staticmethod
    def backward(ctx, gy):
        xp = ctx.xp
        g = gy
        for axis, src in reversed(ctx.maps):
            n = ctx.shape[axis]
            keep = src >= 0
            g = xp.moveaxis(g, axis, 0)[xp.asarray(np.nonzero(keep)[0])]
            out = xp.zeros((n,) + g.shape[1:], dtype=g.dtype)
            xp.add.at(out, xp.asarray(src[keep]), g)
            g = xp.moveaxis(out, 0, axis)
        return xp.ascontiguousarray(g)


def _pad_source(n, left, right, mode):
    """For each output position along an axis, the input position it copies (-1: the constant)."""
    idx = np.arange(-left, n + right)
    if mode == "constant":  # a negative pad crops: idx then starts inside the axis or ends before its end
        return np.where((idx >= 0) & (idx < n), idx, -1)
    if mode == "replicate":
        return np.clip(idx, 0, n - 1)
    if mode == "reflect":
        if left >= n or right >= n:
            raise ValueError(f"pad: reflect padding ({left}, {right}) must be smaller than the axis size {n}")
        period = 2 * (n - 1) if n > 1 else 1
        m = np.mod(idx, period)
        return np.where(m < n, m, period - m)
    raise ValueError(f"pad: unknown mode {mode!r}; expected 'constant', 'reflect' or 'replicate'")


def _gather(xp, y, axis, src, value):
    keep = src >= 0
    taken = xp.take(y, xp.asarray(np.where(keep, src, 0)), axis=axis)
    if keep.all():
        return taken
    shape = [1] * y.ndim
    shape[axis] = len(src)
    mask = xp.asarray(keep.reshape(shape))
    return xp.where(mask, taken, xp.asarray(value, dtype=y.dtype))


def reshape(x, shape):
    return Reshape.apply(x, shape=tuple(int(s) for s in shape))


def permute(x, dims):
    return Permute.apply(x, dims=tuple(dims))


def transpose(x, dim0=None, dim1=None):
    """Swap two axes (``dim0``, ``dim1``); with neither, reverse all axes (NumPy's ``.T``)."""
    if dim0 is None and dim1 is None:
        return permute(x, tuple(range(x.ndim))[::-1])
    dims = list(range(x.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return permute(x, dims)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge axes ``start_dim..end_dim`` into one (``nn.Flatten`` uses start_dim=1)."""
    s, e = start_dim % x.ndim, end_dim % x.ndim
    n = 1
    for d in x.shape[s:e + 1]:
        n *= d
    return reshape(x, x.shape[:s] + (n,) + x.shape[e + 1:])


def cat(tensors, axis=0):
    """Concatenate along ``axis`` (PyTorch's ``torch.cat(tensors, dim)``)."""
    return Cat.apply(*tensors, axis=axis)


concatenate = cat


def stack(tensors, axis=0):
    """Stack along a new ``axis``."""
    expanded = []
    for t in tensors:
        a = axis % (t.ndim + 1)
        expanded.append(reshape(t, t.shape[:a] + (1,) + t.shape[a:]))
    return cat(expanded, axis=axis)


def split(x, split_size_or_sections, axis=0):
    """Split into pieces of ``split_size`` (int) or of the listed sizes (PyTorch's ``torch.split``)."""
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        k = split_size_or_sections
        sizes = [k] * (n // k) + ([n % k] if n % k else [])
    else:
        sizes = list(split_size_or_sections)
    return Split.apply(x, sizes=sizes, axis=axis)


def getitem(x, index):
    """``x[index]``; tensors inside the index are used as arrays (not differentiated)."""
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    elif isinstance(index, list):
        index = x.device.xp.asarray(index)
    return GetItem.apply(x, index=index)


def pad(x, pad, mode="constant", value=0.0):
    """Pad the last ``len(pad)//2`` axes; ``pad = (left, right, top, bottom, ...)`` as in PyTorch.
    A negative pad crops that many elements from that side (in every mode)."""
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even-length pad of at most {2 * x.ndim} values, got {pad}")
    for k in range(len(pad) // 2):
        n = x.shape[x.ndim - 1 - k]
        if n + pad[2 * k] + pad[2 * k + 1] < 0:
            raise ValueError(f"pad: padding ({pad[2 * k]}, {pad[2 * k + 1]}) of axis {x.ndim - 1 - k} would "
                             f"leave a negative size for input shape {tuple(x.shape)}")
    return Pad.apply(x, pad=tuple(int(p) for p in pad), mode=mode, value=value)
