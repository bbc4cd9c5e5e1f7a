"""R-CNN and Fast R-CNN over selective-search proposals.

Oracles: plain-loop NumPy references written here (bilinear warping with context padding, proposal
labelling, box encoding/decoding, per-class NMS), PyTorch's cross-entropy and smooth-L1 for the
multi-task loss, and cpu vs cuda-emu parity.
"""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minicnn as mc
from minicnn.data.detection import digit_detection
from minicnn.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder
from minicnn.models.detection.fast_rcnn import (assign_proposals, detections_from_logits, fastrcnn_small,
                                                sample_proposals)
from minicnn.models.detection.rcnn import dilate_boxes, rcnn_small, warp_regions

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _canvases(n, seed=0):
    ds = digit_detection(n, canvas=32, digits_per_image=(1, 2), size_range=(10, 16), split="train", seed=seed)
    return ds.images, ds.targets


# ---- warping --------------------------------------------------------------------------------------

def _warp_reference(image, box, S, p):
    C, H, W = image.shape
    x1, y1, x2, y2 = box
    dx, dy = p * (x2 - x1) / (S - 2 * p), p * (y2 - y1) / (S - 2 * p)
    x1, x2, y1, y2 = x1 - dx, x2 + dx, y1 - dy, y2 + dy
    out = np.zeros((C, S, S))

    def pix(c, i, j):
        return float(image[c, i, j]) if 0 <= i < H and 0 <= j < W else 0.0

    for c in range(C):
        for v in range(S):
            for u in range(S):
                x = x1 + (u + 0.5) * (x2 - x1) / S - 0.5
                y = y1 + (v + 0.5) * (y2 - y1) / S - 0.5
                j, i = math.floor(x), math.floor(y)
                a, b = x - j, y - i
                out[c, v, u] = ((1 - b) * (1 - a) * pix(c, i, j) + (1 - b) * a * pix(c, i, j + 1)
                                + b * (1 - a) * pix(c, i + 1, j) + b * a * pix(c, i + 1, j + 1))
    return out


@given(st.integers(0, 2 ** 31 - 1), st.integers(1, 2), st.sampled_from([(6, 0), (8, 1), (9, 2.5)]))
def test_warp_regions_matches_plain_loops(seed, C, geometry):
    S, p = geometry
    rng = np.random.default_rng(seed)
    image = rng.random((C, 11, 13)).astype(np.float32)
    x1, y1 = rng.uniform(-3, 10, 2)
    boxes = np.array([[x1, y1, x1 + rng.uniform(0.5, 9), y1 + rng.uniform(0.5, 9)], [0, 0, 13, 11]])
    got = warp_regions(image, boxes, S, p)
    assert got.shape == (2, C, S, S) and got.dtype == np.float32
    for r in range(2):
        np.testing.assert_allclose(got[r], _warp_reference(image, boxes[r], S, p), atol=2e-6)


def test_dilate_boxes_paper_geometry():
    # 227-pixel warp, 16 pixels of context: a 195-pixel box grows by exactly 16 on each side
    np.testing.assert_allclose(dilate_boxes([[10, 20, 205, 215]], 227, 16), [[-6, 4, 221, 231]])
    with pytest.raises(ValueError, match="warp_size"):
        dilate_boxes([[0, 0, 1, 1]], 8, 4)


# ---- proposal labelling and sampling -------------------------------------------------------------

def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _encode(g, p, w):
    pw, ph, gw, gh = p[2] - p[0], p[3] - p[1], g[2] - g[0], g[3] - g[1]
    return [w[0] * ((g[0] + gw / 2) - (p[0] + pw / 2)) / pw, w[1] * ((g[1] + gh / 2) - (p[1] + ph / 2)) / ph,
            w[2] * math.log(gw / pw), w[3] * math.log(gh / ph)]


@given(st.integers(0, 2 ** 31 - 1), st.integers(0, 3))
def test_assign_proposals_matches_plain_loops(seed, G):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 20, (30, 2))
    props = np.concatenate([xy, xy + rng.uniform(2, 12, (30, 2))], axis=1)
    gxy = rng.uniform(0, 20, (G, 2))
    gt = np.concatenate([gxy, gxy + rng.uniform(3, 10, (G, 2))], axis=1)
    props[:G] = gt + rng.uniform(-1, 1, (G, 4))          # a few near-hits
    gl = rng.integers(1, 5, G)
    labels, matched = assign_proposals(props, gt, gl, 0.5, 0.5, 0.1)
    for k, p in enumerate(props):
        if G == 0:
            assert labels[k] == 0
            continue
        ious = [_iou(g, p) for g in gt]
        best = int(np.argmax(ious))
        m = ious[best]
        want = gl[best] if m >= 0.5 else (0 if m >= 0.1 else -1)
        assert labels[k] == want, (k, ious)
        assert matched[k] == best


