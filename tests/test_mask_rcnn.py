"""Mask R-CNN: the mask head and predictor, the mask loss and inference, pasting masks, the whole model.

Oracles: PyTorch twins with torchvision's module names, torchvision's paste rule written with torch
ops, PyTorch's BCE-with-logits, and torchvision itself where it imports (``/tmp/tv/bin/python -m
pytest -q tests/test_mask_rcnn.py -k torchvision``; ResNet-50-FPN at ``min_size=224, max_size=320``).
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor, maskrcnn_resnet50_fpn, maskrcnn_small
from minicnn.models.detection.roi_heads import maskrcnn_inference, maskrcnn_loss, paste_masks_in_image

NO_TORCHVISION = "torchvision does not import beside the CPU torch 2.13 of the test extras"
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_mask_head_and_predictor_match_torch():
    torch = pytest.importorskip("torch")
    from collections import OrderedDict
    tnn = torch.nn
    torch.manual_seed(0)
    ref_head = tnn.Sequential(*[tnn.Sequential(tnn.Conv2d(c, 6, 3, padding=1), tnn.ReLU()) for c in (4, 6)])
    ref_pred = tnn.Sequential(OrderedDict([("conv5_mask", tnn.ConvTranspose2d(6, 5, 2, 2)), ("relu", tnn.ReLU()),
                                           ("mask_fcn_logits", tnn.Conv2d(5, 3, 1))]))
    head, pred = MaskRCNNHeads(4, (6, 6), 1), MaskRCNNPredictor(6, 5, 3)
    head.load_state_dict(ref_head.state_dict())
    pred.load_state_dict(ref_pred.state_dict())
    x = np.random.default_rng(0).standard_normal((3, 4, 14, 14)).astype(np.float32)
    got = pred(head(mc.Tensor(x)))
    want = ref_pred(ref_head(torch.tensor(x)))
    assert got.shape == (3, 3, 28, 28)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)


def _torch_paste(torch, masks, boxes, h, w):
    """torchvision's paste_masks_in_image written with torch ops (pad 1, expand, truncate, resize, paste)."""
    M = masks.shape[-1]
    padded = torch.nn.functional.pad(masks, (1, 1, 1, 1))
    scale = (M + 2) / M
    b = boxes.clone()
    wh, hh = (b[:, 2] - b[:, 0]) * 0.5 * scale, (b[:, 3] - b[:, 1]) * 0.5 * scale
    xc, yc = (b[:, 2] + b[:, 0]) * 0.5, (b[:, 3] + b[:, 1]) * 0.5
    b = torch.stack([xc - wh, yc - hh, xc + wh, yc + hh], 1).to(torch.int64)
    out = torch.zeros((len(masks), 1, h, w), dtype=masks.dtype)
    for k in range(len(masks)):
        x1, y1, x2, y2 = (int(v) for v in b[k])
        mw, mh = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        r = torch.nn.functional.interpolate(padded[k:k + 1], size=(mh, mw), mode="bilinear", align_corners=False)[0, 0]
        xa, xb, ya, yb = max(x1, 0), min(x2 + 1, w), max(y1, 0), min(y2 + 1, h)
        if xb > xa and yb > ya:
            out[k, 0, ya:yb, xa:xb] = r[ya - y1:yb - y1, xa - x1:xb - x1]
    return out


@given(st.lists(st.tuples(st.floats(-20, 50), st.floats(-20, 40), st.floats(0.5, 60), st.floats(0.5, 60)),
                min_size=1, max_size=5), st.sampled_from([4, 7]))
