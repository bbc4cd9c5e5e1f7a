"""Faster R-CNN (+FPN): LevelMapper, MultiScaleRoIAlign, the RPN, the box head and the whole model.

Oracles: plain-loop NumPy references written here (FPN level rule, anchor matching, box coding),
PyTorch twins of the heads with torchvision's module names, PyTorch's losses, finite differences,
and torchvision itself where it imports (``/tmp/tv/bin/python -m pytest -q tests/test_faster_rcnn.py
-k torchvision``; the parity runs ResNet-50-FPN at ``min_size=224, max_size=320`` on both sides).
"""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.models.detection.anchor_utils import AnchorGenerator
from minicnn.models.detection.faster_rcnn import (FastRCNNPredictor, TwoMLPHead, fasterrcnn_resnet50_fpn,
                                                  fasterrcnn_small)
from minicnn.models.detection.poolers import LevelMapper, MultiScaleRoIAlign
from minicnn.models.detection.roi_heads import fastrcnn_loss
from minicnn.models.detection.rpn import RegionProposalNetwork, RPNHead, concat_box_prediction_layers
from minicnn.models.detection.transform import ImageList
from minicnn.testing import gradcheck

NO_TORCHVISION = "torchvision does not import beside the CPU torch 2.13 of the test extras"
pytestmark = pytest.mark.usefixtures("torch_one_thread")


# ---- LevelMapper and MultiScaleRoIAlign --------------------------------------------------------------

def _level_reference(box, k_min, k_max):
    """FPN eq. 1 in float64 with Python's math: clamp(floor(4 + log2(sqrt(area)/224) + 1e-6))."""
    s = math.sqrt((box[2] - box[0]) * (box[3] - box[1]))
    k = math.floor(4 + math.log2(s / 224) + 1e-6)
    return min(max(k, k_min), k_max) - k_min, 4 + math.log2(s / 224) + 1e-6


@given(st.lists(st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(1, 900), st.floats(1, 900)),
                min_size=1, max_size=20))
def test_level_mapper_matches_the_fpn_rule(rows):
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in rows], np.float32)
    got = LevelMapper(2, 5)([boxes[:3], boxes[3:]])
    for b, g in zip(boxes.astype(np.float64), got):
        want, raw = _level_reference(b, 2, 5)
        if abs(raw - round(raw)) > 1e-4:  # away from a level boundary, float32 and float64 agree
            assert g == want


def test_level_mapper_canonical_boxes_and_eps():
    # 224² -> level 4, 112² -> 3, 448² -> 5 (exact powers of two: eps keeps them on their level)
    boxes = np.array([[0, 0, 224, 224], [0, 0, 112, 112], [0, 0, 448, 448], [0, 0, 4, 4], [0, 0, 5000, 5000]],
                     np.float32)
    assert LevelMapper(2, 5)([boxes]).tolist() == [2, 1, 3, 0, 3]


def _pyramid(rng, channels=3, dtype=np.float32):
    """A 64 × 64 image's maps at strides 4, 8, 16, 32 (P2–P5)."""
    return {str(i): mc.Tensor(rng.standard_normal((2, channels, 64 >> (i + 2), 64 >> (i + 2))).astype(dtype))
            for i in range(4)}


def test_multiscale_roi_align_pools_each_box_from_its_level():
    rng = np.random.default_rng(0)
    x = _pyramid(rng)
    boxes = [np.array([[1, 2, 9, 12], [0, 0, 63, 63], [5, 5, 40, 30]], np.float32),
             np.array([[3, 3, 60, 20], [10, 10, 12, 11]], np.float32)]
    pool = MultiScaleRoIAlign(["0", "1", "2", "3"], 5, 2)
    got = pool(x, boxes, [(64, 64), (60, 50)]).numpy()
    row = 0
    for img, b in enumerate(boxes):
        for box in b.astype(np.float64):
            level, _ = _level_reference(box, 2, 5)
            scale = 1.0 / 2 ** (level + 2)
            want = F.roi_align(x[str(level)], np.array([[img, *box]], np.float32), 5, scale, 2).numpy()[0]
            np.testing.assert_array_equal(got[row], want)
            row += 1
    scales, mapper = pool.setup_scales(list(x.values()), [(64, 64), (60, 50)])
    assert scales == [1 / 4, 1 / 8, 1 / 16, 1 / 32] and (mapper.k_min, mapper.k_max) == (2, 5)


