"""Dilated ResNet, FCN-ResNet50, DeepLab v3 and v3+: parameter counts equal torchvision's, PyTorch
twins (written here with torchvision's module names) load name for name and give the same eval
outputs, real torchvision models (where it imports) do too, output shapes at output stride 8/16,
training steps, and the argument errors."""
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import models
from minicnn.models.segmentation._backbone import IntermediateLayerGetter
from minicnn.models.segmentation.deeplab import ASPP, ASPPPooling, deeplabv3_resnet50, deeplabv3plus_resnet50
from minicnn.models.segmentation.fcn_resnet import FCNHead, fcn_resnet50

from conftest import DEVICE_PARAMS

DEVICES = DEVICE_PARAMS  # cpu, cuda-emu, and cuda where a GPU exists
TV_REASON = "torchvision does not import beside the CPU torch 2.13 of the test extras"


def n_params(model):
    return sum(p.size for p in model.parameters())


# ---- parameter counts: torchvision's figures (weights=None, 21 classes) ----

@pytest.mark.parametrize("make,count", [
    (lambda: fcn_resnet50(), 32_957_013),
    (lambda: fcn_resnet50(aux_loss=True), 35_322_218),
    (lambda: deeplabv3_resnet50(), 39_638_869),
    (lambda: deeplabv3_resnet50(aux_loss=True), 42_004_074),
], ids=["fcn", "fcn-aux", "deeplabv3", "deeplabv3-aux"])
def test_parameter_counts_equal_torchvision(make, count):
    assert n_params(make()) == count


def test_deeplabv3plus_parameter_count_equals_its_pytorch_twin():
    torch = pytest.importorskip("torch")
    twin = _twins(torch)["deeplabv3plus"](21, 3, [False, False, True], (6, 12, 18), 64, (3, 4, 6, 3), 256)
    assert n_params(deeplabv3plus_resnet50()) == sum(p.numel() for p in twin.parameters())


# ---- PyTorch twins with torchvision's names ----