def test_paste_masks_matches_torchvisions_rule(rows, M):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(rows) + M)
    masks = rng.random((len(rows), 1, M, M)).astype(np.float32)
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in rows], np.float32)
    got = paste_masks_in_image(masks, boxes, (40, 50))
    want = _torch_paste(torch, torch.tensor(masks), torch.tensor(boxes), 40, 50).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_maskrcnn_loss_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    gt_masks = [(rng.random((2, 20, 24)) > 0.5).astype(np.uint8), (rng.random((1, 20, 24)) > 0.5).astype(np.uint8)]
    gt_labels = [np.array([2, 1]), np.array([3])]
    proposals = [np.array([[1, 2, 15, 18], [4, 4, 20, 12], [0, 0, 23, 19]], np.float32), np.array([[3, 1, 9, 16]], np.float32)]
    matched = [np.array([1, 0, 1]), np.array([0])]
    logits = rng.standard_normal((4, 4, 6, 6))
    x = mc.Tensor(logits, requires_grad=True)
    loss = maskrcnn_loss(x, proposals, gt_masks, gt_labels, matched)
    loss.backward()
    targets, labels = [], []
    for m, p, i, lab in zip(gt_masks, proposals, matched, gt_labels):
        for box, j in zip(p, i):  # the target: roi_align of the matched mask over the proposal, 6 x 6
            targets.append(F.roi_align(mc.Tensor(m[j][None, None].astype(np.float32)),
                                       np.array([[0, *box]], np.float32), 6, 1.0).numpy()[0, 0])
            labels.append(lab[j])
    tx = torch.tensor(logits, requires_grad=True)
    want = torch.nn.functional.binary_cross_entropy_with_logits(tx[torch.arange(4), torch.tensor(labels)],
                                                                torch.tensor(np.array(targets), dtype=torch.float64))
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-9)
    empty = maskrcnn_loss(x, [np.zeros((0, 4))] * 2, gt_masks, gt_labels, [np.zeros(0, np.int64)] * 2)
    assert empty.item() == 0


def test_maskrcnn_inference_picks_the_predicted_class():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)
    labels = [np.array([2, 1]), np.array([0, 2, 1])]
    got = maskrcnn_inference(mc.Tensor(logits), labels)
    flat = np.concatenate(labels)
    want = 1 / (1 + np.exp(-logits[np.arange(5), flat]))[:, None]
    assert [g.shape for g in got] == [(2, 1, 4, 4), (3, 1, 4, 4)]
    np.testing.assert_allclose(np.concatenate(got), want, rtol=1e-6)


# ---- the whole model --------------------------------------------------------------------------------------

def _tiny():
    mc.manual_seed(0)
    return maskrcnn_small(num_classes=4, image_size=64, width=8, fpn_channels=16, representation_size=32,
                          mask_channels=8, generator=0)


def _batch(device, empty_second=False):
    rng = np.random.default_rng(0)
    images = [mc.Tensor(rng.random((1, 64, 64)).astype(np.float32), device=device),
              mc.Tensor(rng.random((1, 48, 64)).astype(np.float32), device=device)]
    m0 = np.zeros((2, 64, 64), np.uint8)
    m0[0, 10:40, 12:30] = 1
    m0[1, 5:30, 35:60] = 1
    m1 = np.zeros((1, 48, 64), np.uint8)
    m1[0, 5:20, 5:25] = 1
    targets = [{"boxes": np.array([[12, 10, 30, 40], [35, 5, 60, 30]], np.float32), "labels": np.array([3, 1]),
                "masks": m0},
               {"boxes": np.array([[5, 5, 25, 20]], np.float32), "labels": np.array([2]), "masks": m1}]
    if empty_second:
        targets[1] = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64),
                      "masks": np.zeros((0, 48, 64), np.uint8)}
    return images, targets


