"""Weight initialisation (``nn.init``), PyTorch's names, formulas and defaults.

Each function fills a Tensor in place (under no graph) from the global generator of
:mod:`minicnn.random` (or ``generator``) and returns it. For a weight of shape
(out, in, *kernel): fan_in = in · Πkernel, fan_out = out · Πkernel.

- kaiming (He): std = gain / √fan, uniform bound = √3 · std; gain(leaky_relu, a) = √(2/(1+a²)).
- xavier (Glorot): std = gain · √(2/(fan_in + fan_out)), uniform bound = √3 · std.
"""
import math

import numpy as np

from ..random import get_rng


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor of at least 2 dimensions, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, values):
    tensor.data[...] = tensor.device.from_numpy(np.asarray(values, dtype=tensor.dtype))
    return tensor


#: random values are drawn (in float64) and stored this many at a time: a whole VGG-11 classifier
#: weight (102.8 M values) drawn at once took 822 MB of float64 plus a 411 MB float32 copy
_DRAW_CHUNK = 1 << 20


def _fill_drawn(tensor, draw):
    """Fill ``tensor`` in C order with ``draw(n)`` (n float64 values from the generator), one chunk at
    a time: the same values as one draw of the whole size (the generator's stream is sequential),
    with ``_DRAW_CHUNK`` temporaries instead of two arrays of the tensor's size."""
    if not tensor.data.flags.c_contiguous:  # (a strided tensor: its reshape would be a copy) filled whole
        return _fill(tensor, draw(tensor.data.size).reshape(tensor.shape))
    flat = tensor.data.reshape(-1)  # a view of the contiguous data
    for i in range(0, flat.size, _DRAW_CHUNK):
        n = min(_DRAW_CHUNK, flat.size - i)
        flat[i:i + n] = tensor.device.from_numpy(draw(n).astype(tensor.dtype, copy=False))
    return tensor


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b)."""
    rng = get_rng(generator)
    return _fill_drawn(tensor, lambda n: rng.uniform(a, b, size=n))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std²)."""
    rng = get_rng(generator)
    return _fill_drawn(tensor, lambda n: rng.normal(mean, std, size=n))


def constant_(tensor, val):
    return _fill(tensor, np.full(tensor.shape, val))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(−bound, bound), bound = gain · √(3 / fan) (He et al. 2015)."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std²), std = gain / √fan."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(−a, a), a = gain · √(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std²), std = gain · √(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def default_layer_init_(weight, bias, fan_in=None):
    """PyTorch's Linear/Conv ``reset_parameters``: weight ~ kaiming_uniform(a=√5), i.e.
    U(±1/√fan_in), bias ~ U(±1/√fan_in)."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        if fan_in is None:
            fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
