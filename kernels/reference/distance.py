"""Reference Euclidean distance transforms: brute force over every pixel of every feature.

- ``squared_edt(features)``: for a boolean ``(H, W)`` image, ``D[y, x] = min over feature pixels
  (fy, fx) of (y − fy)² + (x − fx)²``; ``inf`` everywhere when there is no feature pixel.
- ``two_nearest_instance_distances(instances)``: for an integer ``(H, W)`` instance mask
  (0 = background, each positive id one object), the Euclidean distances ``d1 <= d2`` from every
  pixel to the nearest and the second-nearest object, the distance to an object being the
  distance to its closest pixel (0 inside it); ``inf`` where there are fewer objects.

Cost ``O(H·W·F)`` for ``F`` feature pixels: the oracle of the tests, not a tool for big images
(the Numba kernels in ``kernels/cpu/distance.py`` compute the same values in ``O(H·W)`` per object).
"""
import numpy as np


def squared_edt(features):
    """Squared distance from every pixel to the nearest ``True`` pixel (float64 ``(H, W)``)."""
    features = np.asarray(features, dtype=bool)
    H, W = features.shape
    fy, fx = np.nonzero(features)
    out = np.full((H, W), np.inf)
    for y in range(H):
        for x in range(W):
            for k in range(fy.size):
                d = float((y - fy[k]) ** 2 + (x - fx[k]) ** 2)
                if d < out[y, x]:
                    out[y, x] = d
    return out


def two_nearest_instance_distances(instances):
    """``(d1, d2)``: distances to the nearest and second-nearest object (float64 ``(H, W)`` each)."""
    instances = np.asarray(instances)
    labels = [int(v) for v in np.unique(instances) if v > 0]
    per_object = [np.sqrt(squared_edt(instances == k)) for k in labels]
    H, W = instances.shape
    d1 = np.full((H, W), np.inf)
    d2 = np.full((H, W), np.inf)
    for y in range(H):
        for x in range(W):
            values = sorted(d[y, x] for d in per_object)
            if len(values) >= 1:
                d1[y, x] = values[0]
            if len(values) >= 2:
                d2[y, x] = values[1]
    return d1, d2