def test_multiscale_roi_align_gradient():
    rng = np.random.default_rng(1)
    x = _pyramid(rng, channels=1, dtype=np.float64)
    feats = [x["0"], x["2"]]
    for f in feats:
        f.requires_grad = True
    boxes = [np.array([[1, 2, 9, 12], [2, 3, 60, 50]]), np.array([[3, 3, 30, 20]])]
    pool = MultiScaleRoIAlign(["0", "2"], 2, 2)
    gradcheck(lambda a, b: pool({"0": a, "2": b}, boxes, [(64, 64), (64, 64)]), feats)


# ---- heads against PyTorch twins ----------------------------------------------------------------------

def _torch_rpn_head(torch, c, a):
    nn = torch.nn

    class Head(nn.Module):  # torchvision's RPNHead names: conv.0.0, cls_logits, bbox_pred
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU()))
            self.cls_logits = nn.Conv2d(c, a, 1)
            self.bbox_pred = nn.Conv2d(c, 4 * a, 1)

        def forward(self, xs):
            ts = [self.conv(x) for x in xs]
            return [self.cls_logits(t) for t in ts], [self.bbox_pred(t) for t in ts]

    return Head()


def test_rpn_head_and_flattening_match_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = _torch_rpn_head(torch, 4, 3)
    for p in ref.parameters():
        torch.nn.init.normal_(p, std=0.3)
    head = RPNHead(4, 3)
    head.load_state_dict(ref.state_dict())
    xs = [np.random.default_rng(i).standard_normal((2, 4, 6 - i, 5)).astype(np.float32) for i in range(2)]
    logits, reg = head([mc.Tensor(x) for x in xs])
    tl, tr = ref([torch.tensor(x) for x in xs])
    for a, b in zip(logits + reg, tl + tr):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-5)
    # torchvision's permute_and_flatten: view (N, A, C, H, W) -> permute (0, 3, 4, 1, 2) -> (N, -1, C)
    flat = lambda t, C: t.view(t.shape[0], -1, C, *t.shape[2:]).permute(0, 3, 4, 1, 2).reshape(t.shape[0], -1, C)
    want_cls = torch.cat([flat(t, 1) for t in tl], 1).flatten(0, -2)
    want_reg = torch.cat([flat(t, 4) for t in tr], 1).reshape(-1, 4)
    got_cls, got_reg = concat_box_prediction_layers(logits, reg)
    np.testing.assert_allclose(got_cls.numpy(), want_cls.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_reg.numpy(), want_reg.detach().numpy(), rtol=1e-5, atol=1e-5)