def _twins(torch):
    tn, tF = torch.nn, torch.nn.functional

    class Bottleneck(tn.Module):
        def __init__(self, cin, planes, stride=1, downsample=None, dilation=1):
            super().__init__()
            self.conv1 = tn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = tn.BatchNorm2d(planes)
            self.conv2 = tn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
            self.bn2 = tn.BatchNorm2d(planes)
            self.conv3 = tn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = tn.BatchNorm2d(planes * 4)
            self.relu = tn.ReLU()
            self.downsample = downsample

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet(tn.Module):
        def __init__(self, layers, num_classes, in_channels, width, replace_stride_with_dilation):
            super().__init__()
            self.inplanes, self.dilation = width, 1
            self.conv1 = tn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
            self.bn1 = tn.BatchNorm2d(width)
            self.relu = tn.ReLU()
            self.maxpool = tn.MaxPool2d(3, 2, 1)
            self.layer1 = self._make(width, layers[0], 1, False)
            self.layer2 = self._make(width * 2, layers[1], 2, replace_stride_with_dilation[0])
            self.layer3 = self._make(width * 4, layers[2], 2, replace_stride_with_dilation[1])
            self.layer4 = self._make(width * 8, layers[3], 2, replace_stride_with_dilation[2])
            self.avgpool = tn.AdaptiveAvgPool2d(1)
            self.fc = tn.Linear(width * 32, num_classes)

        def _make(self, planes, n, stride, dilate):
            previous = self.dilation
            if dilate:
                self.dilation *= stride
                stride = 1
            ds = None
            if stride != 1 or self.inplanes != planes * 4:
                ds = tn.Sequential(tn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False),
                                   tn.BatchNorm2d(planes * 4))
            blocks = [Bottleneck(self.inplanes, planes, stride, ds, previous)]
            self.inplanes = planes * 4
            blocks += [Bottleneck(self.inplanes, planes, dilation=self.dilation) for _ in range(1, n)]
            return tn.Sequential(*blocks)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    class Getter(tn.ModuleDict):
        def __init__(self, model, return_layers):
            layers, wanted = OrderedDict(), dict(return_layers)
            for name, module in model.named_children():
                layers[name] = module
                wanted.pop(name, None)
                if not wanted:
                    break
            super().__init__(layers)
            self.return_layers = dict(return_layers)

        def forward(self, x):
            out = OrderedDict()
            for name, module in self.items():
                x = module(x)
                if name in self.return_layers:
                    out[self.return_layers[name]] = x
            return out

    def fcn_head(cin, channels):
        return tn.Sequential(tn.Conv2d(cin, cin // 4, 3, padding=1, bias=False), tn.BatchNorm2d(cin // 4), tn.ReLU(),
                             tn.Dropout(0.1), tn.Conv2d(cin // 4, channels, 1))

    def cbr(cin, cout, k, dilation=1):
        return [tn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, bias=False),
                tn.BatchNorm2d(cout), tn.ReLU()]

    class ASPPPooling(tn.Sequential):
        def forward(self, x):
            size = x.shape[-2:]
            for m in self:
                x = m(x)
            return tF.interpolate(x, size=size, mode="bilinear", align_corners=False)

    class ASPP(tn.Module):
        def __init__(self, cin, rates, c):
            super().__init__()
            branches = [tn.Sequential(*cbr(cin, c, 1))] + [tn.Sequential(*cbr(cin, c, 3, r)) for r in rates]
            branches.append(ASPPPooling(tn.AdaptiveAvgPool2d(1), *cbr(cin, c, 1)))
            self.convs = tn.ModuleList(branches)
            self.project = tn.Sequential(*cbr(len(branches) * c, c, 1), tn.Dropout(0.5))

        def forward(self, x):
            return self.project(torch.cat([b(x) for b in self.convs], dim=1))

    class Seg(tn.Module):  # torchvision's _SimpleSegmentationModel
        def __init__(self, backbone, classifier, aux_classifier=None):
            super().__init__()
            self.backbone, self.classifier, self.aux_classifier = backbone, classifier, aux_classifier

        def forward(self, x):
            f = self.backbone(x)
            up = lambda y: tF.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)  # noqa: E731
            out = OrderedDict(out=up(self.classifier(f["out"])))
            if self.aux_classifier is not None:
                out["aux"] = up(self.aux_classifier(f["aux"]))
            return out

    class PlusHead(tn.Module):
        def __init__(self, cin, low_in, num_classes, rates, c, low_c=48):
            super().__init__()
            self.aspp = ASPP(cin, rates, c)
            self.project = tn.Sequential(*cbr(low_in, low_c, 1))
            self.classifier = tn.Sequential(*cbr(c + low_c, c, 3), *cbr(c, c, 3), tn.Conv2d(c, num_classes, 1))

        def forward(self, x, low_level):
            low = self.project(low_level)
            y = tF.interpolate(self.aspp(x), size=low.shape[-2:], mode="bilinear", align_corners=False)
            return self.classifier(torch.cat([y, low], dim=1))

    class Plus(tn.Module):
        def __init__(self, backbone, classifier):
            super().__init__()
            self.backbone, self.classifier = backbone, classifier

        def forward(self, x):
            f = self.backbone(x)
            y = self.classifier(f["out"], f["low_level"])
            return OrderedDict(out=tF.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False))

    def backbone(cin, dilate, width, layers, return_layers):
        return Getter(ResNet(layers, 1000, cin, width, dilate), return_layers)

    def fcn(num_classes, cin, aux, width, layers):
        rl = {"layer4": "out", **({"layer3": "aux"} if aux else {})}
        return Seg(backbone(cin, [False, True, True], width, layers, rl), fcn_head(width * 32, num_classes),
                   fcn_head(width * 16, num_classes) if aux else None)

    def deeplabv3(num_classes, cin, aux, dilate, rates, width, layers, c):
        rl = {"layer4": "out", **({"layer3": "aux"} if aux else {})}
        head = tn.Sequential(ASPP(width * 32, rates, c), *cbr(c, c, 3), tn.Conv2d(c, num_classes, 1))
        return Seg(backbone(cin, dilate, width, layers, rl), head, fcn_head(width * 16, num_classes) if aux else None)

    def deeplabv3plus(num_classes, cin, dilate, rates, width, layers, c):
        bb = backbone(cin, dilate, width, layers, {"layer4": "out", "layer1": "low_level"})
        return Plus(bb, PlusHead(width * 32, width * 4, num_classes, rates, c))

    return {"resnet": ResNet, "fcn": fcn, "deeplabv3": deeplabv3, "deeplabv3plus": deeplabv3plus}


