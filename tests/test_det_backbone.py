"""Detection infrastructure: FrozenBatchNorm2d, ResNet norm_layer, FPN, the RCNN transform, anchors.

References: PyTorch twins written here with torchvision's module names (main env), plain-loop
NumPy references, gradcheck, and torchvision itself where it imports (``-k torchvision`` in /tmp/tv).
"""
import math
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
from minicnn import nn
from minicnn.models.detection.anchor_utils import AnchorGenerator
from minicnn.models.detection.backbone_utils import (
    BackboneWithFPN, FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7, _resnet_fpn_extractor, resnet_fpn_backbone,
)
from minicnn.models.detection.misc import FrozenBatchNorm2d, drop_frozen_bn_counters
from minicnn.models.detection.transform import GeneralizedRCNNTransform, ImageList
from minicnn.models.resnet import resnet18, resnet50
from minicnn.testing import gradcheck

pytestmark = pytest.mark.usefixtures("torch_one_thread")
TV_REASON = "torchvision does not import beside the CPU torch 2.13 of the test extras"


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---- FrozenBatchNorm2d ----------------------------------------------------------------------
def _random_frozen(c, rng, dtype=np.float32):
    bn = FrozenBatchNorm2d(c, dtype=dtype)
    bn.weight.data[...] = rng.uniform(0.5, 2, c)
    bn.bias.data[...] = rng.normal(size=c)
    bn.running_mean.data[...] = rng.normal(size=c)
    bn.running_var.data[...] = rng.uniform(0.1, 3, c)
    return bn


def test_frozen_batchnorm_matches_formula_and_has_only_buffers(device):
    rng = _rng(1)
    bn = _random_frozen(3, rng).to(device)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    y = bn(mc.Tensor(x, device=device)).numpy()
    w, b, rm, rv = (getattr(bn, k).numpy()[None, :, None, None] for k in ("weight", "bias", "running_mean", "running_var"))
    np.testing.assert_allclose(y, (x - rm) * w / np.sqrt(rv + 1e-5) + b, rtol=1e-5, atol=1e-5)
    assert list(bn.parameters()) == []
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    with pytest.raises(ValueError, match="FrozenBatchNorm2d.*channels"):
        bn(mc.Tensor(np.zeros((1, 4, 2, 2), np.float32), device=device))


def test_frozen_batchnorm_gradcheck():
    rng = _rng(2)
    bn = _random_frozen(2, rng, dtype=np.float64)
    x = mc.Tensor(rng.normal(size=(2, 2, 3, 3)), requires_grad=True)
    assert gradcheck(lambda t: bn(t), (x,))


