"""minicnn.summary: parameter totals of the torchvision-layout models, multiply-adds against the
hand formulas, receptive fields derived by hand (LeNet-5, VGG-16) and measured by brute force
(the input pixels with a non-zero gradient of one output pixel, all-ones weights, no
nonlinearity), rows against PyTorch's forward hooks, and the table text."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import models, nn


@pytest.fixture(scope="module")
def vgg16_summary():
    return mc.summary(models.vgg16(), (3, 32, 32))  # the count does not depend on the input size


@pytest.mark.parametrize("make, count", [(models.resnet18, 11_689_512), (models.mobilenet_v2, 3_504_872),
                                         (models.lenet5, 61_706)])
def test_total_params_of_known_models(make, count):
    s = mc.summary(make(), (1, 28, 28) if make is models.lenet5 else (3, 32, 32))
    assert s.total_params == s.trainable_params == count
    assert s.param_bytes == 4 * count  # float32
    assert s.rows[0]["params"] == count and s.rows[0]["name"] == ""


def test_vgg16_total_params(vgg16_summary):
    assert vgg16_summary.total_params == 138_357_544


def test_trainable_params_and_rows():
    net = models.lenet5()
    net.features.requires_grad_(False)
    s = mc.summary(net, (1, 28, 28))
    # features: conv 1→6 5×5 (6·25 + 6 = 156) and conv 6→16 5×5 (16·150 + 16 = 2,416)
    assert s.total_params == 61_706 and s.trainable_params == 61_706 - 156 - 2_416
    rows = {r["name"]: r for r in s.rows}
    assert rows["features.3"]["params"] == 2_416 and rows["features.3"]["trainable_params"] == 0
    assert rows["classifier.1"]["params"] == rows["classifier.1"]["trainable_params"] == 400 * 120 + 120
    assert rows["features"]["depth"] == 1 and rows["features.0"]["depth"] == 2 and not rows["features"]["is_leaf"]


def test_mult_adds_of_conv_linear_and_transposed_conv_match_hand_formulas():
    N = 3
    conv = nn.Conv2d(6, 8, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    s = mc.summary(conv, (6, 9, 7), batch_size=N)
    OH, OW = (9 + 2 - 2 - 1) // 2 + 1, (7 - 2 * 1 - 1) // 1 + 1  # (H + 2p − d(k − 1) − 1)/s + 1
    assert s.rows[0]["output_shape"] == (N, 8, OH, OW)
    assert s.total_mult_adds == N * (6 // 2) * 3 * 2 * 8 * OH * OW  # C_in/groups·kH·kW·C_out·OH·OW per image
    lin = nn.Linear(5, 7)
    s = mc.summary(lin, (4, 5), batch_size=N)  # (N, 4, 5): N·4 rows of in·out products
    assert s.total_mult_adds == N * 4 * 5 * 7
    up = nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2)
    s = mc.summary(up, (4, 5, 5), batch_size=N)
    assert s.total_mult_adds == N * 4 * (6 // 2) * 3 * 3 * 5 * 5  # every input pixel meets the kernel
    conv1d = nn.Conv1d(2, 3, 4, stride=3)
    s = mc.summary(conv1d, (2, 20))
    assert s.total_mult_adds == 2 * 4 * 3 * ((20 - 4) // 3 + 1)


def test_container_rows_sum_their_calls_and_memory_totals():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Identity(), nn.Flatten(), nn.Linear(2 * 6 * 6, 4))
    s = mc.summary(net, (1, 8, 8), batch_size=2)
    conv = 2 * 1 * 9 * 2 * 6 * 6
    lin = 2 * 72 * 4
    assert [r["mult_adds"] for r in s.rows] == [conv + lin, conv, 0, 0, 0, lin]
    assert s.total_mult_adds == conv + lin
    # distinct output tensors: conv, relu, flatten (2·72 each, float32), linear; Identity returns
    # its input and the Sequential the Linear's output, so they add nothing
    assert s.activation_bytes == 4 * (3 * 2 * 72 + 2 * 4)
    assert s.input_bytes == 4 * 2 * 64


# ---- receptive fields -----------------------------------------------------------------------
def _fields(s):
    return {r["name"]: r["receptive_field"] for r in s.rows}


def test_lenet5_receptive_fields_by_hand():
    # input: r = 1, j = 1, start = 0 (pixel i at coordinate i)
    # features.0 conv 5×5 p2:  r = 1 + 4·1 = 5,  j = 1,  start = 0 + (2 − 2)·1 = 0
    # features.2 avgpool 2/2:  r = 5 + 1·1 = 6,  j = 2,  start = 0 + (0.5 − 0)·1 = 0.5
    # features.3 conv 5×5 p0:  r = 6 + 4·2 = 14, j = 2,  start = 0.5 + 2·2 = 4.5
    # features.5 avgpool 2/2:  r = 14 + 1·2 = 16, j = 4, start = 4.5 + 0.5·2 = 5.5
    expected = {"features.0": (5, 1, 0), "features.1": (5, 1, 0), "features.2": (6, 2, 0.5),
                "features.3": (14, 2, 4.5), "features.4": (14, 2, 4.5), "features.5": (16, 4, 5.5),
                "features": (16, 4, 5.5), "classifier.0": None, "classifier.1": None, "": None}
    fields = _fields(mc.summary(models.lenet5(), (1, 28, 28)))
    for name, rf in expected.items():
        assert fields[name] == (None if rf is None else (rf, rf)), name


def test_vgg16_receptive_fields_by_hand(vgg16_summary):
    # conv 3×3 p1: r += 2j, start unchanged ((3 − 1)/2 − 1 = 0); max pool 2/2: r += j, j ·= 2, start += j/2
    # block 1: 3, 5;           pool1: r = 6,   j = 2,  start = 0.5
    # block 2: 10, 14;         pool2: r = 16,  j = 4,  start = 0.5 + 1 = 1.5
    # block 3: 24, 32, 40;     pool3: r = 44,  j = 8,  start = 1.5 + 2 = 3.5
    # block 4: 60, 76, 92;     pool4: r = 100, j = 16, start = 3.5 + 4 = 7.5
    # block 5: 132, 164, 196;  pool5: r = 212, j = 32, start = 7.5 + 8 = 15.5
    expected = {0: (3, 1, 0), 2: (5, 1, 0), 4: (6, 2, 0.5), 5: (10, 2, 0.5), 7: (14, 2, 0.5), 9: (16, 4, 1.5),
                10: (24, 4, 1.5), 12: (32, 4, 1.5), 14: (40, 4, 1.5), 16: (44, 8, 3.5), 17: (60, 8, 3.5),
                19: (76, 8, 3.5), 21: (92, 8, 3.5), 23: (100, 16, 7.5), 24: (132, 16, 7.5), 26: (164, 16, 7.5),
                28: (196, 16, 7.5), 30: (212, 32, 15.5)}
    fields = _fields(vgg16_summary)
    for i, rf in expected.items():
        assert fields[f"features.{i}"] == (rf, rf), f"features.{i}"
        if i != 30 and i + 1 not in expected:  # the ReLU after a conv keeps its field
            assert fields[f"features.{i + 1}"] == (rf, rf)
    assert fields["features"] == ((212, 32, 15.5),) * 2
    assert fields["classifier.0"] is None  # after flatten: no spatial axes


def _ones_(model):
    for p in model.parameters():
        p.data[...] = 1.0
    return model


def _measured_extent(model, in_shape, out_index):
    """Per spatial axis, the (first, last) input pixel with a non-zero gradient of output pixel
    ``out_index`` (channel 0), float64, weights all ones: no cancellation is possible."""
    x = mc.Tensor(np.zeros((1,) + in_shape), requires_grad=True)
    y = model(x)
    g = np.zeros(y.shape)
    g[(0, 0) + tuple(out_index)] = 1.0
    y.backward(g)
    support = np.nonzero(np.abs(x.grad.numpy()[0]).sum(axis=0))
    return [(int(a.min()), int(a.max())) for a in support]


def _assert_field_matches(model, in_shape):
    """The summary's field of the output, at the middle output pixel, equals the measured extent."""
    top = mc.summary(model.double(), in_shape, dtype=np.float64).rows[0]
    rf, mid = top["receptive_field"], [n // 2 for n in top["output_shape"][2:]]
    extent = _measured_extent(model, in_shape, mid)
    for axis, ((r, j, s), o, (lo, hi), n_in) in enumerate(zip(rf, mid, extent, in_shape[1:])):
        center = s + o * j
        want = (center - (r - 1) / 2, center + (r - 1) / 2)
        assert 0 <= want[0] and want[1] <= n_in - 1, "the test's input must hold the whole field"
        assert (lo, hi) == want, f"axis {axis}: measured {(lo, hi)}, summary r={r} j={j} start={s}"


layer_1d = st.tuples(st.sampled_from(["conv", "avgpool"]), st.integers(1, 4), st.integers(1, 3),
                     st.integers(1, 3), st.integers(0, 2))


@given(st.lists(layer_1d, min_size=1, max_size=4))
def test_receptive_field_of_dilated_strided_chain_matches_brute_force(layers):
    mods = []
    for kind, k, stride, d, p in layers:
        if kind == "conv":
            mods.append(nn.Conv1d(1, 1, k, stride=stride, padding=p, dilation=d, bias=False))
        else:
            mods.append(nn.AvgPool1d(k, stride=stride, padding=min(p, k // 2)))
    _assert_field_matches(_ones_(nn.Sequential(*mods)), (1, 500))


def test_receptive_field_of_anisotropic_2d_chain_matches_brute_force():
    net = nn.Sequential(
        nn.Conv2d(1, 2, (3, 5), stride=(1, 2), padding=(2, 1), dilation=(2, 1), bias=False), nn.Identity(),
        nn.AvgPool2d((2, 3), stride=(2, 1), padding=(1, 0)),
        nn.Conv2d(2, 1, 3, stride=2, dilation=3, bias=False),
    )
    _assert_field_matches(_ones_(net), (1, 60, 70))


class TwoPaths(nn.Module):
    """Add of two branches whose windows start at different places (k=2/s=2 vs k=1/s=2), a
    channel concat with a third branch, then a dilated conv: the fields are unions."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 1, 2, stride=2, bias=False)
        self.b = nn.Conv2d(1, 1, 1, stride=2, bias=False)
        self.c = nn.AvgPool2d(3, stride=2, padding=1)
        self.d = nn.Conv2d(2, 1, 3, dilation=2, bias=False)

    def forward(self, x):
        y = self.a(x) + self.b(x)
        return self.d(F.cat([y, self.c(x)], 1))


def test_receptive_field_through_add_and_cat_matches_brute_force():
    net = _ones_(TwoPaths())
    _assert_field_matches(net, (1, 40, 40))
    fields = _fields(mc.summary(net, (1, 40, 40), dtype=np.float64))
    assert fields["a"] == ((2, 2, 0.5),) * 2 and fields["b"] == ((1, 2, 0),) * 2
    assert fields["c"] == ((3, 2, 0),) * 2


def test_lenet5_features_field_matches_brute_force():
    net = _ones_(models.lenet5().features)
    for m in net:  # zero input and zero biases: every tanh sits at 0, where tanh' = 1
        if isinstance(m, nn.Conv2d):
            m.bias.data[...] = 0.0
    _assert_field_matches(net, (1, 28, 28))


def test_field_ends_where_the_chain_ends():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ConvTranspose2d(2, 2, 2, stride=2), nn.Conv2d(2, 2, 3),
                        nn.Upsample(scale_factor=2), nn.AdaptiveAvgPool2d((5, 5)))
    fields = _fields(mc.summary(net, (1, 9, 9)))
    assert fields["0"] == ((3, 1, 1),) * 2
    assert fields["1"] is None and fields["2"] is None and fields["3"] is None and fields["4"] is None
    # adaptive pooling by an exact factor is a plain pooling: k = s = 8/4 = 2
    fields = _fields(mc.summary(nn.Sequential(nn.Conv2d(1, 1, 1), nn.AdaptiveMaxPool2d(4)), (1, 8, 8)))
    assert fields["1"] == ((2, 2, 0.5),) * 2


# ---- the rows against PyTorch, the table, the model left as it was ---------------------------
def test_rows_match_torch_forward_hooks():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class LeNet5(tnn.Module):  # the PyTorch twin of minicnn.models.LeNet5, same module names
        def __init__(self):
            super().__init__()
            self.features = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.Tanh(), tnn.AvgPool2d(2),
                                           tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2))
            self.classifier = tnn.Sequential(tnn.Flatten(), tnn.Linear(400, 120), tnn.Tanh(), tnn.Linear(120, 84),
                                             tnn.Tanh(), tnn.Linear(84, 10))

        def forward(self, x):
            return self.classifier(self.features(x))

    _compare_with_torch_hooks(models.lenet5(), LeNet5(), (1, 28, 28), torch)


def _compare_with_torch_hooks(ours, theirs, in_shape, torch):
    seen, order = {}, []
    for name, m in theirs.named_modules():
        m.register_forward_pre_hook(lambda mod, a, name=name: order.append(name))
        m.register_forward_hook(lambda mod, a, o, name=name: seen.setdefault(name, []).append(tuple(o.shape)))
    with torch.no_grad():
        theirs.eval()(torch.zeros((2,) + in_shape))
    s = mc.summary(ours, in_shape, batch_size=2)
    tmods = dict(theirs.named_modules())
    # a parameter-free module of ours that torchvision calls as a function (MobileNetV2's avgpool)
    rows = [r for r in s.rows if r["name"] in tmods or r["params"] != 0]
    assert [r["name"] for r in rows] == order
    for r in rows:
        assert r["output_shape"] == seen[r["name"]].pop(0), r["name"]
        if r["is_leaf"]:  # containers may differ in class (torchvision's Conv2dNormActivation: a Sequential here)
            assert r["type"] == type(tmods[r["name"]]).__name__
        assert r["params"] == sum(p.numel() for p in tmods[r["name"]].parameters())


def test_torchvision_models_rows_and_counts():
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision",
                             reason="torchvision does not import beside the CPU torch 2.13 of the test extras")
    for make, tv_make in ((models.resnet18, tv.models.resnet18), (models.mobilenet_v2, tv.models.mobilenet_v2)):
        ours, theirs = make(), tv_make(weights=None)
        assert mc.summary(ours, (3, 32, 32)).total_params == sum(p.numel() for p in theirs.parameters())
        _compare_with_torch_hooks(ours, theirs, (3, 32, 32), torch)


def test_table_names_every_layer_and_totals(vgg16_summary):
    text = str(vgg16_summary)
    for r in vgg16_summary.rows[1:]:
        assert r["name"] in text
    assert "VGG" in text and "Total params: 138,357,544" in text
    assert f"Total mult-adds: {vgg16_summary.total_mult_adds:,}" in text
    assert "212" in text and "15.5" in text


def test_model_is_left_unchanged():
    net = models.resnet18(num_classes=4)
    net.train()
    net.layer1.eval()
    bn = net.bn1
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    mc.summary(net, (3, 16, 16), batch_size=2)
    assert net.training and not net.layer1.training and not net.layer1[0].bn1.training and net.layer2.training
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)
    assert all(not m._has_hooks for m in net.modules())
    assert all(p.grad is None for p in net.parameters()) and bn.training


def test_bad_arguments_raise_clear_errors():
    net = nn.Conv2d(1, 2, 3)
    with pytest.raises(TypeError, match="summary: model must be an nn.Module, got function"):
        mc.summary(models.lenet5, (1, 28, 28))
    with pytest.raises(ValueError, match=r"summary: input_shape must be positive ints .* got \(1, 0, 5\)"):
        mc.summary(net, (1, 0, 5))
    with pytest.raises(ValueError, match="summary: give input_shape"):
        mc.summary(net)
    with pytest.raises(ValueError, match="summary: batch_size must be a positive int, got 0"):
        mc.summary(net, (1, 5, 5), batch_size=0)
    with pytest.raises(ValueError, match=r"'weight' of shape \(2, 1, 3, 3\) is on cpu, the input on cuda-emu"):
        mc.summary(net, (1, 5, 5), device="cuda-emu")
    with pytest.raises(ValueError, match=r"Conv2d\(1, 2"):  # the layer's own check names the shapes
        mc.summary(net, (3, 5, 5))
