"""Window geometry shared by convolution, pooling and transposed convolution.

One formula for every sliding-window op. Along one axis of size ``n`` with kernel ``k``,
stride ``s``, padding ``p`` (each side) and dilation ``d``, the window spans
``span = d·(k−1) + 1`` input positions and the output has

    floor((n + 2p − span) / s) + 1          (ceil_mode=False)
    ceil ((n + 2p − span) / s) + 1          (ceil_mode=True)

positions (at least 1, else the geometry is refused; in ceil mode the last window may overhang the
padded input, even when it is the only one); with ``ceil_mode`` a last window that would *start* in
the right padding (``(out−1)·s ≥ n + p``) is dropped, as PyTorch does. Transposed convolution inverts the map:
``(n−1)·s − 2p + span + output_padding``.

Limits: the CUDA kernels index with 32-bit ints, so every size, kernel, stride, padding and
dilation, the extent ``n + 2p + s + d·(k−1)`` that their index arithmetic reaches, and the
element count of every array an op reads or writes must be at most ``INT32_MAX = 2**31 − 1``.
The functional ops check this on every device (the same error everywhere) before any kernel runs.
"""
import math

#: the largest size, geometry value or element count the kernels' 32-bit int indexing holds
INT32_MAX = 2**31 - 1


def check_int32(op, name, value):
    """Raise ValueError naming ``op`` and ``name`` unless ``value <= INT32_MAX``."""
    if value > INT32_MAX:
        raise ValueError(f"{op}: {name} = {value} exceeds 2**31 - 1 = {INT32_MAX}, the limit of the kernels' "
                         f"32-bit int indexing")


def check_numel(op, name, shape):
    """Raise ValueError naming ``op`` and ``name`` unless an array of ``shape`` has at most
    ``INT32_MAX`` elements."""
    n = math.prod(shape)
    if n > INT32_MAX:
        raise ValueError(f"{op}: the {name} would have {n} elements (shape {tuple(shape)}), more than 2**31 - 1 = "
                         f"{INT32_MAX}, the limit of the kernels' 32-bit int indexing")


def _check_axis_int32(op, axis, n, kernel, stride, padding, dilation):
    """Every geometry value of one axis, and the extent the kernels' index arithmetic reaches, within int32."""
    for name, v in (("input size", n), ("kernel size", kernel), ("stride", stride), ("padding", padding),
                    ("dilation", dilation)):
        check_int32(op, f"{name} (axis {axis})", v)
    check_int32(op, f"the extent size + 2·padding + stride + dilation·(kernel − 1) (axis {axis})",
                n + 2 * padding + stride + dilation * (kernel - 1))


def as_tuple(value, n, name, op):
    """``value`` (an int or a sequence of ``n`` ints) as a tuple of ``n`` Python ints."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{op}: {name} must be an int or {n} ints, got {tuple(value)}")
        out = tuple(value)
    else:
        out = (value,) * n
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int) and not hasattr(v, "__index__"):
            raise TypeError(f"{op}: {name} must be int(s), got {value!r}")
    return tuple(int(v) for v in out)


def output_size(n, kernel, stride=1, padding=0, dilation=1, ceil_mode=False, op="op", axis=0):
    """Output length of a sliding window along one axis (see the module docstring).

    Raises ValueError naming ``op`` when the geometry is impossible (non-positive kernel,
    stride or dilation, negative padding, or no window: floor mode needs the window within the
    padded input; ceil mode, as PyTorch, takes a partial first window when the rounded-up count
    ``⌈(n + 2p − span)/s⌉ + 1`` is still positive, e.g. kernel 2, stride 2 on 1 element).
    """
    if kernel < 1 or stride < 1 or dilation < 1:
        raise ValueError(
            f"{op}: kernel, stride and dilation must be >= 1, got kernel={kernel}, stride={stride}, "
            f"dilation={dilation} (axis {axis})"
        )
    if padding < 0:
        raise ValueError(f"{op}: padding must be >= 0, got {padding} (axis {axis})")
    _check_axis_int32(op, axis, n, kernel, stride, padding, dilation)
    span = dilation * (kernel - 1) + 1
    room = n + 2 * padding - span  # negative: the window overhangs the padded input
    if ceil_mode:
        out = -(-room // stride) + 1
        if (out - 1) * stride >= n + padding:  # the last window would start in the right padding
            out -= 1
    else:
        out = room // stride + 1
    if out < 1:
        raise ValueError(
            f"{op}: the window (kernel {kernel}, dilation {dilation}: {span} positions) is larger than "
            f"the padded input along axis {axis} (size {n} + 2*{padding} padding = {n + 2 * padding})"
        )
    return out


def output_shape(sizes, kernel, stride, padding, dilation, ceil_mode=False, op="op"):
    """:func:`output_size` for every spatial axis."""
    return tuple(
        output_size(n, k, s, p, d, ceil_mode, op, axis)
        for axis, (n, k, s, p, d) in enumerate(zip(sizes, kernel, stride, padding, dilation))
    )


def transposed_output_size(n, kernel, stride=1, padding=0, dilation=1, output_padding=0, op="op", axis=0,
                           min_size=1):
    """Output length of a transposed convolution: ``(n−1)·s − 2p + d·(k−1) + 1 + output_padding``,
    at least ``min_size`` (0 for an empty batch, whose output map may be empty, as in PyTorch).

    ``output_padding`` must be smaller than the stride or the dilation (PyTorch's rule). The
    kernels run the convolution this one transposes, whose input is the output: both sizes and
    the output's extent must fit int32 (module docstring).
    """
    if output_padding < 0 or (output_padding >= stride and output_padding >= dilation):
        raise ValueError(
            f"{op}: output_padding ({output_padding}) must be smaller than either stride ({stride}) "
            f"or dilation ({dilation}) (axis {axis})"
        )
    out = (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + 1 + output_padding
    if out < min_size:
        raise ValueError(f"{op}: the output would be empty along axis {axis} (size {out})")
    check_int32(op, f"input size (axis {axis})", n)
    check_int32(op, f"output size (axis {axis})", out)
    _check_axis_int32(op, axis, out, kernel, stride, padding, dilation)
    return out
