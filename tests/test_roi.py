"""RoI pool / RoI align: every drawn case against the plain-loop reference, on every device.

Drawn: feature-map sizes, spatial scales (including > 1), boxes inside, partly or wholly outside
the image, tiny and zero-area boxes, inverted boxes, output sizes, sampling ratios, ``aligned``.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels.reference import roi as R
from minicnn.testing import gradcheck
from minicnn.testing.strategies import arrays, distinct_arrays

# the ``device`` fixture is a plain string: sharing it across generated examples is safe
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])

SCALES = [0.25, 0.5, 1.0, 0.3, 1.5, 2.0, 3.7]


@st.composite
def roi_geometry(draw, max_rois=5):
    """``(x_shape, rois, output_size, spatial_scale)`` with boxes drawn in image coordinates."""
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    scale = draw(st.sampled_from(SCALES))
    K = draw(st.integers(0, max_rois))
    img_h, img_w = H / scale, W / scale
    rows = []
    for _ in range(K):
        kind = draw(st.sampled_from(["any", "any", "tiny", "zero", "outside", "inverted"]))
        cx = draw(st.floats(-0.3 * img_w, 1.3 * img_w))
        cy = draw(st.floats(-0.3 * img_h, 1.3 * img_h))
        if kind == "outside":
            cx, cy = img_w * draw(st.sampled_from([-2.0, 3.0])), cy
        bw = {"tiny": draw(st.floats(0.0, 0.5)), "zero": 0.0}.get(kind, draw(st.floats(0.0, 1.2 * img_w)))
        bh = {"tiny": draw(st.floats(0.0, 0.5)), "zero": 0.0}.get(kind, draw(st.floats(0.0, 1.2 * img_h)))
        if kind == "inverted":
            bw, bh = -bw, -bh
        if draw(st.booleans()):  # on a 1/8 grid: exact rounding ties (x.5) and samples on pixel edges
            cx, cy, bw, bh = (round(v * 8) / 8 for v in (cx, cy, bw, bh))
        rows.append([draw(st.integers(0, N - 1)), cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    rois = np.array(rows, dtype=np.float64).reshape(K, 5)
    output_size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return (N, C, H, W), rois, output_size, scale


def _grad_of(fn, x_np, device, gy):
    x = mc.Tensor(x_np, device=device, requires_grad=True)
    y = fn(x)
    y.backward(gy)
    return y.numpy(), x.grad.numpy()


@fixture_ok
@given(geo=roi_geometry(), data=st.data())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_roi_pool_matches_reference(device, dtype, geo, data):
    shape, rois, size, scale = geo
    x = data.draw(arrays(shape, dtype, contiguous=False))
    want_y, want_idx = R.roi_pool_forward(np.ascontiguousarray(x), rois, size, scale)
    gy = np.random.default_rng(0).standard_normal(want_y.shape).astype(dtype)
    y, gx = _grad_of(lambda t: F.roi_pool(t, rois, size, scale), x, device, gy)
    # the same pixels win on every device: the output is bitwise the reference's
    np.testing.assert_array_equal(y, want_y)
    want_gx = R.roi_pool_backward(gy, rois, want_idx, shape)
    np.testing.assert_allclose(gx, want_gx, rtol=1e-12 if dtype == np.float64 else 1e-6, atol=1e-12)


@fixture_ok
@given(geo=roi_geometry(), data=st.data(),
       sampling_ratio=st.sampled_from([-1, 0, 1, 2, 3]), aligned=st.booleans())
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_roi_align_matches_reference(device, dtype, geo, data, sampling_ratio, aligned):
    shape, rois, size, scale = geo
    x = data.draw(arrays(shape, dtype, contiguous=False))
    want_y = R.roi_align_forward(np.ascontiguousarray(x), rois, size, scale, sampling_ratio, aligned)
    gy = np.random.default_rng(0).standard_normal(want_y.shape).astype(dtype)
    y, gx = _grad_of(lambda t: F.roi_align(t, rois, size, scale, sampling_ratio, aligned), x, device, gy)
    # the kernels sum the separable form (row and column weights), the reference sample by sample
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(y, want_y, **tol)
    want_gx = R.roi_align_backward(gy, rois, shape, scale, sampling_ratio, aligned)
    np.testing.assert_allclose(gx, want_gx, **tol)


@fixture_ok
@given(geo=roi_geometry(max_rois=8), seed=st.integers(0, 2**32 - 1), sampling_ratio=st.sampled_from([-1, 0, 2]),
       aligned=st.booleans())
@example(geo=((1, 1, 4, 4), np.array([[0, 0.0, -7.0, 2.0, 3.0]]), (1, 1), 0.3), seed=0, sampling_ratio=-1,
         aligned=False)  # roi_h = 3·0.3 − (−7·0.3): 3 in float64, 3.0000002 in float32 (3 vs 4 sample rows)
def test_cpu_roi_align_forward_layouts_agree(monkeypatch, geo, seed, sampling_ratio, aligned):
    """The CPU forward's two loops, channel by channel and over a channels-last copy of x (chosen
    by the number of RoI bins per input position), add the same terms in the same order: bitwise
    equal outputs, and both equal to the reference."""
    from minicnn.kernels.cpu import roi as CR

    shape, rois, size, scale = geo
    x = np.random.default_rng(seed).uniform(-2, 2, shape).astype(np.float32)
    ys = []
    for threshold in (0.0, math.inf):
        monkeypatch.setattr(CR, "_CHANNELS_LAST_MIN_BINS_PER_POSITION", threshold)
        ys.append(CR.roi_align_forward(x, rois, size, scale, sampling_ratio, aligned))
    np.testing.assert_array_equal(ys[0], ys[1])
    # the reference in float32 too: the geometry (sample counts ceil(roi_h / PH), positions) is then
    # the kernel's to the bit; only the order of the additions differs
    want = R.roi_align_forward(x, rois, size, scale, sampling_ratio, aligned)
    np.testing.assert_allclose(ys[0], want, rtol=1e-5, atol=1e-5)


@fixture_ok
@given(geo=roi_geometry(max_rois=3), data=st.data())
def test_roi_pool_gradcheck(device, geo, data):
    """Distinct, well-spaced values: every bin has a unique winner, eps never changes it."""
    shape, rois, size, scale = geo
    x = mc.Tensor(data.draw(distinct_arrays(shape)), device=device, requires_grad=True)
    gradcheck(lambda t: F.roi_pool(t, rois, size, scale), [x], name="roi_pool")


@fixture_ok
@given(geo=roi_geometry(max_rois=3), data=st.data(),
       sampling_ratio=st.sampled_from([-1, 2]), aligned=st.booleans())
def test_roi_align_gradcheck(device, geo, data, sampling_ratio, aligned):
    """Gradient w.r.t. the feature map (RoI align is linear in it)."""
    shape, rois, size, scale = geo
    x = mc.Tensor(data.draw(arrays(shape)), device=device, requires_grad=True)
    gradcheck(lambda t: F.roi_align(t, rois, size, scale, sampling_ratio, aligned), [x], name="roi_align")


@fixture_ok
@given(geo=roi_geometry(), data=st.data())
def test_cpu_and_emulator_pool_identically(geo, data):
    shape, rois, size, scale = geo
    x = data.draw(arrays(shape, np.float32))
    outs = [F.roi_pool(mc.Tensor(x, device=d), rois, size, scale).numpy() for d in ("cpu", "cuda-emu")]
    np.testing.assert_array_equal(outs[0], outs[1])


@fixture_ok
@given(geo=roi_geometry(), seed=st.integers(0, 2**32 - 1), sampling_ratio=st.sampled_from([-1, 0, 1, 2, 3]),
       aligned=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_cpu_and_emulator_align_identically(geo, seed, sampling_ratio, aligned, dtype):
    """The Numba kernels and roi.cu compute the same weights and sums in the same order."""
    shape, rois, size, scale = geo
    x = np.random.default_rng(seed).uniform(-2, 2, shape).astype(dtype)
    outs = [F.roi_align(mc.Tensor(x, device=d), rois, size, scale, sampling_ratio, aligned).numpy()
            for d in ("cpu", "cuda-emu")]
    np.testing.assert_array_equal(outs[0], outs[1])


def test_rounding_is_half_away_from_zero_on_every_device(device):
    """C round(): 2.5 -> 3 and 0.5 -> 1 (Python's round would give 2 and 0); negative half-integers
    in tests/test_roi_limits.py."""
    x = mc.Tensor(np.arange(8, dtype=np.float32).reshape(1, 1, 1, 8), device=device)
    for v in (0.5, 2.5, 4.5):
        y = F.roi_pool(x, np.array([[0, v, 0, v, 0]]), 1).numpy()
        assert y.item() == v + 0.5 != round(v)


def test_float32_bins_are_computed_in_float32(device):
    """RoI of 14 rows in 6 bins: bin 3 starts at floor(3 * f32(14/6)) = 7 in float32 arithmetic,
    but at 6 if the float32 bin size were multiplied in float64 (Numba's int * float32 promotion)."""
    bin_h = np.float32(14) / np.float32(6)
    start_f32 = int(np.floor(np.float32(3) * bin_h))
    assert start_f32 != int(np.floor(3 * np.float64(bin_h)))  # the case is sensitive to the precision
    x = mc.Tensor(np.arange(14, dtype=np.float32)[::-1].reshape(1, 1, 14, 1).copy(), device=device)
    x.requires_grad = True
    y = F.roi_pool(x, np.array([[0, 0, 0, 0, 13.0]]), (6, 1))
    y.backward(np.eye(6, dtype=np.float32)[3].reshape(1, 1, 6, 1))
    assert y.numpy()[0, 0, 3, 0] == 13 - start_f32  # values decrease: the bin's first row wins
    assert np.flatnonzero(x.grad.numpy().ravel()).tolist() == [start_f32]


def test_list_of_boxes_equals_rois_tensor(device):
    rng = np.random.default_rng(3)
    x = mc.Tensor(rng.standard_normal((2, 3, 6, 6)), device=device)
    boxes = [rng.uniform(0, 5, (2, 4)), rng.uniform(0, 5, (3, 4))]
    rois = np.concatenate([np.c_[np.full(len(b), i), b] for i, b in enumerate(boxes)])
    for op in (F.roi_pool, F.roi_align):
        a = op(x, [mc.Tensor(b) for b in boxes], 2).numpy()
        np.testing.assert_array_equal(a, op(x, rois, 2).numpy())


def test_empty_rois_and_no_grad_to_rois(device):
    x = mc.Tensor(np.ones((1, 2, 4, 4)), device=device, requires_grad=True)
    rois = mc.Tensor(np.zeros((0, 5)), requires_grad=True)
    y = F.roi_align(x, rois, 3)
    assert y.shape == (0, 2, 3, 3)
    y.sum().backward()
    assert np.all(x.grad.numpy() == 0) and rois.grad is None


@pytest.mark.parametrize("op", ["roi_pool", "roi_align"])
def test_bad_arguments_raise_clear_errors(op):
    fn = getattr(F, op)
    x = mc.Tensor(np.zeros((2, 1, 4, 4)))
    good = np.array([[0, 0.0, 0.0, 2.0, 2.0]])
    cases = [
        (ValueError, "rois must have shape", lambda: fn(x, np.zeros((1, 4)), 2)),
        (ValueError, r"batch index\) must be in \[0, 2\)", lambda: fn(x, [[2, 0, 0, 1, 1]], 2)),
        (ValueError, r"batch index\) must be in", lambda: fn(x, [[-1, 0, 0, 1, 1]], 2)),
        (ValueError, r"batch index\) must hold integers", lambda: fn(x, [[0.5, 0, 0, 1, 1]], 2)),
        (ValueError, "rois must be finite", lambda: fn(x, [[0, np.nan, 0, 1, 1]], 2)),
        (ValueError, "rois must be finite", lambda: fn(x, [[0, 0, 0, np.inf, 1]], 2)),
        (ValueError, "output_size must be positive", lambda: fn(x, good, 0)),
        (ValueError, "output_size must be positive", lambda: fn(x, good, (2, -1))),
        (ValueError, "spatial_scale must be finite and > 0", lambda: fn(x, good, 2, 0.0)),
        (ValueError, "spatial_scale must be finite and > 0", lambda: fn(x, good, 2, -1.0)),
        (ValueError, "spatial_scale must be finite and > 0", lambda: fn(x, good, 2, float("nan"))),
        (ValueError, "input must be 4-D", lambda: fn(mc.Tensor(np.zeros((1, 4, 4))), good, 2)),
        (TypeError, "input must be float32 or float64, got float16",
         lambda: fn(mc.Tensor(np.zeros((2, 1, 4, 4), np.float16)), good, 2)),
        (ValueError, r"coordinates times spatial_scale", lambda: fn(x, [[0, 0, 0, 1e9, 1]], 2)),
        (ValueError, r"boxes\[0\] must have shape", lambda: fn(x, [np.zeros((2, 5))], 2)),
    ]
    if op == "roi_align":
        cases.append((TypeError, "sampling_ratio must be an int", lambda: fn(x, good, 2, 1.0, 1.5)))
    for exc, msg, call in cases:
        with pytest.raises(exc, match=f"{op}: .*{msg}"):
            call()
