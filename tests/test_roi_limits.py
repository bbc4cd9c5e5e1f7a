"""RoI ops at their limits: huge boxes, huge sampling ratios, half-integer rounding, no RoIs.

The oracles here are written in this file, from torchvision's C++ (``roi_align_kernel.cpp``,
``roi_pool_kernel.cpp``): RoI align sample by sample with a 2-D bilinear interpolation (only the
samples that land in ``[-1, H] × [-1, W]`` are visited, found with vectorised positions, so a
box of a million pixels costs what its in-image samples cost), RoI pool with C's ``round()``
(half away from zero) done exactly with ``decimal``.
"""
import decimal
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.functional.roi import SAMPLING_RATIO_LIMIT

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])
DTYPES = [np.float64, np.float32]


# ---- torchvision's definitions, plain loops -------------------------------------------------------

def _positions(start, bin_size, p, grid, t):
    """Sample coordinates ``start + p·bin + (i + 0.5)·bin / grid``, i < grid, in dtype ``t``."""
    i = np.arange(grid, dtype=np.float64).astype(t)
    return (t(start) + t(p) * bin_size) + ((i + t(0.5)) * bin_size) / t(grid)


def _bilinear_taps(y, x, H, W, t):
    """torchvision's ``bilinear_interpolate``: ``[(h, w, weight)]``, empty outside."""
    if y < -1.0 or y > H or x < -1.0 or x > W:
        return []
    y, x = max(y, t(0)), max(x, t(0))
    y_low, x_low = int(y), int(x)
    if y_low >= H - 1:
        y_high = y_low = H - 1
        y = t(y_low)
    else:
        y_high = y_low + 1
    if x_low >= W - 1:
        x_high = x_low = W - 1
        x = t(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - t(y_low), x - t(x_low)
    hy, hx = t(1) - ly, t(1) - lx
    return [(y_low, x_low, hy * hx), (y_low, x_high, hy * lx), (y_high, x_low, ly * hx), (y_high, x_high, ly * lx)]


def align_bin_weights(roi, x_shape, size, scale, sampling_ratio, aligned, t):
    """``{(ph, pw): {(h, w): weight}}`` (float64 sums of dtype-``t`` tap weights, over count) of one
    RoI: RoI align is linear, ``y[k, c, ph, pw] = Σ weight · x[n, c, h, w]``."""
    H, W = x_shape[2], x_shape[3]
    PH, PW = size
    s, off = t(scale), t(0.5) if aligned else t(0)
    x1, y1 = t(roi[1]) * s - off, t(roi[2]) * s - off
    roi_w, roi_h = (t(roi[3]) * s - off) - x1, (t(roi[4]) * s - off) - y1
    if not aligned:
        roi_w, roi_h = max(roi_w, t(1)), max(roi_h, t(1))
    bin_h, bin_w = roi_h / t(PH), roi_w / t(PW)
    gh = sampling_ratio if sampling_ratio > 0 else max(math.ceil(roi_h / t(PH)), 0)
    gw = sampling_ratio if sampling_ratio > 0 else max(math.ceil(roi_w / t(PW)), 0)
    count = max(gh * gw, 1)
    out = {}
    for ph in range(PH):
        ys = _positions(y1, bin_h, ph, gh, t)
        ys = ys[(ys >= -1) & (ys <= H)]
        for pw in range(PW):
            xs = _positions(x1, bin_w, pw, gw, t)
            xs = xs[(xs >= -1) & (xs <= W)]
            acc = {}
            for yy in ys:
                for xx in xs:
                    for h, w, wt in _bilinear_taps(yy, xx, H, W, t):
                        acc[h, w] = acc.get((h, w), 0.0) + float(wt)
            out[ph, pw] = {hw: v / count for hw, v in acc.items()}
    return out


def roi_align_oracle(x, gy, rois, size, scale, sampling_ratio, aligned):
    """``(y, gx)`` of RoI align in float64 from :func:`align_bin_weights` (geometry in x's dtype)."""
    t = x.dtype.type
    y = np.zeros((len(rois), x.shape[1]) + tuple(size))
    gx = np.zeros(x.shape)
    for k, roi in enumerate(rois):
        n = int(roi[0])
        for (ph, pw), taps in align_bin_weights(roi, x.shape, size, scale, sampling_ratio, aligned, t).items():
            for (h, w), wt in taps.items():
                y[k, :, ph, pw] += wt * x[n, :, h, w]
                gx[n, :, h, w] += wt * gy[k, :, ph, pw]
    return y, gx


def c_round(v):
    """C's ``round()``: to the nearest integer, half away from zero (exact for every float)."""
    return float(decimal.Decimal(float(v)).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))


