"""FCN-32s/16s/8s on VGG-16: crop offsets against the reference Caffe nets, the bilinear filter
against a plain loop and against F.interpolate, output shapes, outputs and gradients against a
PyTorch twin written here (torchvision has no VGG FCN), Adam steps, parameter counts, bad input."""
import functools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.data.synthetic import digits_on_canvas
from minicnn.models.segmentation import fcn
from minicnn.models.segmentation.fcn import bilinear_kernel, coord_map, crop_offset, fcn8s, fcn16s, fcn32s
from minicnn.testing import gradcheck

MAKERS = {"32s": fcn32s, "16s": fcn16s, "8s": fcn8s}
# the Crop layers' offsets in the reference nets (voc-fcn32s/16s/8s net.py, pad 100)
REFERENCE_OFFSETS = {"32s": {"upscore": 19}, "16s": {"score_pool4": 5, "upscore16": 27},
                     "8s": {"score_pool4": 5, "score_pool3": 9, "upscore8": 31}}
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
POOL3, POOL4 = 16, 23                  # torchvision's indices of pool3 / pool4 in vgg16.features


# ---- crop offsets --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["32s", "16s", "8s"])
def test_crop_offsets_equal_the_reference_nets_with_pad100(kind):
    model = MAKERS[kind](num_classes=2, width=1, fc_channels=2)
    assert model.offsets == REFERENCE_OFFSETS[kind]


@pytest.mark.parametrize("kind", ["32s", "16s", "8s"])
def test_without_pad100_every_map_lines_up_with_no_crop(kind):
    model = MAKERS[kind](num_classes=2, width=1, fc_channels=2, pad100=False)
    assert model.offsets == {k: 0 for k in REFERENCE_OFFSETS[kind]}


def test_coord_map_of_a_hand_derived_chain():
    # conv k3 p100: i_in = i - 99; pool 2/2: i_in = 2i + 1/2; so image = 2i - 98.5
    chain = [nn.Conv2d(1, 1, 3, padding=100), nn.ReLU(), nn.MaxPool2d(2, 2)]
    a, b = coord_map(chain)
    assert (float(a), float(b)) == (2.0, -98.5)
    # a 4x4 stride-2 transposed conv after it undoes the stride: out j = 2 i + 3/2
    a2, b2 = coord_map([nn.ConvTranspose2d(1, 1, 4, stride=2)], (a, b))
    assert (float(a2), float(b2)) == (1.0, -100.0)
    assert crop_offset((a2, b2), coord_map([])) == 100
    with pytest.raises(ValueError, match="different scales"):
        crop_offset((a, b), coord_map([]))
    with pytest.raises(ValueError, match="not a whole"):
        crop_offset(coord_map([nn.MaxPool2d(2, 2)]), coord_map([nn.Conv2d(1, 1, 2, stride=2, padding=1)]))


# ---- the bilinear filter -------------------------------------------------------------------------

def bilinear_reference(cin, cout, k):
    """Plain loops: tent of half-width ceil(k/2) centred at (k-1)/2, on the channel diagonal."""
    half, centre = math.ceil(k / 2), (k - 1) / 2
    w = np.zeros((cin, cout, k, k))
    for i in range(cin):
        for j in range(cout):
            if i != j:
                continue
            for u in range(k):
                for v in range(k):
                    w[i, j, u, v] = (1 - abs(u - centre) / half) * (1 - abs(v - centre) / half)
    return w


@given(cin=st.integers(1, 4), cout=st.integers(1, 4), k=st.integers(1, 16))
def test_bilinear_kernel_equals_a_plain_loop(cin, cout, k):
    np.testing.assert_allclose(bilinear_kernel(cin, cout, k), bilinear_reference(cin, cout, k), rtol=0, atol=1e-15)


@pytest.mark.parametrize("s", [1, 2, 3, 4, 8, 16, 32])
def test_bilinear_kernel_of_size_2s_is_a_partition_of_unity_at_stride_s(s):
    w = bilinear_kernel(1, 1, 2 * s)[0, 0]
    # output phase (r, q) receives taps (r + a·s, q + b·s), a, b in {0, 1}: they sum to 1, so a
    # constant image upsamples to the same constant away from the border
    phases = w[:s, :s] + w[s:, :s] + w[:s, s:] + w[s:, s:]
    np.testing.assert_allclose(phases, np.ones((s, s)), atol=1e-15)


@given(s=st.sampled_from([2, 4, 8]), c=st.integers(1, 3), h=st.integers(2, 5), w=st.integers(2, 5),
       seed=st.integers(0, 2**16))
