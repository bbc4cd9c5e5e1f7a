"""Detection pieces: BoxCoder, Matcher, BalancedPositiveNegativeSampler, postprocess_detections.

Oracles: a PyTorch twin of torchvision's Matcher rules written here, torchvision itself where it
imports (``/tmp/tv/bin/python -m pytest -q tests/test_det_utils.py -k torchvision``), and plain
loops for the post-processing.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from minicnn.models.detection import BalancedPositiveNegativeSampler, BoxCoder, Matcher, postprocess_detections

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# IoU values drawn from a small set, so matrices hold ties (within a column, within a row) and
# values exactly at the thresholds.
NO_TORCHVISION = "torchvision does not import beside the CPU torch 2.13 of the test extras"
LEVELS = np.array([0.0, 0.1, 0.3, 0.4, 0.5, 0.7, 0.9, 1.0])


def iou_matrix(seed, G, P):
    rng = np.random.default_rng(seed)
    return LEVELS[rng.integers(len(LEVELS), size=(G, P))].astype(np.float32)


def torch_matcher(m, high, low, allow_low_quality):
    """torchvision's Matcher rules written with torch ops."""
    import torch

    m = torch.from_numpy(m)
    vals, matches = m.max(dim=0)
    best_overall = matches.clone()
    matches[vals < low] = -1
    matches[(vals >= low) & (vals < high)] = -2
    if allow_low_quality:
        best_per_gt, _ = m.max(dim=1)
        _, preds = torch.where(m == best_per_gt[:, None])
        matches[preds] = best_overall[preds]
    return matches.numpy()


@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(1, 12),
       st.sampled_from([(0.7, 0.3), (0.5, 0.5), (0.5, 0.4), (0.9, 0.1)]), st.booleans())
def test_matcher_equals_torch_twin(seed, G, P, thresholds, allow):
    pytest.importorskip("torch")
    m = iou_matrix(seed, G, P)
    ours = Matcher(*thresholds, allow_low_quality_matches=allow)(m)
    np.testing.assert_array_equal(ours, torch_matcher(m, *thresholds, allow))
    assert ours.dtype == np.int64