def test_box_head_and_predictor_match_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tnn = torch.nn
    ref_head = tnn.Module()
    ref_head.fc6, ref_head.fc7 = tnn.Linear(3 * 7 * 7, 16), tnn.Linear(16, 16)
    ref_pred = tnn.Module()
    ref_pred.cls_score, ref_pred.bbox_pred = tnn.Linear(16, 4), tnn.Linear(16, 16)
    head, pred = TwoMLPHead(3 * 7 * 7, 16), FastRCNNPredictor(16, 4)
    head.load_state_dict(ref_head.state_dict())
    pred.load_state_dict(ref_pred.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 3, 7, 7)).astype(np.float32)
    t = torch.relu(ref_head.fc7(torch.relu(ref_head.fc6(torch.tensor(x).flatten(1)))))
    scores, deltas = pred(head(mc.Tensor(x)))
    np.testing.assert_allclose(scores.numpy(), ref_pred.cls_score(t).detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(deltas.numpy(), ref_pred.bbox_pred(t).detach().numpy(), rtol=1e-5, atol=1e-5)


# ---- losses -----------------------------------------------------------------------------------------------

def test_fastrcnn_loss_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    K, C = 7, 4
    logits, reg = rng.standard_normal((K, C)), rng.standard_normal((K, 4 * C)) * 0.3
    labels = [np.array([0, 2, 3, 0]), np.array([1, 0, 3])]
    targets = [rng.standard_normal((4, 4)) * 0.3, rng.standard_normal((3, 4)) * 0.3]
    x, r = mc.Tensor(logits, requires_grad=True), mc.Tensor(reg, requires_grad=True)
    cls_loss, box_loss = fastrcnn_loss(x, r, labels, targets)
    (cls_loss + box_loss).backward()
    tx, tr = torch.tensor(logits, requires_grad=True), torch.tensor(reg, requires_grad=True)
    lab = torch.tensor(np.concatenate(labels))
    tgt = torch.tensor(np.concatenate(targets))
    pos = torch.where(lab > 0)[0]
    want_cls = torch.nn.functional.cross_entropy(tx, lab)
    want_box = torch.nn.functional.smooth_l1_loss(tr.reshape(K, C, 4)[pos, lab[pos]], tgt[pos], beta=1 / 9,
                                                  reduction="sum") / K
    (want_cls + want_box).backward()
    assert cls_loss.item() == pytest.approx(want_cls.item(), rel=1e-12)
    assert box_loss.item() == pytest.approx(want_box.item(), rel=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(r.grad.numpy(), tr.grad.numpy(), rtol=1e-12)


def _iou(a, b):
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _anchor_labels_reference(gt, anchors, hi=0.7, lo=0.3):
    """Faster R-CNN's anchor rule with loops: best gt per anchor, thresholds, then each gt's best anchors."""
    iou = np.array([[_iou(g, a) for a in anchors] for g in gt])
    labels = np.empty(len(anchors))
    matched = iou.argmax(0)
    for j in range(len(anchors)):
        best = iou[matched[j], j]
        labels[j] = 1.0 if best >= hi else (0.0 if best < lo else -1.0)
    for i in range(len(gt)):
        for j in range(len(anchors)):
            if iou[i, j] == iou[i].max():
                labels[j] = 1.0
    return labels, matched


def test_rpn_losses_match_a_hand_computation():
    torch = pytest.importorskip("torch")
    mc.manual_seed(0)
    gen = AnchorGenerator(((16,), (32,)), ((0.5, 1.0, 2.0),) * 2)
    rpn = RegionProposalNetwork(gen, RPNHead(4, 3), 0.7, 0.3, 10 ** 6, 0.5, {"training": 50, "testing": 50},
                                {"training": 20, "testing": 20}, 0.7)
    for p in rpn.head.parameters():  # spread the predictions
        p.data[...] = np.random.default_rng(p.size).standard_normal(p.shape).astype(np.float32) * 0.3
    rng = np.random.default_rng(0)
    feats = [mc.Tensor(rng.standard_normal((2, 4, 8, 8)).astype(np.float32)),
             mc.Tensor(rng.standard_normal((2, 4, 4, 4)).astype(np.float32))]
    images = ImageList(mc.zeros(2, 3, 64, 64), [(64, 64), (60, 64)])
    targets = [{"boxes": np.array([[5, 6, 30, 28], [30, 30, 62, 50]], np.float32)},
               {"boxes": np.zeros((0, 4), np.float32)}]
    boxes, losses = rpn(images, feats, targets)
    assert len(boxes) == 2 and all(len(b) <= 20 for b in boxes)
    anchors = gen(images, feats)[0].numpy().astype(np.float64)
    logits, reg = rpn.head(feats)
    obj, deltas = concat_box_prediction_layers(logits, reg)
    obj, deltas = obj.numpy().reshape(2, -1), deltas.numpy().reshape(2, -1, 4)
    lab0, matched0 = _anchor_labels_reference(targets[0]["boxes"].astype(np.float64), anchors)
    labels = np.concatenate([lab0, np.zeros(len(anchors))])
    sampled = labels >= 0
    want_obj = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(obj.reshape(-1)[sampled], dtype=torch.float64), torch.tensor(labels[sampled]))
    pos = np.flatnonzero(lab0 == 1)
    g, a = targets[0]["boxes"][matched0[pos]].astype(np.float64), anchors[pos]
    aw, ah, gw, gh = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1], g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    t = np.stack([((g[:, 0] + g[:, 2]) - (a[:, 0] + a[:, 2])) / 2 / aw, ((g[:, 1] + g[:, 3]) - (a[:, 1] + a[:, 3])) / 2 / ah,
                  np.log(gw / aw), np.log(gh / ah)], 1)
    want_box = torch.nn.functional.smooth_l1_loss(torch.tensor(deltas[0, pos], dtype=torch.float64), torch.tensor(t),
                                                  beta=1 / 9, reduction="sum") / sampled.sum()
    assert losses["loss_objectness"].item() == pytest.approx(want_obj.item(), rel=1e-5)
    assert losses["loss_rpn_box_reg"].item() == pytest.approx(want_box.item(), rel=1e-4)


# ---- the whole model --------------------------------------------------------------------------------------

def _tiny(**kw):
    mc.manual_seed(0)
    return fasterrcnn_small(num_classes=4, image_size=64, width=8, fpn_channels=16, representation_size=32,
                            generator=0, **kw)


