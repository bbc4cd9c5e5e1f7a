"""U-Net, its weight map, and SegNet / SegNet-Basic.

Oracles: brute-force size enumeration, finite differences (gradcheck, float64), NumPy loops for
max-pool indices and unpooling, brute-force distances for the weight map, PyTorch twins (written
here with the same module names) for the forward outputs.
"""
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.models import torch_unet  # the PyTorch twin, with our module names
import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from minicnn.kernels.cpu import distance as fast_distance
from minicnn.kernels.reference import distance as reference_distance
from minicnn.models.segmentation.segnet import SegNet, SegNetBasic, segnet, segnet_basic
from minicnn.models.segmentation.unet import UNet, center_crop, unet, unet_weight_map
from minicnn.testing import gradcheck


def n_params(model):
    return sum(p.size for p in model.parameters())


def rand(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---- U-Net: the paper's numbers -------------------------------------------------------------
def test_unet_paper_parameter_and_layer_counts():
    model = unet()
    assert n_params(model) == 31_030_658  # in_channels=1, num_classes=2
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) == 23
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in convs) == 4
    widths = [getattr(model, f"down{i}")[0].out_channels for i in range(1, 5)] + [model.bottleneck[0].out_channels]
    assert widths == [64, 128, 256, 512, 1024]


def test_unet_output_sizes_shape_only():
    # the size rule does not depend on the width: base_channels=1 runs the 572×572 input quickly
    model = UNet(base_channels=1)
    with mc.no_grad():
        assert model(mc.Tensor(np.zeros((1, 1, 572, 572), np.float32))).shape == (1, 2, 388, 388)
    assert model.output_size(572) == 388 and model.output_size((572, 188)) == (388, 4)
    padded = UNet(in_channels=3, num_classes=5, base_channels=1, depth=3, padding=True)
    with mc.no_grad():
        assert padded(mc.Tensor(np.zeros((2, 3, 40, 64), np.float32))).shape == (2, 5, 40, 64)


def _simulate_unet_size(n, depth, padding):
    """Follow one axis through every layer; None when a conv empties it, a pool is uneven, or a
    skip connection is smaller than the up-sampled map."""
    trim = 0 if padding else 2
    skips = []
    for _ in range(depth):
        for _ in range(2):
            n -= trim
            if n < 1:
                return None
        if n % 2:
            return None
        skips.append(n)
        n //= 2
    for _ in range(2):
        n -= trim
        if n < 1:
            return None
    for skip in reversed(skips):
        n *= 2
        if skip < n or (skip - n) % 2:
            return None
        for _ in range(2):
            n -= trim
            if n < 1:
                return None
    return n


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("padding", [False, True])
def test_unet_valid_size_rule_matches_enumeration(depth, padding):
    model = UNet(base_channels=1, depth=depth, padding=padding)
    sizes = range(1, 700)
    outputs = {n: _simulate_unet_size(n, depth, padding) for n in range(1, 900)}
    valid = [n for n in outputs if outputs[n] is not None]
    assert valid, "the enumeration found no valid size"
    if not padding and depth == 4:
        assert valid[:3] == [188, 204, 220] and all((n - 124) % 16 == 0 for n in valid)
    for n in sizes:
        if outputs[n] is not None:
            assert model.output_size(n) == outputs[n]
        else:
            with pytest.raises(ValueError) as err:
                model.output_size(n)
            below = [v for v in valid if v < n]
            above = [v for v in valid if v > n][0]
            expected = (f"nearest valid sizes are {below[-1]} and {above}" if below
                        else f"the smallest valid size is {above}")
            assert expected in str(err.value)
    for t in [1, 2, 3, 5, 17, 100, 388, 389]:
        assert model.valid_input_size(t) == min(n for n in valid if outputs[n] >= t)


def test_unet_runs_at_every_small_valid_size():
    for padding in (False, True):
        model = UNet(base_channels=1, depth=2, padding=padding)
        for n in range(1, 61):
            expected = _simulate_unet_size(n, 2, padding)
            x = mc.Tensor(np.zeros((1, 1, n, 4 if padding else 44), np.float32))
            if expected is None:
                with pytest.raises(ValueError, match="UNet"):
                    model(x)
            else:
                with mc.no_grad():
                    assert model(x).shape[2] == expected


