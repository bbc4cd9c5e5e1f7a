"""NMS and batched NMS: invariants, the plain reference, device parity, bad input."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels.reference import nms as R

fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])

THRESHOLDS = [0.0, 0.1, 0.3, 0.5, 0.7, 0.95, 1.0]


@st.composite
def detections(draw, max_n=40, negative=False):
    """``(boxes, scores)``: clustered boxes on a 1/4 grid (exact IoU ties), duplicates, zero-area
    boxes, and scores from a small set (ties) or all distinct."""
    n = draw(st.integers(0, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lo = -16.0 if negative else 0.0
    centres = rng.uniform(lo, 32, size=(max(1, n // 4), 2))
    c = centres[rng.integers(0, len(centres), size=n)] + rng.normal(0, 2, size=(n, 2))
    wh = rng.uniform(0, 12, size=(n, 2)) * (rng.uniform(size=(n, 1)) > 0.05)  # ~5% zero-area
    boxes = np.round(np.concatenate([c - wh / 2, c + wh / 2], axis=1) * 4) / 4
    if n > 1 and draw(st.booleans()):
        boxes[-1] = boxes[0]  # an exact duplicate
    if draw(st.booleans()):
        scores = rng.integers(0, 4, size=n) / 4.0  # many ties
    else:
        scores = rng.permutation(n) / max(n, 1) + 0.01
    return boxes, scores


def _check_invariants(boxes, scores, keep, thr):
    keep = list(keep)
    assert len(set(keep)) == len(keep)
    # kept boxes in decreasing score order, equal scores: lower index first
    for a, b in zip(keep, keep[1:]):
        assert scores[a] > scores[b] or (scores[a] == scores[b] and a < b)
    # kept boxes do not suppress each other
    for i, a in enumerate(keep):
        for b in keep[i + 1:]:
            assert R.box_pair_iou(boxes[a], boxes[b]) <= thr
    # every dropped box overlaps a kept box ranked before it (score >=, lower index on ties)
    rank = {j: r for r, j in enumerate(np.argsort(-scores, kind="stable"))}
    for j in set(range(len(boxes))) - set(keep):
        assert any(rank[k] < rank[j] and R.box_pair_iou(boxes[k], boxes[j]) > thr for k in keep), j


@fixture_ok
@given(det=detections(), thr=st.sampled_from(THRESHOLDS))
def test_nms_invariants_and_reference(device, det, thr):
    boxes, scores = det
    keep = F.nms(mc.Tensor(boxes, device=device), mc.Tensor(scores, device=device), thr)
    assert keep.dtype == np.int64 and keep.device.name == device
    keep = keep.numpy()
    np.testing.assert_array_equal(keep, R.nms(boxes, scores, thr))
    _check_invariants(boxes, scores, keep, thr)


@given(det=detections(max_n=150), thr=st.floats(0.0, 1.0))
def test_nms_devices_keep_identical_indices(det, thr):
    """cpu (Numba greedy loop) and cuda-emu (64-bit mask kernel, several 64-box tiles)."""
    boxes, scores = det
    for dtype in (np.float32, np.float64):
        b, s = boxes.astype(dtype), scores.astype(dtype)
        cpu = F.nms(mc.Tensor(b), mc.Tensor(s), thr).numpy()
        emu = F.nms(mc.Tensor(b, device="cuda-emu"), mc.Tensor(s, device="cuda-emu"), thr).numpy()
        np.testing.assert_array_equal(cpu, emu)
        np.testing.assert_array_equal(cpu, R.nms(b, s, thr))


@given(det=detections(), thr=st.sampled_from(THRESHOLDS), data=st.data())
def test_nms_permutation_with_distinct_scores(det, thr, data):
    boxes, _ = det
    n = len(boxes)
    scores = np.random.default_rng(1).permutation(n).astype(np.float64)
    perm = np.asarray(data.draw(st.permutations(range(n))), dtype=np.int64)
    kept = F.nms(boxes, scores, thr).numpy()
    kept_perm = F.nms(boxes[perm], scores[perm], thr).numpy()
    np.testing.assert_array_equal(perm[kept_perm], kept)  # same boxes, same order


def test_equal_scores_keep_the_lower_index(device):
    """Box i and box i + 6 are identical with equal scores: i ranks first and suppresses i + 6."""
    rng = np.random.default_rng(5)
    b = rng.uniform(0, 10, (6, 2))
    half = np.concatenate([b, b + 5], axis=1)
    p = rng.permutation(6).astype(np.float64)
    boxes, scores = np.concatenate([half, half]), np.concatenate([p, p])
    keep = F.nms(mc.Tensor(boxes, device=device), mc.Tensor(scores, device=device), 0.5).numpy()
    assert len(keep) > 0 and keep.max() < 6
    np.testing.assert_array_equal(keep, F.nms(half, p, 0.5).numpy())


@fixture_ok
@given(det=detections(negative=True), thr=st.sampled_from(THRESHOLDS), n_classes=st.integers(1, 4), data=st.data())
def test_batched_nms_equals_per_class_nms(device, det, thr, n_classes, data):
    boxes, scores = det
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    idxs = rng.integers(0, n_classes, size=len(boxes)) * 7 - 3  # arbitrary (negative) category ids
    got = F.batched_nms(mc.Tensor(boxes, device=device), mc.Tensor(scores, device=device),
                        mc.Tensor(idxs, device=device), thr).numpy()
    np.testing.assert_array_equal(got, _per_class_reference(boxes, scores, idxs, thr))


def _per_class_reference(boxes, scores, idxs, thr):
    """Plain NMS of each category apart, merged by decreasing score (ties: lower index first)."""
    merged = []
    for c in np.unique(idxs):
        members = np.flatnonzero(idxs == c)
        merged.extend(members[R.nms(boxes[members], scores[members], thr)])
    return np.array(sorted(merged, key=lambda i: (-scores[i], i)), dtype=np.int64)


@fixture_ok
@given(det=detections(max_n=30, negative=True), thr=st.sampled_from(THRESHOLDS), exponent=st.integers(-1000, 1016),
       n_classes=st.integers(1, 3), seed=st.integers(0, 1000))
@example(det=(np.array([[0.0, 0, 1, 1], [0, 0, 1, 1]]), np.array([0.9, 0.8])), thr=0.5, exponent=512,
         n_classes=1, seed=0)  # identical boxes at 2**512: the areas overflowed to inf, IoU was NaN
@example(det=(np.array([[-8.0, -8, 8, 8], [-8, -8, 8, 8]]), np.array([0.9, 0.8])), thr=0.5, exponent=1019,
         n_classes=1, seed=0)  # x2 − x1 = 2**1024 overflows before any area
def test_nms_is_invariant_under_power_of_two_scaling(device, det, thr, exponent, n_classes, seed):
    """IoU is scale-free and scaling by 2**e is exact: boxes scaled up to ~1e308 or down to ~1e-300
    keep the indices the reference keeps for the unscaled boxes (nms and batched_nms)."""
    boxes, scores = det
    scaled = np.ldexp(boxes, exponent)
    assume(np.isfinite(scaled).all())
    assert (np.ldexp(scaled, -exponent) == boxes).all()  # exact: no underflow either
    on = lambda a: mc.Tensor(a, device=device)  # noqa: E731
    keep = F.nms(on(scaled), on(scores), thr).numpy()
    np.testing.assert_array_equal(keep, R.nms(boxes, scores, thr))
    idxs = np.random.default_rng(seed).integers(0, n_classes, size=len(boxes))
    got = F.batched_nms(on(scaled), on(scores), on(idxs), thr).numpy()
    np.testing.assert_array_equal(got, _per_class_reference(boxes, scores, idxs, thr))


def test_batched_nms_categories_far_apart():
    """Coordinates ±1e308 in different categories: the per-category offset overflowed to inf."""
    boxes = np.array([[-1e308, -1e308, -9e307, -9e307], [-1e308, -1e308, -9e307, -9e307],
                      [9e307, 9e307, 1e308, 1e308], [9e307, 9e307, 1e308, 1e308], [0, 0, 1, 1.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    idxs = np.array([0, 0, 1, 1, 2])
    for device in ("cpu", "cuda-emu"):
        got = F.batched_nms(mc.Tensor(boxes, device=device), mc.Tensor(scores, device=device),
                            mc.Tensor(idxs, device=device), 0.5).numpy()
        np.testing.assert_array_equal(got, [0, 2, 4])


def test_empty_and_array_inputs(device):
    empty = F.nms(np.zeros((0, 4)), np.zeros(0), 0.5)
    assert empty.shape == (0,) and empty.dtype == np.int64
    assert F.batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64), 0.5).shape == (0,)
    for dtype in (np.float32, np.float64):
        b, s = mc.Tensor(np.zeros((0, 4), dtype), device=device), mc.Tensor(np.zeros(0, dtype), device=device)
        for keep in (F.nms(b, s, 0.5), F.batched_nms(b, s, mc.Tensor(np.zeros(0, np.int64), device=device), 0.5)):
            assert keep.shape == (0,) and keep.dtype == np.int64 and keep.device.name == device


@pytest.mark.parametrize("op", ["nms", "batched_nms"])
def test_bad_arguments_raise_clear_errors(op):
    good_b, good_s = np.array([[0.0, 0, 1, 1], [0, 0, 2, 2]]), np.array([0.5, 0.4])

    def call(b=good_b, s=good_s, thr=0.5, idxs=np.array([0, 1])):
        return F.nms(b, s, thr) if op == "nms" else F.batched_nms(b, s, idxs, thr)

    cases = [
        (ValueError, r"boxes must have shape \(N, 4\)", dict(b=np.zeros((2, 5)))),
        (ValueError, r"scores must have shape \(2,\)", dict(s=np.zeros(3))),
        (ValueError, "boxes must be finite", dict(b=np.array([[0.0, 0, np.nan, 1], [0, 0, 2, 2]]))),
        (ValueError, "boxes must be finite", dict(b=np.array([[0.0, 0, np.inf, 1], [0, 0, 2, 2]]))),
        (ValueError, "scores must be finite", dict(s=np.array([np.nan, 0.1]))),
        (ValueError, "boxes must have x1 <= x2 and y1 <= y2", dict(b=np.array([[2.0, 0, 1, 1], [0, 0, 2, 2]]))),
        (ValueError, "iou_threshold must be >= 0", dict(thr=-0.1)),
        (ValueError, "iou_threshold must be >= 0", dict(thr=float("nan"))),
        (TypeError, "iou_threshold must be a number", dict(thr="0.5")),
    ]
    if op == "batched_nms":
        cases += [(ValueError, r"idxs must have shape \(2,\)", dict(idxs=np.array([0]))),
                  (ValueError, "idxs must hold integer", dict(idxs=np.array([0.5, 1.0])))]
    for exc, msg, kw in cases:
        with pytest.raises(exc, match=f"{op}: {msg}"):
            call(**kw)