def test_sample_proposals_fraction_and_targets():
    rng = np.random.default_rng(0)
    gt = np.array([[10, 10, 30, 34], [40, 5, 60, 20]], np.float32)
    jitter = rng.uniform(-3, 3, (200, 4)).astype(np.float32)
    shift = np.tile(rng.choice([-1, 1], (200, 2)) * rng.uniform(7, 12, (200, 2)), 2)   # IoU about 0.2-0.45
    far = np.tile(rng.uniform(70, 90, (20, 2)), 2) + np.array([0, 0, 8, 8])            # IoU 0: not sampled
    props = np.concatenate([gt[rng.integers(0, 2, 200)] + jitter, gt[rng.integers(0, 2, 200)] + shift,
                            far]).astype(np.float32)
    t = {"boxes": gt, "labels": np.array([3, 7])}
    sampler = BalancedPositiveNegativeSampler(64, 0.25, rng=1)
    boxes, labels, reg = sample_proposals([props], [t], sampler, (10.0, 10.0, 5.0, 5.0))
    b, lab, r = boxes[0], labels[0], reg[0]
    assert len(b) == 64 and (lab > 0).sum() == 16 and (lab == 0).sum() == 48
    for k in range(len(b)):
        ious = [_iou(g, b[k]) for g in gt]
        if lab[k] > 0:
            g = int(np.argmax(ious))
            assert ious[g] >= 0.5 and lab[k] == t["labels"][g]
            np.testing.assert_allclose(r[k], _encode(gt[g].astype(float), b[k].astype(float), (10, 10, 5, 5)),
                                       rtol=1e-6, atol=1e-6)
        else:
            assert 0.1 <= max(ious) < 0.5 and not r[k].any()


# ---- inference decoding ---------------------------------------------------------------------------

def _nms_reference(boxes, scores, thresh):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(_iou(boxes[i], boxes[j]) <= thresh for j in keep):
            keep.append(i)
    return keep


def test_detections_from_logits_match_plain_loops():
    rng = np.random.default_rng(3)
    props = np.concatenate([rng.uniform(0, 30, (12, 2)), rng.uniform(0, 30, (12, 2)) + 6], axis=1)
    props[:, 2:] = np.maximum(props[:, 2:], props[:, :2] + 2)
    C = 4
    logits = rng.normal(0, 2, (12, C)).astype(np.float32)
    deltas = rng.normal(0, 0.5, (12, 4 * C)).astype(np.float32)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    det = detections_from_logits(mc.Tensor(logits), mc.Tensor(deltas), [props.astype(np.float32)], [(40, 44)],
                                 coder, 0.05, 0.3, 100)[0]
    cand = []
    for k in range(12):
        e = np.exp(logits[k].astype(np.float64) - logits[k].max())
        prob = e / e.sum()
        p = props[k]
        pw, ph = p[2] - p[0], p[3] - p[1]
        for c in range(1, C):
            dx, dy, dw, dh = deltas[k, 4 * c:4 * c + 4] / np.array([10, 10, 5, 5])
            cx, cy, w, h = p[0] + pw / 2 + dx * pw, p[1] + ph / 2 + dy * ph, pw * math.exp(dw), ph * math.exp(dh)
            box = [min(max(cx - w / 2, 0), 44), min(max(cy - h / 2, 0), 40), min(max(cx + w / 2, 0), 44),
                   min(max(cy + h / 2, 0), 40)]
            if prob[c] > 0.05 and box[2] - box[0] >= 1e-2 and box[3] - box[1] >= 1e-2:
                cand.append((box, prob[c], c))
    want = []
    for c in range(1, C):
        cls = [x for x in cand if x[2] == c]
        want += [cls[i] for i in _nms_reference([x[0] for x in cls], [x[1] for x in cls], 0.3)]
    want.sort(key=lambda x: -x[1])
    assert len(det["boxes"]) == len(want) > 0
    np.testing.assert_allclose(det["scores"], [w[1] for w in want], rtol=1e-5)
    np.testing.assert_array_equal(det["labels"], [w[2] for w in want])
    np.testing.assert_allclose(det["boxes"], [w[0] for w in want], rtol=1e-4, atol=1e-3)