def test_unet_errors_name_the_model_the_shape_and_the_nearest_sizes():
    model = UNet(base_channels=1)
    model.down1.forward = lambda x: pytest.fail("a kernel ran before the input was checked")
    with pytest.raises(ValueError) as err:
        model(mc.Tensor(np.zeros((1, 1, 500, 572), np.float32)))
    msg = str(err.value)
    assert "UNet (padding=False, depth=4)" in msg and "height 500" in msg and "(1, 1, 500, 572)" in msg
    assert "nearest valid sizes are 492 and 508" in msg
    with pytest.raises(ValueError, match=r"width 100 .*smallest valid size is 188"):
        model(mc.Tensor(np.zeros((1, 1, 572, 100), np.float32)))
    with pytest.raises(ValueError, match=r"UNet: expected 1 input channels, got input of shape \(1, 3, 572, 572\)"):
        model(mc.Tensor(np.zeros((1, 3, 572, 572), np.float32)))
    with pytest.raises(ValueError, match=r"UNet: expected input of shape \(N, C, H, W\)"):
        model(mc.Tensor(np.zeros((1, 572, 572), np.float32)))
    padded = UNet(base_channels=1, padding=True)
    padded.down1.forward = model.down1.forward
    with pytest.raises(ValueError, match=r"UNet \(padding=True, depth=4\): input height 40 .*"
                                         r"nearest valid sizes are 32 and 48"):
        padded(mc.Tensor(np.zeros((1, 1, 40, 32), np.float32)))
    with pytest.raises(ValueError, match="UNet: depth must be an integer >= 1"):
        UNet(depth=0)


