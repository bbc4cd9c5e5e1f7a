"""Op-table entries of resampling (``interpolate`` nearest/linear/bilinear) and local_response_norm.

References: the per-pixel loops of ``kernels/reference/resample.py`` (which derive each source
coordinate on their own, not from the op's tables) and a direct NumPy transcription of
PyTorch's LRN definition (pad the squares, average over the channel window).
"""
import math

import numpy as np

import minicnn.functional as F
from minicnn.kernels.reference import resample as R
from optable import OpInfo, Sample


def _u(rng, *shape):
    return rng.uniform(-1.0, 1.0, size=shape)


def ref_interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    one_d = x.ndim == 3
    x4 = x[:, :, None, :] if one_d else x
    spatial = x.shape[2:]
    if size is not None:
        out = (size,) * len(spatial) if isinstance(size, int) else tuple(size)
        scales = (None,) * len(spatial)
    else:
        scales = (scale_factor,) * len(spatial) if not isinstance(scale_factor, tuple) else scale_factor
        out = tuple(math.floor(n * s) for n, s in zip(spatial, scales))
    if one_d:
        out, scales = (1,) + out, (None,) + scales
    if mode == "nearest":
        y = R.upsample_nearest2d_forward(x4, out, scales, one_d)
    else:
        y = R.upsample_bilinear2d_forward(x4, out, bool(align_corners), scales)
    return y[:, :, 0, :] if one_d else y


def ref_local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """PyTorch's definition, literally: zero-pad x² along channels (size//2, (size−1)//2), average."""
    sq = x * x
    width = [(0, 0)] * x.ndim
    width[1] = (size // 2, (size - 1) // 2)
    padded = np.pad(sq, width)
    C = x.shape[1]
    div = np.stack([padded[:, c:c + size].sum(axis=1) / size for c in range(C)], axis=1)
    return x / (div * alpha + k) ** beta


def _interp(x, **k):
    return F.interpolate(x, **k)


OPS = [
    OpInfo("interpolate_nearest", _interp, ref_interpolate, lambda rng: [
        Sample((_u(rng, 2, 2, 3, 4),), dict(scale_factor=2), name="x2"),
        Sample((_u(rng, 1, 2, 5, 4),), dict(size=(3, 7)), name="size, down and up"),
        Sample((_u(rng, 1, 1, 4, 5),), dict(scale_factor=(1.7, 0.6)), name="fractional scale factors"),
        Sample((_u(rng, 2, 2, 5),), dict(scale_factor=2.5), name="1-D"),
    ]),
    OpInfo("interpolate_bilinear", _interp, ref_interpolate, lambda rng: [
        Sample((_u(rng, 2, 2, 3, 4),), dict(scale_factor=2, mode="bilinear"), name="x2 half-pixel"),
        Sample((_u(rng, 1, 2, 5, 4),), dict(size=(3, 7), mode="bilinear", align_corners=True), name="align_corners"),
        Sample((_u(rng, 1, 1, 4, 5),), dict(scale_factor=(1.7, 0.6), mode="bilinear", align_corners=False),
               name="fractional scale factors"),
        Sample((_u(rng, 1, 2, 3, 1),), dict(size=(6, 1), mode="bilinear"), name="unit axis"),
        Sample((_u(rng, 2, 2, 5),), dict(size=8, mode="linear"), name="1-D linear"),
    ]),
    OpInfo("local_response_norm", lambda x, **k: F.local_response_norm(x, **k), ref_local_response_norm,
           lambda rng: [
               Sample((_u(rng, 2, 6, 3, 2) * 2,), dict(size=5, alpha=0.5, beta=0.75, k=2.0), name="AlexNet-like, odd size"),
               Sample((_u(rng, 1, 4, 5) * 2,), dict(size=2, alpha=0.3, beta=0.6, k=1.0), name="3-D, even size"),
               Sample((_u(rng, 1, 3, 2, 2, 2) * 2,), dict(size=4, alpha=1.0, beta=1.2, k=0.5), name="5-D, window > C"),
           ]),
]
