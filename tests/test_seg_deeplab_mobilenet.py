"""DeepLab v3 on MobileNetV3-Large: parameter counts equal torchvision's; a PyTorch twin (written
here with torchvision's module names) loads name for name and gives the same eval outputs on cpu
and cuda-emu; the real torchvision model agrees where it imports; one training step (loss,
gradients, SGD update) equals the twin's; argument errors name the function."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.models.segmentation.deeplab import DeepLabV3
from minicnn.models.segmentation.deeplab_mobilenet import deeplabv3_mobilenet_v3_large
from minicnn.optim import SGD
from test_mobilenet_v3 import randomize_bn, torch_mobilenet_v3

TINY = dict(num_classes=3, width_mult=0.25, aspp_channels=16)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def n_params(model):
    return sum(p.size for p in model.parameters())


def torch_deeplab_mobilenet(torch, num_classes=21, aux_loss=False, in_channels=3, width_mult=1.0,
                            atrous_rates=(12, 24, 36), aspp_channels=256):
    """torchvision's deeplabv3_mobilenet_v3_large written with plain torch.nn: backbone children
    ``0..16`` (the dilated MobileNetV3-Large features), ``classifier`` = DeepLabHead,
    ``aux_classifier`` = FCNHead on child 4."""
    tn, tF = torch.nn, torch.nn.functional
    c = aspp_channels

    def cbr(cin, cout, k, dilation=1):
        return [tn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, bias=False),
                tn.BatchNorm2d(cout), tn.ReLU()]

    class Pooling(tn.Sequential):
        def forward(self, x):
            return tF.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)

    class ASPP(tn.Module):
        def __init__(self, cin):
            super().__init__()
            self.convs = tn.ModuleList([tn.Sequential(*cbr(cin, c, 1))]
                                       + [tn.Sequential(*cbr(cin, c, 3, r)) for r in atrous_rates]
                                       + [Pooling(tn.AdaptiveAvgPool2d(1), *cbr(cin, c, 1))])
            self.project = tn.Sequential(*cbr(c * len(self.convs), c, 1), tn.Dropout(0.5))

        def forward(self, x):
            return self.project(torch.cat([m(x) for m in self.convs], 1))

    class Net(tn.Module):
        def __init__(self):
            super().__init__()
            features = torch_mobilenet_v3(torch, "large", width_mult=width_mult, dilated=True,
                                          in_channels=in_channels).features
            self.backbone = features
            cout, caux = features[16].out_channels, features[4].out_channels
            self.classifier = tn.Sequential(ASPP(cout), *cbr(c, c, 3), tn.Conv2d(c, num_classes, 1))
            self.aux_classifier = (tn.Sequential(*cbr(caux, caux // 4, 3), tn.Dropout(0.1),
                                                 tn.Conv2d(caux // 4, num_classes, 1)) if aux_loss else None)

        def forward(self, x):
            feats = {}
            y = x
            for i, m in enumerate(self.backbone):
                y = m(y)
                feats[i] = y
            up = dict(size=x.shape[-2:], mode="bilinear", align_corners=False)
            out = {"out": tF.interpolate(self.classifier(feats[16]), **up)}
            if self.aux_classifier is not None:
                out["aux"] = tF.interpolate(self.aux_classifier(feats[4]), **up)
            return out

    return Net()


# ---- counts and structure ----

def test_parameter_counts_equal_torchvision():
    assert n_params(deeplabv3_mobilenet_v3_large()) == 11_025_477  # torchvision's figure, 21 classes
    assert n_params(deeplabv3_mobilenet_v3_large(aux_loss=True)) == 11_029_328


def test_structure_stages_and_output_strides():
    m = deeplabv3_mobilenet_v3_large(aux_loss=True, **TINY)
    assert isinstance(m, DeepLabV3)
    assert m.backbone.return_layers == {"16": "out", "4": "aux"}
    assert list(m.backbone.keys()) == [str(i) for i in range(17)]
    assert m.backbone["16"].out_channels == 240  # 6 · _make_divisible(160 · 0.25, 8)
    full = deeplabv3_mobilenet_v3_large(aux_loss=True)
    assert full.classifier[0].convs[0][0].weight.shape == (256, 960, 1, 1)
    assert full.aux_classifier[0].weight.shape == (10, 40, 3, 3)
    m.eval()
    feats = m.backbone(mc.Tensor(np.zeros((1, 3, 64, 96), dtype=np.float32)))
    assert feats["out"].shape == (1, 240, 4, 6) and feats["aux"].shape == (1, 16, 8, 12)  # strides 16 and 8


# ---- agreement with the twin and with torchvision ----

def _load_pair(torch, seed=0, **kw):
    torch.manual_seed(seed)
    theirs = torch_deeplab_mobilenet(torch, **kw)
    randomize_bn(torch, theirs, seed, in_channels=kw.get("in_channels", 3))
    ours = deeplabv3_mobilenet_v3_large(**kw)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def test_eval_matches_pytorch_twin(device):
    torch = pytest.importorskip("torch")
    ours, theirs = _load_pair(torch, aux_loss=True, in_channels=2, **TINY)
    assert n_params(ours) == sum(p.numel() for p in theirs.parameters())
    ours, theirs = ours.eval().to(device), theirs.eval()
    x = np.random.default_rng(0).standard_normal((2, 2, 50, 70)).astype(np.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x))
    got = ours(mc.Tensor(x, device=device))
    assert set(got) == {"out", "aux"}
    assert all(np.abs(want[k][0] - want[k][1]).max() > 0.1 for k in ("out", "aux"))  # input-dependent
    for k in ("out", "aux"):
        assert got[k].shape == (2, 3, 50, 70)
        np.testing.assert_allclose(got[k].numpy(), want[k].numpy(), rtol=1e-4, atol=1e-4, err_msg=k)


def test_matches_torchvision():
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision",
                             reason="torchvision does not import beside the CPU torch 2.13 of the test extras")
    torch.manual_seed(0)
    theirs = tv.models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                 num_classes=5, aux_loss=True).eval()
    randomize_bn(torch, theirs)
    ours = deeplabv3_mobilenet_v3_large(num_classes=5, aux_loss=True)
    assert n_params(ours) == sum(p.numel() for p in theirs.parameters())
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x))
    got = ours(mc.Tensor(x))
    for k in ("out", "aux"):  # float32 rounding through the backbone: ~1e-5 of the largest score
        w = want[k].numpy()
        np.testing.assert_allclose(got[k].numpy(), w, rtol=1e-4, atol=5e-5 * np.abs(w).max(), err_msg=k)


# ---- training ----

def _dropout_off(model, dropout_type):
    """Dropout in eval mode (BatchNorm stays in training mode), so both frameworks are deterministic."""
    for m in model.modules():
        if isinstance(m, dropout_type):
            m.eval()


def test_one_training_step_matches_pytorch_twin(device):
    """In float64, so that agreement is tight (float32 rounding through 17 BatchNorm'd layers
    reaches ~1e-4 of the largest gradient)."""
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    ours, theirs = _load_pair(torch, seed=3, aux_loss=True, **TINY)
    ours = ours.train().to(device, dtype=np.float64)
    theirs.train().double()
    _dropout_off(ours, nn.Dropout)
    _dropout_off(theirs, torch.nn.Dropout)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 48, 48))
    y = rng.integers(0, 3, size=(2, 48, 48))
    topt = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9)
    opt = SGD(ours.parameters(), lr=0.05, momentum=0.9)

    def torch_loss():
        out = theirs(torch.from_numpy(x))
        t = torch.from_numpy(y)
        return tF.cross_entropy(out["out"], t) + 0.5 * tF.cross_entropy(out["aux"], t)

    def our_loss():
        out = ours(mc.Tensor(x, device=device))
        t = mc.Tensor(y, device=device)
        return F.cross_entropy(out["out"], t) + 0.5 * F.cross_entropy(out["aux"], t)

    tloss, loss = torch_loss(), our_loss()
    np.testing.assert_allclose(loss.numpy(), tloss.item(), rtol=1e-10)
    topt.zero_grad()
    tloss.backward()
    topt.step()
    opt.zero_grad()
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in ours.named_parameters()}
    opt.step()
    # PyTorch's float64 hardsigmoid gradient uses 1/6 rounded to float32 (3e-8 relative): the SE layers
    gmax = max(p.grad.abs().max().item() for p in theirs.parameters())
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-6, atol=1e-8 * gmax, err_msg=name)
    state = ours.state_dict()
    for name, v in theirs.state_dict().items():
        np.testing.assert_allclose(state[name].numpy(), v.numpy(), rtol=1e-8, atol=1e-9, err_msg=name)
    with torch.no_grad():
        after = torch_loss().item()
    assert after < tloss.item()  # this step of SGD lowers the loss
    np.testing.assert_allclose(our_loss().numpy(), after, rtol=1e-8)


# ---- errors ----

def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="deeplabv3_mobilenet_v3_large: num_classes must be an integer >= 1"):
        deeplabv3_mobilenet_v3_large(num_classes=0)
    with pytest.raises(ValueError, match="deeplabv3_mobilenet_v3_large: width_mult must be > 0"):
        deeplabv3_mobilenet_v3_large(width_mult=-1.0)
    with pytest.raises(ValueError, match="ASPP: atrous_rates"):
        deeplabv3_mobilenet_v3_large(atrous_rates=(0, 2), **TINY)
    m = deeplabv3_mobilenet_v3_large(in_channels=1, **TINY).eval()
    with pytest.raises(ValueError, match=r"expected input with 1 channels.*got shape \(1, 3, 32, 32\)"):
        m(mc.Tensor(np.zeros((1, 3, 32, 32), dtype=np.float32)))