def test_matcher_hand_example():
    # columns: predictions; rows: ground truths
    m = np.array([[0.9, 0.5, 0.2, 0.1],
                  [0.1, 0.6, 0.25, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(Matcher(0.7, 0.3)(m), [0, -2, -1, -1])
    # gt 1's best is prediction 1 (0.6) -> kept; gt 0's best (pred 0) is matched anyway
    np.testing.assert_array_equal(Matcher(0.7, 0.3, True)(m), [0, 1, -1, -1])
    assert Matcher.BELOW_LOW_THRESHOLD == -1 and Matcher.BETWEEN_THRESHOLDS == -2


def test_matcher_errors():
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        Matcher(0.7, 0.3)(np.zeros((0, 5)))
    with pytest.raises(ValueError, match="no proposal boxes"):
        Matcher(0.7, 0.3)(np.zeros((2, 0)))
    with pytest.raises(ValueError, match="low_threshold"):
        Matcher(0.3, 0.7)


def test_matcher_against_torchvision():
    tv = pytest.importorskip("torchvision", reason=NO_TORCHVISION)
    import torch
    from torchvision.models.detection._utils import Matcher as TVMatcher

    for seed in range(200):
        rng = np.random.default_rng(seed)
        G, P = int(rng.integers(1, 6)), int(rng.integers(1, 15))
        m = iou_matrix(seed, G, P)
        for high, low in ((0.7, 0.3), (0.5, 0.5)):
            for allow in (False, True):
                want = TVMatcher(high, low, allow)(torch.from_numpy(m)).numpy()
                np.testing.assert_array_equal(Matcher(high, low, allow)(m), want, err_msg=f"seed {seed}")
    assert tv is not None


@given(st.integers(0, 10_000), st.integers(0, 300), st.sampled_from([(256, 0.5), (512, 0.25), (8, 0.5)]))
def test_sampler_counts(seed, n, config):
    batch, fraction = config
    labels = np.random.default_rng(seed).choice([-1, 0, 1, 3], size=n, p=[0.2, 0.6, 0.1, 0.1])
    pos, neg = BalancedPositiveNegativeSampler(batch, fraction, rng=seed)([labels])
    n_pos, n_neg = int((labels >= 1).sum()), int((labels == 0).sum())
    want_pos = min(n_pos, int(batch * fraction))
    assert pos[0].sum() == want_pos
    assert neg[0].sum() == min(n_neg, batch - want_pos)
    assert (labels[pos[0]] >= 1).all() and (labels[neg[0]] == 0).all()
    assert not (pos[0] & neg[0]).any()


def test_sampler_is_deterministic_with_a_seed_and_uniform():
    labels = np.zeros(100, dtype=np.int64)
    labels[:10] = 1
    a = BalancedPositiveNegativeSampler(8, 0.25, rng=3)([labels, labels])
    b = BalancedPositiveNegativeSampler(8, 0.25, rng=3)([labels, labels])
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    # two images of one call draw differently; every negative is drawn about equally often
    assert not np.array_equal(a[1][0], a[1][1])
    sampler = BalancedPositiveNegativeSampler(8, 0.25, rng=0)
    counts = sum(sampler([labels])[1][0].astype(int) for _ in range(2000))
    assert counts[:10].sum() == 0
    expected = 2000 * 6 / 90
    assert np.abs(counts[10:] - expected).max() < 6 * np.sqrt(expected)


def test_sampler_against_torchvision_counts():
    pytest.importorskip("torchvision", reason=NO_TORCHVISION)
    import torch
    from torchvision.models.detection._utils import BalancedPositiveNegativeSampler as TVSampler

    rng = np.random.default_rng(0)
    for _ in range(50):
        labels = rng.choice([-1, 0, 1, 2], size=int(rng.integers(0, 400)))
        tp, tn = TVSampler(256, 0.5)([torch.from_numpy(labels)])
        p, n = BalancedPositiveNegativeSampler(256, 0.5, rng=1)([labels])
        assert p[0].sum() == int(tp[0].sum()) and n[0].sum() == int(tn[0].sum())


def random_boxes(rng, n, lo=1.0):
    xy = rng.uniform(0, 50, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(lo, 30, (n, 2))], 1).astype(np.float32)


def test_box_coder_round_trip_and_formula():
    rng = np.random.default_rng(0)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    g, p = random_boxes(rng, 7), random_boxes(rng, 7)
    (codes,) = coder.encode([g], [p])
    # the formula, written out
    pw, ph = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    want = np.stack([10 * ((g[:, 0] + gw / 2) - (p[:, 0] + pw / 2)) / pw,
                     10 * ((g[:, 1] + gh / 2) - (p[:, 1] + ph / 2)) / ph,
                     5 * np.log(gw / pw), 5 * np.log(gh / ph)], 1)
    np.testing.assert_allclose(codes, want, rtol=1e-5, atol=1e-5)
    decoded = coder.decode(codes, [p[:3], p[3:]])
    assert decoded.shape == (7, 1, 4)
    np.testing.assert_allclose(decoded[:, 0], g, rtol=1e-5, atol=1e-4)


def test_box_coder_against_torchvision():
    pytest.importorskip("torchvision", reason=NO_TORCHVISION)
    import torch
    from torchvision.models.detection._utils import BoxCoder as TVBoxCoder

    rng = np.random.default_rng(1)
    g, p = random_boxes(rng, 20), random_boxes(rng, 20)
    for weights in ((1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)):
        tv, ours = TVBoxCoder(weights), BoxCoder(weights)
        want = tv.encode([torch.from_numpy(g)], [torch.from_numpy(p)])[0].numpy()
        np.testing.assert_allclose(ours.encode([g], [p])[0], want, rtol=1e-5, atol=1e-5)
        codes = rng.normal(0, 2, (20, 8)).astype(np.float32)
        codes[0, 2] = 50.0                                   # beyond the clamp
        want = tv.decode(torch.from_numpy(codes), [torch.from_numpy(p)]).numpy()
        np.testing.assert_allclose(ours.decode(codes, [p]), want, rtol=1e-5, atol=1e-3)


def reference_postprocess(boxes, scores, labels, size, score_thresh, nms_thresh, k, min_size):
    """Plain loops: clip, threshold, small boxes, greedy NMS per class over a stable score order."""
    H, W = size
    b = boxes.astype(np.float64).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, W)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, H)
    cand = [i for i in range(len(b)) if scores[i] > score_thresh
            and b[i, 2] - b[i, 0] >= min_size and b[i, 3] - b[i, 1] >= min_size]
    cand.sort(key=lambda i: -scores[i])
    kept = []
    for i in cand:
        ok = True
        for j in kept:
            if labels[j] != labels[i]:
                continue
            iw = max(0.0, min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]))
            ih = max(0.0, min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]))
            inter = iw * ih
            union = (b[i, 2] - b[i, 0]) * (b[i, 3] - b[i, 1]) + (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1]) - inter
            if union > 0 and inter / union > nms_thresh:
                ok = False
                break
        if ok:
            kept.append(i)
    return kept[:k], b


@given(st.integers(0, 10_000), st.integers(0, 40))
def test_postprocess_detections_equals_plain_loops(seed, n):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, n, lo=0.0) - 5
    scores = rng.random(n).astype(np.float32)
    labels = rng.integers(1, 4, n)
    out = postprocess_detections(boxes, scores, labels, (60, 70), 0.2, 0.4, 10, 1.0)
    kept, clipped = reference_postprocess(boxes, scores, labels, (60, 70), 0.2, 0.4, 10, 1.0)
    np.testing.assert_allclose(out["boxes"], clipped[kept].reshape(-1, 4), rtol=1e-6)
    np.testing.assert_array_equal(out["labels"], labels[kept])
    np.testing.assert_array_equal(out["scores"], scores[kept])


def test_postprocess_bad_input():
    with pytest.raises(ValueError, match="postprocess_detections"):
        postprocess_detections(np.zeros((3, 4)), np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="BoxCoder"):
        BoxCoder((1.0, 1.0, 0.0, 1.0))
