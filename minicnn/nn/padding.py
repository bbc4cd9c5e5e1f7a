"""Padding layers: ReflectionPad1d/2d, ReplicationPad1d/2d, ZeroPad2d, ConstantPad2d.

Thin wrappers over ``F.pad(x, pad, mode, value)`` with PyTorch's constructors: ``padding`` is one
int (every side) or a tuple ``(left, right)`` for 1-D, ``(left, right, top, bottom)`` for 2-D.

Modes, along one axis of size ``n`` padded by ``p`` on the left (output index ``i``, input index
``i − p``; out-of-range indices are mapped back):

* reflect:   ``−1 → 1``, ``n → n − 2`` (the edge is not repeated; needs ``p < n``);
* replicate: ``−1 → 0``, ``n → n − 1`` (the edge is repeated);
* constant:  out of range → ``value`` (zero for ZeroPad2d).

The backward adds the gradient of every output copy into the input element it copies.
"""
import operator

from .. import functional as F
from ._checks import layer_name
from .module import Module


def _as_padding(owner, padding, n):
    """``padding`` as a tuple of ``2n`` ints (one int means the same on every side)."""
    if isinstance(padding, bool):
        raise TypeError(f"{owner}: padding must be an int or a tuple of {2 * n} ints, got {padding!r}")
    if hasattr(padding, "__index__"):
        return (operator.index(padding),) * (2 * n)
    padding = tuple(padding)
    if len(padding) != 2 * n or not all(hasattr(p, "__index__") and not isinstance(p, bool) for p in padding):
        raise ValueError(f"{owner}: padding must be an int or a tuple of {2 * n} ints "
                         f"({'left, right' if n == 1 else 'left, right, top, bottom'}), got {padding!r}")
    return tuple(operator.index(p) for p in padding)


class _PadNd(Module):
    """Shared parts: ``dims`` spatial axes padded by ``F.pad`` in ``mode``."""

    dims = 2
    mode = "constant"

    def __init__(self, padding, value=0.0):
        super().__init__()
        self.padding = _as_padding(type(self).__name__, padding, self.dims)
        self.value = float(value)

    def forward(self, x):
        allowed = (self.dims + 1, self.dims + 2)
        if x.ndim not in allowed:
            layout = "(C, L) or (N, C, L)" if self.dims == 1 else "(C, H, W) or (N, C, H, W)"
            raise ValueError(f"{layer_name(self)}: expected a {allowed[0]}-D or {allowed[1]}-D input {layout}, "
                             f"got shape {tuple(x.shape)}")
        if self.mode == "reflect":
            for k in range(self.dims):
                size = x.shape[x.ndim - 1 - k]
                before, after = self.padding[2 * k], self.padding[2 * k + 1]
                if before >= size or after >= size:
                    raise ValueError(f"{layer_name(self)}: reflect padding ({before}, {after}) of axis "
                                     f"{x.ndim - 1 - k} must be smaller than its size {size}; "
                                     f"input shape {tuple(x.shape)}")
        return F.pad(x, self.padding, mode=self.mode, value=self.value)

    def extra_repr(self):
        return f"{self.padding}"


class ReflectionPad1d(_PadNd):
    """Reflect the last axis: ``(N, C, L) → (N, C, L + left + right)``; each pad < L."""

    dims = 1
    mode = "reflect"

    def __init__(self, padding):
        super().__init__(padding)


class ReplicationPad1d(_PadNd):
    """Repeat the edge values of the last axis: ``(N, C, L) → (N, C, L + left + right)``."""

    dims = 1
    mode = "replicate"

    def __init__(self, padding):
        super().__init__(padding)


class ReflectionPad2d(_PadNd):
    """Reflect H and W: ``(N, C, H, W) → (N, C, H + top + bottom, W + left + right)``.

    Each pad must be smaller than the size of its axis. Example: ``nn.ReflectionPad2d(3)`` before an
    unpadded 7×7 convolution (CycleGAN's ResNet generator).
    """

    mode = "reflect"

    def __init__(self, padding):
        super().__init__(padding)


class ReplicationPad2d(_PadNd):
    """Repeat the border pixels: ``(N, C, H, W) → (N, C, H + top + bottom, W + left + right)``."""

    mode = "replicate"

    def __init__(self, padding):
        super().__init__(padding)


class ConstantPad2d(_PadNd):
    """Pad H and W with ``value``: ``(N, C, H, W) → (N, C, H + top + bottom, W + left + right)``."""

    def __init__(self, padding, value):
        super().__init__(padding, value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(ConstantPad2d):
    """Pad H and W with zeros (``ConstantPad2d(padding, 0.0)``)."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"