def roi_pool_oracle(x, rois, size, scale):
    """torchvision's ``roi_pool`` forward: integer box corners by C ``round`` of ``v·scale`` (in x's dtype)."""
    t = x.dtype.type
    N, C, H, W = x.shape
    PH, PW = size
    y = np.zeros((len(rois), C, PH, PW), dtype=x.dtype)
    for k, roi in enumerate(rois):
        n = int(roi[0])
        x1, y1, x2, y2 = (int(c_round(t(v) * t(scale))) for v in roi[1:])
        bin_h = t(max(y2 - y1 + 1, 1)) / t(PH)
        bin_w = t(max(x2 - x1 + 1, 1)) / t(PW)
        for ph in range(PH):
            h0 = min(max(int(math.floor(t(ph) * bin_h)) + y1, 0), H)
            h1 = min(max(int(math.ceil(t(ph + 1) * bin_h)) + y1, 0), H)
            for pw in range(PW):
                w0 = min(max(int(math.floor(t(pw) * bin_w)) + x1, 0), W)
                w1 = min(max(int(math.ceil(t(pw + 1) * bin_w)) + x1, 0), W)
                if h1 > h0 and w1 > w0:
                    y[k, :, ph, pw] = x[n, :, h0:h1, w0:w1].max(axis=(1, 2))
    return y


def _run(op, x, rois, device, gy=None, **kw):
    xt = mc.Tensor(x, device=device, requires_grad=True)
    y = op(xt, rois, **kw)
    y.backward(gy if gy is not None else np.ones(y.shape, dtype=x.dtype))
    return y.numpy(), xt.grad.numpy()


def _assert_close(got, want, dtype):
    """``rtol`` of the dtype, and an absolute floor relative to the largest value (cancellation)."""
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(np.abs(want).max(initial=0.0), 1e-300))


# ---- huge boxes with adaptive sampling (grid ~ box size / output size per bin and axis) -----------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("roi,aligned", [
    ([0, 0.0, 0.0, 1e6, 1e6], False),        # 142,858 samples a bin and axis, ~8 of them in the image
    ([0, -3.0, 2.0, 4000.0, 4100.0], True),  # 4,000-pixel box: ~0.75 GB of sample tables per RoI before
    ([0, -1e6, -2e6, 5.0, 6.5], False),      # the image in the last bins of a box reaching far outside
])
def test_roi_align_huge_boxes_adaptive_sampling(device, dtype, roi, aligned):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 2, (1, 2, 8, 9)).astype(dtype)
    gy = rng.standard_normal((1, 2, 7, 7)).astype(dtype)
    rois = np.array([roi])
    y, gx = _run(F.roi_align, x, rois, device, gy, output_size=7, sampling_ratio=-1, aligned=aligned)
    want_y, want_gx = roi_align_oracle(x, gy, rois, (7, 7), 1.0, -1, aligned)
    assert np.abs(want_y).max() > 0  # the case reads the image
    _assert_close(y, want_y, dtype)
    _assert_close(gx, want_gx, dtype)


# ---- sampling ratios whose grid_h·grid_w overflows a 32-bit int -----------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sampling_ratio", [46341, SAMPLING_RATIO_LIMIT])
def test_huge_sampling_ratio_averages_an_all_ones_image_to_one(device, dtype, sampling_ratio):
    """Every sample of the box (-1, -1)-(1, 1) on a 1×1 image reads the pixel with weight 1: the
    average is exactly 1 (before: grid_h·grid_w overflowed int32 and the result was −0.0078)."""
    x = np.ones((1, 1, 1, 1), dtype=dtype)
    y, gx = _run(F.roi_align, x, np.array([[0, -1.0, -1.0, 1.0, 1.0]]), device,
                 output_size=1, sampling_ratio=sampling_ratio)
    assert y.item() == 1.0
    assert gx.item() == 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_sampling_ratio_half_outside(device, dtype):
    """Box (-3, -3)-(1, 1) on a 1×1 ones image: the fraction of samples inside [-1, 1] per axis, squared."""
    sr = 46341
    x = np.ones((1, 1, 1, 1), dtype=dtype)
    y, _ = _run(F.roi_align, x, np.array([[0, -3.0, -3.0, 1.0, 1.0]]), device, output_size=1, sampling_ratio=sr)
    pos = _positions(dtype(-3), dtype(4), 0, sr, dtype)
    inside = np.count_nonzero((pos >= -1) & (pos <= 1)) / sr
    np.testing.assert_allclose(y.item(), inside * inside, rtol=1e-12 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_sampling_ratio_against_the_oracle(device, dtype):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (1, 2, 6, 5)).astype(dtype)
    gy = rng.standard_normal((2, 2, 2, 1)).astype(dtype)
    rois = np.array([[0, 0.3, 0.7, 4.1, 5.9], [0, -2.0, 1.0, 7.0, 3.0]])
    y, gx = _run(F.roi_align, x, rois, device, gy, output_size=(2, 1), sampling_ratio=97)
    want_y, want_gx = roi_align_oracle(x, gy, rois, (2, 1), 1.0, 97, False)
    _assert_close(y, want_y, dtype)
    _assert_close(gx, want_gx, dtype)


