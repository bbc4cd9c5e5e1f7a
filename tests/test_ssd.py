"""SSD: default boxes and hard negative mining vs plain loops, losses vs a PyTorch re-computation,
training/inference on every device, bad input, and torchvision parity (``-k torchvision`` in /tmp/tv)."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
from minicnn.data.detection import digit_detection
from minicnn.models.detection.anchor_utils import DefaultBoxGenerator
from minicnn.models.detection.ssd import SSD, SSDHead, SSDSmallBackbone, hard_negative_mining, ssd300_vgg16, ssd_small
from minicnn.models.detection.transform import ImageList

pytestmark = pytest.mark.usefixtures("torch_one_thread")
TV_REASON = "torchvision does not import beside the CPU torch 2.13 of the test extras"


def _tiny(**kw):
    kw.setdefault("width", 4)
    kw.setdefault("size", 64)
    return ssd_small(num_classes=4, **kw)


def _canvases(n=2, side=64):
    ds = digit_detection(n, canvas=side, digits_per_image=(1, 3), size_range=(14, 28), seed=3)
    x, t = ds.get_batch(np.arange(n))
    for target in t:  # 4 classes: fold the digit labels 1..10 onto 1..3
        target["labels"] = 1 + (target["labels"] - 1) % 3
    return x, t


# ---- default boxes --------------------------------------------------------------------------------
def _reference_default_boxes(grids, image_hw, ratios, scales, steps, clip, min_ratio=0.15, max_ratio=0.9):
    """Plain loops over maps, rows, columns and boxes, in float64 (SSD §2.2)."""
    m = len(grids)
    if scales is None:
        scales = [min_ratio + (max_ratio - min_ratio) * k / (m - 1) for k in range(m)] + [1.0] if m > 1 \
            else [min_ratio, max_ratio]
    H, W = image_hw
    out = []
    for k, (fh, fw) in enumerate(grids):
        fy, fx = (H / steps[k], W / steps[k]) if steps is not None else (fh, fw)
        sizes = [(scales[k], scales[k]), (math.sqrt(scales[k] * scales[k + 1]),) * 2]
        for a in ratios[k]:
            sizes += [(scales[k] * math.sqrt(a), scales[k] / math.sqrt(a)),
                      (scales[k] / math.sqrt(a), scales[k] * math.sqrt(a))]
        for i in range(fh):
            for j in range(fw):
                cx, cy = (j + 0.5) / fx, (i + 0.5) / fy
                for w, h in sizes:
                    if clip:
                        w, h = min(max(w, 0.0), 1.0), min(max(h, 0.0), 1.0)
                    out.append([(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H])
    return np.array(out)


@given(data=st.data())
def test_default_boxes_match_plain_loops(data):
    m = data.draw(st.integers(1, 3))
    grids = [(data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))) for _ in range(m)]
    ratios = [data.draw(st.lists(st.sampled_from([2.0, 3.0, 1.5, 0.5]), max_size=2)) for _ in range(m)]
    image_hw = (data.draw(st.integers(8, 64)), data.draw(st.integers(8, 64)))
    scales = data.draw(st.none() | st.lists(st.floats(0.05, 1.2), min_size=m + 1, max_size=m + 1))
    steps = data.draw(st.none() | st.lists(st.integers(1, 32), min_size=m, max_size=m))
    clip = data.draw(st.booleans())
    gen = DefaultBoxGenerator(ratios, scales=scales, steps=steps, clip=clip)
    images = ImageList(mc.Tensor(np.zeros((2, 1) + image_hw, np.float32)), [image_hw] * 2)
    feats = [mc.Tensor(np.zeros((2, 3, h, w), np.float32)) for h, w in grids]
    got = gen(images, feats)
    want = _reference_default_boxes(grids, image_hw, ratios, scales, steps, clip)
    assert len(got) == 2 and gen.num_anchors_per_location() == [2 + 2 * len(r) for r in ratios]
    np.testing.assert_allclose(got[1].numpy(), want, rtol=1e-5, atol=1e-4)


def test_default_box_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        DefaultBoxGenerator([[2], [2]], steps=[8])
    with pytest.raises(ValueError, match="scales must be 3"):
        DefaultBoxGenerator([[2], [2]], scales=[0.1, 0.2])
    gen = DefaultBoxGenerator([[2], [2]])
    images = ImageList(mc.Tensor(np.zeros((1, 1, 8, 8), np.float32)), [(8, 8)])
    with pytest.raises(ValueError, match="1 feature maps but aspect_ratios for 2"):
        gen(images, [mc.Tensor(np.zeros((1, 1, 2, 2), np.float32))])


# ---- head ---------------------------------------------------------------------------------------
def _torch_head(torch, channels, anchors, k):
    """torchvision's SSDHead layout: one 3×3 conv per map in ``module_list``, (N, A·k, H, W) -> (N, HWA, k)."""
    tnn = torch.nn

    class Scoring(tnn.Module):
        def __init__(self, cols):
            super().__init__()
            self.module_list = tnn.ModuleList([tnn.Conv2d(c, a * cols, 3, padding=1)
                                               for c, a in zip(channels, anchors)])
            self.cols = cols

        def forward(self, x):
            out = []
            for conv, f in zip(self.module_list, x):
                y = conv(f)
                N, _, H, W = y.shape
                out.append(y.view(N, -1, self.cols, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, self.cols))
            return torch.cat(out, 1)

    class Head(tnn.Module):
        def __init__(self):
            super().__init__()
            self.classification_head, self.regression_head = Scoring(k), Scoring(4)

        def forward(self, x):
            return {"bbox_regression": self.regression_head(x), "cls_logits": self.classification_head(x)}

    return Head()