# ---- Fast R-CNN -----------------------------------------------------------------------------------

def _tiny_fast(**kw):
    return fastrcnn_small(widths=(4, 8), representation_size=16, image_size=32, generator=0, **kw)


def test_fast_rcnn_loss_matches_torch():
    torch = pytest.importorskip("torch")
    x, t = _canvases(2)
    m = _tiny_fast()
    props = [m.proposal_cache(im) for im in x]
    losses = m([mc.Tensor(im) for im in x], t, props)
    # the same sample and forward, outside the model
    sampler = BalancedPositiveNegativeSampler(64, 0.25, rng=np.random.default_rng(0))
    boxes, labels, reg = sample_proposals(props, t, sampler, (10.0, 10.0, 5.0, 5.0))
    feats = m.backbone(mc.Tensor(np.asarray(x)))
    cl, br = m.box_predictor(m.roi_features(feats, boxes))
    lab = torch.tensor(np.concatenate(labels))
    ce = torch.nn.functional.cross_entropy(torch.tensor(cl.numpy()), lab)
    fg = torch.nonzero(lab > 0).flatten()
    pred = torch.tensor(br.numpy()).reshape(len(lab), -1, 4)[fg, lab[fg]]
    sl1 = torch.nn.functional.smooth_l1_loss(pred, torch.tensor(np.concatenate(reg)[fg.numpy()], dtype=pred.dtype),
                                             beta=1 / 9, reduction="sum") / len(lab)
    assert len(fg) > 0
    np.testing.assert_allclose(losses["loss_classifier"].item(), ce.item(), rtol=1e-5)
    np.testing.assert_allclose(losses["loss_box_reg"].item(), sl1.item(), rtol=1e-5)
    (losses["loss_classifier"] + losses["loss_box_reg"]).backward()
    assert np.abs(m.backbone.features[0].weight.grad.numpy()).sum() > 0


@pytest.mark.parametrize("dev", ["cpu", "cuda-emu"])
def test_fast_rcnn_step_and_inference_on_device(dev):
    x, t = _canvases(2)
    m = _tiny_fast().to(dev)
    opt = mc.optim.SGD(m.parameters(), lr=0.01)
    images = [mc.Tensor(im, device=dev) for im in x]
    loss = m(images, t)
    total = loss["loss_classifier"] + loss["loss_box_reg"]
    assert np.isfinite(total.item())
    total.backward()
    opt.step()
    m.eval()
    m.score_thresh = 0.0
    det = m(images)
    assert len(det) == 2 and len(det[0]["boxes"]) > 0 and det[0]["labels"].dtype == np.int64
    assert np.all(det[0]["boxes"] >= 0) and np.all(det[0]["boxes"] <= 32)
    assert np.all(np.diff(det[0]["scores"]) <= 0) and set(det[0]["labels"]) <= set(range(1, 11))


def test_fast_rcnn_cpu_and_cuda_emu_agree():
    x, t = _canvases(2)
    a_model, b_model = _tiny_fast(), _tiny_fast()
    b_model.load_state_dict(a_model.state_dict())
    props = [a_model.proposal_cache(im) for im in x]
    a = a_model([mc.Tensor(im) for im in x], t, props)
    b = b_model.to("cuda-emu")([mc.Tensor(im, device="cuda-emu") for im in x], t, props)
    for k in a:
        np.testing.assert_allclose(a[k].item(), b[k].item(), rtol=1e-4)


def test_fast_rcnn_image_without_objects_trains():
    x, _ = _canvases(2)
    empty = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}
    m = _tiny_fast()
    loss = m([mc.Tensor(x[0]), mc.Tensor(np.zeros_like(x[1]))], [empty, empty])
    assert np.isfinite(loss["loss_classifier"].item()) and loss["loss_box_reg"].item() == 0.0
    (loss["loss_classifier"] + loss["loss_box_reg"]).backward()