def test_transposed_conv_with_bilinear_kernel_equals_interpolate_in_the_interior(s, c, h, w, seed):
    """Stride s, kernel 2s, padding s/2: output j takes input i with weight 1 - |(j + ½)/s - ½ - i|,
    exactly bilinear ``align_corners=False`` (source c = (j + ½)/s − ½). They agree where both
    taps of c exist: s/2 <= j < s·n − s/2. In the outer s/2 pixels interpolate clamps c to the edge
    (weight 1 on the edge pixel), the convolution multiplies the edge pixel by a weight < 1."""
    x = mc.Tensor(np.random.default_rng(seed).uniform(0.5, 2, (2, c, h, w)))
    weight = mc.Tensor(bilinear_kernel(c, c, 2 * s))
    up = F.conv_transpose2d(x, weight, stride=s, padding=s // 2).numpy()
    ref = F.interpolate(x, size=(s * h, s * w), mode="bilinear", align_corners=False).numpy()
    assert up.shape == ref.shape
    m = s // 2
    np.testing.assert_allclose(up[:, :, m:s * h - m, m:s * w - m], ref[:, :, m:s * h - m, m:s * w - m],
                               rtol=1e-12, atol=1e-12)
    assert np.all(np.abs(up[:, :, 0, 0] - ref[:, :, 0, 0]) > 1e-3)   # the border differs
    # padding 0 then a crop of s/2 (the FCN pad100 layout) is the same map
    full = F.conv_transpose2d(x, weight, stride=s).numpy()
    np.testing.assert_allclose(full[:, :, m:m + s * h, m:m + s * w], up, rtol=1e-12, atol=1e-12)


# ---- shapes and bad input ------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def small_model(kind, pad100, in_channels):
    mc.manual_seed(0)
    return MAKERS[kind](num_classes=3, in_channels=in_channels, width=2, fc_channels=8, pad100=pad100).eval()


@given(kind=st.sampled_from(["32s", "16s", "8s"]), n=st.integers(1, 2), cin=st.sampled_from([1, 3]),
       h=st.integers(1, 70), w=st.integers(1, 70))
def test_output_is_the_input_size_for_any_size_with_pad100(kind, n, cin, h, w):
    x = mc.Tensor(np.random.default_rng(h * 71 + w).standard_normal((n, cin, h, w)).astype(np.float32))
    assert small_model(kind, True, cin)(x).shape == (n, 3, h, w)


@given(kind=st.sampled_from(["32s", "16s", "8s"]), h=st.sampled_from([32, 64, 96]), w=st.sampled_from([32, 64, 96]))
def test_output_is_the_input_size_for_multiples_of_32_without_pad100(kind, h, w):
    x = mc.Tensor(np.random.default_rng(h + w).standard_normal((2, 1, h, w)).astype(np.float32))
    assert small_model(kind, False, 1)(x).shape == (2, 3, h, w)


def test_bad_input_raises_before_any_kernel_runs(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a convolution ran before the input was checked")

    monkeypatch.setattr(mc.functional, "conv2d", boom)
    model8 = small_model("8s", True, 3)
    with pytest.raises(ValueError, match=r"FCN8s: expected an input \(N, 3, H, W\), got shape \(2, 1, 40, 40\)"):
        model8(mc.Tensor(np.zeros((2, 1, 40, 40), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"FCN8s: expected an input \(N, 3, H, W\), got shape \(3, 40, 40\)"):
        model8(mc.Tensor(np.zeros((3, 40, 40), dtype=np.float32)))
    model32 = small_model("32s", False, 1)
    with pytest.raises(ValueError, match=r"FCN32s: with pad100=False H and W must be multiples of 32, got input "
                                         r"shape \(1, 1, 70, 64\) \(H=70: nearest valid 64 or 96\)"):
        model32(mc.Tensor(np.zeros((1, 1, 70, 64), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"FCN16s.*\(1, 1, 20, 33\) \(H=20: nearest valid 32; W=33: nearest "
                                         r"valid 32 or 64\)"):
        small_model("16s", False, 1)(mc.Tensor(np.zeros((1, 1, 20, 33), dtype=np.float32)))
    with pytest.raises(ValueError, match="FCN16s: width must be an integer >= 1, got 0"):
        fcn16s(width=0)
    with pytest.raises(TypeError, match="FCN8s: the input must be a minicnn Tensor"):
        model8(np.zeros((1, 3, 32, 32), dtype=np.float32))


# ---- parameter counts ----------------------------------------------------------------------------

def expected_count(kind, classes, cin, width, fc):
    """From the layer shapes: 3x3 convs, fc6 7x7, fc7 1x1, 1x1 scorers, bias-free (classes, classes,
    2s, 2s) upsampling filters."""
    conv = lambda i, o, k, bias=True: i * o * k * k + (o if bias else 0)  # noqa: E731
    total, c = 0, cin
    for v in VGG16:
        if v != "M":
            total += conv(c, v // 64 * width, 3)
            c = v // 64 * width
    total += conv(8 * width, fc, 7) + conv(fc, fc, 1) + conv(fc, classes, 1)
    up = lambda s: conv(classes, classes, 2 * s, bias=False)  # noqa: E731
    if kind == "32s":
        return total + up(32)
    total += up(2) + conv(8 * width, classes, 1)
    if kind == "16s":
        return total + up(16)
    return total + conv(4 * width, classes, 1) + up(2) + up(8)


def test_fcn8s_parameter_count_for_21_classes():
    model = fcn8s()
    assert model.num_parameters() == expected_count("8s", 21, 3, 64, 4096) == 134_489_759
    assert "134,489,759" in fcn8s.__doc__


@pytest.mark.parametrize("kind", ["32s", "16s", "8s"])
def test_small_parameter_counts(kind):
    model = MAKERS[kind](num_classes=5, in_channels=2, width=3, fc_channels=7)
    assert model.num_parameters() == expected_count(kind, 5, 2, 3, 7)
    assert "score_fr.weight" in model.state_dict()


def test_initialisation_as_the_paper():
    model = small_model("8s", True, 3)
    for name in ("score_fr", "score_pool4", "score_pool3"):
        layer = getattr(model, name)
        assert not layer.weight.numpy().any() and not layer.bias.numpy().any(), name
    for name, s in (("upscore2", 2), ("upscore_pool4", 2), ("upscore8", 8)):
        layer = getattr(model, name)
        assert layer.bias is None
        np.testing.assert_allclose(layer.weight.numpy(), bilinear_reference(3, 3, 2 * s), atol=1e-7)


# ---- the PyTorch twin ----------------------------------------------------------------------------

def torch_fcn(torch, kind, classes, cin, width, fc, pad100, at_once=False):
    """FCN-32s/16s/8s in torch.nn with our module names; reference offsets typed in."""
    tn = torch.nn
    offsets = REFERENCE_OFFSETS[kind] if pad100 else {k: 0 for k in REFERENCE_OFFSETS[kind]}

    class TFCN(tn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [], cin
            for v in VGG16:
                if v == "M":
                    layers.append(tn.MaxPool2d(2, 2, ceil_mode=True))
                else:
                    layers += [tn.Conv2d(c, v // 64 * width, 3, padding=100 if pad100 and not layers else 1),
                               tn.ReLU()]
                    c = v // 64 * width
            self.features = tn.Sequential(*layers)
            self.fc6 = tn.Conv2d(8 * width, fc, 7, padding=0 if pad100 else 3)
            self.relu6, self.drop6 = tn.ReLU(), tn.Dropout(0.5)
            self.fc7 = tn.Conv2d(fc, fc, 1)
            self.relu7, self.drop7 = tn.ReLU(), tn.Dropout(0.5)
            self.score_fr = tn.Conv2d(fc, classes, 1)

            def up(s):
                return tn.ConvTranspose2d(classes, classes, 2 * s, s, padding=0 if pad100 else s // 2, bias=False)

            if kind == "32s":
                self.upscore = up(32)
                return
            self.upscore2 = up(2)
            self.score_pool4 = tn.Conv2d(8 * width, classes, 1)
            if kind == "16s":
                self.upscore16 = up(16)
                return
            self.upscore_pool4 = up(2)
            self.score_pool3 = tn.Conv2d(4 * width, classes, 1)
            self.upscore8 = up(8)

        def forward(self, x):
            H, W = x.shape[2:]
            h = x
            for i, layer in enumerate(self.features):
                h = layer(h)
                if i == POOL3:
                    pool3 = h * (1e-4 if at_once else 1.0)
                elif i == POOL4:
                    pool4 = h * (1e-2 if at_once else 1.0)
            h = self.drop7(self.relu7(self.fc7(self.drop6(self.relu6(self.fc6(h))))))
            h = self.score_fr(h)
            if kind == "32s":
                o = offsets["upscore"]
                return self.upscore(h)[:, :, o:o + H, o:o + W]
            h = self.upscore2(h)
            o = offsets["score_pool4"]
            h = h + self.score_pool4(pool4)[:, :, o:o + h.shape[2], o:o + h.shape[3]]
            if kind == "16s":
                o = offsets["upscore16"]
                return self.upscore16(h)[:, :, o:o + H, o:o + W]
            h = self.upscore_pool4(h)
            o = offsets["score_pool3"]
            h = h + self.score_pool3(pool3)[:, :, o:o + h.shape[2], o:o + h.shape[3]]
            o = offsets["upscore8"]
            return self.upscore8(h)[:, :, o:o + H, o:o + W]

    torch.manual_seed(0)
    model = TFCN()
    with torch.no_grad():   # activations of order one through the 16 layers
        for m in model.modules():
            if isinstance(m, (tn.Conv2d, tn.ConvTranspose2d)):
                tn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    tn.init.uniform_(m.bias, -0.1, 0.1)
    return model.eval()


TWIN_CASES = [("8s", True, False, (2, 3, 21, 26)), ("8s", False, False, (2, 3, 32, 64)),
              ("8s", True, True, (1, 3, 13, 13)), ("16s", True, False, (1, 3, 30, 17)),
              ("32s", True, False, (1, 3, 17, 30))]


@pytest.mark.parametrize("kind,pad100,at_once,shape", TWIN_CASES,
                         ids=[f"{k}-pad100={p}-at_once={a}" for k, p, a, _ in TWIN_CASES])
@pytest.mark.parametrize("dev", ["cpu", "cuda-emu"])
def test_eval_outputs_equal_the_pytorch_twin(kind, pad100, at_once, shape, dev):
    torch = pytest.importorskip("torch")
    theirs = torch_fcn(torch, kind, 3, 3, 4, 16, pad100, at_once)
    kw = {"at_once": True} if at_once else {}
    ours = MAKERS[kind](num_classes=3, in_channels=3, width=4, fc_channels=16, pad100=pad100, **kw)
    ours.load_state_dict(theirs.state_dict())
    ours.eval().to(dev)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    got = ours(mc.Tensor(x, device=dev)).numpy()
    assert got.shape == want.shape == shape[:1] + (3,) + shape[2:]
    scale = np.abs(want).max()
    assert scale > 1e-2
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)


def test_gradients_equal_the_pytorch_twin():
    torch = pytest.importorskip("torch")
    theirs = torch_fcn(torch, "8s", 3, 3, 2, 8, True).double()
    ours = fcn8s(num_classes=3, in_channels=3, width=2, fc_channels=8)
    ours.load_state_dict(theirs.state_dict())
    ours.eval().double()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 11, 9))
    y = rng.integers(0, 3, (2, 11, 9))
    tx = torch.from_numpy(x).requires_grad_(True)
    tloss = torch.nn.functional.cross_entropy(theirs(tx), torch.from_numpy(y))
    tloss.backward()
    X = mc.Tensor(x, requires_grad=True)
    loss = F.cross_entropy(ours(X), mc.Tensor(y))
    loss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-10)
    np.testing.assert_allclose(X.grad.numpy(), tx.grad.numpy(), rtol=1e-7, atol=1e-12)
    tgrads = dict(theirs.named_parameters())
    names = ["features.0.weight", "features.28.bias", "fc6.weight", "score_fr.bias", "score_pool4.weight",
             "score_pool3.weight", "upscore2.weight", "upscore_pool4.weight", "upscore8.weight"]
    for name, p in ours.named_parameters():
        g = tgrads[name].grad.numpy()
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-7, atol=1e-12 * max(1.0, np.abs(g).max()),
                                   err_msg=name)
        names = [n for n in names if n != name]
    assert names == []


def test_input_gradient_equals_finite_differences():
    mc.manual_seed(3)
    model = fcn8s(num_classes=2, in_channels=1, width=2, fc_channels=4, pad100=False).eval().double()
    for name in ("score_fr", "score_pool4", "score_pool3"):   # zero at init: give them values
        layer = getattr(model, name)
        layer.weight.data[...] = np.random.default_rng(4).standard_normal(layer.weight.shape)
    x = mc.Tensor(np.random.default_rng(5).standard_normal((1, 1, 32, 32)), requires_grad=True)
    gradcheck(model, [x], mode="random", name="fcn8s")


# ---- training --------------------------------------------------------------------------------------

def digit_batch():
    """Two 64x64 canvases of real digits; per-pixel targets 0 = background, digit + 1."""
    data = digits_on_canvas(2, canvas=64, digits_per_image=2, seed=0)
    target = np.zeros((2, 64, 64), dtype=np.int64)
    for n, (masks, labels) in enumerate(zip(data.masks, data.labels)):
        for mask, label in zip(masks, labels):
            target[n][mask] = label + 1
    return data.images, target


def test_adam_steps_decrease_the_loss_on_cpu_and_cuda_emu():
    images, target = digit_batch()
    losses = {}
    for dev in ("cpu", "cuda-emu"):
        mc.manual_seed(0)
        model = fcn8s(num_classes=11, in_channels=1, width=4, fc_channels=16, pad100=False, dropout=0.0).to(dev)
        opt = mc.optim.Adam(model.parameters(), lr=3e-3)
        x, y = mc.Tensor(images, device=dev), mc.Tensor(target, device=dev)
        losses[dev] = []
        for _ in range(5):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses[dev].append(loss.item())
        # zero scorers at init: every pixel scores 0 for every class, loss = log(11)
        assert losses[dev][0] == pytest.approx(math.log(11), rel=1e-6)
        assert all(b < a for a, b in zip(losses[dev], losses[dev][1:])), losses[dev]
    np.testing.assert_allclose(losses["cuda-emu"], losses["cpu"], rtol=1e-4)


def test_vgg_classifier_converts_to_fc6_fc7_in_flatten_order():
    model = fcn8s(num_classes=2, width=1, fc_channels=5)           # pool5 has 8 channels
    rng = np.random.default_rng(7)
    vgg = {k: v.numpy() + 1 for k, v in model.state_dict().items() if k.startswith("features.")}
    vgg.update({"classifier.0.weight": rng.standard_normal((5, 8 * 49)), "classifier.0.bias": rng.standard_normal(5),
                "classifier.3.weight": rng.standard_normal((5, 5)), "classifier.3.bias": rng.standard_normal(5),
                "classifier.6.weight": rng.standard_normal((1000, 5)), "classifier.6.bias": rng.standard_normal(1000)})
    converted = fcn.fcn_state_dict_from_vgg16(vgg)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    assert unexpected == [] and all(k.split(".")[0] in ("score_fr", "score_pool4", "score_pool3", "upscore2",
                                                        "upscore_pool4", "upscore8") for k in missing)
    fc6, fc7 = model.fc6.weight.numpy(), model.fc7.weight.numpy()
    for o in range(5):                 # torch.flatten of (C, 7, 7): index c·49 + u·7 + v
        for c in range(8):
            for u in range(7):
                for v in range(7):
                    assert fc6[o, c, u, v] == np.float32(vgg["classifier.0.weight"][o, c * 49 + u * 7 + v])
        for i in range(5):
            assert fc7[o, i, 0, 0] == np.float32(vgg["classifier.3.weight"][o, i])
    np.testing.assert_array_equal(model.features[0].weight.numpy(), vgg["features.0.weight"])


# ---- torchvision: VGG-16's weights convolutionalized ---------------------------------------------

def test_torchvision_vgg16_converts_to_fc6_fc7_convolutions():
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision", reason="torchvision does not import beside the CPU torch 2.13 of the "
                                                   "test extras")
    torch.manual_seed(0)
    vgg = tv.models.vgg16(weights=None).eval()
    ours = fcn32s(num_classes=21, pad100=False).eval()
    missing, unexpected = ours.load_state_dict(fcn.fcn_state_dict_from_vgg16(vgg.state_dict()), strict=False)
    assert unexpected == [] and sorted(missing) == ["score_fr.bias", "score_fr.weight", "upscore.weight"]
    x = np.random.default_rng(6).standard_normal((1, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        pool5 = vgg.features(torch.from_numpy(x))
        fc7 = vgg.classifier[:5](torch.flatten(vgg.avgpool(pool5), 1)).numpy()
    with mc.no_grad():
        ours_pool5 = ours.features(mc.Tensor(x))
        h = ours.relu7(ours.fc7(ours.relu6(ours.fc6(ours_pool5))))
    np.testing.assert_allclose(ours_pool5.numpy(), pool5.numpy(), rtol=1e-4, atol=1e-4 * pool5.abs().max().item())
    # fc6 (7x7, padding 3) at the centre of the 7x7 pool5 map sees all of it: VGG's first linear layer
    got = h.numpy()[:, :, 3, 3]
    np.testing.assert_allclose(got, fc7, rtol=1e-4, atol=1e-4 * np.abs(fc7).max())