def test_head_matches_pytorch_twin():
    torch = pytest.importorskip("torch")
    twin = _torch_head(torch, [4, 3], [4, 6], 5).double()
    for p in twin.parameters():
        torch.nn.init.normal_(p, std=0.3)
    ours = SSDHead([4, 3], [4, 6], 5).double()
    ours.load_state_dict(twin.state_dict())
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(2, 4, 5, 7)), rng.normal(size=(2, 3, 2, 3))]
    got = ours([mc.Tensor(f) for f in feats])
    want = twin([torch.from_numpy(f) for f in feats])
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].detach().numpy(), rtol=1e-10, atol=1e-12)


def test_backbone_without_out_channels_is_probed():
    backbone = SSDSmallBackbone(1, width=4, num_maps=3)
    del backbone.out_channels
    m = SSD(backbone, DefaultBoxGenerator([[2], [2, 3], [2]]), (64, 64), 3, image_mean=[0.5], image_std=[0.5])
    assert [c.in_channels for c in m.head.classification_head.module_list] == [16, 16, 16]
    assert [c.out_channels for c in m.head.regression_head.module_list] == [16, 24, 16]


# ---- hard negative mining ---------------------------------------------------------------------------
def _reference_mining(loss, fg, ratio):
    out = np.zeros(loss.shape, bool)
    for i in range(loss.shape[0]):
        negatives = sorted((j for j in range(loss.shape[1]) if not fg[i, j]), key=lambda j: (-loss[i, j], j))
        quota = ratio * fg[i].sum()
        for rank, j in enumerate(negatives):
            if rank < quota:
                out[i, j] = True
    return out


@given(n=st.integers(1, 3), a=st.integers(1, 30), ratio=st.sampled_from([1.0, 3.0, 2.5]),
       seed=st.integers(0, 2 ** 16), ties=st.booleans())
def test_hard_negative_mining_matches_plain_loop(n, a, ratio, seed, ties):
    rng = np.random.default_rng(seed)
    loss = rng.integers(0, 4, size=(n, a)).astype(float) if ties else rng.random((n, a))
    fg = rng.random((n, a)) < 0.2
    np.testing.assert_array_equal(hard_negative_mining(loss, fg, ratio), _reference_mining(loss, fg, ratio))


