"""Launch a plane-wise kernel over chunks of planes, so that each launch counts in 32-bit int.

The pooling and resampling kernels see their arrays as ``P`` planes (``P = N·C``) and index one
thread per element of one array with an ``int``: cheap index math, but at most ``2**31 − 1``
elements per launch. :func:`plane_chunks` cuts the planes into consecutive ranges whose element
counts fit (the host counts in Python ints, which do not overflow), and each range is one launch
on views of the arrays (plane offsets inside the kernels are 64-bit). A tensor of any size runs,
as long as one plane (``H·W``) fits an int.
"""
INT32_MAX = 2 ** 31 - 1

#: Most threads (elements) one launch may index; tests lower it to exercise the chunking.
MAX_LAUNCH_ELEMENTS = INT32_MAX


def plane_chunks(planes, per_plane, op="kernel", limit=None):
    """Consecutive ``(p0, p1)`` ranges covering ``planes`` planes with ``(p1 − p0)·per_plane``
    elements each at most ``limit`` (default :data:`MAX_LAUNCH_ELEMENTS`); ``[]`` for no planes.

    Args:
        planes: ``P = N·C``.
        per_plane: elements per plane of the largest array the kernel indexes (``max(H·W, OH·OW)``).
        op: named in the error raised when a single plane does not fit.
    """
    limit = MAX_LAUNCH_ELEMENTS if limit is None else int(limit)
    planes, per_plane = int(planes), max(1, int(per_plane))
    if per_plane > limit:
        raise ValueError(f"{op}: one plane has {per_plane} elements, more than the {limit} one kernel launch "
                         "can index")
    step = limit // per_plane
    return [(p0, min(planes, p0 + step)) for p0 in range(0, planes, step)]


def plane_view(a, p0, p1):
    """Planes ``p0 … p1 − 1`` of an ``(N, C, …)`` C-contiguous array, as a contiguous view."""
    return a.reshape((-1,) + tuple(a.shape[2:]))[p0:p1]
