"""Segmentation metrics of minicnn.metrics (Dice, pixel accuracy, connected components, instance
matching, F1 and AP) against plain-loop references written here."""
from collections import deque

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn import metrics as M
from minicnn.data import load_nuclei, three_class_mask
from minicnn.kernels.reference.label import connected_components as reference_components

# ---------------------------------------------------------------- references

NEIGHBOURS = {1: [(-1, 0), (1, 0), (0, -1), (0, 1)],
              2: [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]}


def ref_components(mask, connectivity):
    """Breadth-first flood fill from each unlabelled foreground pixel met in raster order."""
    H, W = mask.shape
    out = np.zeros((H, W), dtype=np.int64)
    count = 0
    for i in range(H):
        for j in range(W):
            if mask[i, j] and out[i, j] == 0:
                count += 1
                out[i, j] = count
                queue = deque([(i, j)])
                while queue:
                    a, b = queue.popleft()
                    for da, db in NEIGHBOURS[connectivity]:
                        y, x = a + da, b + db
                        if 0 <= y < H and 0 <= x < W and mask[y, x] and out[y, x] == 0:
                            out[y, x] = count
                            queue.append((y, x))
    return out, count


def ref_drop_small(inst, min_size):
    """Remove instances of fewer than min_size pixels; renumber the rest 1..K keeping their order."""
    out = np.zeros_like(inst)
    new = 0
    for k in range(1, int(inst.max()) + 1):
        size = sum(1 for v in inst.ravel() if v == k)
        if size >= min_size:
            new += 1
            out[inst == k] = new
    return out


def ref_instances(lab, mode, min_size, connectivity, grow_steps):
    if mode == "foreground":
        inst, _ = ref_components(lab >= 1, connectivity)
        return ref_drop_small(inst, min_size)
    inst, _ = ref_components(lab == 1, connectivity)
    H, W = lab.shape
    for _ in range(grow_steps):
        before = inst.copy()
        for i in range(H):
            for j in range(W):
                if lab[i, j] == 2 and before[i, j] == 0:
                    ids = [before[i + a, j + b] for a, b in NEIGHBOURS[1]
                           if 0 <= i + a < H and 0 <= j + b < W and before[i + a, j + b] > 0]
                    if ids:
                        inst[i, j] = min(ids)
    return ref_drop_small(inst, min_size)


def ref_match(pred, true, thr):
    """IoU of every (pred id, true id) pair by counting pixels; pairs above thr."""
    pred_ids = sorted({int(v) for v in pred.ravel() if v > 0})
    true_ids = sorted({int(v) for v in true.ravel() if v > 0})
    iou = np.zeros((len(pred_ids), len(true_ids)))
    for a, p in enumerate(pred_ids):
        for b, t in enumerate(true_ids):
            inter = union = 0
            for u, v in zip(pred.ravel(), true.ravel()):
                inter += (u == p) and (v == t)
                union += (u == p) or (v == t)
            iou[a, b] = inter / union
    pairs = [(pred_ids[a], true_ids[b]) for a in range(len(pred_ids)) for b in range(len(true_ids))
             if iou[a, b] > thr]
    return pred_ids, true_ids, iou, pairs


def ref_all_point_ap(tp_flags, num_true):
    """Area under the precision envelope: sum_k (r_k - r_{k-1}) max_{j >= k} p_j."""
    precision, recall, hits = [], [], 0
    for k, hit in enumerate(tp_flags, start=1):
        hits += hit
        precision.append(hits / k)
        recall.append(hits / num_true)
    ap, previous = 0.0, 0.0
    for k in range(len(precision)):
        ap += (recall[k] - previous) * max(precision[k:])
        previous = recall[k]
    return ap


# ---------------------------------------------------------------- draws