# ---- losses ---------------------------------------------------------------------------------------
def _reference_losses(torch, logits, deltas, anchors, targets, ratio=3.0):
    """IoU, SSD matching and box encoding in plain loops; smooth-L1 and cross-entropy by PyTorch."""
    A = len(anchors)
    total_fg, reg, cls_targets = 0, 0.0, np.zeros((len(targets), A), np.int64)
    for i, t in enumerate(targets):
        boxes = t["boxes"].astype(np.float64)
        matched = np.full(A, -1)
        if len(boxes):
            iou = np.zeros((len(boxes), A))
            for g in range(len(boxes)):
                for j in range(A):
                    b, a = boxes[g], anchors[j]
                    inter = max(min(b[2], a[2]) - max(b[0], a[0]), 0) * max(min(b[3], a[3]) - max(b[1], a[1]), 0)
                    iou[g, j] = inter / ((b[2] - b[0]) * (b[3] - b[1]) + (a[2] - a[0]) * (a[3] - a[1]) - inter)
            for j in range(A):
                g = int(np.argmax(iou[:, j]))
                matched[j] = g if iou[g, j] >= 0.5 else -1
            for g in range(len(boxes)):
                matched[int(np.argmax(iou[g]))] = g
        for j in np.flatnonzero(matched >= 0):
            a, g = anchors[j].astype(np.float64), boxes[matched[j]]
            aw, ah, gw, gh = a[2] - a[0], a[3] - a[1], g[2] - g[0], g[3] - g[1]
            goal = [10 * ((g[0] + gw / 2) - (a[0] + aw / 2)) / aw, 10 * ((g[1] + gh / 2) - (a[1] + ah / 2)) / ah,
                    5 * math.log(gw / aw), 5 * math.log(gh / ah)]
            reg += torch.nn.functional.smooth_l1_loss(torch.tensor(deltas[i][j], dtype=torch.float64),
                                                      torch.tensor(goal), reduction="sum").item()
            cls_targets[i, j] = t["labels"][matched[j]]
        total_fg += int((matched >= 0).sum())
    ce = torch.nn.functional.cross_entropy(torch.from_numpy(logits.astype(np.float64)).flatten(0, 1),
                                           torch.from_numpy(cls_targets).flatten(), reduction="none")
    ce = ce.reshape(cls_targets.shape).numpy()
    fg = cls_targets > 0
    neg = _reference_mining(ce, fg, ratio)
    N = max(1, total_fg)
    return reg / N, (ce[fg].sum() + ce[neg].sum()) / N


def test_losses_match_pytorch_recomputation_including_an_empty_image():
    torch = pytest.importorskip("torch")
    x, t = _canvases(2)
    t.append({"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)})  # all priors negative
    images = [x[0], x[1], x[0] * 0]
    m = _tiny()
    rng = np.random.default_rng(1)
    for p in m.head.parameters():  # non-trivial logits and deltas
        p.data[...] = rng.normal(scale=0.05, size=p.shape)
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
    anchors = m.anchor_generator(il, list(m.backbone(il.tensors).values()))[0].numpy()
    ref_reg, ref_cls = _reference_losses(torch, captured["cls_logits"], captured["bbox_regression"], anchors, t)
    np.testing.assert_allclose(loss["bbox_regression"].item(), ref_reg, rtol=1e-4)
    np.testing.assert_allclose(loss["classification"].item(), ref_cls, rtol=1e-4)
    (loss["classification"] + loss["bbox_regression"]).backward()
    assert np.abs(m.head.classification_head.module_list[0].weight.grad.numpy()).sum() > 0


def test_images_without_boxes_give_zero_losses_and_a_graph():
    m = _tiny().train()
    empty = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}
    loss = m([np.random.default_rng(0).random((1, 64, 64), dtype=np.float32)] * 2, [empty, empty])
    assert loss["bbox_regression"].item() == 0.0 and loss["classification"].item() == 0.0
    (loss["classification"] + loss["bbox_regression"]).backward()


# ---- devices --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dev", ["cpu", "cuda-emu"])
def test_training_step_and_inference_on_device(dev):
    x, t = _canvases(2, side=64)
    m = _tiny().to(dev)
    opt = mc.optim.SGD(m.parameters(), lr=0.01)
    images = [mc.Tensor(x[i], device=dev) for i in range(2)]
    loss = m(images, t)
    total = loss["classification"] + loss["bbox_regression"]
    assert np.isfinite(total.item()) and loss["bbox_regression"].item() > 0
    total.backward()
    opt.step()
    m.eval()
    m.score_thresh = 0.0
    with mc.no_grad():
        det = m(images)
    assert len(det) == 2 and det[0]["boxes"].shape[1] == 4 and 0 < len(det[0]["boxes"]) <= m.detections_per_img
    assert np.all(det[0]["boxes"] >= 0) and np.all(det[0]["boxes"] <= 64)
    assert np.all(np.diff(det[0]["scores"]) <= 0) and det[0]["labels"].dtype == np.int64
    assert det[0]["labels"].min() >= 1 and det[0]["labels"].max() <= 3


def test_images_of_any_size_are_resized_and_mapped_back():
    m = _tiny().eval()
    m.score_thresh = 0.0
    rng = np.random.default_rng(2)
    with mc.no_grad():
        det = m([rng.random((1, 40, 90), dtype=np.float32), rng.random((1, 70, 30), dtype=np.float32)])
    for d, (h, w) in zip(det, [(40, 90), (70, 30)]):
        assert len(d["boxes"]) > 0
        assert d["boxes"][:, [0, 2]].max() <= w + 1e-3 and d["boxes"][:, [1, 3]].max() <= h + 1e-3


# ---- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("boxes,labels,match", [
    ([[10, 10, 5, 20]], [1], r"targets\[1\] box 0 must have x1 < x2"),
    ([[1, 1, 9, 9], [1, np.nan, 5, 5]], [1, 2], r"targets\[1\] box 1 is not finite"),
    ([[1, 1, 9, 9]], [4], r"targets\[1\] label of box 0 is 4"),
    ([[1, 1, 9, 9]], [0], r"targets\[1\] label of box 0 is 0"),
    ([[1, 1, 9]], [1], r"targets\[1\]\['boxes'\] must have shape \(G, 4\)"),
])
def test_bad_targets_raise_naming_image_and_box(boxes, labels, match):
    m = _tiny()
    good = {"boxes": np.array([[1, 1, 9, 9]], np.float32), "labels": np.array([1])}
    bad = {"boxes": np.array(boxes, np.float32), "labels": np.array(labels)}
    with pytest.raises(ValueError, match="SSD: " + match):
        m([np.zeros((1, 16, 16), np.float32)] * 2, [good, bad])


