"""Detection metrics: a hand-worked example, pycocotools as the oracle of COCO mAP (boxes and masks),
plain loops for mask IoU, and two pinned cases (ties between ground truths, maxDets) that
``metrics.coco_map`` must get right as pycocotools does."""
import contextlib
import io

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minicnn import metrics as M
from minicnn.detection_metrics import coco_evaluate, detection_scores, mask_iou, voc_ap, voc_evaluate


# ---------------------------------------------------------------------------
# the hand-worked example: one image, one class, 3 ground truths, 5 detections
# ---------------------------------------------------------------------------
#
#   ground truths  g1 = [0, 0, 10, 10]   g2 = [20, 0, 30, 10]   g3 = [40, 0, 50, 10]
#
#   rank  score  box             best IoU          at 0.5         cumTP cumFP precision recall
#   d1    0.9    [0, 0, 10, 10]  g1: 1             TP (g1)         1     0     1/1       1/3
#   d2    0.8    [0, 0, 10, 10]  g1: 1 (taken)     FP (duplicate)  1     1     1/2       1/3
#   d3    0.7    [22, 0, 32, 10] g2: 80/120 = 2/3  TP (g2)         2     1     2/3       2/3
#   d4    0.6    [60, 0, 70, 10] none: 0           FP              2     2     2/4       2/3
#   d5    0.5    [40, 0, 50, 10] g3: 1             TP (g3)         3     2     3/5       1
#
#   envelope p̂(r) = max precision at recall >= r: 1 up to r = 1/3, 2/3 up to r = 2/3, 3/5 up to 1.
#   VOC all-point: 1/3·1 + 1/3·2/3 + 1/3·3/5 = 34/45
#   VOC07 11-point: t = 0, .1, .2, .3 -> 1; t = .4, .5, .6 -> 2/3; t = .7 … 1 -> 3/5:
#                   (4 + 3·2/3 + 4·3/5)/11 = 8.4/11
#   COCO 101-point at IoU 0.5: r = 0 … .33 (34 points) -> 1, .34 … .66 (33) -> 2/3, .67 … 1 (34) -> 3/5:
#                   (34 + 22 + 20.4)/101 = 76.4/101
#   At IoU 0.70 … 0.95 (6 thresholds) d3 (2/3) is a FP: precisions 1, 1/2, 1/3, 1/4, 2/5 at recalls
#   1/3, 1/3, 1/3, 1/3, 2/3: (34·1 + 33·2/5)/101 = 47.2/101; at 0.50 … 0.65 (4) as at 0.5.
#   COCO mAP@[.5:.95] = (4·76.4 + 6·47.2)/1010 = 588.8/1010

def hand_example():
    gts = [{"boxes": np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], float),
            "labels": np.array([1, 1, 1])}]
    dets = [{"boxes": np.array([[0, 0, 10, 10], [0, 0, 10, 10], [22, 0, 32, 10], [60, 0, 70, 10], [40, 0, 50, 10]],
                               float),
             "scores": np.array([0.9, 0.8, 0.7, 0.6, 0.5]), "labels": np.ones(5, np.int64)}]
    return dets, gts


def test_hand_worked_example():
    dets, gts = hand_example()
    voc = voc_evaluate(dets, gts, 0.5)
    np.testing.assert_allclose(voc["precision"][1], [1, 1 / 2, 2 / 3, 2 / 4, 3 / 5])
    np.testing.assert_allclose(voc["recall"][1], [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    assert voc["ap"][1] == pytest.approx(34 / 45) and voc["map"] == pytest.approx(34 / 45)
    assert voc_evaluate(dets, gts, 0.5, "voc07")["map"] == pytest.approx(8.4 / 11)
    res = coco_evaluate(dets, gts)
    assert res["stats"][1] == pytest.approx(76.4 / 101)
    assert res["stats"][0] == pytest.approx(588.8 / 1010)
    assert res["per_class"][1]["AP"] == pytest.approx(588.8 / 1010)
    assert M.coco_map(dets, gts) == pytest.approx(588.8 / 1010)
    # g3 difficult: d5 is neither TP nor FP and g3 is not counted: precisions 1, 1/2, 2/3, 1/2 at
    # recalls 1/2, 1/2, 1, 1 -> AP = 1/2·1 + 1/2·2/3
    gts[0]["difficult"] = np.array([False, False, True])
    assert voc_evaluate(dets, gts, 0.5)["map"] == pytest.approx(1 / 2 + 1 / 3)


def test_voc_ap_curves():
    # perfect ranking; the 11-point grid reaches a recall of exactly 0.3
    assert voc_ap([0.5, 1.0], [1.0, 1.0]) == 1.0
    assert voc_ap([0.3], [1.0], "voc07") == pytest.approx(4 / 11)
    assert voc_ap([], []) == 0.0
    with pytest.raises(ValueError, match="voc_ap: method"):
        voc_ap([1.0], [1.0], "coco")


def test_mask_iou_plain_loops():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 6, 7)) < 0.4, rng.random((4, 6, 7)) < 0.5
    b[0] = False
    a[0] = False
    got = mask_iou(a, b)
    for i in range(3):
        for j in range(4):
            inter = union = 0
            for y in range(6):
                for x in range(7):
                    inter += a[i, y, x] and b[j, y, x]
                    union += a[i, y, x] or b[j, y, x]
            assert got[i, j] == (inter / union if union else 0.0)