# ---- SegNet: structure and errors -------------------------------------------------------------
def test_segnet_structure():
    model = segnet()  # VGG-16 encoder, 11 classes, batch norm
    enc_convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    dec_convs = [m for m in model.decoder.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in enc_convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    # the decoder mirrors the encoder: conv j of decoder stage i is encoder stage i's convs reversed, in/out swapped
    pairs = [(64, 64), (64, 11), (128, 128), (128, 64), (256, 256), (256, 256), (256, 128),
             (512, 512), (512, 512), (512, 256), (512, 512), (512, 512), (512, 512)]
    assert [(c.in_channels, c.out_channels) for c in dec_convs] == pairs
    assert isinstance(model.decoder[0][-1], nn.Conv2d)  # no BN/ReLU after the class conv
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 25
    # VGG-16's 13 convs with BN (14,714,688 weights + 2·4,224 BN) plus the mirrored decoder
    encoder = sum(c.weight.size + c.bias.size for c in enc_convs) + 2 * sum(c.out_channels for c in enc_convs)
    assert encoder == 14_714_688 + 2 * 4224
    decoder = sum(9 * a * b + b for a, b in pairs) + 2 * sum(b for a, b in pairs[:1] + pairs[2:])
    assert n_params(model) == encoder + decoder
    assert abs(n_params(model) - 29.46e6) < 0.02e6  # the paper's Table: 29.46 million
    basic = segnet_basic()
    assert [type(m).__name__ for m in basic.decoder[0]] == ["Conv2d", "BatchNorm2d"]  # no ReLU in the decoder
    assert basic.encoder[0][0].kernel_size == (7, 7) and basic.classifier.kernel_size == (1, 1)
    assert n_params(basic) == 3 * 49 * 64 + 64 + 7 * (64 * 49 * 64 + 64) + 8 * 128 + 64 * 11 + 11


@pytest.mark.parametrize("make,stages", [(lambda: segnet(width=1), 5), (lambda: segnet_basic(width=1), 4)])
def test_segnet_errors(make, stages):
    model = make()
    model.encoder[0].forward = lambda x: pytest.fail("a kernel ran before the input was checked")
    S = 2 ** stages
    with pytest.raises(ValueError) as err:
        model(mc.Tensor(np.zeros((1, 3, 3 * S + 5, S), np.float32)))
    msg = str(err.value)
    assert "SegNet" in msg and f"(1, 3, {3 * S + 5}, {S})" in msg and f"height {3 * S + 5}" in msg
    assert f"nearest valid sizes are {3 * S} and {4 * S}" in msg
    with pytest.raises(ValueError, match=f"SegNet.*width {S // 2} .*smallest valid size is {S}"):
        model(mc.Tensor(np.zeros((1, 3, S, S // 2), np.float32)))
    with pytest.raises(ValueError, match=r"SegNet.*expected 3 input channels, got input of shape \(1, 1, "):
        model(mc.Tensor(np.zeros((1, 1, S, S), np.float32)))


def test_segnet_output_shapes():
    with mc.no_grad():
        assert segnet(in_channels=1, num_classes=4, width=1)(mc.Tensor(rand((2, 1, 32, 64)))).shape == (2, 4, 32, 64)
        assert segnet_basic(num_classes=3, width=2)(mc.Tensor(rand((1, 3, 16, 48)))).shape == (1, 3, 16, 48)


def _pool_reference(a):
    """2×2 / stride-2 max pool of (N, C, H, W): values and flat indices h·W + w; the first maximum
    in scan order wins (strict >)."""
    N, C, H, W = a.shape
    y = np.empty((N, C, H // 2, W // 2), a.dtype)
    idx = np.empty((N, C, H // 2, W // 2), np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(H // 2):
                for j in range(W // 2):
                    best, best_at = -np.inf, -1
                    for di in range(2):
                        for dj in range(2):
                            h, w = 2 * i + di, 2 * j + dj
                            if a[n, c, h, w] > best:
                                best, best_at = a[n, c, h, w], h * W + w
                    y[n, c, i, j], idx[n, c, i, j] = best, best_at
    return y, idx


def _unpool_reference(y, idx, H, W):
    out = np.zeros(y.shape[:2] + (H, W), y.dtype)
    for n, c, i, j in np.ndindex(*y.shape):
        out[n, c].flat[idx[n, c, i, j]] = y[n, c, i, j]
    return out


@pytest.mark.parametrize("make,hw", [(lambda: segnet(num_classes=3, width=2), (32, 64)),
                                     (lambda: segnet_basic(num_classes=3, width=2), (16, 32))])
def test_segnet_unpool_puts_values_at_the_encoder_argmax(make, hw):
    mc.manual_seed(3)
    model = make().eval()
    x = mc.Tensor(rand((2, 3) + hw, seed=3))
    with mc.no_grad():
        h, indices = x, []
        for stage in model.encoder:
            a = stage(h)
            h, idx = model.pool(a)
            ref_y, ref_idx = _pool_reference(a.numpy())
            np.testing.assert_array_equal(idx.numpy(), ref_idx)
            np.testing.assert_array_equal(h.numpy(), ref_y)
            up = model.unpool(h, idx, output_size=a.shape).numpy()
            np.testing.assert_array_equal(up, _unpool_reference(ref_y, ref_idx, *a.shape[2:]))
            assert np.count_nonzero(up) <= up.size // 4
            indices.append(ref_idx)
        # the model's forward = the decoder run on NumPy-unpooled maps at those indices
        d = h.numpy()
        for i in reversed(range(model.stages)):
            H, W = d.shape[2] * 2, d.shape[3] * 2
            d = model.decoder[i](mc.Tensor(_unpool_reference(d, indices[i], H, W))).numpy()
        expected = model.classifier(mc.Tensor(d)).numpy()
        np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-6, atol=1e-6)


# ---- gradients: finite differences in float64 over the input and every parameter --------------
def _gradcheck_model(model, x, seeds=(0,)):
    """gradcheck of ``model(x)`` with respect to ``x`` and each parameter tensor (random directions)."""
    model.double()
    slots = [(m, name) for m in model.modules() for name, p in m._parameters.items() if p is not None]
    originals = [m._parameters[name] for m, name in slots]

    def fn(x, *params):
        for (m, name), p in zip(slots, params):
            m._parameters[name] = p
        return model(x)

    inputs = [mc.Tensor(x, requires_grad=True)] + [mc.Tensor(p.numpy(), requires_grad=True) for p in originals]
    try:
        for seed in seeds:
            # eps 1e-7: these nets hold thousands of ReLU and max-pool kinks, and ±1e-6 along a
            # random direction over a whole weight tensor crosses one now and then (the quotient
            # jumps; it converges to the analytic value as eps shrinks). float64 keeps the
            # rounding error of the quotient near 1e-9 relative.
            assert gradcheck(fn, inputs, eps=1e-7, mode="random", seed=seed, name=type(model).__name__)
    finally:
        for (m, name), p in zip(slots, originals):
            m._parameters[name] = p


@pytest.mark.parametrize("make,shape", [
    (lambda: UNet(in_channels=1, num_classes=2, base_channels=2, depth=2), (1, 1, 44, 44)),
    (lambda: UNet(in_channels=2, num_classes=3, base_channels=2, depth=2, padding=True, batch_norm=True),
     (2, 2, 8, 12)),
    (lambda: segnet(num_classes=3, width=2), (2, 3, 32, 32)),
    (lambda: segnet_basic(num_classes=3, width=2), (2, 3, 16, 16)),
], ids=["unet-valid", "unet-padded-bn", "segnet", "segnet-basic"])
def test_gradcheck_small_models(make, shape):
    mc.manual_seed(0)
    _gradcheck_model(make(), rand(shape, seed=1, dtype=np.float64))


# ---- devices: parity and a few Adam steps ---------------------------------------------------
SMALL = [
    ("unet", lambda: UNet(in_channels=1, num_classes=2, base_channels=2, depth=2), (2, 1, 44, 44)),
    ("unet-padded-bn", lambda: UNet(in_channels=1, num_classes=3, base_channels=2, depth=2, padding=True,
                                    batch_norm=True), (2, 1, 16, 16)),
    ("segnet", lambda: segnet(num_classes=3, width=2), (2, 3, 32, 32)),
    ("segnet-basic", lambda: segnet_basic(num_classes=3, width=2), (2, 3, 16, 16)),
]


@pytest.mark.parametrize("name,make,shape", SMALL, ids=[s[0] for s in SMALL])
def test_cpu_and_cuda_emu_agree_forward_and_backward(name, make, shape):
    results = {}
    for dev in ("cpu", "cuda-emu"):
        mc.manual_seed(5)
        model = make().to(dev)
        x = mc.Tensor(rand(shape, seed=5), device=dev, requires_grad=True)
        out = model(x)
        (out * mc.Tensor(rand(out.shape, seed=6), device=dev)).sum().backward()
        results[dev] = (out.numpy(), x.grad.numpy(), [p.grad.numpy() for p in model.parameters()])
    (y, gx, grads), (y_emu, gx_emu, grads_emu) = results["cpu"], results["cuda-emu"]
    np.testing.assert_allclose(y_emu, y, rtol=1e-4, atol=1e-4 * np.abs(y).max())
    np.testing.assert_allclose(gx_emu, gx, rtol=1e-4, atol=1e-4 * np.abs(gx).max())
    # the bias of a conv followed by train-mode BatchNorm has a zero gradient (BN removes the
    # mean): both devices give float32 rounding noise there, so the tolerance is set by the
    # largest gradient of the model
    scale = max(np.abs(g).max() for g in grads)
    for name, g, g_emu in zip([n for n, _ in model.named_parameters()], grads, grads_emu):
        np.testing.assert_allclose(g_emu, g, rtol=1e-4, atol=1e-4 * scale, err_msg=name)


@pytest.mark.parametrize("name,make,shape", SMALL, ids=[s[0] for s in SMALL])
def test_adam_steps_decrease_the_loss(name, make, shape, device):
    mc.manual_seed(7)
    model = make().to(device)
    x = mc.Tensor(rand(shape, seed=7), device=device)
    with mc.no_grad():
        out_hw = model(x).shape[2:]
    classes = model.num_classes
    rng = np.random.default_rng(8)
    target = mc.Tensor(rng.integers(0, classes, size=(shape[0],) + tuple(out_hw)).astype(np.int64), device=device)
    weight = mc.Tensor(rng.uniform(0.5, 2.0, size=target.shape).astype(np.float32), device=device)
    opt = mc.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = (F.cross_entropy(model(x), target, reduction="none") * weight).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.numpy()))
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses


# ---- outputs equal PyTorch twins with the same weights -----------------------------------------
def _torch_segnet(torch, in_channels, num_classes, width, basic):
    tn = torch.nn

    def block(cin, cout, k, bn, relu):
        return [tn.Conv2d(cin, cout, k, padding=k // 2)] + ([tn.BatchNorm2d(cout)] if bn else []) + (
            [tn.ReLU()] if relu else [])

    class TSegNet(tn.Module):
        def __init__(self):
            super().__init__()
            enc, dec = [], []
            if basic:
                for i in range(4):
                    enc.append(tn.Sequential(*block(in_channels if i == 0 else width, width, 7, True, True)))
                    dec.append(tn.Sequential(*block(width, width, 7, True, False)))
                self.classifier = tn.Conv2d(width, num_classes, 1)
            else:
                stages = [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3]
                cin = in_channels
                for s, chans in enumerate(stages):
                    chans = [c * width // 64 for c in chans]
                    ins = [cin] + chans[:-1]
                    enc.append(tn.Sequential(*[m for a, b in zip(ins, chans) for m in block(a, b, 3, True, True)]))
                    layers = []
                    pairs = list(zip(chans, ins))[::-1]
                    for j, (a, b) in enumerate(pairs):
                        last = s == 0 and j == len(pairs) - 1
                        layers += block(a, num_classes if last else b, 3, not last, not last)
                    dec.append(tn.Sequential(*layers))
                    cin = chans[-1]
                self.classifier = tn.Identity()
            self.encoder, self.decoder = tn.ModuleList(enc), tn.ModuleList(dec)
            self.pool = tn.MaxPool2d(2, 2, return_indices=True)
            self.unpool = tn.MaxUnpool2d(2, 2)

        def forward(self, x):
            indices, sizes = [], []
            for stage in self.encoder:
                x = stage(x)
                sizes.append(x.shape)
                x, idx = self.pool(x)
                indices.append(idx)
            for i in reversed(range(len(self.decoder))):
                x = self.decoder[i](self.unpool(x, indices[i], output_size=sizes[i]))
            return self.classifier(x)

    return TSegNet()


def _randomize_bn_stats(torch, model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g, dtype=m.running_mean.dtype) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g, dtype=m.running_var.dtype) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g, dtype=m.weight.dtype) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g, dtype=m.bias.dtype) * 0.1)


TWINS = [
    ("unet", lambda t: torch_unet(t, 1, 2, 4, 3, False, False), lambda: UNet(1, 2, 4, 3), (2, 1, 92, 108)),
    ("unet-padded-bn", lambda t: torch_unet(t, 3, 4, 4, 2, True, True),
     lambda: UNet(3, 4, 4, 2, padding=True, batch_norm=True), (2, 3, 16, 24)),
    ("segnet", lambda t: _torch_segnet(t, 3, 5, 4, False), lambda: SegNet(3, 5, 4), (2, 3, 32, 64)),
    ("segnet-basic", lambda t: _torch_segnet(t, 3, 5, 4, True), lambda: SegNetBasic(3, 5, 4), (2, 3, 32, 16)),
]


@pytest.mark.parametrize("name,make_torch,make_ours,shape", TWINS, ids=[t[0] for t in TWINS])
def test_eval_outputs_equal_pytorch_twin(name, make_torch, make_ours, shape):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    twin = make_torch(torch).double()
    _randomize_bn_stats(torch, twin)
    twin.eval()
    ours = make_ours().double()
    ours.load_state_dict(twin.state_dict())  # same names, strict
    ours.eval()
    x = rand(shape, seed=11, dtype=np.float64)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    with mc.no_grad():
        got = ours(mc.Tensor(x)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-10 * np.abs(expected).max())


# ---- the weight map -----------------------------------------------------------------------------
def _brute_squared_edt(features):
    H, W = features.shape
    out = np.full((H, W), np.inf)
    for fy, fx in zip(*np.nonzero(features)):
        for y in range(H):
            for x in range(W):
                out[y, x] = min(out[y, x], (y - fy) ** 2 + (x - fx) ** 2)
    return out


def _brute_two_nearest(instances):
    """Distances to the nearest and second-nearest cell, checking every pixel of every cell."""
    H, W = instances.shape
    yy, xx = np.mgrid[0:H, 0:W]
    per_cell = []
    for k in np.unique(instances[instances > 0]):
        cy, cx = np.nonzero(instances == k)
        d2 = (yy[..., None] - cy) ** 2 + (xx[..., None] - cx) ** 2
        per_cell.append(np.sqrt(d2.min(axis=-1)))
    stacked = np.sort(np.stack(per_cell + [np.full((H, W), np.inf)] * 2), axis=0)
    return stacked[0], stacked[1]


def _brute_weight_map(instances, w0, sigma, class_weights):
    fg = instances > 0
    N = fg.size
    if class_weights is None:
        wc = np.ones(fg.shape)
    elif class_weights == "balanced":
        present = [c for c in (fg, ~fg) if c.any()]
        wc = np.zeros(fg.shape)
        for c in present:
            wc[c] = N / (len(present) * c.sum())
    else:
        wc = np.where(fg, class_weights[1], class_weights[0])
    d1, d2 = _brute_two_nearest(instances)
    border = np.zeros(fg.shape)
    for y, x in zip(*np.nonzero(~fg)):
        if np.isfinite(d2[y, x]):
            border[y, x] = w0 * np.exp(-(d1[y, x] + d2[y, x]) ** 2 / (2 * sigma ** 2))
    return wc + border


@st.composite
def instance_masks(draw, max_side=14, max_cells=5):
    """(H, W) int masks: rectangles of ids 1..cells pasted over a background, or scattered pixels."""
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    cells = draw(st.integers(0, max_cells))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mask = np.zeros((H, W), np.int32)
    if draw(st.booleans()):
        for k in range(1, cells + 1):
            y0, x0 = rng.integers(0, H), rng.integers(0, W)
            mask[y0:y0 + rng.integers(1, 5), x0:x0 + rng.integers(1, 5)] = k
    elif cells:
        ids = rng.integers(1, cells + 1, size=(H, W))
        mask = np.where(rng.random((H, W)) < 0.2, ids, 0).astype(np.int32)
    return mask


@given(st.integers(1, 16), st.integers(1, 16), st.floats(0.0, 0.3), st.integers(0, 2**32 - 1))
def test_distance_transform_matches_brute_force(H, W, density, seed):
    features = np.random.default_rng(seed).random((H, W)) < density
    expected = _brute_squared_edt(features)
    np.testing.assert_array_equal(fast_distance.squared_edt(features), expected)
    np.testing.assert_array_equal(reference_distance.squared_edt(features), expected)


@given(instance_masks())
def test_two_nearest_distances_match_brute_force(mask):
    d1, d2 = _brute_two_nearest(mask)
    got1, got2 = fast_distance.two_nearest_instance_distances(mask)
    np.testing.assert_allclose(got1, d1, rtol=1e-12)
    np.testing.assert_allclose(got2, d2, rtol=1e-12)
    ref1, ref2 = reference_distance.two_nearest_instance_distances(mask)
    np.testing.assert_allclose(ref1, d1, rtol=1e-12)
    np.testing.assert_allclose(ref2, d2, rtol=1e-12)


@given(instance_masks(), st.sampled_from(["balanced", None, (0.5, 3.0)]), st.sampled_from([(10.0, 5.0), (3.0, 1.5)]))
def test_weight_map_matches_brute_force(mask, class_weights, w0_sigma):
    w0, sigma = w0_sigma
    got = unet_weight_map(mask, w0=w0, sigma=sigma, class_weights=class_weights)
    assert got.dtype == np.float32 and got.shape == mask.shape
    np.testing.assert_allclose(got, _brute_weight_map(mask, w0, sigma, class_weights), rtol=1e-6, atol=1e-6)


def test_weight_map_special_cases():
    mask = np.zeros((6, 8), np.int64)
    mask[1:3, 1:3] = 4  # one cell: d2 = inf, no border term
    balanced = unet_weight_map(mask)
    np.testing.assert_allclose(balanced.mean(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(balanced[mask > 0], 48 / (2 * 4))
    np.testing.assert_allclose(balanced[mask == 0], 48 / (2 * 44))
    np.testing.assert_array_equal(unet_weight_map(mask, class_weights=None), np.ones((6, 8), np.float32))
    np.testing.assert_array_equal(unet_weight_map(np.zeros((3, 3), np.int32)), np.ones((3, 3), np.float32))
    mask[1:3, 4:6] = 9  # two cells one pixel apart: background between them gets w0·exp(−(1+1)²/(2σ²))
    w = unet_weight_map(mask, w0=10.0, sigma=5.0, class_weights=None)
    assert w[1, 3] == pytest.approx(1 + 10 * np.exp(-4 / 50), rel=1e-6)
    assert w[1, 1] == 1.0  # foreground: no border term
    with pytest.raises(TypeError, match="unet_weight_map: instances must be integers"):
        unet_weight_map(mask.astype(np.float32))
    with pytest.raises(ValueError, match=r"unet_weight_map: instances must be a 2-D \(H, W\) mask, "
                                         r"got shape \(1, 6, 8\)"):
        unet_weight_map(mask[None])
    with pytest.raises(ValueError, match="class_weights"):
        unet_weight_map(mask, class_weights="inverse")


def test_weight_map_on_the_nuclei_mask():
    from minicnn.data.datasets import load_nuclei

    _, mask = load_nuclei()
    assert mask.shape == (512, 512) and mask.max() == 125
    unet_weight_map(mask[:32, :32])  # compile (cached after the first run)
    start = time.perf_counter()
    w = unet_weight_map(mask)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"weight map of the 512×512 nuclei mask took {elapsed:.2f} s"
    # brute force at 300 background pixels: distances to every pixel of every nucleus
    fg = mask > 0
    rng = np.random.default_rng(0)
    ys, xs = np.nonzero(~fg)
    pick = rng.choice(ys.size, 300, replace=False)
    wc_bg = fg.size / (2 * (~fg).sum())
    cells = [np.stack(np.nonzero(mask == k), axis=1) for k in range(1, 126)]
    for y, x in zip(ys[pick], xs[pick]):
        d = np.sort([np.sqrt(((c - (y, x)) ** 2).sum(axis=1).min()) for c in cells])
        assert w[y, x] == pytest.approx(wc_bg + 10 * np.exp(-(d[0] + d[1]) ** 2 / 50), rel=1e-6)
    # a 48×48 window of the real mask against the full brute force (cells cut by the window edge)
    window = mask[200:248, 300:348]
    np.testing.assert_allclose(unet_weight_map(window), _brute_weight_map(window, 10.0, 5.0, "balanced"),
                               rtol=1e-6, atol=1e-6)


def test_center_crop_for_labels_and_tensors():
    a = np.arange(7 * 9).reshape(7, 9)
    np.testing.assert_array_equal(center_crop(a, (3, 5)), a[2:5, 2:7])
    t = mc.Tensor(rand((1, 2, 6, 6)), requires_grad=True)
    center_crop(t, 2).sum().backward()
    expected = np.zeros((1, 2, 6, 6), np.float32)
    expected[..., 2:4, 2:4] = 1
    np.testing.assert_array_equal(t.grad.numpy(), expected)
    with pytest.raises(ValueError, match="center_crop"):
        center_crop(a, (8, 2))
