"""RetinaNet: head vs a PyTorch twin, losses vs a NumPy reference, training/inference on every device,
bad targets, and torchvision parity (``-k torchvision`` in /tmp/tv)."""
import functools
import math

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.data.detection import digit_detection
from minicnn.models.detection.retinanet import (
    RetinaNetHead, retinanet_resnet50_fpn, retinanet_small,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")
TV_REASON = "torchvision does not import beside the CPU torch 2.13 of the test extras"


def _tiny(**kw):
    kw.setdefault("width", 4)
    kw.setdefault("fpn_channels", 8)
    kw.setdefault("min_size", 64)
    kw.setdefault("max_size", 64)
    kw.setdefault("anchor_base", (8, 16, 32, 64, 128))
    return retinanet_small(num_classes=4, **kw)


def _canvases(n=2, side=64):
    ds = digit_detection(n, canvas=side, digits_per_image=(1, 2), size_range=(16, 28), seed=3)
    x, t = ds.get_batch(np.arange(n))
    for target in t:  # 4 classes: fold the digit labels 1..10 onto 1..3
        target["labels"] = 1 + (target["labels"] - 1) % 3
    return x, t


def test_parameter_count_is_torchvisions():
    # torchvision 0.29.1: retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    # has 34,068,119 parameters (BatchNorm2d); frozen BatchNorms hold 53,120 of them as buffers.
    m = retinanet_resnet50_fpn(norm_layer=nn.BatchNorm2d, trainable_backbone_layers=5)
    assert sum(p.numel() for p in m.parameters()) == 34_068_119
    frozen = retinanet_resnet50_fpn()
    bn_affine = sum(b.numel() for n, b in frozen.named_buffers() if n.endswith((".weight", ".bias")))
    assert sum(p.numel() for p in frozen.parameters()) + bn_affine == 34_068_119
    head = m.head.classification_head
    np.testing.assert_allclose(head.cls_logits.bias.numpy(), -math.log(0.99 / 0.01), rtol=1e-6)


def _torch_head(torch, c, a, k, groups=None):
    """The head in PyTorch; ``groups``: GroupNorm(groups, c) after each bias-free subnet conv (v2)."""
    tnn = torch.nn

    def block():
        if groups is None:
            return tnn.Sequential(tnn.Conv2d(c, c, 3, padding=1), tnn.ReLU())
        return tnn.Sequential(tnn.Conv2d(c, c, 3, padding=1, bias=False), tnn.GroupNorm(groups, c), tnn.ReLU())

    def subnet():
        return tnn.Sequential(*[block() for _ in range(4)])

    class Cls(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.cls_logits = subnet(), tnn.Conv2d(c, a * k, 3, padding=1)

    class Reg(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bbox_reg = subnet(), tnn.Conv2d(c, a * 4, 3, padding=1)

    class Head(tnn.Module):
        def __init__(self):
            super().__init__()
            self.classification_head, self.regression_head = Cls(), Reg()

        def forward(self, x):
            out = {}
            for key, sub, last, kk in (("cls_logits", self.classification_head, "cls_logits", k),
                                       ("bbox_regression", self.regression_head, "bbox_reg", 4)):
                levels = []
                for f in x:
                    y = getattr(sub, last)(sub.conv(f))
                    N, _, H, W = y.shape
                    levels.append(y.view(N, -1, kk, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, kk))
                out[key] = torch.cat(levels, 1)
            return out

    return Head()


def _assert_head_equals_twin(torch, ours, twin, seed, sizes, rtol, atol):
    """Load the float64 twin's N(0, 0.3²) weights into ours (same keys) and compare both heads'
    outputs on random feature maps of ``sizes``."""
    for p in twin.parameters():
        torch.nn.init.normal_(p, std=0.3)
    assert sorted(ours.state_dict()) == sorted(twin.state_dict())
    ours.load_state_dict(twin.state_dict())
    rng = np.random.default_rng(seed)
    feats = [rng.normal(size=(2, 4, h, w)) for h, w in sizes]
    got = ours([mc.Tensor(f) for f in feats])
    want = twin([torch.from_numpy(f) for f in feats])
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].detach().numpy(), rtol=rtol, atol=atol)


def test_head_matches_pytorch_twin():
    torch = pytest.importorskip("torch")
    _assert_head_equals_twin(torch, RetinaNetHead(4, 3, 5).double(), _torch_head(torch, 4, 3, 5).double(),
                             0, [(5, 7), (3, 4), (1, 2)], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_group_norm_head_matches_pytorch_twin(groups):
    torch = pytest.importorskip("torch")
    ours = RetinaNetHead(4, 3, 5, norm_layer=functools.partial(nn.GroupNorm, groups)).double()
    _assert_head_equals_twin(torch, ours, _torch_head(torch, 4, 3, 5, groups=groups).double(),
                             1, [(5, 7), (3, 4), (2, 2)], rtol=1e-9, atol=1e-11)


def test_group_norm_head_keeps_the_signal_and_trains():
    # N(0, 0.01²) convolutions of 8 channels shrink a unit signal ~0.01·sqrt(9·8/2) = 0.06 times per layer
    # (~1e-5 after four) without normalisation; with GroupNorm each layer's output is back at unit scale
    x = [mc.Tensor(np.random.default_rng(2).normal(size=(1, 8, 6, 6)).astype(np.float32))]
    for norm, lo, hi in ((None, 0.0, 1e-4), (functools.partial(nn.GroupNorm, 2), 0.3, 1.0)):
        head = RetinaNetHead(8, 9, 3, norm_layer=norm).classification_head
        y = x[0]
        for layer in head.conv:
            y = layer(y)
        assert lo <= float(y.numpy().std()) <= hi
    m = _tiny(head_norm_layer=functools.partial(nn.GroupNorm, 4))
    assert isinstance(m.head.regression_head.conv[3][1], nn.GroupNorm)
    assert m.head.classification_head.conv[0][0].bias is None
    x, t = _canvases()
    losses = m.train()(list(x), t)
    total = losses["classification"] + losses["bbox_regression"]
    total.backward()
    assert all(np.isfinite(v.item()) for v in losses.values())
    assert float(np.abs(m.head.classification_head.conv[0][1].weight.grad.numpy()).sum()) > 0
    with pytest.raises(ValueError, match="head or head_norm_layer"):
        _tiny(head=m.head, head_norm_layer=functools.partial(nn.GroupNorm, 4))
    with pytest.raises(ValueError, match="retinanet_small: num_classes"):
        retinanet_small(num_classes=1, head_norm_layer=functools.partial(nn.GroupNorm, 4))


def _reference_losses(logits, deltas, anchors, targets, k):
    """Plain NumPy: IoU loops, the 0.5/0.4 matcher with low-quality matches, focal and L1 sums."""
    cls_total, reg_total = 0.0, 0.0
    for i, t in enumerate(targets):
        boxes, labels = t["boxes"].astype(np.float64), t["labels"]
        A = len(anchors)
        matched = np.full(A, -1)
        if len(boxes):
            iou = np.zeros((len(boxes), A))
            for g in range(len(boxes)):
                for j in range(A):
                    b, a = boxes[g], anchors[j]
                    w = max(min(b[2], a[2]) - max(b[0], a[0]), 0)
                    h = max(min(b[3], a[3]) - max(b[1], a[1]), 0)
                    inter = w * h
                    iou[g, j] = inter / ((b[2] - b[0]) * (b[3] - b[1]) + (a[2] - a[0]) * (a[3] - a[1]) - inter)
            best, arg = iou.max(0), iou.argmax(0)
            matched = np.where(best >= 0.5, arg, np.where(best < 0.4, -1, -2))
            for g in range(len(boxes)):
                ties = np.flatnonzero(iou[g] == iou[g].max())
                matched[ties] = arg[ties]
        fg = matched >= 0
        y = np.zeros((A, k))
        y[np.flatnonzero(fg), labels[matched[fg]]] = 1
        x = logits[i].astype(np.float64)
        p = 1 / (1 + np.exp(-x))
        ce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        p_t = p * y + (1 - p) * (1 - y)
        focal = (0.25 * y + 0.75 * (1 - y)) * ce * (1 - p_t) ** 2
        cls_total += focal[matched != -2].sum() / max(1, fg.sum())
        reg = 0.0
        for j in np.flatnonzero(fg):
            a, g = anchors[j].astype(np.float64), boxes[matched[j]]
            aw, ah, gw, gh = a[2] - a[0], a[3] - a[1], g[2] - g[0], g[3] - g[1]
            goal = [((g[0] + gw / 2) - (a[0] + aw / 2)) / aw, ((g[1] + gh / 2) - (a[1] + ah / 2)) / ah,
                    math.log(gw / aw), math.log(gh / ah)]
            reg += np.abs(deltas[i][j] - goal).sum()
        reg_total += reg / max(1, fg.sum())
    return cls_total / len(targets), reg_total / len(targets)


def test_losses_match_numpy_reference_including_an_empty_image():
    x, t = _canvases(2)
    t.append({"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)})  # only negatives
    images = [x[0], x[1], x[0] * 0]
    m = _tiny()
    for p in m.head.parameters():  # non-trivial logits and deltas
        p.data[...] = np.random.default_rng(1).normal(scale=0.05, size=p.shape)
    m.train()
    captured = {}
    original = m.head.forward

    def spy(feats):
        out = original(feats)
        captured.update({k: v.numpy() for k, v in out.items()})
        return out

    m.head.forward = spy
    loss = m(images, t)
    il, _ = m.transform(images, None)
    feats = list(m.backbone(il.tensors).values())
    anchors = m.anchor_generator(il, feats)[0].numpy()
    ref_cls, ref_reg = _reference_losses(captured["cls_logits"], captured["bbox_regression"], anchors, t, 4)
    np.testing.assert_allclose(loss["classification"].item(), ref_cls, rtol=1e-4)
    np.testing.assert_allclose(loss["bbox_regression"].item(), ref_reg, rtol=1e-4)
    (loss["classification"] + loss["bbox_regression"]).backward()
    assert np.abs(m.head.classification_head.cls_logits.weight.grad.numpy()).sum() > 0


@pytest.mark.parametrize("dev", ["cpu", "cuda-emu"])
def test_training_step_and_inference_on_device(dev):
    x, t = _canvases(2, side=32)
    x = x[:, :, :32, :32]
    for target in t:
        b = np.clip(target["boxes"], 0, 32)
        ok = (b[:, 2] - b[:, 0] > 1) & (b[:, 3] - b[:, 1] > 1)
        target["boxes"], target["labels"] = b[ok], target["labels"][ok]
    m = _tiny(min_size=32, max_size=32).to(dev)
    opt = mc.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.01)
    images = [mc.Tensor(x[i], device=dev) for i in range(2)]
    loss = m(images, t)
    total = loss["classification"] + loss["bbox_regression"]
    assert np.isfinite(total.item())
    total.backward()
    opt.step()
    m.eval()
    m.score_thresh = 0.0
    det = m(images)
    assert len(det) == 2 and det[0]["boxes"].shape[1] == 4 and len(det[0]["boxes"]) > 0
    assert np.all(det[0]["boxes"] >= 0) and np.all(det[0]["boxes"] <= 32)
    assert np.all(np.diff(det[0]["scores"]) <= 0) and det[0]["labels"].dtype == np.int64


def test_cpu_and_cuda_emu_losses_agree():
    x, t = _canvases(1, side=32)
    m = _tiny(min_size=32, max_size=32)
    state = m.state_dict()
    imgs = [x[0][:, :32, :32]]
    t[0]["boxes"] = np.array([[4, 5, 20, 25]], np.float32)
    t[0]["labels"] = t[0]["labels"][:1]
    imgs, t = imgs * 2, t * 2  # two images: BatchNorm needs more than one value per channel at 1×1
    a = m(imgs, t)
    m2 = _tiny(min_size=32, max_size=32)
    m2.load_state_dict(state)
    b = m2.to("cuda-emu")([mc.Tensor(im, device="cuda-emu") for im in imgs], t)
    for k in a:
        np.testing.assert_allclose(a[k].item(), b[k].item(), rtol=1e-4)


def test_images_of_different_sizes_map_back_to_their_own_size():
    m = _tiny(min_size=48, max_size=80).eval()
    m.score_thresh = 0.0
    rng = np.random.default_rng(2)
    det = m([rng.random((1, 40, 60), dtype=np.float32), rng.random((1, 70, 30), dtype=np.float32)])
    for d, (h, w) in zip(det, [(40, 60), (70, 30)]):
        assert len(d["boxes"]) > 0
        assert d["boxes"][:, [0, 2]].max() <= w + 1e-3 and d["boxes"][:, [1, 3]].max() <= h + 1e-3


@pytest.mark.parametrize("boxes,labels,match", [
    ([[10, 10, 5, 20]], [1], "target 1 box 0"),
    ([[1, 1, 9, 9], [1, np.nan, 5, 5]], [1, 2], "target 1 box 1 is not finite"),
    ([[1, 1, 9, 9]], [4], "target 1 label of box 0 is 4"),
    ([[1, 1, 9, 9]], [0], "target 1 label of box 0 is 0"),
])
def test_bad_targets_raise_naming_image_and_box(boxes, labels, match):
    m = _tiny()
    good = {"boxes": np.array([[1, 1, 9, 9]], np.float32), "labels": np.array([1])}
    bad = {"boxes": np.array(boxes, np.float32), "labels": np.array(labels)}
    with pytest.raises(ValueError, match=match):
        m([np.zeros((1, 16, 16), np.float32)] * 2, [good, bad])


# ---- torchvision --------------------------------------------------------------------------------
def _tv_pair(torch, tv, **kw):
    torch.manual_seed(0)
    ref = tv.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91, **kw)
    with torch.no_grad():  # logits spread around 0 so that many anchors pass the score threshold
        ref.head.classification_head.cls_logits.bias.normal_(0, 2)
    ours = retinanet_resnet50_fpn(**kw)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _real_image():
    ds = digit_detection(1, canvas=128, seed=5, split="test")
    return np.repeat(ds.images[0], 3, axis=0), ds.targets[0]


def test_torchvision_eval_detections_agree():
    tv = pytest.importorskip("torchvision", reason=TV_REASON)
    import torch
    ref, ours = _tv_pair(torch, tv, min_size=320, max_size=320)
    assert sum(p.numel() for p in ref.parameters()) == 34_068_119
    ref.eval()
    ours.eval()
    img, _ = _real_image()
    with torch.no_grad():
        want = ref([torch.from_numpy(img)])[0]
    got = ours([img])[0]
    assert len(want["boxes"]) > 50
    n = 100  # the best-scored detections (later ones include exactly tied scores, in either order)
    np.testing.assert_array_equal(got["labels"][:n], want["labels"][:n].numpy())
    np.testing.assert_allclose(got["scores"][:n], want["scores"][:n].numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(got["boxes"][:n], want["boxes"][:n].numpy(), rtol=1e-3, atol=1e-2)


def test_torchvision_training_losses_agree():
    tv = pytest.importorskip("torchvision", reason=TV_REASON)
    import torch
    ref, ours = _tv_pair(torch, tv, min_size=256, max_size=256)
    img, target = _real_image()
    ref.eval()  # BatchNorm statistics fixed on both sides (ours are frozen)
    ref.transform.training = ref.head.training = True
    ref.training = True
    t_target = {"boxes": torch.from_numpy(target["boxes"]), "labels": torch.from_numpy(target["labels"])}
    want = ref([torch.from_numpy(img)], [t_target])
    got = ours.train()([img], [target])
    for k in want:
        np.testing.assert_allclose(got[k].item(), want[k].item(), rtol=1e-4)


def test_torchvision_group_norm_head_agrees():
    # torchvision's v2 head: RetinaNetHead(..., norm_layer=partial(nn.GroupNorm, 32))
    tv = pytest.importorskip("torchvision", reason=TV_REASON)
    import torch
    from torchvision.models.detection.retinanet import RetinaNetHead as TvHead
    torch.manual_seed(0)
    ref = TvHead(64, 9, 11, norm_layer=functools.partial(torch.nn.GroupNorm, 32)).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if ".conv." in name and name.endswith(("1.weight", "1.bias")):  # GroupNorm affine away from 1, 0
                p.normal_(0.5 if name.endswith("weight") else 0.0, 0.2)
    ours = RetinaNetHead(64, 9, 11, norm_layer=functools.partial(nn.GroupNorm, 32))
    ours.load_state_dict(ref.state_dict())
    rng = np.random.default_rng(3)
    feats = [rng.normal(size=(2, 64, s, s)).astype(np.float32) for s in (8, 4, 2)]
    with torch.no_grad():
        want = ref([torch.from_numpy(f) for f in feats])
    got = ours([mc.Tensor(f) for f in feats])
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=1e-4, atol=1e-5)
