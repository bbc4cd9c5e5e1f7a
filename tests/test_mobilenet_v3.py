"""MobileNetV3 and its activations: hardsigmoid/hardswish equal PyTorch's (values and gradients,
kinks included); parameter counts equal torchvision's; a PyTorch twin written here with
torchvision's module names loads into ours and gives the same eval outputs (and, in training
mode, the same gradients); the real torchvision constructors agree where torchvision imports."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import models, nn
from minicnn.models.mobilenet import _make_divisible
from minicnn.testing.strategies import arrays, shapes

KINKS = np.array([-3.0, 3.0, -3.0 - 1e-7, -3.0 + 1e-7, 3.0 - 1e-7, 3.0 + 1e-7, 0.0, -5.0, 5.0, -1.5, 2.5])


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def n_params(model):
    return sum(p.size for p in model.parameters())


# ---- hardsigmoid / hardswish --------------------------------------------------------------------

def _torch_value_and_grad(torch, name, a, gy):
    t = torch.from_numpy(a.copy()).requires_grad_(True)
    y = getattr(torch.nn.functional, name)(t)
    y.backward(torch.from_numpy(gy.copy()))
    return y.detach().numpy(), t.grad.numpy()


def _ours_value_and_grad(name, a, gy, device):
    x = mc.Tensor(a.copy(), device=device, requires_grad=True)
    y = getattr(F, name)(x)
    y.backward(mc.Tensor(gy.copy(), device=device))
    return y.numpy(), x.grad.numpy()


@pytest.mark.parametrize("name", ["hardsigmoid", "hardswish"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_hard_activations_match_pytorch_at_the_kinks(name, dtype, device):
    torch = pytest.importorskip("torch")
    a = np.concatenate([KINKS, [np.inf, -np.inf]]).astype(dtype)
    gy = np.linspace(0.5, 2.0, a.size).astype(dtype)
    want_y, want_g = _torch_value_and_grad(torch, name, a, gy)
    with np.errstate(invalid="ignore"):  # hardswish(-inf) = -inf · 0 = NaN, as in PyTorch
        got_y, got_g = _ours_value_and_grad(name, a, gy, device)
    assert got_y.dtype == dtype and got_g.dtype == dtype
    np.testing.assert_allclose(got_y, want_y, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["hardsigmoid", "hardswish"])
def test_hard_activations_nan_input_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    a, gy = np.array([np.nan, 1.0]), np.array([2.0, 1.0])
    want_y, want_g = _torch_value_and_grad(torch, name, a, gy)
    got_y, got_g = _ours_value_and_grad(name, a, gy, "cpu")
    np.testing.assert_array_equal(got_y, want_y)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-7)  # PyTorch's float64 1/6 here is float32's


@given(data=st.data())
def test_hard_activations_match_pytorch_on_random_arrays(data):
    torch = pytest.importorskip("torch")
    shape = data.draw(shapes(max_dims=4, max_side=5))
    a = data.draw(arrays(shape, low=-6.0, high=6.0))
    gy = data.draw(arrays(shape, contiguous=True))
    for name in ("hardsigmoid", "hardswish"):
        want_y, want_g = _torch_value_and_grad(torch, name, np.ascontiguousarray(a), gy)
        got_y, got_g = _ours_value_and_grad(name, a, gy, "cpu")
        np.testing.assert_allclose(got_y, want_y, rtol=1e-12, atol=1e-12)
        # PyTorch's float64 hardsigmoid gradient multiplies by 1/6 rounded to float32 (3e-8 relative)
        np.testing.assert_allclose(got_g, want_g, rtol=1e-7, atol=1e-12)


def test_hard_activation_layers():
    x = mc.Tensor(np.array([-4.0, 0.0, 1.5, 3.0], dtype=np.float32))
    np.testing.assert_allclose(nn.Hardsigmoid()(x).numpy(), [0.0, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(nn.Hardswish(inplace=True)(x).numpy(), [0.0, 0.0, 1.5 * 0.75, 3.0])
    assert "inplace=True" in repr(nn.Hardswish(inplace=True))
    assert F.hardswish(mc.Tensor(np.arange(3))).dtype == np.float32  # ints promote, as in PyTorch


# ---- the PyTorch twin (torchvision's names and structure, written out here) ----------------------

# (in, kernel, expanded, out, use_se, "RE"/"HS", stride) of the paper's Tables 1 and 2;
# the last three rows of each are the last stage (dilated / reduced by the constructors).
LARGE = [(16, 3, 16, 16, 0, "RE", 1), (16, 3, 64, 24, 0, "RE", 2), (24, 3, 72, 24, 0, "RE", 1),
         (24, 5, 72, 40, 1, "RE", 2), (40, 5, 120, 40, 1, "RE", 1), (40, 5, 120, 40, 1, "RE", 1),
         (40, 3, 240, 80, 0, "HS", 2), (80, 3, 200, 80, 0, "HS", 1), (80, 3, 184, 80, 0, "HS", 1),
         (80, 3, 184, 80, 0, "HS", 1), (80, 3, 480, 112, 1, "HS", 1), (112, 3, 672, 112, 1, "HS", 1),
         (112, 5, 672, 160, 1, "HS", 2), (160, 5, 960, 160, 1, "HS", 1), (160, 5, 960, 160, 1, "HS", 1)]
SMALL = [(16, 3, 16, 16, 1, "RE", 2), (16, 3, 72, 24, 0, "RE", 2), (24, 3, 88, 24, 0, "RE", 1),
         (24, 5, 96, 40, 1, "HS", 2), (40, 5, 240, 40, 1, "HS", 1), (40, 5, 240, 40, 1, "HS", 1),
         (40, 5, 120, 48, 1, "HS", 1), (48, 5, 144, 48, 1, "HS", 1), (48, 5, 288, 96, 1, "HS", 2),
         (96, 5, 576, 96, 1, "HS", 1), (96, 5, 576, 96, 1, "HS", 1)]


def torch_mobilenet_v3(torch, arch="large", num_classes=1000, width_mult=1.0, dilated=False, reduced_tail=False,
                       in_channels=3, dropout=0.2):
    """torchvision's MobileNetV3 written with plain torch.nn (same child names, so its state_dict
    keys are torchvision's)."""
    tn = torch.nn

    def ch(c):
        return _make_divisible(c * width_mult, 8)

    def cna(cin, cout, k, stride=1, groups=1, dilation=1, act=tn.ReLU):
        layers = [tn.Conv2d(cin, cout, k, stride, (k - 1) // 2 * dilation, dilation, groups, bias=False),
                  tn.BatchNorm2d(cout, eps=0.001, momentum=0.01)]
        seq = tn.Sequential(*(layers + ([act()] if act is not None else [])))
        seq.out_channels = cout
        return seq

    class SE(tn.Module):
        def __init__(self, c, s):
            super().__init__()
            self.avgpool, self.fc1, self.fc2 = tn.AdaptiveAvgPool2d(1), tn.Conv2d(c, s, 1), tn.Conv2d(s, c, 1)
            self.activation, self.scale_activation = tn.ReLU(), tn.Hardsigmoid()

        def forward(self, x):
            return x * self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))

    class Block(tn.Module):
        def __init__(self, cin, k, exp, cout, se, act, stride, dilation):
            super().__init__()
            act = tn.Hardswish if act == "HS" else tn.ReLU
            layers = [cna(cin, exp, 1, act=act)] if exp != cin else []
            layers.append(cna(exp, exp, k, 1 if dilation > 1 else stride, exp, dilation, act))
            if se:
                layers.append(SE(exp, _make_divisible(exp // 4, 8)))
            layers.append(cna(exp, cout, 1, act=None))
            self.block, self.res = tn.Sequential(*layers), stride == 1 and cin == cout
            self.out_channels, self._is_cn = cout, stride > 1

        def forward(self, x):
            y = self.block(x)
            return y + x if self.res else y

    table, last = (LARGE, 1280) if arch == "large" else (SMALL, 1024)
    r = 2 if reduced_tail else 1
    layers = [cna(in_channels, ch(table[0][0]), 3, 2, act=tn.Hardswish)]
    for i, (cin, k, exp, cout, se, act, s) in enumerate(table):
        tail = i >= len(table) - 3  # the last stage: dilated, and reduced from its output on
        d = r if i > len(table) - 3 else 1
        layers.append(Block(ch(cin // d), k, ch(exp // d), ch(cout // (r if tail else 1)), se, act, s,
                            2 if dilated and tail else 1))
    c = layers[-1].out_channels
    layers.append(cna(c, 6 * c, 1, act=tn.Hardswish))

    class TMobileNetV3(tn.Module):
        def __init__(self):
            super().__init__()
            self.features, self.avgpool = tn.Sequential(*layers), tn.AdaptiveAvgPool2d(1)
            self.classifier = tn.Sequential(tn.Linear(6 * c, ch(last // r)), tn.Hardswish(), tn.Dropout(dropout),
                                            tn.Linear(ch(last // r), num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return TMobileNetV3()


def randomize_bn(torch, model, seed=0, in_channels=3):
    """Non-trivial BatchNorm affine parameters, and running statistics measured on random images
    (one training-mode pass with momentum 1) then perturbed: with made-up statistics the
    activations of a deep net vanish or saturate in eval mode, and the output no longer depends
    on the input. Linear weights go from torchvision's N(0, 0.01) to N(0, 1/fan_in) for the same reason."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0.0, m.in_features ** -0.5, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.momentum = 1.0
        training = model.training
        model.train()(torch.randn(4, in_channels, 64, 64, generator=g))
        model.train(training)
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
            m.running_mean.add_(torch.randn(m.num_features, generator=g) * 0.05 * m.running_var.sqrt())
            m.running_var.mul_(torch.rand(m.num_features, generator=g) * 0.4 + 0.8)


# ---- counts -------------------------------------------------------------------------------------

def test_parameter_counts_equal_torchvision():
    assert n_params(models.mobilenet_v3_large()) == 5_483_032  # torchvision's published figure
    assert n_params(models.mobilenet_v3_small()) == 2_542_856
    assert n_params(models.mobilenet_v3_large(dilated=True)) == 5_483_032  # dilation adds no weights
    assert models.MODELS["mobilenet_v3_large"] is models.mobilenet_v3_large


@pytest.mark.parametrize("kw", [dict(arch="large", width_mult=0.75, reduced_tail=True),
                                dict(arch="small", width_mult=0.5, in_channels=1, num_classes=7)])
def test_parameter_counts_equal_the_twin(kw):
    torch = pytest.importorskip("torch")
    kw = dict(kw)
    arch = kw.pop("arch")
    ours = (models.mobilenet_v3_large if arch == "large" else models.mobilenet_v3_small)(**kw)
    theirs = torch_mobilenet_v3(torch, arch, **kw)
    assert n_params(ours) == sum(p.numel() for p in theirs.parameters())
    assert set(ours.state_dict()) == set(theirs.state_dict())


def test_structure_and_names():
    m = models.mobilenet_v3_large(dilated=True)
    assert len(m.features) == 17
    assert [i for i, b in enumerate(m.features) if getattr(b, "_is_cn", False)] == [2, 4, 7, 13]
    assert m.features[16].out_channels == 960 and m.features[4].out_channels == 40
    dw = m.features[13].block[1][0]  # the first block of the last stage: stride 1, dilation 2
    assert dw.stride == (1, 1) and dw.dilation == (2, 2) and dw.padding == (4, 4)
    bn = m.features[0][1]
    assert bn.eps == 0.001 and bn.momentum == 0.01
    se = m.features[4].block[2]
    assert se.fc1.weight.shape == (24, 72, 1, 1)  # _make_divisible(72 // 4, 8) = 24
    assert isinstance(se.scale_activation, nn.Hardsigmoid)
    assert isinstance(m.classifier[1], nn.Hardswish) and m.classifier[2].p == 0.2


# ---- outputs equal the twin's --------------------------------------------------------------------

def _compare_eval(torch, arch, dev, size=48, **kw):
    torch.manual_seed(0)
    theirs = torch_mobilenet_v3(torch, arch, **kw)
    randomize_bn(torch, theirs, in_channels=kw.get("in_channels", 3))
    theirs.eval()
    ours = (models.mobilenet_v3_large if arch == "large" else models.mobilenet_v3_small)(**kw)
    ours.load_state_dict(theirs.state_dict())
    ours = ours.eval().to(dev)
    x = np.random.default_rng(0).standard_normal((2, kw.get("in_channels", 3), size, size)).astype(np.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    got = ours(mc.Tensor(x, device=dev)).numpy()
    assert np.abs(want[0] - want[1]).max() > 0.1  # the outputs depend on the image, not only on biases
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    return np.abs(got - want).max()


@pytest.mark.parametrize("arch", ["large", "small"])
def test_eval_matches_pytorch_twin(arch, device):
    torch = pytest.importorskip("torch")
    _compare_eval(torch, arch, device, num_classes=5, width_mult=0.25)


@pytest.mark.parametrize("kw", [dict(dilated=True), dict(reduced_tail=True, in_channels=1, width_mult=0.5)])
def test_eval_matches_pytorch_twin_variants(kw):
    torch = pytest.importorskip("torch")
    _compare_eval(torch, "large", "cpu", size=40, num_classes=4, **kw)


def test_training_gradients_match_pytorch_twin(device):
    """Train mode (batch statistics, hardswish/hardsigmoid/SE backward): same loss, gradients and
    running statistics, in float64 so that the agreement is tight."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    theirs = torch_mobilenet_v3(torch, "small", num_classes=3, width_mult=0.25, dropout=0.0).train()
    randomize_bn(torch, theirs, seed=1)
    theirs.double()
    ours = models.mobilenet_v3_small(num_classes=3, width_mult=0.25, dropout=0.0)
    ours.load_state_dict(theirs.state_dict())
    ours = ours.train().to(device, dtype=np.float64)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 40, 40))
    y = np.array([0, 2, 1, 2])
    tloss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
    tloss.backward()
    loss = F.cross_entropy(ours(mc.Tensor(x, device=device)), mc.Tensor(y, device=device))
    loss.backward()
    np.testing.assert_allclose(loss.numpy(), tloss.item(), rtol=1e-10)
    grads = dict(ours.named_parameters())
    gmax = max(p.grad.abs().max().item() for p in theirs.parameters())
    for name, p in theirs.named_parameters():  # rtol: PyTorch's float64 hardsigmoid uses a float32 1/6
        np.testing.assert_allclose(grads[name].grad.numpy(), p.grad.numpy(), rtol=1e-6, atol=1e-8 * gmax,
                                   err_msg=name)
    rm = dict(ours.state_dict())
    for name, b in theirs.named_buffers():
        if "running" in name:
            np.testing.assert_allclose(rm[name].numpy(), b.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


# ---- the real torchvision -----------------------------------------------------------------------

@pytest.mark.parametrize("arch,kw", [("large", {}), ("small", {}), ("large", dict(dilated=True, width_mult=0.5)),
                                     ("small", dict(reduced_tail=True, num_classes=10))])
def test_matches_torchvision(arch, kw):
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision",
                             reason="torchvision does not import beside the CPU torch 2.13 of the test extras")
    torch.manual_seed(0)
    theirs = getattr(tv.models, f"mobilenet_v3_{arch}")(weights=None, **kw).eval()
    randomize_bn(torch, theirs)
    ours = getattr(models, f"mobilenet_v3_{arch}")(**kw)
    assert n_params(ours) == sum(p.numel() for p in theirs.parameters())
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    # float32 rounding through ~60 layers: differences reach ~3e-6 of the largest logit
    np.testing.assert_allclose(ours(mc.Tensor(x)).numpy(), want, rtol=1e-4, atol=5e-5 * np.abs(want).max())


# ---- bad input ----------------------------------------------------------------------------------

def test_bad_arguments_raise_clear_errors():
    m = models.mobilenet_v3_small(num_classes=3, width_mult=0.25, in_channels=2)
    with pytest.raises(ValueError, match=r"MobileNetV3: expected input \(N, 2, H, W\), got shape \(1, 3, 32, 32\)"):
        m(mc.Tensor(np.zeros((1, 3, 32, 32), dtype=np.float32)))
    with pytest.raises(ValueError, match="MobileNetV3.*shape \\(3, 32, 32\\)"):
        m(mc.Tensor(np.zeros((3, 32, 32), dtype=np.float32)))
    with pytest.raises(ValueError, match="width_mult must be > 0"):
        models.mobilenet_v3_large(width_mult=0)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        models.mobilenet_v3_small(num_classes=0)
    with pytest.raises(ValueError, match="dropout must be in"):
        models.mobilenet_v3_small(dropout=1.5)