def _randomize_bn_stats(torch, model):
    """Random running statistics and affine parameters; γ of both signs, so that an eval BatchNorm
    is not monotone and a max pool run before it instead of after it shows in the output."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            sign = torch.where(torch.rand(m.num_features, generator=g) < 0.3, -1.0, 1.0)
            m.weight.data.copy_((torch.rand(m.num_features, generator=g) + 0.5) * sign)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def _load_and_compare(torch, theirs, ours, x, dev, tol=1e-4, scale_tol=False):
    """Load ``theirs``' state_dict into ``ours`` (strict: every key matches) and compare eval
    outputs on ``x`` (in ``x``'s dtype). ``scale_tol``: atol is ``tol·max|output|``."""
    theirs.eval()
    _randomize_bn_stats(torch, theirs)
    if x.dtype == np.float64:
        theirs, ours = theirs.double(), ours.double()
    sd = theirs.state_dict()
    assert list(sd) == list(ours.state_dict())  # same names, registered in the same (execution) order
    missing, unexpected = ours.load_state_dict(sd)
    assert not missing and not unexpected
    ours.eval()
    ours = ours.to(dev)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x))
    got = ours(mc.Tensor(x, device=dev))
    if not isinstance(want, dict):
        got, want = {"out": got}, {"out": want}
    assert list(got) == list(want)
    for k in want:
        w = want[k].numpy()
        atol = tol * np.abs(w).max() if scale_tol else tol
        np.testing.assert_allclose(got[k].numpy(), w, rtol=tol, atol=atol, err_msg=k)


