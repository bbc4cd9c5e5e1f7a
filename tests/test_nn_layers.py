"""Every layer against PyTorch's on the same weights: forward output, gradient with respect to
the input and to every parameter, running statistics (float32, ~1e-5 abs / 1e-4 rel).

Layers that wrap a functional op written by another family are skipped with a reason while
that op is missing from ``minicnn.functional``.
"""
import numpy as np
import pytest

import minicnn as mc
from minicnn.random import manual_seed
import minicnn.functional as F
from minicnn import nn

torch = pytest.importorskip("torch")
tnn = torch.nn

ATOL, RTOL = 1e-5, 1e-4


def _needs(*ops):
    missing = [op for op in ops if not hasattr(F, op)]
    if missing:
        pytest.skip(f"minicnn.functional has no {', '.join(missing)} yet (written by another family)")


def _distinct(rng, shape):
    """All-distinct values (no ties for max-type layers)."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) / n * 4 - 2).astype(np.float32)


def _normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def check_against_torch(ours, theirs, x_np, train=True, rng=None, copy_weights=True):
    """Copy the weights torch → minicnn, run both, compare outputs and all gradients."""
    rng = rng or np.random.default_rng(0)
    if copy_weights:
        ours.load_state_dict(theirs.state_dict())
    ours.train(train)
    theirs.train(train)
    x = mc.Tensor(x_np.copy(), requires_grad=True)
    tx = torch.tensor(x_np.copy(), requires_grad=True)
    y, ty = ours(x), theirs(tx)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), atol=ATOL, rtol=RTOL, err_msg=f"{ours}: forward")
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=ATOL, rtol=RTOL, err_msg=f"{ours}: input grad")
    ours_p, theirs_p = dict(ours.named_parameters()), dict(theirs.named_parameters())
    assert ours_p.keys() == theirs_p.keys()
    for name, p in ours_p.items():
        np.testing.assert_allclose(p.grad.numpy(), theirs_p[name].grad.numpy(), atol=ATOL, rtol=RTOL,
                                   err_msg=f"{ours}: grad of {name}")
    ours_b, theirs_b = dict(ours.named_buffers()), dict(theirs.named_buffers())
    assert ours_b.keys() == theirs_b.keys()
    for name, b in ours_b.items():
        np.testing.assert_allclose(b.numpy(), theirs_b[name].numpy(), atol=ATOL, rtol=RTOL,
                                   err_msg=f"{ours}: buffer {name}")
    return y


# (id, minicnn layer factory, torch layer factory, input shape, input kind, functional ops needed)
LAYERS = [
    ("linear", lambda: nn.Linear(5, 3), lambda: tnn.Linear(5, 3), (4, 5), "normal", ()),
    ("linear-nobias-3d", lambda: nn.Linear(5, 2, bias=False), lambda: tnn.Linear(5, 2, bias=False), (2, 3, 5),
     "normal", ()),
    ("conv2d", lambda: nn.Conv2d(3, 4, 3, padding=1), lambda: tnn.Conv2d(3, 4, 3, padding=1), (2, 3, 6, 5),
     "normal", ("conv2d",)),
    ("conv2d-groups-stride", lambda: nn.Conv2d(4, 6, (3, 2), stride=2, padding=(1, 0), groups=2, bias=False),
     lambda: tnn.Conv2d(4, 6, (3, 2), stride=2, padding=(1, 0), groups=2, bias=False), (2, 4, 7, 6), "normal",
     ("conv2d",)),
    ("conv2d-dilation", lambda: nn.Conv2d(2, 3, 3, dilation=2, padding=2), lambda: tnn.Conv2d(2, 3, 3, dilation=2, padding=2),
     (1, 2, 7, 7), "normal", ("conv2d",)),
    ("conv2d-reflect", lambda: nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
     lambda: tnn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), (2, 2, 5, 5), "normal", ("conv2d",)),
    ("conv1d", lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1), lambda: tnn.Conv1d(3, 4, 3, stride=2, padding=1),
     (2, 3, 9), "normal", ("conv1d",)),
    ("conv_transpose2d", lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1),
     lambda: tnn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1), (2, 3, 4, 3), "normal",
     ("conv_transpose2d",)),
    ("maxpool2d", lambda: nn.MaxPool2d(2), lambda: tnn.MaxPool2d(2), (2, 3, 6, 4), "distinct", ("max_pool2d",)),
    ("maxpool2d-pad-ceil", lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
     lambda: tnn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), (1, 2, 6, 7), "distinct", ("max_pool2d",)),
    ("maxpool1d", lambda: nn.MaxPool1d(2), lambda: tnn.MaxPool1d(2), (2, 3, 8), "distinct", ("max_pool1d",)),
    ("avgpool2d", lambda: nn.AvgPool2d(2), lambda: tnn.AvgPool2d(2), (2, 3, 6, 4), "normal", ("avg_pool2d",)),
    ("avgpool2d-nopad-count", lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False),
     lambda: tnn.AvgPool2d(3, 2, 1, count_include_pad=False), (1, 2, 5, 6), "normal", ("avg_pool2d",)),
    ("avgpool1d", lambda: nn.AvgPool1d(3, 2), lambda: tnn.AvgPool1d(3, 2), (2, 2, 9), "normal", ("avg_pool1d",)),
    ("adaptive_avg", lambda: nn.AdaptiveAvgPool2d((2, 3)), lambda: tnn.AdaptiveAvgPool2d((2, 3)), (2, 3, 5, 7),
     "normal", ("adaptive_avg_pool2d",)),
    ("adaptive_max", lambda: nn.AdaptiveMaxPool2d(2), lambda: tnn.AdaptiveMaxPool2d(2), (2, 3, 5, 6), "distinct",
     ("adaptive_max_pool2d",)),
    ("upsample-nearest", lambda: nn.Upsample(scale_factor=2), lambda: tnn.Upsample(scale_factor=2), (1, 2, 3, 4),
     "normal", ("interpolate",)),
    ("upsample-bilinear", lambda: nn.Upsample(size=(5, 7), mode="bilinear", align_corners=False),
     lambda: tnn.Upsample(size=(5, 7), mode="bilinear", align_corners=False), (2, 2, 3, 4), "normal",
     ("interpolate",)),
    ("lrn", lambda: nn.LocalResponseNorm(3), lambda: tnn.LocalResponseNorm(3), (2, 5, 3, 3), "normal",
     ("local_response_norm",)),
    ("flatten", lambda: nn.Flatten(), lambda: tnn.Flatten(), (2, 3, 2, 2), "normal", ()),
    ("identity", lambda: nn.Identity(), lambda: tnn.Identity(), (2, 3), "normal", ()),
    ("relu", lambda: nn.ReLU(), lambda: tnn.ReLU(), (3, 4), "normal", ()),
    ("leaky_relu", lambda: nn.LeakyReLU(0.2), lambda: tnn.LeakyReLU(0.2), (3, 4), "normal", ()),
    ("relu6", lambda: nn.ReLU6(), lambda: tnn.ReLU6(), (3, 4), "wide", ()),
    ("hardtanh", lambda: nn.Hardtanh(-0.5, 0.5), lambda: tnn.Hardtanh(-0.5, 0.5), (3, 4), "normal", ()),
    ("sigmoid", lambda: nn.Sigmoid(), lambda: tnn.Sigmoid(), (3, 4), "wide", ()),
    ("tanh", lambda: nn.Tanh(), lambda: tnn.Tanh(), (3, 4), "normal", ()),
    ("gelu", lambda: nn.GELU(), lambda: tnn.GELU(), (3, 4), "normal", ()),
    ("gelu-tanh", lambda: nn.GELU("tanh"), lambda: tnn.GELU("tanh"), (3, 4), "normal", ()),
    ("softmax", lambda: nn.Softmax(dim=1), lambda: tnn.Softmax(dim=1), (3, 4, 2), "wide", ()),
    ("log_softmax", lambda: nn.LogSoftmax(dim=-1), lambda: tnn.LogSoftmax(dim=-1), (3, 4), "wide", ()),
    ("dropout-eval", lambda: nn.Dropout(0.3), lambda: tnn.Dropout(0.3), (3, 4), "normal", ()),
    ("dropout2d-eval", lambda: nn.Dropout2d(0.3), lambda: tnn.Dropout2d(0.3), (2, 3, 2, 2), "normal", ()),
    ("layer_norm", lambda: nn.LayerNorm((4, 5)), lambda: tnn.LayerNorm((4, 5)), (2, 3, 4, 5), "normal", ()),
    ("group_norm", lambda: nn.GroupNorm(2, 4), lambda: tnn.GroupNorm(2, 4), (2, 4, 3, 3), "normal", ()),
]


@pytest.mark.parametrize("spec", LAYERS, ids=[s[0] for s in LAYERS])
def test_layer_matches_torch(spec):
    _, make, make_torch, shape, kind, ops = spec
    _needs(*ops)
    rng = np.random.default_rng(7)
    torch.manual_seed(0)
    theirs = make_torch()
    if kind == "distinct":
        x = _distinct(rng, shape)
    elif kind == "wide":
        x = _normal(rng, shape) * 4
    else:
        x = _normal(rng, shape)
    with torch.no_grad():  # random, non-trivial affine parameters where torch starts at 1 / 0
        for p in theirs.parameters():
            p.add_(torch.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)) * 0.3)
    check_against_torch(make(), theirs, x, train=not kind.startswith("eval") and "eval" not in spec[0])


BATCHNORMS = [
    ("bn1d-2d-input", lambda: nn.BatchNorm1d(3), lambda: tnn.BatchNorm1d(3), (6, 3)),
    ("bn1d-3d-input", lambda: nn.BatchNorm1d(3, momentum=0.3), lambda: tnn.BatchNorm1d(3, momentum=0.3), (4, 3, 5)),
    ("bn2d", lambda: nn.BatchNorm2d(3), lambda: tnn.BatchNorm2d(3), (4, 3, 3, 2)),
    ("bn2d-cumulative", lambda: nn.BatchNorm2d(3, momentum=None), lambda: tnn.BatchNorm2d(3, momentum=None),
     (2, 3, 2, 2)),
    ("bn2d-no-affine", lambda: nn.BatchNorm2d(2, affine=False), lambda: tnn.BatchNorm2d(2, affine=False),
     (3, 2, 2, 3)),
    ("bn2d-no-tracking", lambda: nn.BatchNorm2d(2, track_running_stats=False),
     lambda: tnn.BatchNorm2d(2, track_running_stats=False), (3, 2, 2, 3)),
    ("instancenorm2d", lambda: nn.InstanceNorm2d(3), lambda: tnn.InstanceNorm2d(3), (2, 3, 4, 3)),
    ("instancenorm2d-affine-tracking", lambda: nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
     lambda: tnn.InstanceNorm2d(3, affine=True, track_running_stats=True), (2, 3, 4, 3)),
]


@pytest.mark.parametrize("spec", BATCHNORMS, ids=[s[0] for s in BATCHNORMS])
def test_norm_layer_train_then_eval_matches_torch(spec):
    """Three training steps (running statistics move) and then eval mode, against PyTorch."""
    _, make, make_torch, shape = spec
    rng = np.random.default_rng(3)
    ours, theirs = make(), make_torch()
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(torch.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)) * 0.3)
    ours.load_state_dict(theirs.state_dict())
    for step in range(3):
        x = (_normal(rng, shape) * 2 + 1).astype(np.float32)
        ours.zero_grad()
        theirs.zero_grad()
        check_against_torch(ours, theirs, x, train=True, rng=rng, copy_weights=False)
    check_against_torch(ours, theirs, _normal(rng, shape), train=False, rng=rng, copy_weights=False)


def test_batchnorm_running_var_uses_unbiased_variance():
    bn = nn.BatchNorm1d(1, momentum=1.0)
    x = np.array([[1.0], [2.0], [4.0]], dtype=np.float32)
    bn(mc.Tensor(x))
    assert np.isclose(bn.running_var.item(), np.var(x, ddof=1))
    assert np.isclose(bn.running_mean.item(), x.mean())
    assert bn.num_batches_tracked.item() == 1


def test_maxunpool_matches_torch():
    _needs("max_pool2d", "max_unpool2d")
    rng = np.random.default_rng(1)
    x_np = _distinct(rng, (2, 3, 4, 6))
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    tpool, tunpool = tnn.MaxPool2d(2, return_indices=True), tnn.MaxUnpool2d(2)
    x = mc.Tensor(x_np, requires_grad=True)
    tx = torch.tensor(x_np, requires_grad=True)
    y, idx = pool(x)
    ty, tidx = tpool(tx)
    out, tout = unpool(y, idx), tunpool(ty, tidx)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), atol=ATOL)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(g)
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=ATOL)


# ---- initialisation ------------------------------------------------------------------------------

@pytest.mark.parametrize("make,fan_in", [
    (lambda: nn.Linear(50, 40), 50),
    (lambda: nn.Conv2d(6, 8, 3), 54),
    (lambda: nn.Conv2d(6, 8, 3, groups=2), 27),
    (lambda: nn.ConvTranspose2d(6, 8, 3), 72),
    (lambda: nn.Conv1d(4, 5, 5), 20),
])
def test_default_init_bounds_are_pytorchs(make, fan_in):
    """kaiming_uniform(a=√5) is U(±1/√fan_in) for the weight; the bias is U(±1/√fan_in) too."""
    manual_seed(0)
    layer = make()
    bound = 1 / np.sqrt(fan_in)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.abs(b).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.25 * bound  # the std of U(-a, a) is a/√3


def test_manual_seed_makes_init_and_dropout_repeatable():
    manual_seed(123)
    a = nn.Linear(4, 3).weight.numpy().copy()
    ma = F.dropout(mc.ones(50), 0.5).numpy()
    manual_seed(123)
    b = nn.Linear(4, 3).weight.numpy().copy()
    mb = F.dropout(mc.ones(50), 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(nn.Linear(4, 3).weight.numpy(), a)


@pytest.mark.parametrize("fn,std", [
    (lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu"), np.sqrt(2 / 200)),
    (lambda t: nn.init.kaiming_uniform_(t, nonlinearity="relu"), np.sqrt(2 / 200)),
    (lambda t: nn.init.xavier_normal_(t), np.sqrt(2 / (200 + 300))),
    (lambda t: nn.init.xavier_uniform_(t), np.sqrt(2 / (200 + 300))),
    (lambda t: nn.init.normal_(t, 0.0, 0.02), 0.02),
    (lambda t: nn.init.uniform_(t, -0.1, 0.1), 0.1 / np.sqrt(3)),
])
def test_init_functions_have_the_documented_std(fn, std):
    t = mc.zeros(300, 200)
    out = fn(t)
    assert out is t
    assert abs(t.numpy().std() - std) < 0.03 * std
    assert abs(t.numpy().mean()) < 0.05 * std


def test_zeros_ones_and_gain():
    t = mc.ones(3, 4)
    nn.init.zeros_(t)
    assert not t.numpy().any()
    nn.init.ones_(t)
    assert (t.numpy() == 1).all()
    assert nn.init.calculate_gain("leaky_relu", np.sqrt(5)) == pytest.approx(np.sqrt(1 / 3))
    assert nn.init.calculate_gain("tanh") == pytest.approx(5 / 3)


# ---- dropout in training --------------------------------------------------------------------------

def test_dropout_training_zeroes_about_p_and_scales_the_rest():
    manual_seed(0)
    layer = nn.Dropout(0.3)
    x = mc.Tensor(np.ones((200, 100), np.float32), requires_grad=True)
    y = layer(x)
    kept = y.numpy() != 0
    assert abs(1 - kept.mean() - 0.3) < 0.02
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.numpy())  # the gradient is the same mask
    layer.eval()
    assert layer(x) is x


def test_dropout2d_drops_whole_channels():
    manual_seed(1)
    x = mc.Tensor(np.ones((8, 16, 3, 3), np.float32))
    y = nn.Dropout2d(0.5)(x).numpy()
    per_channel = y.reshape(8, 16, 9)
    assert ((per_channel == 0).all(axis=2) | (per_channel == 2.0).all(axis=2)).all()
    assert 0.3 < (per_channel[..., 0] == 0).mean() < 0.7


def test_dropout_rejects_bad_p():
    with pytest.raises(ValueError, match="Dropout.*p must be in"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="dropout: dropout probability"):
        F.dropout(mc.ones(3), -0.1)


# ---- clear errors ------------------------------------------------------------------------------------

def test_conv2d_wrong_channels_message():
    conv = nn.Conv2d(3, 16, 3)
    with pytest.raises(ValueError) as e:
        conv(mc.zeros(8, 1, 28, 28))
    assert str(e.value) == ("Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1)): expected input with 3 channels "
                            "(N, 3, H, W), got shape (8, 1, 28, 28)")


def test_layer_errors_name_layer_expected_and_got():
    with pytest.raises(ValueError, match=r"Linear\(in_features=10.*\(\*, 10\).*got shape \(4, 12\)"):
        nn.Linear(10, 2)(mc.zeros(4, 12))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(8.*8 channels \(N, 8, H, W\), got shape \(2, 4, 5, 5\)"):
        nn.BatchNorm2d(8)(mc.zeros(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4.*4-D input \(N, 3, H, W\), got shape \(3, 5\)"):
        nn.Conv2d(3, 4, 3)(mc.zeros(3, 5))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3.*got shape \(2, 3, 4, 4\)"):
        nn.BatchNorm1d(3)(mc.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="Conv2d: groups=3 must divide"):
        nn.Conv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="batch_norm: expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(mc.zeros(1, 3))
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 4.*4 channels"):
        nn.GroupNorm(2, 4)(mc.zeros(2, 3, 2))


# ---- Module mechanics ---------------------------------------------------------------------------------

class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.heads = nn.ModuleList([nn.Linear(4, 2), nn.Linear(4, 3)])
        self.extra = nn.ModuleDict({"proj": nn.Linear(2, 2, bias=False)})
        self.scale = nn.Parameter(np.ones(1, np.float32))

    def forward(self, x):
        return x


def test_module_registries_and_traversal():
    net = _Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
                     "heads.0.weight", "heads.0.bias", "heads.1.weight", "heads.1.bias", "extra.proj.weight"]
    assert [n for n, _ in net.named_buffers()] == [
        "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked"]
    assert [type(m).__name__ for m in net.children()] == ["Sequential", "ModuleList", "ModuleDict"]
    assert len(list(net.modules())) == 10
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    assert net.num_parameters() == 1 + 36 + 4 + 8 + 10 + 15 + 4


def test_zero_grad_and_parameter_sharing():
    lin = nn.Linear(3, 2)
    seq = nn.Sequential(lin, lin)  # the same module twice: its parameters are listed once
    assert len(list(seq.parameters())) == 2
    out = lin(mc.ones(2, 3)).sum()
    out.backward()
    assert lin.weight.grad is not None
    seq.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None


def test_repr_matches_pytorch():
    ours = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.5), nn.Linear(256, 10))
    theirs = tnn.Sequential(tnn.Conv2d(3, 16, 3, padding=1), tnn.BatchNorm2d(16), tnn.ReLU(), tnn.MaxPool2d(2),
                            tnn.Flatten(), tnn.Dropout(0.5), tnn.Linear(256, 10))
    assert repr(ours) == repr(theirs)


def test_to_moves_and_casts_in_place():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    w = net[0].weight
    net.to(np.float64)
    assert net[0].weight is w and w.dtype == np.float64
    assert net[1].running_mean.dtype == np.float64
    assert net[1].num_batches_tracked.dtype == np.int64
    net.to("cuda-emu")
    assert all(p.device.name == "cuda-emu" for p in net.parameters())
    assert all(b.device.name == "cuda-emu" for b in net.buffers())
    y = net(mc.Tensor(np.ones((4, 3)), device="cuda-emu"))
    assert y.device.name == "cuda-emu"


def test_parameter_assignment_rules():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="parameter 'weight'"):
        lin.weight = mc.ones(2, 2)
    lin.weight = nn.Parameter(np.zeros((2, 2), np.float32))
    assert lin.weight.numpy().sum() == 0
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lin.nope
    assert "Parameter containing" in repr(lin.bias)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "zeros"])
@pytest.mark.parametrize("k,d", [(3, 1), (4, 2), (2, 1)])
def test_conv2d_same_padding_with_padding_modes_matches_torch(mode, k, d):
    torch = pytest.importorskip("torch")
    import warnings

    ours = nn.Conv2d(2, 3, k, padding="same", dilation=d, padding_mode=mode)
    theirs = torch.nn.Conv2d(2, 3, k, padding="same", dilation=d, padding_mode=mode)
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(0).random((1, 2, 7, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(mc.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", ["cpu", "cuda-emu"])
def test_init_draws_in_chunks_the_values_of_one_draw(monkeypatch, device):
    """uniform_/normal_ fill a tensor chunk by chunk (no float64 copy of a whole large weight): the
    values equal those of one draw of the whole size from the same generator, cast to the dtype."""
    from minicnn.nn import init

    monkeypatch.setattr(init, "_DRAW_CHUNK", 7)
    for fill, draw in ((lambda t, g: init.uniform_(t, -0.3, 0.5, generator=g), lambda r: r.uniform(-0.3, 0.5, 55)),
                       (lambda t, g: init.normal_(t, 0.1, 2.0, generator=g), lambda r: r.normal(0.1, 2.0, 55))):
        t = mc.Tensor(np.zeros((5, 11), np.float32), device=device)
        fill(t, np.random.default_rng(3))
        np.testing.assert_array_equal(t.numpy(), draw(np.random.default_rng(3)).astype(np.float32).reshape(5, 11))
        strided = mc.Tensor(np.zeros((11, 5), np.float32).T, device=device)  # filled whole, in its own index order
        assert device != "cpu" or not strided.data.flags.c_contiguous
        fill(strided, np.random.default_rng(3))
        np.testing.assert_array_equal(strided.numpy(), draw(np.random.default_rng(3)).astype(np.float32).reshape(5, 11))