# ---------------------------------------------------------------------------
# pycocotools
# ---------------------------------------------------------------------------

def run_pycocotools(dets, gts, H, W, iou_type):
    """COCOeval on the same detections: ground truths with area = mask pixels, ids from 1."""
    pytest.importorskip("pycocotools", reason="pycocotools (the test extra) is the oracle of COCO mAP")
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def rle(m):
        return mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))

    cats = sorted({int(v) for g in gts for v in g["labels"]} | {int(v) for d in dets for v in d["labels"]})
    anns = []
    for n, g in enumerate(gts):
        for k, (x1, y1, x2, y2) in enumerate(g["boxes"].tolist()):
            anns.append({"id": len(anns) + 1, "image_id": n + 1, "category_id": int(g["labels"][k]),
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(g["masks"][k].sum()), "iscrowd": 0,
                         "segmentation": rle(g["masks"][k])})
    coco_gt = COCO()
    coco_gt.dataset = {"images": [{"id": n + 1, "height": H, "width": W} for n in range(len(gts))],
                       "annotations": anns, "categories": [{"id": c} for c in cats]}
    results = []
    for n, d in enumerate(dets):
        for k, (x1, y1, x2, y2) in enumerate(d["boxes"].tolist()):
            r = {"image_id": n + 1, "category_id": int(d["labels"][k]), "score": float(d["scores"][k])}
            if iou_type == "bbox":
                r["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            else:
                r["segmentation"] = rle(d["masks"][k])
            results.append(r)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def box_mask(box, H, W):
    m = np.zeros((H, W), np.uint8)
    x1, y1, x2, y2 = np.clip(np.round(box).astype(int), 0, [W, H, W, H])
    m[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)] = 1
    return m


def random_problem(seed, n_images=4, H=128, W=128, num_classes=3):
    """Ground truths of all COCO area ranges and noisy, duplicated, mislabelled and spurious detections."""
    rng = np.random.default_rng(seed)
    dets, gts = [], []
    for _ in range(n_images):
        G = int(rng.integers(0, 6))
        wh = np.exp(rng.uniform(np.log(3), np.log(110), (G, 2)))
        xy = rng.uniform(0, W - wh)
        gb = np.concatenate([xy, xy + wh], 1)
        gl = rng.integers(1, num_classes + 1, G)
        D = int(rng.integers(1, 10))
        src = rng.integers(0, max(G, 1), D)
        db = gb[src] + rng.normal(0, 0.1, (D, 4)) * np.tile(wh[src], 2) if G else rng.uniform(0, W - 10, (D, 4))
        db = np.concatenate([np.minimum(db[:, :2], db[:, 2:]), np.maximum(db[:, :2], db[:, 2:]) + 1], 1)
        dl = np.where(rng.random(D) < 0.8, gl[src] if G else 1, rng.integers(1, num_classes + 1, D))
        gts.append({"boxes": gb, "labels": gl, "masks": np.array([box_mask(b, H, W) for b in gb]).reshape(G, H, W)})
        dets.append({"boxes": db, "scores": rng.random(D), "labels": dl,
                     "masks": np.array([box_mask(b, H, W) for b in db]).reshape(D, H, W)})
    return dets, gts