def _image(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _small_resnet(dilate):
    return models.ResNet(models.resnet.Bottleneck, [2, 2, 2, 2], 5, width=4, replace_stride_with_dilation=dilate)


@pytest.mark.parametrize("dilate", [[False, False, True], [False, True, True], [True, True, True]],
                         ids=["os16", "os8", "os4"])
@pytest.mark.parametrize("dev", DEVICES)
def test_dilated_resnet_matches_pytorch_twin(dilate, dev):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = _twins(torch)["resnet"]((2, 2, 2, 2), 5, 3, 4, dilate)  # 2 blocks a stage: both dilation rules show
    ours = _small_resnet(dilate)
    _load_and_compare(torch, theirs, ours, _image((2, 3, 40, 40)), dev)
    # stride, padding and dilation of every convolution as torchvision's rule sets them
    mine = dict(ours.named_modules())
    for name, t in theirs.named_modules():
        if isinstance(t, torch.nn.Conv2d):
            m = mine[name]
            assert (m.stride, m.padding, m.dilation) == (t.stride, t.padding, t.dilation), name
    # the layer4 feature map too, through the segmentation backbone getter
    getter = IntermediateLayerGetter(ours, {"layer4": "out"})
    x = _image((1, 3, 40, 40), 1)
    with torch.no_grad():
        t = torch.from_numpy(x)
        t = theirs.maxpool(theirs.relu(theirs.bn1(theirs.conv1(t))))
        want = theirs.layer4(theirs.layer3(theirs.layer2(theirs.layer1(t)))).numpy()
    np.testing.assert_allclose(getter(mc.Tensor(x, device=dev))["out"].numpy(), want, rtol=1e-4, atol=1e-4)


SMALL = dict(width=4, layers=(1, 2, 2, 2))


@pytest.mark.parametrize("aux", [False, True], ids=["noaux", "aux"])
@pytest.mark.parametrize("dev", DEVICES)
def test_fcn_resnet50_matches_pytorch_twin(aux, dev):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    theirs = _twins(torch)["fcn"](5, 3, aux, SMALL["width"], SMALL["layers"])
    ours = fcn_resnet50(num_classes=5, aux_loss=aux, **SMALL)
    _load_and_compare(torch, theirs, ours, _image((2, 3, 36, 44)), dev)


OS8 = (8, [False, True, True], (12, 24, 36))  # output stride, replace_stride_with_dilation, ASPP rates
OS16 = (16, [False, False, True], (6, 12, 18))


@pytest.mark.parametrize("os_,dilate,rates", [OS8, OS16], ids=["os8", "os16"])
@pytest.mark.parametrize("dev", DEVICES)
def test_deeplabv3_resnet50_matches_pytorch_twin(os_, dilate, rates, dev):
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    aux = os_ == 8
    theirs = _twins(torch)["deeplabv3"](4, 3, aux, dilate, rates, SMALL["width"], SMALL["layers"], 12)
    ours = deeplabv3_resnet50(num_classes=4, aux_loss=aux, output_stride=os_, aspp_channels=12, **SMALL)
    _load_and_compare(torch, theirs, ours, _image((2, 3, 40, 48), 2), dev)


@pytest.mark.parametrize("os_,dilate,rates", [OS16, OS8], ids=["os16", "os8"])
@pytest.mark.parametrize("dev", DEVICES)
def test_deeplabv3plus_matches_pytorch_twin(os_, dilate, rates, dev):
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    theirs = _twins(torch)["deeplabv3plus"](4, 1, dilate, rates, SMALL["width"], SMALL["layers"], 12)
    ours = deeplabv3plus_resnet50(num_classes=4, in_channels=1, output_stride=os_, aspp_channels=12, **SMALL)
    _load_and_compare(torch, theirs, ours, _image((2, 1, 44, 36), 3), dev)


@pytest.mark.parametrize("dev", DEVICES)
def test_training_mode_gradients_match_pytorch_twin(dev):
    """Train-mode BatchNorm (batch statistics, running-stat update) and backward through ASPP and
    the v3+ decoder, in float64 (ASPPPooling's BatchNorm sees 2 values a channel: ill-conditioned in
    float32); dropout off in both, since their random masks differ."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(4)
    theirs = _twins(torch)["deeplabv3plus"](3, 1, [False, False, True], (1, 2, 3), 2, (1, 1, 1, 1), 8).double()
    ours = deeplabv3plus_resnet50(num_classes=3, in_channels=1, atrous_rates=(1, 2, 3), width=2, layers=(1, 1, 1, 1),
                                  aspp_channels=8).double()
    ours.load_state_dict(theirs.state_dict())
    ours = ours.to(dev)
    theirs.train()
    ours.train()
    theirs.classifier.aspp.project[3].eval()
    ours.classifier.aspp.project[3].eval()
    x = np.random.default_rng(4).standard_normal((2, 1, 32, 32))
    y = np.random.default_rng(4).integers(0, 3, (2, 32, 32))
    tloss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x))["out"], torch.from_numpy(y))
    tloss.backward()
    loss = F.cross_entropy(ours(mc.Tensor(x, device=dev))["out"], mc.Tensor(y, device=dev))
    loss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-10)
    tgrads = {k: p.grad.numpy() for k, p in theirs.named_parameters()}
    for k, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tgrads[k], rtol=1e-7, atol=1e-10, err_msg=k)
    tstate = theirs.state_dict()
    for k, v in ours.state_dict().items():
        if "running" in k:
            np.testing.assert_allclose(v.numpy(), tstate[k].numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


# ---- real torchvision (its own constructors, random init) ----

@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50"])
def test_torchvision_models_load_name_for_name_and_agree(name):
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision", reason=TV_REASON)
    torch.manual_seed(0)
    theirs = getattr(tv.models.segmentation, name)(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    ours = {"fcn_resnet50": fcn_resnet50, "deeplabv3_resnet50": deeplabv3_resnet50}[name](num_classes=21, aux_loss=True)
    assert n_params(ours) == sum(p.numel() for p in theirs.parameters())
    x = _image((1, 3, 64, 64), 5)
    # float32 through 50+ layers: agreement relative to the output's scale (|outputs| reach ~250)
    _load_and_compare(torch, theirs, ours, x, "cpu", tol=1e-5, scale_tol=True)
    _load_and_compare(torch, theirs, ours, x.astype(np.float64), "cpu", tol=1e-9)


# ---- shapes ----

@settings(max_examples=6)
@given(h=st.integers(17, 48), w=st.integers(17, 48), os_=st.sampled_from([8, 16]))
def test_output_shapes_and_feature_stride(h, w, os_):
    mc.manual_seed(0)
    tiny = dict(width=2, layers=(1, 1, 1, 1), aspp_channels=4, atrous_rates=(1, 2))
    x = mc.Tensor(_image((2, 1, h, w)))
    v3 = deeplabv3_resnet50(num_classes=3, aux_loss=True, in_channels=1, output_stride=os_, **tiny).eval()
    feats = v3.backbone(x)
    # stem 7×7/2 then 3×3/2 pool, each ⌈n/2⌉, every undilated stage ⌈n/2⌉ again: ⌈n/stride⌉;
    # layer3 is at the output stride too (dilated at 8; at 16 only layer4 is dilated)
    side = lambda n, stride: -(-n // stride)  # noqa: E731
    assert feats["out"].shape == (2, 64, side(h, os_), side(w, os_))
    assert feats["aux"].shape == (2, 32, side(h, os_), side(w, os_))
    out = v3(x)
    assert out["out"].shape == out["aux"].shape == (2, 3, h, w)
    plus = deeplabv3plus_resnet50(num_classes=3, in_channels=1, output_stride=os_, **tiny).eval()
    assert plus(x)["out"].shape == (2, 3, h, w)
    fcn = fcn_resnet50(num_classes=3, in_channels=1, width=2, layers=(1, 1, 1, 1)).eval()
    assert fcn(x)["out"].shape == (2, 3, h, w)


def test_small_input_stem_keeps_layer1_at_the_input_resolution():
    """small_input: 3×3 stride-1 stem, no max pool, so every stride is 4× smaller (OS 16 → 4) and
    the v3+ decoder works at the input's size; the stem is ResNet's own small-input stem."""
    mc.manual_seed(0)
    tiny = dict(width=2, layers=(1, 1, 1, 1), aspp_channels=4, atrous_rates=(1, 2))
    x = mc.Tensor(_image((2, 1, 24, 20)))
    plus = deeplabv3plus_resnet50(num_classes=3, in_channels=1, output_stride=16, small_input=True, **tiny).eval()
    feats = plus.backbone(x)
    assert feats["low_level"].shape == (2, 8, 24, 20) and feats["out"].shape == (2, 64, 6, 5)
    assert plus.backbone.conv1.kernel_size == (3, 3) and plus.backbone.conv1.stride == (1, 1)
    assert plus(x)["out"].shape == (2, 3, 24, 20)
    v3 = deeplabv3_resnet50(num_classes=3, in_channels=1, output_stride=8, small_input=True, **tiny).eval()
    assert v3.backbone(x)["out"].shape == (2, 64, 12, 10) and v3(x)["out"].shape == (2, 3, 24, 20)


# ---- training ----

TINY = {
    "deeplabv3": lambda: deeplabv3_resnet50(num_classes=3, in_channels=1, width=2, layers=(1, 1, 1, 1),
                                            aspp_channels=8, atrous_rates=(1, 2, 3)),
    "deeplabv3plus": lambda: deeplabv3plus_resnet50(num_classes=3, in_channels=1, width=2, layers=(1, 1, 1, 1),
                                                    aspp_channels=8, atrous_rates=(1, 2, 3)),
    "fcn": lambda: fcn_resnet50(num_classes=3, aux_loss=True, in_channels=1, width=2, layers=(1, 1, 1, 1)),
}


@pytest.mark.parametrize("dev,name", [("cpu", "deeplabv3"), ("cpu", "deeplabv3plus"), ("cpu", "fcn"),
                                      ("cuda-emu", "deeplabv3plus")])
def test_sgd_steps_reduce_the_loss_on_a_fixed_batch(dev, name):
    mc.manual_seed(0)
    model = TINY[name]().to(dev)
    model.train()
    rng = np.random.default_rng(6)
    x = mc.Tensor(rng.standard_normal((4, 1, 24, 24)).astype(np.float32), device=dev)
    yy, xx = np.mgrid[:24, :24]
    y = mc.Tensor(np.stack([((yy + s) // 8 + (xx // 8)) % 3 for s in range(4)]), device=dev)
    opt = mc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    before = {k: p.numpy().copy() for k, p in model.named_parameters()}
    losses = []
    for _ in range(6):
        out = model(x)
        loss = F.cross_entropy(out["out"], y)
        if "aux" in out:
            loss = loss + 0.5 * F.cross_entropy(out["aux"], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]
    for k, p in model.named_parameters():
        assert not np.array_equal(p.numpy(), before[k]), f"{name}: {k} did not change"


# ---- argument errors ----

@pytest.mark.parametrize("fn", [deeplabv3_resnet50, deeplabv3plus_resnet50])
@pytest.mark.parametrize("os_", [4, 32, 12])
def test_output_stride_other_than_8_or_16_raises(fn, os_):
    with pytest.raises(ValueError, match=rf"{fn.__name__}: output_stride must be one of \[8, 16\], got {os_}"):
        fn(output_stride=os_, width=2, layers=(1, 1, 1, 1))


def test_resnet_argument_errors():
    with pytest.raises(ValueError, match="ResNet: replace_stride_with_dilation should be None or 3 bools"):
        models.resnet50(replace_stride_with_dilation=[False, True])
    with pytest.raises(ValueError, match="BasicBlock: dilation > 1 is not supported"):
        models.resnet18(replace_stride_with_dilation=[False, False, True])
    with pytest.raises(ValueError, match="layers should be 4 block counts"):
        deeplabv3_resnet50(width=2, layers=(1, 1, 1))
    with pytest.raises(ValueError, match="ASPP: atrous_rates must be positive integers"):
        ASPP(8, (6, 0, 18))
    with pytest.raises(ValueError, match="deeplabv3_resnet50: atrous_rates must be positive integers"):
        deeplabv3_resnet50(width=2, layers=(1, 1, 1, 1), atrous_rates=(1.5, 2))
    with pytest.raises(ValueError, match="FCNHead: in_channels must be >= 4"):
        FCNHead(3, 2)
    with pytest.raises(ValueError, match=r"fcn_resnet50: layers\[2\] must be an integer >= 1, got 0"):
        fcn_resnet50(width=2, layers=(1, 1, 0, 1))
    with pytest.raises(ValueError, match="deeplabv3plus_resnet50: aspp_channels must be an integer >= 1, got 0"):
        deeplabv3plus_resnet50(width=2, layers=(1, 1, 1, 1), aspp_channels=0)
    with pytest.raises(ValueError, match="deeplabv3_resnet50: num_classes must be an integer >= 1, got 2.5"):
        deeplabv3_resnet50(num_classes=2.5, width=2, layers=(1, 1, 1, 1))


def test_aspp_pooling_refuses_a_batch_of_one_in_training_like_pytorch():
    torch = pytest.importorskip("torch")
    x = _image((1, 8, 5, 5))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        torch.nn.functional.batch_norm(torch.zeros(1, 4, 1, 1), None, None, training=True)  # PyTorch's refusal
    pool = ASPPPooling(8, 4)
    with pytest.raises(ValueError, match=r"ASPPPooling: expected more than 1 value per channel when training.*"
                                         r"\(1, 8, 5, 5\)"):
        pool(mc.Tensor(x))
    # eval mode (running statistics) or N >= 2 works; every pixel gets the pooled vector
    out = pool.eval()(mc.Tensor(x)).numpy()
    assert out.shape == (1, 4, 5, 5)
    np.testing.assert_allclose(out, np.broadcast_to(out[:, :, :1, :1], out.shape), rtol=0, atol=0)
    assert pool.train()(mc.Tensor(_image((2, 8, 5, 5)))).shape == (2, 4, 5, 5)
