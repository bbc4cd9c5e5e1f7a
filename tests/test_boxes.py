"""Box utilities against plain per-box formulas; box coding round trip and gradients."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.functional.boxes import BBOX_XFORM_CLIP
from minicnn.kernels.reference.nms import box_pair_iou
from minicnn.testing import gradcheck

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])


@st.composite
def box_arrays(draw, min_n=0, max_n=8, min_size=0.0):
    """``(n, 4)`` float64 boxes with x1 <= x2, y1 <= y2 (sizes >= ``min_size``)."""
    n = draw(st.integers(min_n, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    xy = rng.uniform(-10, 30, size=(n, 2))
    wh = rng.uniform(min_size, 20, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def _plain_decode(d, p, weights, clip=BBOX_XFORM_CLIP):
    wx, wy, ww, wh = weights
    out = []
    for (dx, dy, dw, dh), (x1, y1, x2, y2) in zip(d, p):
        pw, ph = x2 - x1, y2 - y1
        cx, cy = x1 + 0.5 * pw, y1 + 0.5 * ph
        w, h = math.exp(min(dw / ww, clip)) * pw, math.exp(min(dh / wh, clip)) * ph
        cx, cy = dx / wx * pw + cx, dy / wy * ph + cy
        out.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return np.array(out).reshape(-1, 4)


@given(a=box_arrays(), b=box_arrays())
def test_box_area_and_iou_match_plain_formulas(a, b):
    np.testing.assert_allclose(F.box_area(a), [(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in a])
    want = np.array([[box_pair_iou(p, q) for q in b] for p in a]).reshape(len(a), len(b))
    got = F.box_iou(mc.Tensor(a), mc.Tensor(b))
    assert isinstance(got, mc.Tensor)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(F.box_iou(a, a).diagonal()[(a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])], 1.0)


# (dtype, exponent): float32 spans 2**±126, float64 2**±1022
_SCALINGS = st.one_of(st.tuples(st.just(np.float64), st.integers(-1000, 1015)),
                      st.tuples(st.just(np.float32), st.integers(-100, 100)))
_UNIT = np.array([[0.0, 0, 1, 1]])


@given(a=box_arrays(), b=box_arrays(), scaling=_SCALINGS)
@example(a=_UNIT, b=_UNIT, scaling=(np.float64, 512))  # the areas overflowed to inf: IoU 0, not 1
@example(a=_UNIT, b=_UNIT, scaling=(np.float64, -540))  # the areas underflowed to 0: IoU 0, not 1
@example(a=_UNIT, b=_UNIT, scaling=(np.float32, 66))
def test_box_iou_is_invariant_under_power_of_two_scaling(a, b, scaling):
    """Scaling both sets by 2**e is exact and IoU is scale-free: the IoU of boxes near the top or the
    bottom of the float range is the IoU of the unscaled boxes."""
    dtype, exponent = scaling
    a, b = a.astype(dtype), b.astype(dtype)
    sa, sb = np.ldexp(a, exponent).astype(dtype), np.ldexp(b, exponent).astype(dtype)
    assume(np.isfinite(sa).all() and np.isfinite(sb).all())
    assume((np.ldexp(sa, -exponent) == a).all() and (np.ldexp(sb, -exponent) == b).all())  # exact scaling
    want = np.array([[box_pair_iou(p, q) for q in b.astype(np.float64)] for p in a.astype(np.float64)])
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for got in (F.box_iou(sa, sb), F.box_iou(mc.Tensor(sa), mc.Tensor(sb)).numpy()):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want.reshape(len(a), len(b)), rtol=rtol, atol=rtol)


@fixture_ok
@given(n=st.integers(0, 3))
def test_zero_boxes_give_empty_results(device, n):
    """Every utility takes 0 boxes, on every device, and returns the correctly shaped empty result."""
    for dtype in (np.float32, np.float64):
        empty = mc.Tensor(np.zeros((0, 4), dtype), device=device)
        some = mc.Tensor(np.tile(np.array([[0, 0, 2, 3]], dtype), (n, 1)), device=device)
        cases = [(F.box_area(empty), (0,)), (F.box_iou(empty, some), (0, n)), (F.box_iou(some, empty), (n, 0)),
                 (F.clip_boxes_to_image(empty, (4, 4)), (0, 4)), (F.remove_small_boxes(empty, 1.0), (0,)),
                 (F.encode_boxes(empty, empty), (0, 4)),
                 (F.decode_boxes(mc.Tensor(np.zeros((0, 8), dtype), device=device), empty), (0, 8))]
        for got, shape in cases:
            assert isinstance(got, mc.Tensor) and got.device.name == device and got.shape == shape
            assert got.dtype == (np.int64 if got is cases[4][0] else dtype)


@given(g=box_arrays(min_n=1, min_size=0.5), p=box_arrays(min_n=1, min_size=0.5),
       weights=st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 3.0, 0.5, 1.5)]))
def test_encode_decode_round_trip_and_formula(g, p, weights):
    n = min(len(g), len(p))
    g, p = g[:n], p[:n]
    d = F.encode_boxes(g, p, weights)
    wx, wy, ww, wh = weights
    for (gx1, gy1, gx2, gy2), (px1, py1, px2, py2), row in zip(g, p, d):
        pw, ph, gw, gh = px2 - px1, py2 - py1, gx2 - gx1, gy2 - gy1
        want = [wx * ((gx1 + gw / 2) - (px1 + pw / 2)) / pw, wy * ((gy1 + gh / 2) - (py1 + ph / 2)) / ph,
                ww * math.log(gw / pw), wh * math.log(gh / ph)]
        np.testing.assert_allclose(row, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(F.decode_boxes(d, p, weights), g, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(F.decode_boxes(d, p, weights), _plain_decode(d, p, weights), rtol=1e-12, atol=1e-12)


def test_decode_clamps_log_size_and_handles_several_boxes_per_row():
    p = np.array([[0.0, 0.0, 10.0, 20.0]])
    d = np.array([[0.0, 0.0, 50.0, -1.0, 0.5, -0.5, 0.0, 100.0]])  # two boxes per reference box
    got = F.decode_boxes(d, p)
    want = np.concatenate([_plain_decode(d[:, :4], p, (1, 1, 1, 1)), _plain_decode(d[:, 4:], p, (1, 1, 1, 1))], 1)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isclose(got[0, 2] - got[0, 0], 1000 / 16 * 10)  # exp(log(1000/16)) * width


def test_decode_and_iou_are_differentiable():
    rng = np.random.default_rng(0)
    p = mc.Tensor(np.array([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 9.0, 7.0]]), requires_grad=True)
    d = mc.Tensor(rng.uniform(-0.5, 0.5, (2, 8)), requires_grad=True)
    gradcheck(lambda d, p: F.decode_boxes(d, p, (10.0, 10.0, 5.0, 5.0)), [d, p], name="decode_boxes")
    g = mc.Tensor(np.array([[1.0, 2.0, 9.0, 15.0], [4.0, 6.0, 8.0, 9.0]]), requires_grad=True)
    gradcheck(lambda g, p: F.encode_boxes(g, p), [g, p], name="encode_boxes")
    a = mc.Tensor(np.array([[0.0, 0.0, 4.0, 4.0], [1.0, 2.0, 6.0, 5.0]]), requires_grad=True)
    b = mc.Tensor(np.array([[1.5, 1.0, 5.0, 6.0], [2.0, 2.5, 3.0, 3.5], [20.0, 20.0, 21.0, 21.0]]),
                  requires_grad=True)
    gradcheck(F.box_iou, [a, b], name="box_iou")


@given(b=box_arrays(), H=st.integers(0, 30), W=st.integers(0, 30))
def test_clip_and_remove_small_boxes(b, H, W):
    got = F.clip_boxes_to_image(b, (H, W))
    np.testing.assert_array_equal(got[:, 0::2], np.clip(b[:, 0::2], 0, W))
    np.testing.assert_array_equal(got[:, 1::2], np.clip(b[:, 1::2], 0, H))
    for min_size in (0.0, 1.0, 5.5):
        want = [i for i, (x1, y1, x2, y2) in enumerate(b) if x2 - x1 >= min_size and y2 - y1 >= min_size]
        np.testing.assert_array_equal(F.remove_small_boxes(b, min_size), want)


def _plain_anchors(feature_sizes, strides, sizes, ratios):
    out = []
    for (H, W), s, szs, rts in zip(feature_sizes, strides, sizes, ratios):
        base = []
        for r in rts:  # ratios outer, sizes inner; half-size rounded half to even
            for z in szs:
                hr = np.sqrt(np.float32(r))
                wr = np.float32(1) / hr
                w, h = np.float32(wr * np.float32(z)), np.float32(hr * np.float32(z))
                base.append([np.round(-w / 2), np.round(-h / 2), np.round(w / 2), np.round(h / 2)])
        for r in range(H):
            for c in range(W):
                for a in base:
                    out.append([c * s + a[0], r * s + a[1], c * s + a[2], r * s + a[3]])
    return np.array(out, dtype=np.float32).reshape(-1, 4)


@given(maps=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.sampled_from([4, 8, 16])),
                     min_size=1, max_size=3),
       sizes=st.lists(st.sampled_from([16, 24, 32, 45, 64]), min_size=1, max_size=3, unique=True),
       ratios=st.lists(st.sampled_from([0.5, 1.0, 2.0, 0.3]), min_size=1, max_size=3, unique=True))
def test_generate_anchors_matches_plain_loops(maps, sizes, ratios):
    feature_sizes = [(h, w) for h, w, _ in maps]
    strides = [s for _, _, s in maps]
    got = F.generate_anchors(feature_sizes, strides, [tuple(sizes)] * len(maps), tuple(ratios))
    want = _plain_anchors(feature_sizes, strides, [sizes] * len(maps), [ratios] * len(maps))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want)


def test_anchor_rounding_is_half_to_even_as_torchvision():
    """size 5, ratio 1: half-size 2.5 rounds to 2 (torch.round), not 3."""
    got = F.generate_anchors([(1, 1)], [8], [(5,)], [(1.0,)]).numpy()
    np.testing.assert_array_equal(got, [[np.round(-2.5), np.round(-2.5), np.round(2.5), np.round(2.5)]])
    assert got[0, 2] == 2.0


@fixture_ok
@given(a=box_arrays(min_n=1))
def test_tensor_in_tensor_out_on_every_device(device, a):
    t = mc.Tensor(a, device=device)
    for out in (F.box_area(t), F.box_iou(t, t), F.clip_boxes_to_image(t, (20, 20)), F.remove_small_boxes(t, 1.0)):
        assert isinstance(out, mc.Tensor) and out.device.name == device
    np.testing.assert_allclose(F.box_iou(t, t).numpy(), F.box_iou(a, a))


def test_bad_arguments_raise_clear_errors():
    ok = np.array([[0.0, 0.0, 2.0, 2.0]])
    cases = [
        ("box_area", r"boxes must have shape \(N, 4\)", lambda: F.box_area(np.zeros((2, 3)))),
        ("box_area", "boxes must have x1 <= x2", lambda: F.box_area(np.array([[2.0, 0, 1, 1]]))),
        ("box_iou", "boxes2 must be finite", lambda: F.box_iou(ok, np.array([[0, 0, np.nan, 1.0]]))),
        ("box_iou", "boxes1 must have x1 <= x2", lambda: F.box_iou(np.array([[0, 3, 1, 1.0]]), ok)),
        ("encode_boxes", "proposals must have positive width",
         lambda: F.encode_boxes(ok, np.array([[1.0, 1, 1, 3]]))),
        ("encode_boxes", r"reference_boxes \(1, 4\) and proposals \(2, 4\) must have the same shape",
         lambda: F.encode_boxes(ok, np.zeros((2, 4)) + ok)),
        ("encode_boxes", "weights must be 4 positive", lambda: F.encode_boxes(ok, ok, (1, 1, 0, 1))),
        ("decode_boxes", r"rel_codes must have shape \(1, 4\*k\)", lambda: F.decode_boxes(np.zeros((1, 5)), ok)),
        ("decode_boxes", "rel_codes must be finite",
         lambda: F.decode_boxes(np.array([[0, np.inf, 0, 0]]), ok)),
        ("clip_boxes_to_image", r"size must be \(H, W\)", lambda: F.clip_boxes_to_image(ok, (3,))),
        ("remove_small_boxes", "min_size must be a finite number", lambda: F.remove_small_boxes(ok, -1)),
        ("generate_anchors", "sizes must give one tuple per feature map",
         lambda: F.generate_anchors([(2, 2)], [8], [(32,), (64,)], (1.0,))),
        ("generate_anchors", "aspect_ratios must be positive",
         lambda: F.generate_anchors([(2, 2)], [8], (32,), (0.0,))),
    ]
    for op, msg, call in cases:
        with pytest.raises(ValueError, match=f"{op}: {msg}"):
            call()
