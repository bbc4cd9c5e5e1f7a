"""minicnn.metrics against plain-loop references and hand-checked cases."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minicnn import metrics as M


class FakeTensor:
    """Stands in for a Tensor: only has .numpy()."""

    def __init__(self, a):
        self._a = np.asarray(a)

    def numpy(self):
        return self._a


# ---------------------------------------------------------------- references

def ref_confusion(pred, target, k):
    m = np.zeros((k, k), dtype=np.int64)
    for p, t in zip(np.ravel(pred), np.ravel(target)):
        m[t, p] += 1
    return m


def ref_prf_per_class(pred, target, k):
    """Per-class precision, recall, F1 by counting, 0/0 := 0."""
    out = []
    for c in range(k):
        tp = sum(1 for p, t in zip(pred, target) if p == c and t == c)
        fp = sum(1 for p, t in zip(pred, target) if p == c and t != c)
        fn = sum(1 for p, t in zip(pred, target) if p != c and t == c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out.append((prec, rec, f1))
    return np.array(out).T


def ref_box_iou(a, b):
    out = np.zeros((len(a), len(b)))
    for i, (ax1, ay1, ax2, ay2) in enumerate(a):
        for j, (bx1, by1, bx2, by2) in enumerate(b):
            iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
            ih = max(0.0, min(ay2, by2) - max(ay1, by1))
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - iw * ih
            out[i, j] = iw * ih / union if union > 0 else 0.0
    return out


def ref_ap(dets, gts, cls, thr, method):
    """Plain-loop AP of one class: rank, greedily match, then interpolate."""
    ranked = []
    for n, d in enumerate(dets):
        for j in range(len(d["scores"])):
            if d["labels"][j] == cls:
                ranked.append((d["scores"][j], n, d["boxes"][j]))
    ranked = sorted(ranked, key=lambda r: -r[0])           # stable: ties keep image order
    gt = [[g["boxes"][j] for j in range(len(g["labels"])) if g["labels"][j] == cls] for g in gts]
    num_gt = sum(len(g) for g in gt)
    used = [[False] * len(g) for g in gt]
    tp_flags = []
    for _, n, box in ranked:
        best, best_j = -1.0, -1
        for j, g in enumerate(gt[n]):
            if used[n][j]:
                continue
            iou = ref_box_iou([box], [g])[0, 0]
            if iou > best:
                best, best_j = iou, j
        hit = best_j >= 0 and best >= thr
        if hit:
            used[n][best_j] = True
        tp_flags.append(hit)
    prec, rec, tp = [], [], 0
    for k, hit in enumerate(tp_flags, 1):
        tp += hit
        prec.append(tp / k)
        rec.append(tp / num_gt)
    env = [max(prec[i:]) for i in range(len(prec))]
    if method == "voc":
        ap, last_r = 0.0, 0.0
        for r, p in zip(rec, env):
            ap += (r - last_r) * p
            last_r = r
        return ap
    total = 0.0
    for r in np.linspace(0, 1, 101):
        for k in range(len(rec)):
            if rec[k] >= r:
                total += env[k]
                break
    return total / 101


# ---------------------------------------------------------------- classification

def test_accuracy_hand_and_logits_and_tensor_like():
    assert M.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]])
    assert M.accuracy(logits, [0, 1, 1]) == pytest.approx(2 / 3)
    assert M.accuracy(FakeTensor(logits), FakeTensor([0, 1, 0])) == 1.0
    seg_logits = np.zeros((1, 3, 2, 2))
    seg_logits[0, 2] = 1.0                                # predicts class 2 everywhere
    assert M.accuracy(seg_logits, np.array([[[2, 2], [0, 2]]])) == 0.75
    with pytest.raises(ValueError, match="accuracy"):
        M.accuracy(np.zeros(3), np.zeros(4))


@given(st.integers(1, 30), st.integers(2, 8), st.integers(1, 8), st.randoms(use_true_random=False))
def test_top_k_accuracy_matches_sorting(n, c, k, rnd):
    rng = np.random.default_rng(rnd.randint(0, 2 ** 31))
    logits = rng.integers(-3, 4, size=(n, c)).astype(np.float64)   # small ints: ties happen
    target = rng.integers(0, c, size=n)
    correct = 0
    for i in range(n):
        higher = sum(1 for j in range(c) if logits[i, j] > logits[i, target[i]])
        correct += higher < k
    assert M.top_k_accuracy(logits, target, k) == pytest.approx(correct / n)
    if k >= c:
        assert M.top_k_accuracy(logits, target, k) == 1.0


def test_top_k_hand():
    logits = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
    assert M.top_k_accuracy(logits, [2, 2], k=1) == 0.0
    assert M.top_k_accuracy(logits, [2, 2], k=2) == 0.5
    assert M.top_k_accuracy(logits, [2, 2], k=3) == 1.0


labels_pairs = st.integers(2, 6).flatmap(lambda k: st.tuples(
    st.just(k),
    st.integers(1, 60).flatmap(lambda n: st.tuples(
        hnp.arrays(np.int64, n, elements=st.integers(0, k - 1)),
        hnp.arrays(np.int64, n, elements=st.integers(0, k - 1))))))


@given(labels_pairs)
def test_confusion_matrix_identities(case):
    k, (pred, target) = case
    m = M.confusion_matrix(pred, target, k)
    np.testing.assert_array_equal(m, ref_confusion(pred, target, k))
    assert m.sum() == len(pred)
    np.testing.assert_array_equal(m.sum(axis=1), np.bincount(target, minlength=k))   # rows: truth
    np.testing.assert_array_equal(m.sum(axis=0), np.bincount(pred, minlength=k))     # cols: prediction
    assert np.trace(m) / len(pred) == pytest.approx(M.accuracy(pred, target))


@given(labels_pairs)
def test_precision_recall_f1_against_counting(case):
    k, (pred, target) = case
    p, r, f = M.precision_recall_f1(pred, target, k, average=None)
    rp, rr, rf = ref_prf_per_class(pred, target, k)
    np.testing.assert_allclose(p, rp)
    np.testing.assert_allclose(r, rr)
    np.testing.assert_allclose(f, rf)
    mp, mr, mf = M.precision_recall_f1(pred, target, k, average="macro")
    assert (mp, mr, mf) == pytest.approx((rp.mean(), rr.mean(), rf.mean()))
    # micro averaging of single-label predictions: all three equal the accuracy
    acc = M.accuracy(pred, target)
    assert M.precision_recall_f1(pred, target, k, average="micro") == pytest.approx((acc, acc, acc))
    # recall is the diagonal over the row sums; the support-weighted mean recall is the accuracy
    support = np.bincount(target, minlength=k)
    assert np.sum(r * support) / support.sum() == pytest.approx(acc)


def test_precision_recall_f1_hand_and_zero_division():
    # target 0 0 1 1 ; pred 0 1 1 1 ; class 2 never appears
    # class 0: TP 1 FP 0 FN 1 -> P 1, R 1/2, F1 2/3 ; class 1: TP 2 FP 1 FN 0 -> P 2/3, R 1, F1 4/5
    # class 2: 0/0 everywhere -> 0, 0, 0
    p, r, f = M.precision_recall_f1([0, 1, 1, 1], [0, 0, 1, 1], 3, average=None)
    np.testing.assert_allclose(p, [1, 2 / 3, 0])
    np.testing.assert_allclose(r, [0.5, 1, 0])
    np.testing.assert_allclose(f, [2 / 3, 0.8, 0])
    assert M.precision_recall_f1([0, 1, 1, 1], [0, 0, 1, 1], 3)[2] == pytest.approx((2 / 3 + 0.8) / 3)
    with pytest.raises(ValueError, match="ids outside"):
        M.confusion_matrix([0, 3], [0, 1], 3)


# ---------------------------------------------------------------- segmentation

@given(st.integers(2, 5), st.integers(1, 3), st.integers(1, 6), st.booleans(),
       st.randoms(use_true_random=False))
def test_iou_masks_against_loop(k, n, side, use_ignore, rnd):
    rng = np.random.default_rng(rnd.randint(0, 2 ** 31))
    pred = rng.integers(0, k, size=(n, side, side))
    target = rng.integers(0, k, size=(n, side, side))
    ignore = 255 if use_ignore else None
    if use_ignore:
        target[rng.random(target.shape) < 0.3] = 255
    expected = []
    for c in range(k):
        inter = union = 0
        for p, t in zip(pred.ravel(), target.ravel()):
            if t == ignore:
                continue
            inter += (p == c) and (t == c)
            union += (p == c) or (t == c)
        expected.append(inter / union if union else np.nan)
    np.testing.assert_allclose(M.iou_masks(pred, target, k, ignore_index=ignore), expected)
    defined = [e for e in expected if not np.isnan(e)]
    assert M.mean_iou(pred, target, k, ignore) == pytest.approx(np.mean(defined) if defined else 0.0)


def test_iou_masks_hand():
    target = np.array([[0, 0], [1, 1]])
    pred = np.array([[0, 1], [1, 1]])
    # class 0: inter 1, union 2 ; class 1: inter 2, union 3 ; class 2 absent -> NaN, not averaged
    iou = M.iou_masks(pred, target, 3)
    np.testing.assert_allclose(iou[:2], [0.5, 2 / 3])
    assert np.isnan(iou[2])
    assert M.mean_iou(pred, target, 3) == pytest.approx((0.5 + 2 / 3) / 2)
    logits = np.eye(3)[pred].transpose(2, 0, 1)[None]       # (1, 3, 2, 2) one-hot scores
    assert M.mean_iou(logits, target[None], 3) == pytest.approx((0.5 + 2 / 3) / 2)


# ---------------------------------------------------------------- boxes

boxes_strategy = st.integers(0, 6).flatmap(lambda n: hnp.arrays(
    np.float64, (n, 4), elements=st.integers(0, 20).map(float))).map(
    lambda b: np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1))


@given(boxes_strategy, boxes_strategy)
def test_box_iou_against_loop(a, b):
    iou = M.box_iou_numpy(a, b)
    assert iou.shape == (len(a), len(b))
    np.testing.assert_allclose(iou, ref_box_iou(a, b), atol=1e-12)
    np.testing.assert_allclose(iou, M.box_iou_numpy(b, a).T)
    assert np.all((iou >= 0) & (iou <= 1))
    positive = (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])
    np.testing.assert_allclose(np.diag(M.box_iou_numpy(a, a))[positive], 1.0)


@pytest.mark.parametrize("scale", [2.0 ** 520, 2.0 ** -540, 1e154, 1e-160])
def test_box_iou_is_scale_invariant_even_near_overflow_and_underflow(scale):
    """At 1e154 the areas overflow float64 (identical boxes gave IoU nan), at 1e-160 they underflow to 0."""
    a = np.array([[0.0, 0.0, 10.0, 10.0], [1.0, 2.0, 3.0, 7.0]])
    b = np.array([[5.0, 0.0, 15.0, 10.0], [1.0, 2.0, 3.0, 7.0], [0.0, 0.0, 10.0, 10.0]])
    np.testing.assert_allclose(M.box_iou_numpy(a * scale, b * scale), ref_box_iou(a, b), rtol=1e-15)


def test_box_iou_hand():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [10, 10, 20, 20], [0, 0, 10, 10]])
    np.testing.assert_allclose(M.box_iou_numpy(a, b), [[50 / 150, 0.0, 1.0]])


# ---------------------------------------------------------------- detection AP

def two_image_example():
    """Hand-checked example.

    Class 0, ground truth: image 0 has A=(0,0,10,10), B=(20,20,30,30); image 1 has C=(0,0,10,10).
    Detections ranked by score:
        .9  img0 (0,0,10,10)   IoU 1 with A            -> TP
        .8  img1 (1,0,11,10)   IoU 90/110 = .818 with C -> TP
        .7  img0 (50,50,60,60) no overlap              -> FP
        .6  img0 (20,20,30,30) IoU 1 with B            -> TP
        .5  img1 (0,0,10,10)   C already taken          -> FP
    cumulative TP 1,2,2,3,3 ; precision 1, 1, 2/3, 3/4, 3/5 ; recall 1/3, 2/3, 2/3, 1, 1
    envelope (max precision at this rank or later): 1, 1, 3/4, 3/4, 3/5
    VOC all-point AP = 1/3*1 + 1/3*1 + 0 + 1/3*3/4 + 0 = 11/12
    COCO 101-point at IoU .5: recall grid r = 0,.01,..,1:
        r <= 1/3 (34 points) -> rank 1, 1 ; 1/3 < r <= 2/3 (33) -> rank 2, 1 ; r > 2/3 (34) -> rank 4, 3/4
        AP = (34 + 33 + 34*3/4) / 101 = 92.5 / 101
    At IoU >= .85 the .8 detection misses, and the .5 one takes C instead:
        TP FP FP TP TP ; precision 1, 1/2, 1/3, 1/2, 3/5 ; recall 1/3, 1/3, 1/3, 2/3, 1 ; envelope 1, .6, .6, .6, .6
        COCO AP = (34 + 67 * 0.6) / 101 = 74.2 / 101
    Class 1, ground truth image 1 D=(30,30,40,40). Detections: .4 img1 (32,30,42,40), IoU 80/120 = 2/3;
    .3 img0 (30,30,40,40), wrong image -> FP.  For IoU threshold <= .65: TP, FP -> AP 1; for >= .7: AP 0.
    mAP@.5 (VOC) = (11/12 + 1) / 2 = 23/24
    COCO mAP = [7 * 92.5/101 + 3 * 74.2/101 (class 0 at .5..0.8 and .85..0.95) + 4 * 1 + 6 * 0] / 20
    """
    dets = [
        {"boxes": np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30], [30, 30, 40, 40]], float),
         "scores": np.array([0.9, 0.7, 0.6, 0.3]), "labels": np.array([0, 0, 0, 1])},
        {"boxes": np.array([[1, 0, 11, 10], [0, 0, 10, 10], [32, 30, 42, 40]], float),
         "scores": np.array([0.8, 0.5, 0.4]), "labels": np.array([0, 0, 1])},
    ]
    gts = [
        {"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), "labels": np.array([0, 0])},
        {"boxes": np.array([[0, 0, 10, 10], [30, 30, 40, 40]], float), "labels": np.array([0, 1])},
    ]
    return dets, gts


def test_map_hand_checked_example():
    dets, gts = two_image_example()
    aps = M.average_precision_per_class(dets, gts, 0.5)
    assert aps[0] == pytest.approx(11 / 12)
    assert aps[1] == pytest.approx(1.0)
    assert M.mean_average_precision(dets, gts, 0.5) == pytest.approx(23 / 24)
    assert M.average_precision_per_class(dets, gts, 0.5, "coco")[0] == pytest.approx(92.5 / 101)
    assert M.average_precision_per_class(dets, gts, 0.9, "coco") == pytest.approx({0: 74.2 / 101, 1: 0.0})
    expected = (7 * 92.5 / 101 + 3 * 74.2 / 101 + 4) / 20
    assert M.coco_map(dets, gts) == pytest.approx(expected)
    # tuples work as well as dicts
    as_tuples = [(d["boxes"], d["scores"], d["labels"]) for d in dets]
    assert M.mean_average_precision(as_tuples, [(g["boxes"], g["labels"]) for g in gts]) == pytest.approx(23 / 24)


def test_average_precision_curves():
    # perfect ranking: AP 1 under both interpolations
    assert M.average_precision([0.5, 1.0], [1.0, 1.0]) == 1.0
    assert M.average_precision([0.5, 1.0], [1.0, 1.0], "coco") == pytest.approx(1.0)
    # only half the objects found, precision 1: VOC 0.5, COCO 51/101 (r = 0 .. 0.50)
    assert M.average_precision([0.5], [1.0]) == 0.5
    assert M.average_precision([0.5], [1.0], "coco") == pytest.approx(51 / 101)
    assert M.average_precision([], [], "voc") == 0.0


def test_map_edge_cases():
    empty_det = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, int)}
    gt = {"boxes": np.array([[0, 0, 5, 5]], float), "labels": np.array([3])}
    assert M.average_precision_per_class([empty_det], [gt]) == {3: 0.0}
    no_gt = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int)}
    assert M.mean_average_precision([empty_det], [no_gt]) == 0.0
    # detections of a class without ground truth do not change the mAP of the others
    det = {"boxes": np.array([[0, 0, 5, 5], [9, 9, 12, 12]], float), "scores": np.array([0.9, 0.95]),
           "labels": np.array([3, 7])}
    assert M.average_precision_per_class([det], [gt]) == {3: 1.0}
    with pytest.raises(ValueError, match="images"):
        M.mean_average_precision([det, det], [gt])


@st.composite
def detection_problem(draw):
    rnd = np.random.default_rng(draw(st.integers(0, 2 ** 31)))
    n_img, n_cls = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    dets, gts = [], []
    for _ in range(n_img):
        g = rnd.integers(0, 4)
        gb = np.sort(rnd.integers(0, 12, size=(g, 2, 2)), axis=1).reshape(g, 4)[:, [0, 2, 1, 3]].astype(float)
        gb[:, 2:] += 1
        gts.append({"boxes": gb, "labels": rnd.integers(0, n_cls, size=g)})
        d = rnd.integers(0, 6)
        # detections near ground truth boxes (jittered) and random ones; scores with ties
        near = gb[rnd.integers(0, g, size=d)] + rnd.integers(-2, 3, size=(d, 4)) if g else np.zeros((d, 4))
        db = np.concatenate([np.minimum(near[:, :2], near[:, 2:]), np.maximum(near[:, :2], near[:, 2:]) + 1], 1)
        dets.append({"boxes": db, "scores": rnd.integers(0, 5, size=d) / 4.0,
                     "labels": rnd.integers(0, n_cls, size=d)})
    return dets, gts


@given(detection_problem(), st.sampled_from([0.3, 0.5, 0.75]), st.sampled_from(["voc", "coco"]))
def test_average_precision_against_loop(problem, thr, method):
    dets, gts = problem
    aps = M.average_precision_per_class(dets, gts, thr, method)
    classes = sorted({int(c) for g in gts for c in g["labels"]})
    assert sorted(aps) == classes
    for c in classes:
        assert aps[c] == pytest.approx(ref_ap(dets, gts, c, thr, method), abs=1e-12)
        assert 0.0 <= aps[c] <= 1.0
    if classes:
        assert M.mean_average_precision(dets, gts, thr, method) == pytest.approx(np.mean([aps[c] for c in classes]))


def test_perfect_detections_score_one():
    _, gts = two_image_example()
    dets = [{"boxes": g["boxes"], "scores": np.linspace(1, 0.5, len(g["labels"])), "labels": g["labels"]}
            for g in gts]
    assert M.mean_average_precision(dets, gts) == 1.0
    assert M.coco_map(dets, gts) == pytest.approx(1.0)
    assert math.isclose(M.coco_map(dets, gts), 1.0)