@pytest.mark.parametrize("bad", [SAMPLING_RATIO_LIMIT + 1, 2**31, 2**70])
def test_sampling_ratio_above_the_limit_is_rejected(bad):
    x = mc.Tensor(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match=rf"roi_align: sampling_ratio must be <= {SAMPLING_RATIO_LIMIT}, got {bad}"):
        F.roi_align(x, np.array([[0, 0.0, 0.0, 2.0, 2.0]]), 2, sampling_ratio=bad)


# ---- RoI pool rounds v·scale half away from zero (C round), as torchvision -----------------------

def test_roi_pool_negative_half_integer_corner(device):
    """x1 = −0.5 rounds to −1 (C round), not to 0 (floor(v + 0.5)): 5 columns in 3 bins."""
    x = np.arange(8, dtype=np.float32).reshape(1, 1, 1, 8)
    rois = np.array([[0, -0.5, 0, 2.5, 0]])
    y = F.roi_pool(mc.Tensor(x, device=device), rois, (1, 3)).numpy()
    np.testing.assert_array_equal(y.ravel(), [0, 2, 3])
    np.testing.assert_array_equal(y, roi_pool_oracle(x, rois, (1, 3), 1.0))


@st.composite
def half_integer_rois(draw):
    """RoIs whose corners times the scale are multiples of 1/2, many negative; powers-of-two scales."""
    scale = draw(st.sampled_from([0.25, 0.5, 1.0, 2.0]))
    K = draw(st.integers(1, 4))
    halves = st.integers(-12, 20)
    rows = [[0] + [draw(halves) / 2 / scale for _ in range(4)] for _ in range(K)]
    return np.array(rows), scale


@fixture_ok
@given(case=half_integer_rois(), size=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
@example(case=(np.array([[0, -0.5, -1.5, 2.5, 3.5]]), 1.0), size=(1, 3), dtype=np.float32, seed=0)
def test_roi_pool_rounds_like_torchvision(device, case, size, dtype, seed):
    rois, scale = case
    x = np.random.default_rng(seed).permutation(np.arange(1 * 2 * 7 * 6)).reshape(1, 2, 7, 6).astype(dtype)
    y = F.roi_pool(mc.Tensor(x, device=device), rois, size, scale).numpy()
    np.testing.assert_array_equal(y, roi_pool_oracle(x, rois, size, scale))


def test_c_round_oracle():
    assert [c_round(v) for v in (-2.5, -0.5, 0.5, 2.5, -0.49999999999999994, 0.49999999999999994)] == \
        [-3.0, -1.0, 1.0, 3.0, -0.0, 0.0]


# ---- no RoIs, no images ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [0, 2])
@pytest.mark.parametrize("op", ["roi_pool", "roi_align"])
@pytest.mark.parametrize("form", ["array", "tensor", "boxes list", "empty list"])
def test_no_rois(device, dtype, N, op, form):
    """K = 0 RoIs: a (0, C, PH, PW) output, and a zero gradient of x's shape."""
    if form == "boxes list" and N == 0:
        pytest.skip("one (0, 4) box array per image: no images, no arrays (the empty list case)")
    rois = {"array": np.zeros((0, 5)), "tensor": mc.Tensor(np.zeros((0, 5), dtype), device=device),
            "boxes list": [np.zeros((0, 4), dtype)] * N, "empty list": []}[form]
    x = mc.Tensor(np.ones((N, 3, 5, 4), dtype), device=device, requires_grad=True)
    y = getattr(F, op)(x, rois, (2, 3))
    assert y.shape == (0, 3, 2, 3) and y.dtype == dtype and y.device.name == device
    y.backward(np.zeros((0, 3, 2, 3), dtype))
    assert x.grad.shape == (N, 3, 5, 4) and x.grad.dtype == dtype
    assert not x.grad.numpy().any()