def test_frozen_batchnorm_equals_torch_batchnorm_eval_and_loads_its_state_dict():
    torch = pytest.importorskip("torch")
    tbn = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        for t in (tbn.weight, tbn.bias, tbn.running_mean):
            t.copy_(torch.randn(4))
        tbn.running_var.copy_(torch.rand(4) + 0.2)
    tbn.eval()
    bn = FrozenBatchNorm2d(4)
    bn.load_state_dict(drop_frozen_bn_counters(bn, tbn.state_dict()))
    x = np.random.default_rng(3).normal(size=(2, 4, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(bn(mc.Tensor(x)).numpy(), tbn(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


# ---- ResNet norm_layer ----------------------------------------------------------------------
def test_resnet_norm_layer_frozen_equals_batchnorm_in_eval():
    rng = _rng(4)
    ref = resnet18(num_classes=5, width=8)
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[...] = rng.normal(size=m.num_features) * 0.1
            m.running_var.data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
    ref.eval()
    frozen = resnet18(num_classes=5, width=8, norm_layer=FrozenBatchNorm2d)
    sd = ref.state_dict()
    assert set(drop_frozen_bn_counters(frozen, sd)) == set(frozen.state_dict())
    frozen.load_state_dict(drop_frozen_bn_counters(frozen, sd))
    x = mc.Tensor(rng.normal(size=(1, 3, 32, 32)).astype(np.float32))
    np.testing.assert_allclose(frozen(x).numpy(), ref(x).numpy(), rtol=1e-4, atol=1e-5)
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in frozen.modules()) == 20  # 1 + 8 blocks × 2 + 3 downsample


# ---- FPN: PyTorch twin with torchvision's names ---------------------------------------------
def _torch_fpn(torch, in_list, out, extra):
    tnn, tF = torch.nn, torch.nn.functional

    class Extra(tnn.Module):
        def __init__(self):
            super().__init__()
            if extra == "p6p7":
                self.p6 = tnn.Conv2d(in_list[-1] if extra_in != out else out, out, 3, 2, 1)
                self.p7 = tnn.Conv2d(out, out, 3, 2, 1)

        def forward(self, p, c, names):
            if extra == "pool":
                return p + [tF.max_pool2d(p[-1], 1, 2, 0)], names + ["pool"]
            x = p[-1] if extra_in == out else c[-1]
            p6 = self.p6(x)
            return p + [p6, self.p7(tF.relu(p6))], names + ["p6", "p7"]

    extra_in = in_list[-1]

    class FPN(tnn.Module):
        def __init__(self):
            super().__init__()
            self.inner_blocks = tnn.ModuleList([tnn.Sequential(tnn.Conv2d(c, out, 1)) for c in in_list])
            self.layer_blocks = tnn.ModuleList([tnn.Sequential(tnn.Conv2d(out, out, 3, padding=1)) for _ in in_list])
            self.extra_blocks = Extra()

        def forward(self, x):
            names, feats = list(x), list(x.values())
            last = self.inner_blocks[-1](feats[-1])
            res = [self.layer_blocks[-1](last)]
            for i in range(len(feats) - 2, -1, -1):
                lat = self.inner_blocks[i](feats[i])
                last = lat + tF.interpolate(last, size=lat.shape[-2:], mode="nearest")
                res.insert(0, self.layer_blocks[i](last))
            res, names = self.extra_blocks(res, feats, names)
            return OrderedDict(zip(names, res))

    return FPN()


@pytest.mark.parametrize("extra,in_list,out", [("pool", (3, 5, 4), 6), ("p6p7", (3, 5, 6), 6), ("p6p7", (3, 5, 4), 6)])
def test_fpn_matches_pytorch_twin_on_odd_sizes(extra, in_list, out):
    torch = pytest.importorskip("torch")
    blocks = LastLevelMaxPool() if extra == "pool" else LastLevelP6P7(in_list[-1], out)
    ours = FeaturePyramidNetwork(list(in_list), out, extra_blocks=blocks)
    twin = _torch_fpn(torch, in_list, out, extra).double()
    ours.load_state_dict(twin.state_dict())
    rng = _rng(5)
    sizes = [(13, 9), (7, 5), (4, 3)]  # odd sizes: the top-down map is resized to each lateral's size
    feats = OrderedDict((str(i), rng.normal(size=(2, c, h, w))) for i, (c, (h, w)) in enumerate(zip(in_list, sizes)))
    got = ours.double()(OrderedDict((k, mc.Tensor(v)) for k, v in feats.items()))
    want = twin(OrderedDict((k, torch.from_numpy(v)) for k, v in feats.items()))
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_allclose(got[k].numpy(), want[k].detach().numpy(), rtol=1e-10, atol=1e-10)
    assert ours.extra_blocks.use_P5 == (in_list[-1] == out) if extra == "p6p7" else True


def test_fpn_init_and_gradcheck():
    fpn = FeaturePyramidNetwork([2, 3], 2, extra_blocks=LastLevelP6P7(2, 2)).double()
    conv = fpn.inner_blocks[1][0]
    bound = math.sqrt(3 / 3)  # kaiming_uniform_(a=1): sqrt(3 / fan_in), fan_in = 3·1·1
    assert np.abs(conv.weight.numpy()).max() <= bound and np.all(conv.bias.numpy() == 0)
    rng = _rng(6)
    a = mc.Tensor(rng.normal(size=(1, 2, 4, 4)), requires_grad=True)
    b = mc.Tensor(rng.normal(size=(1, 3, 2, 2)), requires_grad=True)
    assert gradcheck(lambda x, y: mc.functional.cat([v.reshape(-1) for v in fpn(OrderedDict(a=x, b=y)).values()]),
                     (a, b))
    with pytest.raises(ValueError, match="FeaturePyramidNetwork.*'b'"):
        fpn(OrderedDict(a=a, b=a))


def test_resnet_fpn_extractor_freezes_layers_and_names_outputs():
    body = resnet18(width=8, norm_layer=FrozenBatchNorm2d)
    bb = _resnet_fpn_extractor(body, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(16, 16), out_channels=16)
    assert isinstance(bb, BackboneWithFPN) and bb.out_channels == 16
    trainable = {n.split(".")[1] for n, p in bb.named_parameters() if p.requires_grad and n.startswith("body.")}
    assert trainable == {"layer2", "layer3", "layer4"}
    assert bb.fpn.in_channels_list == [16, 32, 64]
    out = bb(mc.Tensor(_rng(7).normal(size=(1, 3, 64, 96)).astype(np.float32)))
    assert {k: v.shape[-2:] for k, v in out.items()} == {"0": (8, 12), "1": (4, 6), "2": (2, 3), "p6": (1, 2), "p7": (1, 1)}
    with pytest.raises(ValueError, match="trainable_layers"):
        _resnet_fpn_extractor(resnet18(width=8), 6)
    with pytest.raises(ValueError, match="returned_layers"):
        _resnet_fpn_extractor(resnet18(width=8), 3, returned_layers=[0, 1])


# ---- transform ------------------------------------------------------------------------------
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _torch_resize(torch, img, min_size, max_size):
    """torchvision's resize call: scale from the rule, recompute_scale_factor=True."""
    h, w = img.shape[-2:]
    scale = min(min_size / min(h, w), max_size / max(h, w))
    x = torch.from_numpy(img)[None]
    return torch.nn.functional.interpolate(x, scale_factor=scale, mode="bilinear", recompute_scale_factor=True,
                                           align_corners=False)[0].numpy()


@given(h=st.integers(5, 70), w=st.integers(5, 70), min_size=st.integers(16, 64), max_size=st.integers(48, 100))
def test_transform_resize_matches_torch_interpolate(h, w, min_size, max_size):
    torch = pytest.importorskip("torch")
    img = np.random.default_rng(h * 100 + w).random((3, h, w), dtype=np.float32)
    t = GeneralizedRCNNTransform(min_size, max_size, MEAN, STD).eval()
    il, _ = t([img])
    norm = ((img - np.array(MEAN, np.float32)[:, None, None]) / np.array(STD, np.float32)[:, None, None]).astype(np.float32)
    want = _torch_resize(torch, norm, min_size, max_size)
    H, W = il.image_sizes[0]
    assert (H, W) == want.shape[-2:]
    scale = min(min_size / min(h, w), max_size / max(h, w))
    assert (H, W) == (math.floor(h * scale), math.floor(w * scale))
    np.testing.assert_allclose(il.tensors.numpy()[0, :, :H, :W], want, rtol=1e-5, atol=1e-5)
    assert il.tensors.shape[-2] % 32 == 0 and il.tensors.shape[-1] % 32 == 0
    assert np.all(il.tensors.numpy()[0, :, H:, :] == 0) and np.all(il.tensors.numpy()[0, :, :, W:] == 0)


def test_transform_targets_masks_batch_and_postprocess():
    torch = pytest.importorskip("torch")
    rng = _rng(8)
    imgs = [rng.random((3, 30, 50), dtype=np.float32), rng.random((3, 45, 20), dtype=np.float32)]
    masks = (rng.random((2, 30, 50)) > 0.5).astype(np.uint8)
    targets = [{"boxes": np.array([[1, 2, 20, 25], [10, 5, 49, 29]], np.float32), "labels": np.array([1, 2]),
                "masks": masks},
               {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}]
    t = GeneralizedRCNNTransform(40, 64, MEAN, STD)
    il, out = t(imgs, targets)
    assert il.image_sizes == [(38, 64), (64, 28)]  # min(40/30, 64/50) = 1.28; min(40/20, 64/45) = 1.4222
    assert il.tensors.shape == (2, 3, 64, 64)
    rh, rw = np.float32(38) / np.float32(30), np.float32(64) / np.float32(50)
    np.testing.assert_array_equal(out[0]["boxes"], targets[0]["boxes"] * np.array([rw, rh, rw, rh], np.float32))
    want_masks = torch.nn.functional.interpolate(torch.from_numpy(masks[:, None].astype(np.float32)), scale_factor=1.28,
                                                 recompute_scale_factor=True)[:, 0].byte().numpy()
    np.testing.assert_array_equal(out[0]["masks"], want_masks)
    assert out[1]["boxes"].shape == (0, 4) and targets[0]["boxes"][0, 2] == 20  # inputs are not modified
    t.eval()
    det = [{"boxes": out[0]["boxes"].copy()}, {"boxes": np.array([[0, 0, 28, 64]], np.float32)}]
    back = t.postprocess(det, il.image_sizes, [(30, 50), (45, 20)])
    np.testing.assert_allclose(back[0]["boxes"], targets[0]["boxes"], rtol=1e-5)
    np.testing.assert_allclose(back[1]["boxes"], [[0, 0, 20, 45]], rtol=1e-6)


def test_transform_fixed_size_and_bad_inputs():
    t = GeneralizedRCNNTransform(40, 64, MEAN, STD, fixed_size=(24, 16)).eval()
    il, _ = t([np.zeros((3, 30, 50), np.float32)])
    assert il.image_sizes == [(16, 24)] and il.tensors.shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="3-D"):
        t([np.zeros((1, 3, 8, 8), np.float32)])
    with pytest.raises(TypeError, match="float"):
        t([np.zeros((3, 8, 8), np.uint8)])
    with pytest.raises(ValueError, match="channels"):
        t([np.zeros((1, 8, 8), np.float32)])


# ---- anchors --------------------------------------------------------------------------------
def _anchors_loop(grids, image_hw, sizes, ratios):
    """Plain loops: for each map, cell, ratio, size: the rounded half-extents shifted by the cell origin."""
    out = []
    for (gh, gw), ss, rr in zip(grids, sizes, ratios):
        sh, sw = image_hw[0] // gh, image_hw[1] // gw
        for r in range(gh):
            for c in range(gw):
                for ratio in rr:
                    hr = np.sqrt(np.float32(ratio))
                    wr = np.float32(1) / hr
                    for s in ss:
                        hw, hh = np.round(wr * np.float32(s) / 2), np.round(hr * np.float32(s) / 2)
                        out.append([c * sw - hw, r * sh - hh, c * sw + hw, r * sh + hh])
    return np.array(out, np.float32)


def test_anchor_generator_matches_loop_reference(device):
    sizes, ratios = ((16, 20), (32,), (64,)), ((0.5, 1.0, 2.0),) * 3
    ag = AnchorGenerator(sizes, ratios)
    assert ag.num_anchors_per_location() == [6, 3, 3]
    il = ImageList(mc.Tensor(np.zeros((2, 3, 64, 96), np.float32), device=device), [(60, 90), (50, 96)])
    feats = [mc.Tensor(np.zeros((2, 4, h, w), np.float32), device=device) for h, w in [(8, 12), (4, 6), (3, 5)]]
    got = ag(il, feats)
    assert len(got) == 2
    want = _anchors_loop([(8, 12), (4, 6), (3, 5)], (64, 96), sizes, ratios)
    np.testing.assert_array_equal(got[1].numpy(), want)
    with pytest.raises(ValueError, match="one tuple of sizes per feature map"):
        ag(il, feats[:2])


# ---- torchvision itself (run in /tmp/tv) ----------------------------------------------------
def test_torchvision_frozen_bn_fpn_transform_anchors():
    tv = pytest.importorskip("torchvision", reason=TV_REASON)
    import torch
    from torchvision.models.detection.anchor_utils import AnchorGenerator as TvAG
    from torchvision.models.detection.transform import GeneralizedRCNNTransform as TvT
    from torchvision.ops import FeaturePyramidNetwork as TvFPN
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7 as TvP6P7

    torch.manual_seed(0)
    fpn_t = TvFPN([4, 8, 16], 8, extra_blocks=TvP6P7(16, 8)).eval()
    fpn = FeaturePyramidNetwork([4, 8, 16], 8, extra_blocks=LastLevelP6P7(16, 8))
    fpn.load_state_dict(fpn_t.state_dict())
    rng = _rng(9)
    feats = OrderedDict((str(i), rng.normal(size=(1, c, h, w)).astype(np.float32))
                        for i, (c, h, w) in enumerate([(4, 15, 11), (8, 8, 6), (16, 4, 3)]))
    want = fpn_t(OrderedDict((k, torch.from_numpy(v)) for k, v in feats.items()))
    got = fpn(OrderedDict((k, mc.Tensor(v)) for k, v in feats.items()))
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_allclose(got[k].numpy(), want[k].detach().numpy(), rtol=1e-4, atol=1e-5)

    tt = TvT(800, 1333, MEAN, STD).eval()
    ours = GeneralizedRCNNTransform(800, 1333, MEAN, STD).eval()
    imgs = [rng.random((3, 97, 131), dtype=np.float32), rng.random((3, 120, 64), dtype=np.float32)]
    il_t, _ = tt([torch.from_numpy(i) for i in imgs])
    il, _ = ours(imgs)
    assert [tuple(s) for s in il_t.image_sizes] == il.image_sizes
    np.testing.assert_allclose(il.tensors.numpy(), il_t.tensors.numpy(), rtol=1e-5, atol=1e-5)

    sizes = tuple((x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))) for x in [32, 64, 128])
    ag_t, ag = TvAG(sizes, ((0.5, 1.0, 2.0),) * 3), AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 3)
    fm = [torch.zeros(2, 1, h, w) for h, w in [(100, 168), (50, 84), (25, 42)]]
    a_t = ag_t(il_t, fm)
    a = ag(il, [mc.Tensor(f.numpy()) for f in fm])
    np.testing.assert_array_equal(a[0].numpy(), a_t[0].numpy())

    bn_t = tv.ops.FrozenBatchNorm2d(3)
    bn_t.running_var.uniform_(0.5, 2)
    bn_t.bias.normal_()
    bn = FrozenBatchNorm2d(3)
    bn.load_state_dict(bn_t.state_dict())
    x = rng.normal(size=(1, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(bn(mc.Tensor(x)).numpy(), bn_t(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-6)


def test_torchvision_resnet50_fpn_backbone_loads_and_agrees():
    tv = pytest.importorskip("torchvision", reason=TV_REASON)
    import torch
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone as tv_rfb

    torch.manual_seed(0)
    bb_t = tv_rfb(backbone_name="resnet50", weights=None, trainable_layers=3).eval()
    bb = resnet_fpn_backbone("resnet50", trainable_layers=3)
    assert list(bb.state_dict()) == list(bb_t.state_dict())
    bb.load_state_dict(bb_t.state_dict())
    assert (sum(p.numel() for p in bb.parameters() if p.requires_grad)
            == sum(p.numel() for p in bb_t.parameters() if p.requires_grad))
    x = _rng(10).normal(size=(1, 3, 96, 128)).astype(np.float32)
    want = bb_t(torch.from_numpy(x))
    got = bb(mc.Tensor(x))
    for k in want:
        w = want[k].detach().numpy()
        np.testing.assert_allclose(got[k].numpy(), w, rtol=1e-3, atol=1e-3 * np.abs(w).max())
