"""Op-table entries of RoI pool and RoI align (rois passed as a keyword: no gradient flows to them)."""
import numpy as np

import minicnn.functional as F
from minicnn.kernels.reference import roi as R
from optable import OpInfo, Sample

# Coordinates are multiples of 1/8 and scales powers of two, so float32 rois are exact and the
# float32 run pools the same pixels as the float64 reference.
_ROIS = np.array([
    [0, 0.5, 0.25, 4.75, 3.5],     # inside
    [1, -2.0, -1.5, 3.25, 2.0],    # partly outside (top-left)
    [1, 5.5, 4.0, 9.0, 8.75],      # partly outside (bottom-right)
    [0, 2.0, 2.0, 2.0, 2.0],       # zero area
    [1, 20.0, 20.0, 24.0, 22.0],   # wholly outside
])
# Corners at negative half-integers: C round() (half away from zero) gives -1 for -0.5.
_HALF_ROIS = np.array([[0, -0.5, -1.5, 2.5, 3.5], [1, -2.5, 0.5, -0.5, 4.5]])
# Boxes much larger than the map: with adaptive sampling most of each bin's samples fall outside.
_BIG_ROIS = np.array([[0, -30.0, -20.0, 50.0, 40.0], [1, 1.5, -100.0, 4.5, 200.0]])


def _distinct(rng, *shape):
    n = int(np.prod(shape))
    return rng.permutation((np.arange(n) - n / 2) * 0.1).reshape(shape)


def _pool_samples(rng):
    return [
        Sample((_distinct(rng, 2, 2, 5, 6),), dict(rois=_ROIS, output_size=(2, 3), spatial_scale=1.0)),
        Sample((_distinct(rng, 2, 1, 6, 5),), dict(rois=_ROIS, output_size=2, spatial_scale=0.5)),
        Sample((_distinct(rng, 2, 2, 7, 4),), dict(rois=_ROIS[:3], output_size=(3, 2), spatial_scale=2.0)),
        Sample((_distinct(rng, 2, 1, 5, 6),), dict(rois=_HALF_ROIS, output_size=(2, 3), spatial_scale=1.0),
               name="negative half-integers"),
    ]


def _align_samples(rng):
    u = lambda *s: rng.uniform(-2, 2, size=s)  # noqa: E731
    return [
        Sample((u(2, 2, 5, 6),), dict(rois=_ROIS, output_size=(2, 3), spatial_scale=1.0), name="adaptive"),
        Sample((u(2, 1, 6, 5),), dict(rois=_ROIS, output_size=2, spatial_scale=0.5, sampling_ratio=2,
                                      aligned=True), name="aligned"),
        Sample((u(2, 2, 4, 7),), dict(rois=_ROIS[:3], output_size=(3, 2), spatial_scale=2.0, sampling_ratio=1),
               name="scale 2"),
        Sample((u(2, 2, 5, 6),), dict(rois=_BIG_ROIS, output_size=(2, 3), spatial_scale=1.0), name="big boxes"),
    ]


def _pool_ref(x, rois=None, output_size=None, spatial_scale=1.0):
    size = (output_size, output_size) if isinstance(output_size, int) else output_size
    return R.roi_pool_forward(x, rois, size, spatial_scale)[0]


def _align_ref(x, rois=None, output_size=None, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    size = (output_size, output_size) if isinstance(output_size, int) else output_size
    return R.roi_align_forward(x, rois, size, spatial_scale, sampling_ratio, aligned)


OPS = [
    OpInfo("roi_pool", lambda x, rois=None, **k: F.roi_pool(x, rois, **k), _pool_ref, _pool_samples),
    OpInfo("roi_align", lambda x, rois=None, **k: F.roi_align(x, rois, **k), _align_ref, _align_samples),
]
