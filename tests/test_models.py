"""Architectures: parameter counts equal torchvision's, output shapes, forward+backward on every
device, and outputs equal PyTorch's with the same weights copied in."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import models

# torchvision's published counts (1,000 classes) and the seeds' counts
PARAM_COUNTS = [
    ("resnet18", lambda: models.resnet18(), 11_689_512),
    ("resnet50", lambda: models.resnet50(), 25_557_032),
    ("vgg16", lambda: models.vgg16(), 138_357_544),
    ("alexnet", lambda: models.alexnet(), 61_100_840),
    ("densenet121", lambda: models.densenet121(), 7_978_856),
    ("mobilenet_v2", lambda: models.mobilenet_v2(), 3_504_872),
    ("googlenet", lambda: models.googlenet(), 6_624_904),
    ("lenet5", lambda: models.lenet5(), 61_706),
    ("seed_cnn_cifar", lambda: models.seed_cnn(), 122_570),
]


def n_params(model):
    return sum(p.size for p in model.parameters())


@pytest.mark.parametrize("name,make,count", PARAM_COUNTS, ids=[c[0] for c in PARAM_COUNTS])
def test_parameter_counts(name, make, count):
    assert n_params(make()) == count


def test_vgg_bn_resnet34_mobilenet_v1_counts_are_consistent():
    # VGG-16-BN adds 2 parameters (weight, bias) per conv channel: 4,224 channels in VGG-16
    assert n_params(models.vgg16_bn()) - n_params(models.vgg16()) == 2 * 4224
    assert n_params(models.resnet34()) == 21_797_672  # torchvision's count
    assert n_params(models.mobilenet_v1()) == 4_231_976  # Howard et al. Table: 4.2 million
    assert n_params(models.vgg11()) == 132_863_336  # torchvision's count


SMALL = [
    ("basic", lambda: models.basic_cnn(), (2, 1, 28, 28), (2, 10)),
    ("seed28", lambda: models.seed_cnn(in_channels=1, image_size=28), (2, 1, 28, 28), (2, 10)),
    ("lenet5", lambda: models.lenet5(), (2, 1, 28, 28), (2, 10)),
    ("resnet18-small", lambda: models.resnet18(num_classes=10, in_channels=1, small_input=True, width=8),
     (2, 1, 16, 16), (2, 10)),
    ("resnet50-small", lambda: models.resnet50(num_classes=5, width=4), (2, 3, 32, 32), (2, 5)),
    ("mobilenet_v1", lambda: models.mobilenet_v1(num_classes=4, width_mult=0.125), (2, 3, 32, 32), (2, 4)),
    ("mobilenet_v2", lambda: models.mobilenet_v2(num_classes=4), (2, 3, 32, 32), (2, 4)),
    ("densenet-small", lambda: models.DenseNet(8, (2, 2), 8, 2, num_classes=3), (2, 3, 32, 32), (2, 3)),
    ("googlenet", lambda: models.googlenet(num_classes=3), (2, 3, 64, 64), (2, 3)),
    ("localization", lambda: models.LocalizationNet(1, 10, 32, width=4), (2, 1, 32, 32), (2, 10)),
    ("signal1d", lambda: models.signal_cnn(in_channels=2, num_classes=3), (2, 2, 64), (2, 3)),
]


@pytest.mark.parametrize("name,make,in_shape,out_shape", SMALL, ids=[s[0] for s in SMALL])
@pytest.mark.parametrize("dev", ["cpu", "cuda-emu"])
def test_forward_backward_shapes_every_device(name, make, in_shape, out_shape, dev):
    mc.manual_seed(0)
    model = make().to(dev)
    x = mc.Tensor(np.random.default_rng(0).standard_normal(in_shape).astype(np.float32), device=dev)
    out = model(x)
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == out_shape
    loss = (logits * logits).mean()
    if isinstance(out, tuple):
        loss = loss + out[1].sum()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient reached {pname}"
        assert np.isfinite(p.grad.numpy()).all()


def test_cpu_and_cuda_emu_agree_on_a_model():
    mc.manual_seed(1)
    model = models.resnet18(num_classes=4, in_channels=1, small_input=True, width=4)
    x = np.random.default_rng(1).standard_normal((2, 1, 12, 12))
    outs = {}
    for dev in ("cpu", "cuda-emu"):
        m = model.to(dev)
        m.eval()
        outs[dev] = m(mc.Tensor(x, device=dev, dtype=np.float64) if False else mc.Tensor(x.astype(np.float32), device=dev)).numpy()
    np.testing.assert_allclose(outs["cuda-emu"], outs["cpu"], rtol=1e-4, atol=1e-5)


# ---- outputs equal PyTorch's with the same weights (torchvision is not installable beside the
# CPU torch here, so the PyTorch twins are written out in the test with torchvision's names) ----

def _torch_twins(torch):
    tn = torch.nn

    class TBasicBlock(tn.Module):
        def __init__(self, cin, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = tn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = tn.BatchNorm2d(planes)
            self.relu = tn.ReLU()
            self.conv2 = tn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class TResNet(tn.Module):
        def __init__(self, layers, num_classes, in_channels, width):
            super().__init__()
            self.inplanes = width
            self.conv1 = tn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
            self.bn1 = tn.BatchNorm2d(width)
            self.relu = tn.ReLU()
            self.maxpool = tn.MaxPool2d(3, 2, 1)
            self.layer1 = self._make(width, layers[0], 1)
            self.layer2 = self._make(width * 2, layers[1], 2)
            self.layer3 = self._make(width * 4, layers[2], 2)
            self.layer4 = self._make(width * 8, layers[3], 2)
            self.avgpool = tn.AdaptiveAvgPool2d(1)
            self.fc = tn.Linear(width * 8, num_classes)

        def _make(self, planes, n, stride):
            ds = None
            if stride != 1 or self.inplanes != planes:
                ds = tn.Sequential(tn.Conv2d(self.inplanes, planes, 1, stride, bias=False), tn.BatchNorm2d(planes))
            blocks = [TBasicBlock(self.inplanes, planes, stride, ds)]
            self.inplanes = planes
            blocks += [TBasicBlock(planes, planes) for _ in range(1, n)]
            return tn.Sequential(*blocks)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return TResNet


def _randomize_bn_stats(torch, model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("dev", ["cpu", "cuda-emu"])
def test_resnet18_matches_pytorch_with_copied_weights(dev):
    torch = pytest.importorskip("torch")
    TResNet = _torch_twins(torch)
    torch.manual_seed(0)
    theirs = TResNet([2, 2, 2, 2], 5, 3, 8).eval()
    _randomize_bn_stats(torch, theirs)
    ours = models.resnet18(num_classes=5, in_channels=3, width=8)
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    ours = ours.to(dev)
    x = np.random.default_rng(0).standard_normal((2, 3, 40, 40)).astype(np.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    got = ours(mc.Tensor(x, device=dev)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_lenet5_and_seed_cnn_match_pytorch_with_gradients():
    torch = pytest.importorskip("torch")
    tn = torch.nn
    twins = {
        "lenet5": (models.lenet5(), tn.Sequential(
            tn.Sequential(tn.Conv2d(1, 6, 5, padding=2), tn.Tanh(), tn.AvgPool2d(2), tn.Conv2d(6, 16, 5), tn.Tanh(),
                          tn.AvgPool2d(2)),
            tn.Sequential(tn.Flatten(), tn.Linear(400, 120), tn.Tanh(), tn.Linear(120, 84), tn.Tanh(), tn.Linear(84, 10)))),
        "seed": (models.seed_cnn(in_channels=1, image_size=28), tn.Sequential(
            tn.Sequential(tn.Conv2d(1, 32, 3), tn.ReLU(), tn.MaxPool2d(2), tn.Conv2d(32, 64, 3), tn.ReLU(),
                          tn.MaxPool2d(2), tn.Conv2d(64, 64, 3), tn.ReLU()),
            tn.Sequential(tn.Flatten(), tn.Linear(576, 64), tn.ReLU(), tn.Linear(64, 10)))),
    }
    x = np.random.default_rng(3).standard_normal((4, 1, 28, 28)).astype(np.float32)
    y = np.array([1, 7, 3, 0])
    for name, (ours, theirs) in twins.items():
        # torch's Sequential names are features.N / classifier.N once wrapped like ours
        sd = {k.replace("0.", "features.", 1) if k.startswith("0.") else k.replace("1.", "classifier.", 1): v
              for k, v in theirs.state_dict().items()}
        ours.load_state_dict(sd)
        tx = torch.from_numpy(x).requires_grad_(True)
        tloss = tn.functional.cross_entropy(theirs(tx), torch.from_numpy(y))
        tloss.backward()
        X = mc.Tensor(x, requires_grad=True)
        loss = mc.functional.cross_entropy(ours(X), mc.Tensor(y))
        loss.backward()
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
        tgrads = {k.replace("0.", "features.", 1) if k.startswith("0.") else k.replace("1.", "classifier.", 1): p.grad.numpy()
                  for k, p in theirs.named_parameters()}
        for k, p in ours.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), tgrads[k], rtol=1e-4, atol=1e-5, err_msg=f"{name}: {k}")
