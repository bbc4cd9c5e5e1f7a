"""Hypothesis strategies for property tests of ops, and the test-suite profiles.

- :func:`shapes`: array shapes;
- :func:`arrays`: float arrays of a given shape, optionally *non-contiguous* (a permuted view
  of a bigger or transposed buffer), because kernels must not assume their input is contiguous;
- :func:`distinct_arrays`: well-spaced, all-distinct values for max-type ops (no ties, so the
  winner of every window is unique and finite differences never cross a kink);
- :func:`tensors`: :class:`~minicnn.Tensor` built from :func:`arrays`;
- :func:`conv_geometry` / :func:`pool_geometry`: consistent (N, C, H, W, kernel, stride,
  padding, dilation, groups) draws for which the output is non-empty.
"""
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ..tensor import Tensor


def register_profiles():
    """Profiles ``ci`` (the default), ``thorough`` (long runs) and ``dev`` (quick).

    - ``ci``: 12 examples a test, *derandomized* (the same examples on every run and machine) and
      with no example database, so a CI run never flips and never replays an earlier run's failure.
      A failure it finds is found on every run: fix it and pin it with ``@example``.
    - ``thorough``: 300 random examples a test (``--hypothesis-seed N`` to replay a run), with the
      example database, for exploring before a change lands.

    Select with ``HYPOTHESIS_PROFILE=thorough pytest``.
    """
    common = dict(deadline=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
    settings.register_profile("ci", max_examples=12, derandomize=True, database=None, **common)
    settings.register_profile("thorough", max_examples=300, **common)
    settings.register_profile("dev", max_examples=4, **common)


@st.composite
def shapes(draw, min_dims=1, max_dims=4, min_side=1, max_side=5):
    """A shape tuple with ``min_dims..max_dims`` axes of ``min_side..max_side`` each."""
    nd = draw(st.integers(min_dims, max_dims))
    return tuple(draw(st.integers(min_side, max_side)) for _ in range(nd))


def _layout(draw, a, contiguous):
    """Return ``a`` itself, or an equal non-contiguous view (permuted buffer or strided slice)."""
    if contiguous or a.ndim == 0 or not draw(st.booleans()):
        return a
    if a.ndim >= 2 and draw(st.booleans()):
        perm = draw(st.permutations(range(a.ndim)))
        inv = np.argsort(perm)
        buf = np.ascontiguousarray(a.transpose(perm))
        return buf.transpose(inv)  # same values as a, strides permuted
    big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    big[..., ::2] = a
    return big[..., ::2]  # same values, last-axis stride 2


@st.composite
def arrays(draw, shape, dtype=np.float64, low=-2.0, high=2.0, contiguous=False):
    """A float array of ``shape`` with values in [low, high] (drawn from a seeded generator)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    a = rng.uniform(low, high, size=shape).astype(dtype)
    return _layout(draw, a, contiguous)


@st.composite
def distinct_arrays(draw, shape, dtype=np.float64, spacing=0.1, contiguous=False):
    """All-distinct values ``spacing`` apart, shuffled: max-type ops have a unique winner.

    With ``eps << spacing`` finite differences never reorder two elements.
    """
    n = int(np.prod(shape))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = (np.arange(n) - n / 2) * spacing
    a = rng.permutation(values).reshape(shape).astype(dtype)
    return _layout(draw, a, contiguous)


@st.composite
def tensors(draw, shape=None, dtype=np.float64, device="cpu", requires_grad=False, distinct=False, **kw):
    """A :class:`Tensor` (shape drawn by :func:`shapes` when not given)."""
    if shape is None:
        shape = draw(shapes())
    a = draw(distinct_arrays(shape, dtype, **kw) if distinct else arrays(shape, dtype, **kw))
    t = Tensor(a, device=device)
    t.requires_grad = requires_grad
    return t


def _out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def conv_geometry(draw, dims=2, max_batch=2, max_channels=4, max_size=7, max_kernel=3,
                  max_stride=2, max_padding=2, max_dilation=2, groups=True):
    """Consistent convolution geometry with a non-empty output.

    Returns a dict: N, C_in, C_out, groups, size (tuple), kernel, stride, padding, dilation
    (tuples of length ``dims``).
    """
    g = draw(st.integers(1, 3)) if groups else 1
    cin = g * draw(st.integers(1, max(1, max_channels // g)))
    cout = g * draw(st.integers(1, max(1, max_channels // g)))
    geo = dict(N=draw(st.integers(1, max_batch)), C_in=cin, C_out=cout, groups=g)
    size, kernel, stride, padding, dilation = [], [], [], [], []
    for _ in range(dims):
        k = draw(st.integers(1, max_kernel))
        d = draw(st.integers(1, max_dilation))
        p = draw(st.integers(0, max_padding))
        s = draw(st.integers(1, max_stride))
        span = d * (k - 1) + 1
        n = draw(st.integers(max(1, span - 2 * p), max(max_size, span - 2 * p)))
        assert _out_size(n, k, s, p, d) >= 1
        size.append(n), kernel.append(k), stride.append(s), padding.append(p), dilation.append(d)
    geo.update(size=tuple(size), kernel=tuple(kernel), stride=tuple(stride), padding=tuple(padding),
               dilation=tuple(dilation))
    return geo


@st.composite
def pool_geometry(draw, dims=2, max_batch=2, max_channels=3, max_size=8, max_kernel=3, max_stride=3,
                  dilation=False, ceil_mode=None):
    """Consistent pooling geometry: N, C, size, kernel, stride, padding (≤ kernel/2, as PyTorch
    requires), dilation, ceil_mode."""
    geo = dict(N=draw(st.integers(1, max_batch)), C=draw(st.integers(1, max_channels)))
    size, kernel, stride, padding, dil = [], [], [], [], []
    for _ in range(dims):
        k = draw(st.integers(1, max_kernel))
        d = draw(st.integers(1, 2)) if dilation else 1
        p = draw(st.integers(0, k // 2))
        s = draw(st.integers(1, max_stride))
        span = d * (k - 1) + 1
        n = draw(st.integers(max(1, span - 2 * p), max(max_size, span - 2 * p)))
        size.append(n), kernel.append(k), stride.append(s), padding.append(p), dil.append(d)
    geo.update(size=tuple(size), kernel=tuple(kernel), stride=tuple(stride), padding=tuple(padding),
               dilation=tuple(dil),
               ceil_mode=draw(st.booleans()) if ceil_mode is None else ceil_mode)
    return geo