def test_bad_calls_raise():
    m = _tiny()
    with pytest.raises(ValueError, match="SSD: images must be a non-empty list"):
        m([], [])
    with pytest.raises(ValueError, match="SSD: targets must be given"):
        m([np.zeros((1, 16, 16), np.float32)])
    with pytest.raises(ValueError, match="SSD: image 0 must be 3-D"):
        m.eval()([np.zeros((16, 16), np.float32)])
    with pytest.raises(ValueError, match="load a torchvision state_dict with load_state_dict"):
        ssd300_vgg16(weights="DEFAULT")
    with pytest.raises(ValueError, match="SSD: num_classes"):
        ssd_small(num_classes=1)


# ---- torchvision ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tv_pair():
    tv = pytest.importorskip("torchvision", reason=TV_REASON)
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ref = tv.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91)
    ours = ssd300_vgg16(trainable_backbone_layers=3)
    ours.load_state_dict(ref.state_dict())
    ds = digit_detection(1, canvas=300, seed=5, split="test")  # a real canvas, 3 channels, 300 px
    yield torch, ref, ours, np.repeat(ds.images[0], 3, axis=0), ds.targets[0]
    torch.set_num_threads(threads)


def test_torchvision_state_dict_names_and_parameter_count(tv_pair):
    torch, ref, ours, _, _ = tv_pair
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert sum(p.numel() for p in ref.parameters()) == sum(p.size for p in ours.parameters()) == 35_641_826
    # trainable_backbone_layers=3 freezes conv1_* and conv2_* (as torchvision's _vgg_extractor)
    frozen = sum(p.size for p in ours.parameters() if not p.requires_grad)
    assert frozen == sum(p.numel() for n, p in ref.named_parameters() if n.startswith(
        tuple(f"backbone.features.{i}." for i in (0, 2, 5, 7))))


def test_torchvision_eval_detections_agree(tv_pair):
    torch, ref, ours, img, _ = tv_pair
    ref.eval()
    ours.eval()
    with torch.no_grad():
        want = ref([torch.from_numpy(img)])[0]
    with mc.no_grad():
        got = ours([img])[0]
    assert len(want["boxes"]) == len(got["boxes"]) == 200
    n = 50  # the best-scored detections (later ones are closer to ties, in either order)
    np.testing.assert_array_equal(got["labels"][:n], want["labels"][:n].numpy())
    np.testing.assert_allclose(got["scores"][:n], want["scores"][:n].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["boxes"][:n], want["boxes"][:n].numpy(), rtol=1e-4, atol=5e-3)


def test_torchvision_training_losses_agree(tv_pair):
    torch, ref, ours, img, target = tv_pair
    ref.train()
    ours.train()
    t_target = {"boxes": torch.from_numpy(target["boxes"]), "labels": torch.from_numpy(target["labels"])}
    want = ref([torch.from_numpy(img)], [t_target])
    got = ours([img], [target])
    for k in want:
        np.testing.assert_allclose(got[k].item(), want[k].item(), rtol=1e-4)