def test_fast_rcnn_bad_input():
    x, t = _canvases(1)
    m = _tiny_fast()
    im = [mc.Tensor(x[0])]
    with pytest.raises(ValueError, match="x2 < x1"):
        m(im, t, [np.array([[5, 5, 2, 9]], np.float32)])
    with pytest.raises(ValueError, match="NaN"):
        m(im, t, [np.array([[5, 5, np.nan, 9]], np.float32)])
    with pytest.raises(ValueError, match="one per image"):
        m(im, t, [])
    with pytest.raises(ValueError, match="label"):
        m(im, [{"boxes": t[0]["boxes"], "labels": np.full(len(t[0]["labels"]), 11)}])
    with pytest.raises(ValueError, match="x1 < x2"):
        m(im, [{"boxes": np.array([[9, 1, 2, 5]], np.float32), "labels": np.array([1])}])
    with pytest.raises(ValueError, match="3-D"):
        m([mc.Tensor(x[0][0])], t)
    with pytest.raises(ValueError, match="num_classes"):
        fastrcnn_small(num_classes=1)


# ---- R-CNN ----------------------------------------------------------------------------------------

def _tiny_rcnn(**kw):
    return rcnn_small(warp_size=8, widths=(4,), representation_size=16, generator=0, max_test_proposals=40, **kw)


@pytest.mark.parametrize("dev", ["cpu", "cuda-emu"])
def test_rcnn_step_and_inference_on_device(dev):
    x, t = _canvases(2)
    m = _tiny_rcnn().to(dev)
    opt = mc.optim.SGD(m.parameters(), lr=0.01)
    images = [mc.Tensor(im, device=dev) for im in x]
    loss = m(images, t)
    total = loss["loss_classifier"] + loss["loss_box_reg"]
    assert np.isfinite(total.item())
    total.backward()
    assert np.abs(m.box_head.fc6.weight.grad.numpy()).sum() > 0
    opt.step()
    m.eval()
    m.score_thresh = 0.0
    det = m(images)
    assert len(det) == 2 and len(det[0]["boxes"]) > 0
    assert np.all(det[0]["boxes"] >= 0) and np.all(det[0]["boxes"] <= 32)
    assert np.all(np.diff(det[0]["scores"]) <= 0)


def test_rcnn_loss_matches_torch_and_crops():
    torch = pytest.importorskip("torch")
    x, t = _canvases(1)
    m = _tiny_rcnn()
    props = [m.proposal_cache(im) for im in x]
    losses = m([mc.Tensor(x[0])], t, props)
    sampler = BalancedPositiveNegativeSampler(64, 0.25, rng=np.random.default_rng(0))
    boxes, labels, reg = sample_proposals(props, t, sampler, (10.0, 10.0, 5.0, 5.0), 0.5, 0.5, 0.0)
    crops = np.stack([_warp_reference(x[0], b, 8, m.context_padding) for b in boxes[0]]).astype(np.float32)
    cl, br = m.box_predictor(m.box_head(m.features(mc.Tensor(crops))))
    lab = torch.tensor(labels[0])
    ce = torch.nn.functional.cross_entropy(torch.tensor(cl.numpy()), lab)
    fg = torch.nonzero(lab > 0).flatten()
    pred = torch.tensor(br.numpy()).reshape(len(lab), -1, 4)[fg, lab[fg]]
    sl1 = torch.nn.functional.smooth_l1_loss(pred, torch.tensor(reg[0][fg.numpy()], dtype=pred.dtype), beta=1 / 9,
                                             reduction="sum") / len(lab)
    np.testing.assert_allclose(losses["loss_classifier"].item(), ce.item(), rtol=1e-4)
    np.testing.assert_allclose(losses["loss_box_reg"].item(), sl1.item(), rtol=1e-4, atol=1e-7)


def test_rcnn_empty_image_and_bad_input():
    x, t = _canvases(1)
    m = _tiny_rcnn()
    empty = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}
    loss = m([mc.Tensor(np.zeros_like(x[0])), mc.Tensor(x[0])], [empty, t[0]])
    assert np.isfinite(loss["loss_classifier"].item())
    m.eval()
    assert len(m([mc.Tensor(x[0])], None, [np.zeros((0, 4), np.float32)])[0]["boxes"]) == 0
    m.train()
    with pytest.raises(ValueError, match="x2 < x1"):
        m([mc.Tensor(x[0])], t, [np.array([[5, 5, 2, 9]], np.float32)])
    with pytest.raises(ValueError, match="warp_size"):
        rcnn_small(warp_size=8, context_padding=4)