@st.composite
def binary_masks(draw, max_side=12):
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    density = draw(st.sampled_from([0.2, 0.45, 0.6, 0.85]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.random((h, w)) < density


@st.composite
def label_pairs(draw, num_classes=None, max_side=6, ignore=False):
    """(pred, target, K): label masks (N, H, W); target may hold 255 (void) pixels."""
    k = num_classes or draw(st.integers(1, 4))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pred, target = rng.integers(0, k, shape), rng.integers(0, k, shape)
    agree = rng.random(shape) < 0.5
    target[agree] = pred[agree]
    if ignore:
        target[rng.random(shape) < 0.2] = 255
    return pred, target, k


@st.composite
def instance_pairs(draw, max_side=9, batch=False):
    """(pred, true) instance masks: true scattered ids 0..4, pred a noisy copy with other ids."""
    n = draw(st.integers(1, 3)) if batch else 1
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    blocks = rng.integers(0, 5, (n, (h + 2) // 3, (w + 2) // 3))
    true = np.kron(blocks, np.ones((1, 3, 3), dtype=np.int64))[:, :h, :w]       # 3x3 blocks of one id
    noise = rng.random(true.shape) < draw(st.sampled_from([0.0, 0.15, 0.4]))
    pred = np.where(noise, rng.integers(0, 5, true.shape), true)
    pred = np.where(pred > 0, 3 * rng.permutation(5)[pred] + 2, 0)              # other ids, with gaps
    return (pred, true) if batch else (pred[0], true[0])


# ---------------------------------------------------------------- Dice, pixel accuracy, summary

@given(label_pairs(ignore=True), st.booleans())
def test_dice_pixel_accuracy_and_scores_vs_loops(pair, as_scores):
    pred, target, k = pair
    dice_ref, correct, total = [], 0, 0
    for c in range(k):
        inter = size_p = size_t = 0
        for p, t in zip(pred.ravel(), target.ravel()):
            if t == 255:
                continue
            inter += (p == c) and (t == c)
            size_p += p == c
            size_t += t == c
        dice_ref.append(2 * inter / (size_p + size_t) if size_p + size_t else np.nan)
    inter_fg = union_fg = 0
    for p, t in zip(pred.ravel(), target.ravel()):
        if t != 255:
            correct += p == t
            total += 1
            inter_fg += (p >= 1) and (t >= 1)
            union_fg += (p >= 1) or (t >= 1)
    given_pred = np.eye(k)[pred].transpose(0, 3, 1, 2) if as_scores else pred       # one-hot scores
    dice = M.dice_per_class(given_pred, target, k, ignore_index=255)
    np.testing.assert_allclose(dice, dice_ref, rtol=1e-12)
    assert M.pixel_accuracy(given_pred, target, ignore_index=255) == pytest.approx(correct / total if total else 0.0)
    s = M.segmentation_scores(given_pred, target, k, ignore_index=255)
    np.testing.assert_allclose(s["per_class_dice"], dice_ref, rtol=1e-12)
    defined = [d for d in dice_ref if not np.isnan(d)]
    assert s["mean_dice"] == pytest.approx(np.mean(defined) if defined else 0.0)
    np.testing.assert_allclose(s["per_class_iou"], M.iou_masks(pred, target, k, 255))
    assert s["mean_iou"] == M.mean_iou(pred, target, k, 255)
    assert s["pixel_accuracy"] == pytest.approx(correct / total if total else 0.0)
    if union_fg:
        assert s["foreground_iou"] == pytest.approx(inter_fg / union_fg)
    else:
        assert np.isnan(s["foreground_iou"])
    # Dice and IoU of a class are tied: D = 2 J / (1 + J)
    iou = s["per_class_iou"]
    np.testing.assert_allclose(dice, 2 * iou / (1 + iou), rtol=1e-12)


def test_dice_edge_cases_and_errors():
    t = np.array([[0, 0], [1, 1]])
    np.testing.assert_array_equal(M.dice_per_class(t, t, 3), [1.0, 1.0, np.nan])   # class 2 in neither
    assert M.pixel_accuracy(t, np.full((2, 2), 255), ignore_index=255) == 0.0
    with pytest.raises(ValueError, match=r"dice_per_class: target has class ids outside 0\.\.1"):
        M.dice_per_class(t, t + 1, 2)
    with pytest.raises(ValueError, match=r"pixel_accuracy: predictions \(2, 3\) do not match targets \(2, 2\)"):
        M.pixel_accuracy(np.zeros((2, 3)), t)
    with pytest.raises(ValueError, match="segmentation_scores: num_classes"):
        M.segmentation_scores(t, t, 0)


# ---------------------------------------------------------------- connected components

@given(binary_masks(), st.sampled_from([1, 2]))
def test_connected_components_vs_bfs(mask, connectivity):
    want, count = ref_components(mask, connectivity)
    labels, n = M.connected_components(mask, connectivity)
    assert labels.dtype == np.int32 and labels.shape == mask.shape
    assert n == count
    np.testing.assert_array_equal(labels, want)                 # same numbering: raster order
    ref_labels, ref_n = reference_components(mask, connectivity)
    assert ref_n == count
    np.testing.assert_array_equal(ref_labels, want)


@pytest.mark.parametrize("connectivity", [1, 2])
def test_connected_components_special_shapes(connectivity):
    # a spiral and a checkerboard: merges late in the scan and diagonal-only contacts
    spiral = np.zeros((9, 9), dtype=bool)
    spiral[0, :], spiral[:, 8], spiral[8, :], spiral[2:, 0], spiral[2, :7], spiral[2:7, 6] = 1, 1, 1, 1, 1, 1
    spiral[6, 2:7], spiral[4:7, 2] = 1, 1
    checker = (np.add.outer(np.arange(7), np.arange(7)) % 2).astype(bool)
    u = np.zeros((5, 7), dtype=bool)
    u[:, 0], u[:, 6], u[4, :], u[:, 3] = 1, 1, 1, 1
    for mask in (spiral, checker, u, np.zeros((0, 4), bool), np.ones((1, 1), bool), np.zeros((3, 3), bool)):
        want, count = ref_components(mask, connectivity)
        labels, n = M.connected_components(mask, connectivity)
        assert n == count
        np.testing.assert_array_equal(labels, want)
    assert M.connected_components(checker, 1)[1] == 24 and M.connected_components(checker, 2)[1] == 1


def test_connected_components_of_the_nuclei_mask_vs_bfs():
    _, inst = load_nuclei()
    mask = inst[:256, :256] > 0
    for connectivity in (1, 2):
        want, count = ref_components(mask, connectivity)
        labels, n = M.connected_components(mask, connectivity)
        assert n == count
        np.testing.assert_array_equal(labels, want)


def test_connected_components_vs_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    _, inst = load_nuclei()
    rng = np.random.default_rng(0)
    for mask in (inst > 0, rng.random((300, 200)) < 0.55):
        for connectivity in (1, 2):
            want, count = ndimage.label(mask, ndimage.generate_binary_structure(2, connectivity))
            labels, n = M.connected_components(mask, connectivity)
            assert n == count
            np.testing.assert_array_equal(labels, want)


def test_connected_components_errors():
    with pytest.raises(ValueError, match=r"connected_components: mask must be 2-D \(H, W\), got shape \(1, 2, 2\)"):
        M.connected_components(np.ones((1, 2, 2)))
    with pytest.raises(ValueError, match="connected_components: connectivity must be 1"):
        M.connected_components(np.ones((2, 2)), connectivity=3)


# ---------------------------------------------------------------- instances from a semantic mask

@given(st.integers(0, 2**32 - 1), st.integers(1, 10), st.integers(1, 10), st.sampled_from(["foreground", "interior"]),
       st.integers(1, 4), st.sampled_from([1, 2]), st.integers(0, 3))
def test_instances_from_semantic_vs_loops(seed, h, w, mode, min_size, connectivity, grow_steps):
    rng = np.random.default_rng(seed)
    lab = rng.choice(3, size=(h, w), p=[0.4, 0.3, 0.3])
    got = M.instances_from_semantic(lab, mode, min_size=min_size, connectivity=connectivity,
                                    grow_steps=grow_steps)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, ref_instances(lab, mode, min_size, connectivity, grow_steps))


def test_instances_from_semantic_batch_scores_and_roundtrip():
    _, inst = load_nuclei()
    true = inst[256:, 256:]
    lab3 = three_class_mask(true)
    # a batch of label maps, and one-hot scores, give the per-image results
    batch = np.stack([lab3[:64, :64], lab3[64:128, :64]])
    got = M.instances_from_semantic(batch, "interior")
    for n in range(2):
        np.testing.assert_array_equal(got[n], ref_instances(batch[n], "interior", 1, 1, 3))
    np.testing.assert_array_equal(M.instances_from_semantic(np.eye(3)[batch].transpose(0, 3, 1, 2), "interior"), got)
    # the 3-class target of the held-out quadrant gives back every nucleus, touching ones apart
    f1 = M.instance_f1(M.instances_from_semantic(lab3, "interior"), true)
    assert f1["fn"] == 0 and f1["fp"] == 0 and f1["tp"] == len(np.unique(true)) - 1
    # foreground components merge touching nuclei: fewer instances than nuclei
    fg = M.instances_from_semantic(true > 0, "foreground")
    assert fg.max() < true.max()
    with pytest.raises(ValueError, match=r"instances_from_semantic: mode='interior' expects classes 0"):
        M.instances_from_semantic(np.full((3, 3), 3), "interior")
    with pytest.raises(ValueError, match="instances_from_semantic: mode must be"):
        M.instances_from_semantic(lab3, "boundary")
    with pytest.raises(ValueError, match=r"instances_from_semantic: labels must be .* got shape \(4,\)"):
        M.instances_from_semantic(np.zeros(4), "foreground")


# ---------------------------------------------------------------- matching, F1, AP

@given(instance_pairs(), st.sampled_from([0.5, 0.6, 0.75, 0.9]))
def test_match_instances_vs_loops(pair, thr):
    pred, true = pair
    pred_ids, true_ids, iou, pairs = ref_match(pred, true, thr)
    m = M.match_instances(pred, true, thr)
    np.testing.assert_array_equal(m["pred_ids"], pred_ids)
    np.testing.assert_array_equal(m["true_ids"], true_ids)
    np.testing.assert_allclose(m["iou"], iou.reshape(len(pred_ids), len(true_ids)), rtol=1e-12)
    assert sorted(map(tuple, m["matches"].tolist())) == sorted(pairs)
    # one-to-one: no id appears in two pairs
    assert len({p for p, _ in pairs}) == len(pairs) == len({t for _, t in pairs})
    assert (m["tp"], m["fp"], m["fn"]) == (len(pairs), len(pred_ids) - len(pairs), len(true_ids) - len(pairs))
    for (p, t), v in zip(m["matches"], m["matched_iou"]):
        assert v == pytest.approx(iou[pred_ids.index(p), true_ids.index(t)])


@given(instance_pairs(batch=True), st.sampled_from([0.5, 0.7]))
def test_instance_f1_and_dsb_ap_vs_loops(pair, thr):
    preds, trues = pair
    tp = fp = fn = 0
    per_image = []
    for p, t in zip(preds, trues):
        pred_ids, true_ids, _, pairs = ref_match(p, t, thr)
        a, b, c = len(pairs), len(pred_ids) - len(pairs), len(true_ids) - len(pairs)
        tp, fp, fn = tp + a, fp + b, fn + c
        per_image.append(a / (a + b + c) if a + b + c else 0.0)
    f = M.instance_f1(preds, trues, thr)
    assert (f["tp"], f["fp"], f["fn"]) == (tp, fp, fn)
    assert f["precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
    assert f["recall"] == pytest.approx(tp / (tp + fn) if tp + fn else 0.0)
    assert f["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    assert M.instance_average_precision(preds, trues, iou_threshold=thr) == pytest.approx(np.mean(per_image))
    assert M.instance_average_precision(preds[0], trues[0], iou_threshold=thr) == pytest.approx(per_image[0])


@given(instance_pairs(batch=True), st.integers(0, 2**32 - 1), st.booleans())
def test_instance_ap_with_scores_vs_loops(pair, seed, ties):
    preds, trues = pair
    rng = np.random.default_rng(seed)
    scores = [rng.integers(0, 3, p.max() + 1) / 2.0 if ties else rng.random(p.max() + 1) for p in preds]
    ranked = []                                                # (score, image, id, is_tp)
    num_true = 0
    for n, (p, t) in enumerate(zip(preds, trues)):
        pred_ids, true_ids, _, pairs = ref_match(p, t, 0.5)
        num_true += len(true_ids)
        matched = {a for a, _ in pairs}
        ranked += [(scores[n][k - 1], n, k, k in matched) for k in pred_ids]
    # descending score; ties keep image then id order
    ranked.sort(key=lambda r: (-r[0], r[1], r[2]))
    want = ref_all_point_ap([r[3] for r in ranked], num_true) if num_true and ranked else 0.0
    assert M.instance_average_precision(preds, trues, scores=scores) == pytest.approx(want, abs=1e-12)


def test_instance_ap_hand_case_and_errors():
    true = np.zeros((4, 8), dtype=np.int64)
    true[:, 0:2], true[:, 3:5], true[:, 6:8] = 1, 2, 3
    pred = true.copy()
    pred[:, 3:5] = 0                                            # nucleus 2 missed
    pred[0, 3] = 4                                              # a speck: false positive
    # ranked: 4 (fp), 1 (tp), 3 (tp): precision 0, 1/2, 2/3 at recall 0, 1/3, 2/3 -> AP = 2/3 * 2/3
    assert M.instance_average_precision(pred, true, scores=[0.8, 0.0, 0.5, 0.9]) == pytest.approx(4 / 9)
    assert M.instance_average_precision(pred, true) == pytest.approx(2 / 4)       # TP / (TP + FP + FN)
    assert M.instance_f1(pred, true)["f1"] == pytest.approx(4 / 6)
    assert M.instance_average_precision(np.zeros((2, 2), int), np.zeros((2, 2), int), scores=[]) == 0.0
    with pytest.raises(ValueError, match=r"instance_average_precision: image 0 has instance id 4 but only 3 scores"):
        M.instance_average_precision(pred, true, scores=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"match_instances: iou_threshold must lie in \[0.5, 1\]"):
        M.match_instances(pred, true, 0.3)
    with pytest.raises(ValueError, match=r"match_instances: pred and true must be instance masks \(H, W\)"):
        M.match_instances(pred, true[:, :4])
    with pytest.raises(TypeError, match="instance_f1: pred must hold integer instance ids"):
        M.instance_f1(pred.astype(float), true)
