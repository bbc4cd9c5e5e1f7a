"""Window geometry shared by convolution, pooling and transposed convolution.

One formula for every sliding-window op. Along one axis of size ``n`` with kernel ``k``,
stride ``s``, padding ``p`` (each side) and dilation ``d``, the window spans
``span = d·(k−1) + 1`` input positions and the output has

    floor((n + 2p − span) / s) + 1          (ceil_mode=False)
    ceil ((n + 2p − span) / s) + 1          (ceil_mode=True)

positions; with ``ceil_mode`` a last window that would *start* in the right padding
(``(out−1)·s ≥ n + p``) is dropped, as PyTorch does. Transposed convolution inverts the map:
``(n−1)·s − 2p + span + output_padding``.
"""


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
    stride or dilation, negative padding, or a window larger than the padded input).
    """
    if kernel < 1 or stride < 1 or dilation < 1:
        raise ValueError(
            f"{op}: kernel, stride and dilation must be >= 1, got kernel={kernel}, stride={stride}, "
            f"dilation={dilation} (axis {axis})"
        )
    if padding < 0:
        raise ValueError(f"{op}: padding must be >= 0, got {padding} (axis {axis})")
    span = dilation * (kernel - 1) + 1
    room = n + 2 * padding - span
    if room < 0:
        raise ValueError(
            f"{op}: the window (kernel {kernel}, dilation {dilation}: {span} positions) is larger than "
            f"the padded input along axis {axis} (size {n} + 2*{padding} padding = {n + 2 * padding})"
        )
    if ceil_mode:
        out = -(-room // stride) + 1
        if (out - 1) * stride >= n + padding:  # the last window would start in the right padding
            out -= 1
    else:
        out = room // stride + 1
    return out


def output_shape(sizes, kernel, stride, padding, dilation, ceil_mode=False, op="op"):
    """:func:`output_size` for every spatial axis."""
    return tuple(
        output_size(n, k, s, p, d, ceil_mode, op, axis)
        for axis, (n, k, s, p, d) in enumerate(zip(sizes, kernel, stride, padding, dilation))
    )


def transposed_output_size(n, kernel, stride=1, padding=0, dilation=1, output_padding=0, op="op", axis=0):
    """Output length of a transposed convolution: ``(n−1)·s − 2p + d·(k−1) + 1 + output_padding``.

    ``output_padding`` must be smaller than the stride or the dilation (PyTorch's rule).
    """
    if output_padding < 0 or (output_padding >= stride and output_padding >= dilation):
        raise ValueError(
            f"{op}: output_padding ({output_padding}) must be smaller than either stride ({stride}) "
            f"or dilation ({dilation}) (axis {axis})"
        )
    out = (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + 1 + output_padding
    if out < 1:
        raise ValueError(f"{op}: the output would be empty along axis {axis} (size {out})")
    return out