def test_small_mask_rcnn_trains_and_segments(device):
    model = _tiny().to(device)
    images, targets = _batch(device)
    losses = model(images, targets)
    assert sorted(losses) == ["loss_box_reg", "loss_classifier", "loss_mask", "loss_objectness", "loss_rpn_box_reg"]
    total = sum(losses.values(), mc.zeros(()).to(device))
    assert np.isfinite(total.item()) and losses["loss_mask"].item() > 0
    total.backward()
    assert model.roi_heads.mask_predictor.mask_fcn_logits.weight.grad is not None
    assert not [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    model.eval()
    out = model(images)
    for det, im in zip(out, images):
        D = len(det["boxes"])
        assert det["masks"].shape == (D, 1) + tuple(im.shape[1:])
        assert ((det["masks"] >= 0) & (det["masks"] <= 1)).all()
    if device != "cpu":
        ref = _tiny()
        ref(*_batch("cpu"))
        for a, b in zip(out, ref.eval()(_batch("cpu")[0])):
            np.testing.assert_array_equal(a["labels"], b["labels"])
            np.testing.assert_allclose(a["masks"], b["masks"], atol=1e-4)


def test_an_image_without_objects_trains():
    model = _tiny()
    images, targets = _batch("cpu", empty_second=True)
    losses = model(images, targets)
    assert all(np.isfinite(v.item()) for v in losses.values())
    sum(losses.values()).backward()
    targets[0] = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64),
                  "masks": np.zeros((0, 64, 64), np.uint8)}
    losses = _tiny()(images, targets)
    assert losses["loss_mask"].item() == 0 and losses["loss_box_reg"].item() == 0


def test_bad_mask_targets():
    model = _tiny()
    images, targets = _batch("cpu")
    del targets[0]["masks"]
    with pytest.raises(ValueError, match=r"targets\[0\] must have 'masks'"):
        model(images, targets)
    images, targets = _batch("cpu")
    targets[1]["masks"] = np.zeros((1, 64, 64), np.uint8)
    with pytest.raises(ValueError, match=r"targets\[1\]\['masks'\] must be \(G, 48, 64\)"):
        model(images, targets)


def test_maskrcnn_resnet50_fpn_parameter_count():
    # torchvision 0.29.1's maskrcnn_resnet50_fpn(weights=None, weights_backbone=None): 44,454,513
    assert sum(p.size for p in maskrcnn_resnet50_fpn().parameters()) == 44_454_513


# ---- torchvision itself -----------------------------------------------------------------------------------

def test_maskrcnn_state_dict_and_count_match_torchvision():
    tv = pytest.importorskip("torchvision", reason=NO_TORCHVISION)
    ref = tv.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    ours = maskrcnn_resnet50_fpn()
    assert sum(p.size for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]


def test_maskrcnn_eval_detections_and_masks_match_torchvision():
    tv = pytest.importorskip("torchvision", reason=NO_TORCHVISION)
    import torch
    torch.manual_seed(0)
    ref = tv.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5,
                                                    min_size=224, max_size=320).eval()
    with torch.no_grad():  # random logits ~ 0 give 1/num_classes everywhere: spread the class scores
        ref.roi_heads.box_predictor.cls_score.weight.mul_(0.2)
    ours = maskrcnn_resnet50_fpn(num_classes=5, min_size=224, max_size=320)
    ours.load_state_dict(ref.state_dict())
    rng = np.random.default_rng(0)
    images = [rng.random((3, 240, 300)).astype(np.float32), rng.random((3, 200, 260)).astype(np.float32)]
    with torch.no_grad():
        want = ref([torch.tensor(i) for i in images])
    got = ours.eval()([mc.Tensor(i) for i in images])
    for w, g in zip(want, got):
        assert len(g["boxes"]) == len(w["boxes"]) > 0
        np.testing.assert_array_equal(g["labels"], w["labels"].numpy())
        assert np.abs(g["boxes"] - w["boxes"].numpy()).max() / np.abs(w["boxes"].numpy()).max() < 1e-3
        np.testing.assert_allclose(g["scores"], w["scores"].numpy(), atol=1e-4)
        wm = w["masks"].numpy()
        assert g["masks"].shape == wm.shape
        assert np.abs(g["masks"] - wm).max() < 1e-2
        assert ((g["masks"] > 0.5) != (wm > 0.5)).mean() < 1e-3