def _batch(device, empty_second=False):
    rng = np.random.default_rng(0)
    images = [mc.Tensor(rng.random((1, 64, 64)).astype(np.float32), device=device),
              mc.Tensor(rng.random((1, 48, 64)).astype(np.float32), device=device)]
    targets = [{"boxes": np.array([[12, 10, 30, 40], [35, 5, 60, 30]], np.float32), "labels": np.array([3, 1])},
               {"boxes": np.array([[5, 5, 25, 20]], np.float32), "labels": np.array([2])}]
    if empty_second:
        targets[1] = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}
    return images, targets


def test_small_faster_rcnn_trains_and_detects(device):
    model = _tiny().to(device)
    images, targets = _batch(device)
    losses = model(images, targets)
    assert sorted(losses) == ["loss_box_reg", "loss_classifier", "loss_objectness", "loss_rpn_box_reg"]
    total = sum(losses.values(), mc.zeros(()).to(device))
    assert np.isfinite(total.item())
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    model.eval()
    out = model(images)
    for det, im in zip(out, images):
        assert det["boxes"].shape == (len(det["scores"]), 4) and det["labels"].dtype == np.int64
        assert (det["boxes"][:, [0, 2]] <= im.shape[2]).all() and (det["boxes"][:, [1, 3]] <= im.shape[1]).all()
        assert (np.diff(det["scores"]) <= 0).all() and ((det["labels"] >= 1) & (det["labels"] <= 3)).all()
    if device != "cpu":  # the same weights give the same detections on the CPU
        ref = _tiny()
        ref(*_batch("cpu"))  # the same BatchNorm running statistics
        for a, b in zip(out, ref.eval()(_batch("cpu")[0])):
            np.testing.assert_allclose(a["boxes"], b["boxes"], rtol=1e-4, atol=1e-3)
            np.testing.assert_array_equal(a["labels"], b["labels"])


def test_training_steps_lower_the_loss():
    model = _tiny()
    images, targets = _batch("cpu")
    opt = mc.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.02, momentum=0.9)
    first = None
    for _ in range(6):
        opt.zero_grad()
        loss = sum(model(images, targets).values())
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < first


def test_an_image_without_objects_trains_on_negatives():
    model = _tiny()
    images, targets = _batch("cpu", empty_second=True)
    targets[0] = targets[1]
    losses = model(images, targets)
    assert losses["loss_box_reg"].item() == 0 and losses["loss_rpn_box_reg"].item() == 0
    assert losses["loss_classifier"].item() > 0 and losses["loss_objectness"].item() > 0
    sum(losses.values()).backward()
    assert model.rpn.head.cls_logits.weight.grad is not None


@pytest.mark.parametrize("boxes, labels, match", [
    ([[30, 10, 12, 40]], [1], r"targets\[1\] box 0 must have x1 < x2"),
    ([[5, 5, 25, 20], [1, np.nan, 4, 9]], [1, 2], r"targets\[1\] box 1 is not finite"),
    ([[5, 5, 25, 20]], [4], r"targets\[1\] label of box 0 is 4, must lie in 1..3"),
    ([[5, 5, 25, 20]], [0], r"targets\[1\] label of box 0 is 0"),
    ([[5, 5, 25, 20]], [1, 2], r"targets\[1\] has 1 boxes but 2 labels"),
    ([5, 5, 25], [1], r"targets\[1\]\['boxes'\] must have shape \(G, 4\)"),
])
def test_bad_targets_name_the_image_and_box(boxes, labels, match):
    model = _tiny()
    images, targets = _batch("cpu")
    targets[1] = {"boxes": np.array(boxes, np.float32), "labels": np.array(labels)}
    with pytest.raises(ValueError, match=match):
        model(images, targets)


def test_bad_inputs():
    model = _tiny()
    images, _ = _batch("cpu")
    with pytest.raises(ValueError, match="targets must be given"):
        model(images)
    with pytest.raises(ValueError, match="image 0 must be 3-D"):
        model.eval()([mc.zeros(1, 1, 8, 8)])
    with pytest.raises(ValueError, match="num_classes"):
        fasterrcnn_resnet50_fpn(num_classes=1)


def test_fasterrcnn_resnet50_fpn_parameter_count():
    # torchvision 0.29.1's fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None): 41,808,406
    model = fasterrcnn_resnet50_fpn()
    assert sum(p.size for p in model.parameters()) == 41_808_406


# ---- torchvision itself -----------------------------------------------------------------------------------

