"""Op-table entries of the convolutions (conv1d, conv2d, conv_transpose1d, conv_transpose2d).

The references are the plain loops of ``kernels/reference/conv.py``; the adapters below turn
PyTorch-style arguments into their explicit geometry on their own (``"same"`` by zero-padding
the input with ``np.pad``, the extra zero at the end), so they do not share the op's parsing.
Samples cover every kernel path: general im2col (grouped, strided, dilated, asymmetric kernel),
1×1, depthwise (channel multiplier 2), ``"same"`` with an even kernel, output_padding.
"""
import numpy as np

import minicnn.functional as F
from minicnn.kernels.reference import conv as R
from optable import OpInfo, Sample


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def ref_conv2d(x, W, b=None, stride=1, padding=0, dilation=1, groups=1):
    s, d, k = _pair(stride), _pair(dilation), W.shape[2:]
    if padding == "same":
        totals = [di * (ki - 1) for ki, di in zip(k, d)]
        x = np.pad(x, ((0, 0), (0, 0)) + tuple((t // 2, t - t // 2) for t in totals))
        p = (0, 0)
    else:
        p = (0, 0) if padding == "valid" else _pair(padding)
    out = tuple((n + 2 * pi - di * (ki - 1) - 1) // si + 1 for n, ki, si, pi, di in zip(x.shape[2:], k, s, p, d))
    y = R.conv2d_forward(x, W, s, p, d, groups, out)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def ref_conv_transpose2d(x, W, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    s, p, op, d, k = _pair(stride), _pair(padding), _pair(output_padding), _pair(dilation), W.shape[2:]
    out = tuple((n - 1) * si - 2 * pi + di * (ki - 1) + 1 + oi
                for n, ki, si, pi, di, oi in zip(x.shape[2:], k, s, p, d, op))
    y = R.conv_transpose2d_forward(x, W, s, p, d, groups, out)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def _one_d(ref2d):
    """The 1-D reference: the 2-D one on (N, C, 1, L) arrays (ints become (1, v) pairs)."""

    def ref(x, W, b=None, **kw):
        kw = {k: (v if isinstance(v, str) or k == "groups" else (1 if k == "stride" or k == "dilation" else 0, v))
              for k, v in kw.items()}
        return ref2d(x[:, :, None, :], W[:, :, None, :], b, **kw)[:, :, 0, :]

    return ref


def _u(rng, *shape):
    return rng.uniform(-1.0, 1.0, size=shape)


def _conv2d_samples(rng):
    return [
        Sample((_u(rng, 2, 2, 5, 4), _u(rng, 3, 2, 3, 3), _u(rng, 3)), dict(padding=1), name="3x3 pad 1, bias"),
        Sample((_u(rng, 1, 4, 6, 7), _u(rng, 4, 2, 2, 3)), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
               name="grouped, strided, dilated"),
        Sample((_u(rng, 2, 3, 5, 5), _u(rng, 6, 1, 3, 3), _u(rng, 6)), dict(stride=2, padding=1, groups=3),
               name="depthwise x2"),
        Sample((_u(rng, 2, 3, 7, 6), _u(rng, 3, 1, 3, 3), _u(rng, 3)), dict(stride=2, padding=1, groups=3),
               name="depthwise 3x3 stride 2 (its own CPU kernels)"),
        Sample((_u(rng, 2, 3, 3, 4), _u(rng, 2, 3, 1, 1), _u(rng, 2)), dict(), name="1x1"),
        Sample((_u(rng, 1, 2, 4, 5), _u(rng, 2, 2, 2, 4)), dict(padding="same", dilation=(2, 1)), name="same, even kernel"),
    ]


def _conv1d_samples(rng):
    return [
        Sample((_u(rng, 2, 2, 7), _u(rng, 4, 1, 3), _u(rng, 4)), dict(stride=2, padding=2, dilation=2, groups=2)),
        Sample((_u(rng, 1, 3, 6), _u(rng, 2, 3, 2)), dict(padding="same")),
    ]


def _conv_transpose2d_samples(rng):
    return [
        Sample((_u(rng, 2, 2, 3, 3), _u(rng, 2, 3, 3, 3), _u(rng, 3)), dict(stride=2, padding=1, output_padding=1),
               name="stride 2, output_padding 1, bias"),
        Sample((_u(rng, 1, 4, 3, 4), _u(rng, 4, 1, 2, 3)), dict(stride=(1, 2), dilation=(2, 1), output_padding=(1, 0),
                                                              groups=2), name="grouped, output_padding < dilation"),
        Sample((_u(rng, 1, 2, 3, 3), _u(rng, 2, 2, 3, 3)), dict(stride=2, groups=2), name="depthwise x2"),
    ]


def _conv_transpose1d_samples(rng):
    return [Sample((_u(rng, 2, 2, 4), _u(rng, 2, 3, 3), _u(rng, 3)), dict(stride=3, padding=1, output_padding=2))]


OPS = [
    OpInfo("conv2d", F.conv2d, ref_conv2d, _conv2d_samples),
    OpInfo("conv1d", F.conv1d, _one_d(ref_conv2d), _conv1d_samples),
    OpInfo("conv_transpose2d", F.conv_transpose2d, ref_conv_transpose2d, _conv_transpose2d_samples),
    OpInfo("conv_transpose1d", F.conv_transpose1d, _one_d(ref_conv_transpose2d), _conv_transpose1d_samples),
]