def assert_same_as_pycocotools(dets, gts, iou_type, H=128, W=128):
    ev = run_pycocotools(dets, gts, H, W, iou_type)
    ours = coco_evaluate(dets, gts, iou_type)
    np.testing.assert_allclose(ours["stats"], ev.stats, rtol=0, atol=1e-12)
    # per class: pycocotools lists the categories of the ground truth file, ours those with ground truth
    cats = list(ev.params.catIds)
    cols = [cats.index(c) for c in ours["classes"].tolist()]
    np.testing.assert_allclose(ours["precision"], ev.eval["precision"][:, :, cols], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["recall"], ev.eval["recall"][:, cols], rtol=0, atol=1e-12)
    return ours


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 100_000))
def test_coco_boxes_equal_pycocotools(seed):
    dets, gts = random_problem(seed)
    ours = assert_same_as_pycocotools(dets, gts, "bbox")
    assert M.coco_map(dets, gts) == pytest.approx(max(ours["stats"][0], 0.0), abs=1e-12)


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 100_000))
def test_coco_masks_equal_pycocotools(seed):
    dets, gts = random_problem(seed, n_images=3)
    assert_same_as_pycocotools(dets, gts, "segm")


def test_coco_pinned_tie_between_ground_truths():
    # d1 overlaps g1 and g2 equally (IoU 0.905 each): pycocotools gives it the LAST (g2), so d2, an
    # exact copy of g1, is a TP at every threshold. Taking the first (g1) would leave d2 only g2 at
    # IoU 0.818: a FP from 0.85 on, and mAP 0.826 instead of 0.925.
    g = np.array([[0, 0, 10, 10], [1, 0, 11, 10]], float)
    gts = [{"boxes": g, "labels": np.array([1, 1]), "masks": np.array([box_mask(b, 40, 40) for b in g])}]
    dets = [{"boxes": np.array([[0.5, 0, 10.5, 10], [0, 0, 10, 10]]), "scores": np.array([0.9, 0.8]),
             "labels": np.array([1, 1]), "masks": gts[0]["masks"][[0, 0]]}]
    ours = assert_same_as_pycocotools(dets, gts, "bbox", 40, 40)
    assert ours["stats"][0] == pytest.approx(0.9252475247524753)
    assert M.coco_map(dets, gts) == pytest.approx(ours["stats"][0])


def test_coco_pinned_max_dets_per_image():
    # 100 spurious detections outrank the one true detection: COCO keeps 100 per image and class, so
    # the true one is dropped and AP = 0 (keeping all 101 would give AP 1/101)
    rng = np.random.default_rng(0)
    junk = np.concatenate([rng.uniform(60, 70, (100, 2)), rng.uniform(80, 100, (100, 2))], 1)
    g = np.array([[0, 0, 10, 10]], float)
    gts = [{"boxes": g, "labels": np.array([1]), "masks": np.array([box_mask(g[0], 128, 128)])}]
    dets = [{"boxes": np.concatenate([junk, g]), "scores": np.concatenate([np.linspace(0.9, 0.5, 100), [0.1]]),
             "labels": np.ones(101, np.int64), "masks": np.zeros((101, 128, 128), np.uint8)}]
    ours = assert_same_as_pycocotools(dets, gts, "bbox")
    assert ours["stats"][0] == 0.0 and M.coco_map(dets, gts) == 0.0
    assert M.coco_map(dets, gts, max_dets=101) == pytest.approx(1 / 101)


def test_hand_example_equals_pycocotools():
    dets, gts = hand_example()
    gts[0]["masks"] = np.array([box_mask(b, 16, 80) for b in gts[0]["boxes"]])
    dets[0]["masks"] = np.array([box_mask(b, 16, 80) for b in dets[0]["boxes"]])
    assert_same_as_pycocotools(dets, gts, "bbox", 16, 80)
    assert_same_as_pycocotools(dets, gts, "segm", 16, 80)


def test_detection_scores_and_errors():
    dets, gts = hand_example()
    s = detection_scores(dets, gts)
    assert s["map50"] == pytest.approx(34 / 45) and s["coco_map"] == pytest.approx(588.8 / 1010)
    with pytest.raises(ValueError, match="1 detection entries for 2 images"):
        voc_evaluate(dets, gts * 2)
    with pytest.raises(ValueError, match="iou_type"):
        coco_evaluate(dets, gts, "keypoints")
    with pytest.raises(ValueError, match=r"lacks \['masks'\]"):
        coco_evaluate(dets, gts, "segm")