def _torchvision_pair(tv, torch, builder_name, ours_builder, num_classes=5):
    torch.manual_seed(0)
    ref = getattr(tv.models.detection, builder_name)(weights=None, weights_backbone=None, num_classes=num_classes,
                                                     min_size=224, max_size=320).eval()
    with torch.no_grad():  # random logits ~ 0 give 1/num_classes everywhere: spread the class scores
        ref.roi_heads.box_predictor.cls_score.weight.mul_(0.2)
    ours = ours_builder(num_classes=num_classes, min_size=224, max_size=320)
    ours.load_state_dict(ref.state_dict())
    return ref, ours.eval()


def _images():
    rng = np.random.default_rng(0)
    return [rng.random((3, 240, 300)).astype(np.float32), rng.random((3, 200, 260)).astype(np.float32)]


def test_fasterrcnn_state_dict_and_count_match_torchvision():
    tv = pytest.importorskip("torchvision", reason=NO_TORCHVISION)
    ref = tv.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    ours = fasterrcnn_resnet50_fpn()
    assert sum(p.size for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]


def test_fasterrcnn_eval_detections_match_torchvision():
    tv = pytest.importorskip("torchvision", reason=NO_TORCHVISION)
    import torch
    ref, ours = _torchvision_pair(tv, torch, "fasterrcnn_resnet50_fpn", fasterrcnn_resnet50_fpn)
    images = _images()
    with torch.no_grad():
        want = ref([torch.tensor(i) for i in images])
    got = ours([mc.Tensor(i) for i in images])
    for w, g in zip(want, got):
        assert len(g["boxes"]) == len(w["boxes"]) > 0
        np.testing.assert_array_equal(g["labels"], w["labels"].numpy())
        rel = np.abs(g["boxes"] - w["boxes"].numpy()).max() / np.abs(w["boxes"].numpy()).max()
        assert rel < 1e-3
        np.testing.assert_allclose(g["scores"], w["scores"].numpy(), atol=1e-4)


def test_fasterrcnn_training_losses_match_torchvision_when_everything_is_sampled():
    """With every anchor and proposal sampled the losses are deterministic. Given torchvision's
    features and proposals, the RPN's and the RoI heads' losses agree to float32 rounding; the whole
    model agrees within 1%: the RPN's objectness logits at random init are ~1e-3, so many float32
    sigmoid scores tie and torch's unstable top-k / NMS order picks a few different proposals."""
    tv = pytest.importorskip("torchvision", reason=NO_TORCHVISION)
    import torch
    from collections import OrderedDict
    big = dict(rpn_batch_size_per_image=10 ** 7, box_batch_size_per_image=10 ** 7)
    torch.manual_seed(0)
    ref = tv.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5,
                                                      min_size=224, max_size=320, **big)
    ours = fasterrcnn_resnet50_fpn(num_classes=5, min_size=224, max_size=320, **big)
    ours.load_state_dict(ref.state_dict())
    images = _images()
    targets = [{"boxes": np.array([[20, 30, 120, 150], [150, 40, 290, 200]], np.float32), "labels": np.array([1, 4])},
               {"boxes": np.array([[10, 10, 60, 90]], np.float32), "labels": np.array([2])}]
    t_targets = [{"boxes": torch.tensor(t["boxes"]), "labels": torch.tensor(t["labels"])} for t in targets]
    with torch.no_grad():
        image_list, tt = ref.transform([torch.tensor(i) for i in images], t_targets)
        feats = ref.backbone(image_list.tensors)
        proposals, want_rpn = ref.rpn(image_list, feats, tt)
        _, want_roi = ref.roi_heads(feats, proposals, image_list.image_sizes, tt)
    our_feats = OrderedDict((k, mc.Tensor(v.numpy())) for k, v in feats.items())
    our_targets = [{"boxes": t["boxes"].numpy(), "labels": t["labels"].numpy()} for t in tt]
    _, got_rpn = ours.rpn(ImageList(mc.Tensor(image_list.tensors.numpy()), image_list.image_sizes), our_feats,
                          our_targets)
    _, got_roi = ours.roi_heads(our_feats, [p.numpy() for p in proposals], image_list.image_sizes, our_targets)
    for want, got in ((want_rpn, got_rpn), (want_roi, got_roi)):
        for k in want:
            assert got[k].item() == pytest.approx(want[k].item(), rel=1e-5), k
    want = ref([torch.tensor(i) for i in images], t_targets)
    got = ours([mc.Tensor(i) for i in images], targets)
    for k in want:
        assert got[k].item() == pytest.approx(want[k].item(), rel=1e-2), k
