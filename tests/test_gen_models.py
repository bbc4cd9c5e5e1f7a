"""Generative models (DCGAN, Pix2Pix U-Net + PatchGAN, CycleGAN ResNet generator, small StyleGAN)
and the padding layers.

Oracles: PyTorch twins written here with the reference implementations' module names (the
DCGAN tutorial; junyanz/pytorch-CycleGAN-and-pix2pix), loaded with our state_dict and compared in
eval mode; torch.nn padding layers; finite differences (gradcheck, float64); a plain NumPy loop
for the modulated convolution; a gradient-based receptive-field measurement for the PatchGAN.
torchvision has none of these models, so there is no torchvision comparison.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
from minicnn import nn
from minicnn.models.generative import (
    DCGANDiscriminator, DCGANGenerator, ModulatedConv2d, NLayerDiscriminator, ResnetGenerator,
    StyleGANDiscriminator, StyleGANGenerator, UnetGenerator, dcgan_init, minibatch_stddev, pad_images,
    patchgan_receptive_field,
)
from minicnn.testing import gradcheck

torch = pytest.importorskip("torch")
tnn = torch.nn
from benchmarks import models as bm  # noqa: E402  (after torch: its twins need it)
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def rand(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def n_params(model):
    return sum(p.size for p in model.parameters())


def compare_with_twin(ours, twin, x, dtype, call=None):
    """Load our weights into ``twin``, run both in eval mode on ``x``, return the max |difference|."""
    ours.to(dtype)
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in ours.state_dict().items()})
    twin = twin.to(torch.float64 if dtype == np.float64 else torch.float32).eval()
    ours.eval()
    with mc.no_grad():
        y = ours(mc.Tensor(x.astype(dtype)))
    with torch.no_grad():
        yt = twin(torch.from_numpy(x.astype(dtype)))
    assert tuple(y.shape) == tuple(yt.shape)
    return float(np.abs(y.numpy() - yt.numpy()).max())


def randomize_norms(model, seed=1):
    """Non-trivial BatchNorm affine and running statistics, so eval mode is really tested."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.uniform(-0.5, 0.5, c)
            m.running_mean.data[...] = rng.uniform(-0.2, 0.2, c)
            m.running_var.data[...] = rng.uniform(0.5, 2.0, c)
    return model


# ---- padding layers ----------------------------------------------------------------------------------
PADS = [("ReflectionPad2d", "reflect", 2), ("ReplicationPad2d", "replicate", 2), ("ZeroPad2d", "constant", 2),
        ("ReflectionPad1d", "reflect", 1), ("ReplicationPad1d", "replicate", 1)]


@pytest.mark.parametrize("name, mode, dims", PADS)
@given(data=st.data())
def test_padding_layers_match_torch(name, mode, dims, data):
    size = data.draw(st.tuples(*[st.integers(2, 5)] * dims))
    pads = tuple(data.draw(st.integers(0, min(size[::-1][k // 2] - 1, 3))) for k in range(2 * dims))
    if data.draw(st.booleans()):
        pads = pads[0] if len(set(pads)) == 1 else pads
    x = rand((2, 3) + size, seed=len(size))
    ours, theirs = getattr(nn, name)(pads), getattr(tnn, name)(pads)
    xt = torch.from_numpy(x).requires_grad_()
    xm = mc.Tensor(x, requires_grad=True)
    y, yt = ours(xm), theirs(xt)
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    gy = rand(tuple(yt.shape), seed=3)
    y.backward(mc.Tensor(gy))
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), atol=1e-6)


def test_constant_pad_and_unbatched_input():
    x = rand((3, 4, 5))
    y = nn.ConstantPad2d((1, 2, 0, 3), 2.5)(mc.Tensor(x))
    np.testing.assert_array_equal(y.numpy(), tnn.ConstantPad2d((1, 2, 0, 3), 2.5)(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize("cls", ["ReflectionPad2d", "ReplicationPad2d"])
def test_padding_gradcheck(cls, device):
    x = mc.Tensor(rand((1, 2, 3, 4), dtype=np.float64), device=device, requires_grad=True)
    gradcheck(getattr(nn, cls)((2, 3, 1, 2)), [x])


def test_padding_errors_name_module_and_shapes():
    with pytest.raises(ValueError, match=r"ReflectionPad2d.*\(3, 3\).*size 3.*\(1, 2, 3, 8\)"):
        nn.ReflectionPad2d(3)(mc.Tensor(np.zeros((1, 2, 3, 8), np.float32)))
    with pytest.raises(ValueError, match=r"ReflectionPad2d.*4 ints"):
        nn.ReflectionPad2d((1, 2, 3))
    with pytest.raises(ValueError, match=r"ReplicationPad1d.*\(2, 5, 5, 5\)"):
        nn.ReplicationPad1d(1)(mc.Tensor(np.zeros((2, 5, 5, 5), np.float32)))


# ---- DCGAN: the PyTorch tutorial's layout, generalised to 2^k ----------------------------------------
# Its PyTorch twin is benchmarks.models.torch_dcgan (the `benchmarks models` DCGAN row times it):
# a module with the tutorial's `generator.main` and `discriminator.main` Sequentials.
def torch_dcgan(latent_dim, image_size, channels, width):
    return bm.torch_dcgan(torch, latent_dim, image_size, channels, width)


def test_dcgan_tutorial_parameter_counts():
    g, d = DCGANGenerator(), DCGANDiscriminator()
    twin = torch_dcgan(100, 64, 3, 64)
    assert n_params(g) == sum(p.numel() for p in twin.generator.parameters()) == 3_576_704
    assert n_params(d) == sum(p.numel() for p in twin.discriminator.parameters()) == 2_765_568


@pytest.mark.parametrize("image_size, channels", [(16, 1), (32, 3), (64, 1)])
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_dcgan_matches_torch_twin(image_size, channels, dtype, tol):
    mc.manual_seed(0)
    g = randomize_norms(DCGANGenerator(8, image_size, channels, 4).apply(dcgan_init))
    d = randomize_norms(DCGANDiscriminator(image_size, channels, 4).apply(dcgan_init))
    twin = torch_dcgan(8, image_size, channels, 4)
    z = rand((3, 8))
    assert compare_with_twin(g, twin.generator, z, dtype) < tol
    x = np.tanh(rand((3, channels, image_size, image_size), seed=1))
    assert compare_with_twin(d, twin.discriminator, x, dtype) < tol * 10


def test_dcgan_shapes_and_latent_layouts():
    g = DCGANGenerator(latent_dim=16, image_size=32, channels=1, width=4)
    with mc.no_grad():
        a = g.eval()(mc.Tensor(rand((2, 16))))
        b = g(mc.Tensor(rand((2, 16)).reshape(2, 16, 1, 1)))
    assert a.shape == (2, 1, 32, 32)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.abs(a.numpy()).max() < 1


def test_dcgan_init_statistics():
    g = dcgan_init(DCGANGenerator(100, 64, 3, 64), rng=0)
    w = np.concatenate([m.weight.numpy().ravel() for m in g.modules() if isinstance(m, nn.ConvTranspose2d)])
    bn = np.concatenate([m.weight.numpy().ravel() for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 1e-3
    assert abs(bn.mean() - 1) < 0.01 and abs(bn.std() - 0.02) < 0.005
    assert all(np.all(m.bias.numpy() == 0) for m in g.modules() if isinstance(m, nn.BatchNorm2d))


def test_dcgan_bad_sizes_raise():
    with pytest.raises(ValueError, match=r"DCGANGenerator.*image_size.*power of two.*28"):
        DCGANGenerator(image_size=28)
    with pytest.raises(ValueError, match=r"DCGANDiscriminator.*image_size.*48"):
        DCGANDiscriminator(image_size=48)
    g = DCGANGenerator(latent_dim=16, image_size=16, channels=1, width=2)
    with pytest.raises(ValueError, match=r"DCGANGenerator.*latent_dim=16.*\(2, 10\)"):
        g(mc.Tensor(np.zeros((2, 10), np.float32)))
    d = DCGANDiscriminator(image_size=16, channels=1, width=2)
    with pytest.raises(ValueError, match=r"DCGANDiscriminator.*image_size=16.*\(2, 1, 32, 32\)"):
        d(mc.Tensor(np.zeros((2, 1, 32, 32), np.float32)))


def test_pad_images_28_to_32():
    x = rand((2, 1, 28, 28))
    y = pad_images(x, 32)
    assert y.shape == (2, 1, 32, 32) and np.all(y[:, :, :2] == -1) and np.all(y[:, :, -2:] == -1)
    np.testing.assert_array_equal(y[:, :, 2:30, 2:30], x)


# ---- Pix2Pix: the reference's U-Net and PatchGAN ---------------------------------------------------------
class TorchUnetBlock(tnn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 norm=tnn.BatchNorm2d, use_dropout=False):
        super().__init__()
        self.outermost = outermost
        use_bias = norm is tnn.InstanceNorm2d
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = tnn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        if outermost:
            model = [downconv, submodule, tnn.ReLU(True), tnn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1), tnn.Tanh()]
        elif innermost:
            model = [tnn.LeakyReLU(0.2, True), downconv, tnn.ReLU(True),
                     tnn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=use_bias), norm(outer_nc)]
        else:
            model = [tnn.LeakyReLU(0.2, True), downconv, norm(inner_nc), submodule, tnn.ReLU(True),
                     tnn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=use_bias), norm(outer_nc)]
            if use_dropout:
                model.append(tnn.Dropout(0.5))
        self.model = tnn.Sequential(*model)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class TorchUnetGenerator(tnn.Module):
    """The reference (num_downs >= 5)."""

    def __init__(self, input_nc, output_nc, num_downs, ngf=64, norm=tnn.BatchNorm2d, use_dropout=False):
        super().__init__()
        block = TorchUnetBlock(ngf * 8, ngf * 8, submodule=None, norm=norm, innermost=True)
        for _ in range(num_downs - 5):
            block = TorchUnetBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = TorchUnetBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = TorchUnetBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = TorchUnetBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = TorchUnetBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


class TorchNLayerDiscriminator(tnn.Module):
    def __init__(self, input_nc, ndf=64, n_layers=3, norm=tnn.BatchNorm2d):
        super().__init__()
        use_bias = norm is tnn.InstanceNorm2d
        seq = [tnn.Conv2d(input_nc, ndf, 4, 2, 1), tnn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            seq += [tnn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=use_bias), norm(ndf * mult), tnn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** n_layers, 8)
        seq += [tnn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=use_bias), norm(ndf * mult), tnn.LeakyReLU(0.2, True),
                tnn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = tnn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


def test_pix2pix_reference_parameter_counts():
    ours = UnetGenerator(3, 3, num_downs=8, ngf=64)
    assert n_params(ours) == sum(p.numel() for p in TorchUnetGenerator(3, 3, 8, 64, use_dropout=True).parameters())
    assert n_params(ours) == 54_413_955  # the reference prints "54.414 M" for unet_256
    assert list(ours.state_dict()) == list(TorchUnetGenerator(3, 3, 8, 64, use_dropout=True).state_dict())
    d = NLayerDiscriminator(6)
    assert n_params(d) == sum(p.numel() for p in TorchNLayerDiscriminator(6).parameters()) == 2_768_705
    drop = [name for name, m in ours.named_modules() if isinstance(m, nn.Dropout)]
    assert len(drop) == 3  # num_downs − 5 middle blocks


@pytest.mark.parametrize("norm, tnorm", [("batch", tnn.BatchNorm2d), ("instance", tnn.InstanceNorm2d)])
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_unet_and_patchgan_match_torch_twin(norm, tnorm, dtype, tol):
    mc.manual_seed(1)
    g = randomize_norms(UnetGenerator(2, 1, num_downs=6, ngf=2, norm=norm))
    x = np.tanh(rand((2, 2, 64, 64)))
    assert compare_with_twin(g, TorchUnetGenerator(2, 1, 6, 2, norm=tnorm, use_dropout=True), x, dtype) < tol
    d = randomize_norms(NLayerDiscriminator(3, ndf=4, n_layers=3, norm=norm))
    x = np.tanh(rand((2, 3, 32, 32), seed=2))
    assert compare_with_twin(d, TorchNLayerDiscriminator(3, 4, 3, norm=tnorm), x, dtype) < tol


@pytest.mark.parametrize("num_downs", [2, 3, 4])
def test_unet_small_depths_shapes(num_downs):
    g = UnetGenerator(1, 3, num_downs=num_downs, ngf=2)
    with mc.no_grad():
        assert g(mc.Tensor(rand((2, 1, 16, 16)))).shape == (2, 3, 16, 16)


def test_unet_size_must_divide():
    g = UnetGenerator(1, 1, num_downs=4, ngf=2)
    with pytest.raises(ValueError, match=r"UnetGenerator.*multiples of 2\*\*num_downs = 16.*\(1, 1, 24, 16\)"):
        g(mc.Tensor(np.zeros((1, 1, 24, 16), np.float32)))
    with pytest.raises(ValueError, match="num_downs"):
        UnetGenerator(1, 1, num_downs=1)


def measured_receptive_field(n_layers, size=96):
    """Side of the input region that receives gradient from the centre logit of a PatchGAN with
    positive weights (no cancellations; eval-mode norms are affine)."""
    d = NLayerDiscriminator(1, ndf=2, n_layers=n_layers, norm="none").to(np.float64)
    for p in d.parameters():
        p.data[...] = np.abs(p.data) + 0.01
    x = mc.Tensor(np.ones((1, 1, size, size)), requires_grad=True)
    y = d(x)
    h, w = y.shape[2:]
    g = np.zeros(y.shape)
    g[0, 0, h // 2, w // 2] = 1
    y.backward(mc.Tensor(g))
    rows = np.nonzero(np.abs(x.grad.numpy()[0, 0]).sum(1))[0]
    cols = np.nonzero(np.abs(x.grad.numpy()[0, 0]).sum(0))[0]
    assert rows[0] > 0 and rows[-1] < size - 1, "the field touches the border: use a larger input"
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_patchgan_receptive_field(n_layers):
    assert patchgan_receptive_field(n_layers) == {1: 16, 2: 34, 3: 70}[n_layers]
    assert measured_receptive_field(n_layers) == (patchgan_receptive_field(n_layers),) * 2
    assert NLayerDiscriminator(1, 2, n_layers).receptive_field == patchgan_receptive_field(n_layers)


# ---- CycleGAN: the reference's ResNet generator ------------------------------------------------------------
class TorchResnetBlock(tnn.Module):
    def __init__(self, dim, norm, use_bias):
        super().__init__()
        self.conv_block = tnn.Sequential(
            tnn.ReflectionPad2d(1), tnn.Conv2d(dim, dim, 3, padding=0, bias=use_bias), norm(dim), tnn.ReLU(True),
            tnn.ReflectionPad2d(1), tnn.Conv2d(dim, dim, 3, padding=0, bias=use_bias), norm(dim))

    def forward(self, x):
        return x + self.conv_block(x)


class TorchResnetGenerator(tnn.Module):
    def __init__(self, input_nc, output_nc, ngf=64, n_blocks=9, norm=tnn.InstanceNorm2d, n_downsampling=2):
        super().__init__()
        use_bias = norm is tnn.InstanceNorm2d
        model = [tnn.ReflectionPad2d(3), tnn.Conv2d(input_nc, ngf, 7, padding=0, bias=use_bias), norm(ngf), tnn.ReLU(True)]
        for i in range(n_downsampling):
            m = 2 ** i
            model += [tnn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1, bias=use_bias), norm(ngf * m * 2),
                      tnn.ReLU(True)]
        m = 2 ** n_downsampling
        model += [TorchResnetBlock(ngf * m, norm, use_bias) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            m = 2 ** (n_downsampling - i)
            model += [tnn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1,
                                          bias=use_bias), norm(ngf * m // 2), tnn.ReLU(True)]
        model += [tnn.ReflectionPad2d(3), tnn.Conv2d(ngf, output_nc, 7, padding=0), tnn.Tanh()]
        self.model = tnn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


def test_resnet_generator_reference_parameter_count():
    ours = ResnetGenerator(3, 3)
    assert n_params(ours) == sum(p.numel() for p in TorchResnetGenerator(3, 3).parameters()) == 11_378_179
    assert list(ours.state_dict()) == list(TorchResnetGenerator(3, 3).state_dict())


@pytest.mark.parametrize("norm, tnorm", [("instance", tnn.InstanceNorm2d), ("batch", tnn.BatchNorm2d)])
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_resnet_generator_matches_torch_twin(norm, tnorm, dtype, tol):
    mc.manual_seed(2)
    g = randomize_norms(ResnetGenerator(1, 2, ngf=4, n_blocks=2, norm=norm))
    x = np.tanh(rand((2, 1, 16, 20)))
    assert compare_with_twin(g, TorchResnetGenerator(1, 2, 4, 2, norm=tnorm), x, dtype) < tol


def test_resnet_generator_bad_size():
    with pytest.raises(ValueError, match=r"ResnetGenerator.*2\*\*n_downsampling = 4.*\(1, 1, 18, 16\)"):
        ResnetGenerator(1, 1, 2, 1)(mc.Tensor(np.zeros((1, 1, 18, 16), np.float32)))


# ---- StyleGAN ----------------------------------------------------------------------------------------------
def numpy_modulated_conv(x, w, conv):
    """Per-sample loop: modulate, demodulate, then a plain correlation with zero padding."""
    A = conv.affine
    s = w @ (A.weight.numpy() * A.scale).T + A.bias.numpy() * A.lr_mul            # (N, in)
    n, cin, h, wd = x.shape
    k = conv.kernel_size
    pad = k // 2
    out = np.zeros((n, conv.out_channels, h, wd), dtype=np.float64)
    for b in range(n):
        weight = conv.weight.numpy() * conv.scale * s[b][None, :, None, None]
        if conv.demodulate:
            weight = weight / np.sqrt((weight ** 2).sum(axis=(1, 2, 3), keepdims=True) + conv.eps)
        xp = np.pad(x[b], ((0, 0), (pad, pad), (pad, pad)))
        for o in range(conv.out_channels):
            for i in range(h):
                for j in range(wd):
                    out[b, o, i, j] = (xp[:, i:i + k, j:j + k] * weight[o]).sum()
    return out


@pytest.mark.parametrize("k, demodulate", [(3, True), (1, False), (3, False)])
def test_modulated_conv_matches_per_sample_reference(k, demodulate, device):
    mc.manual_seed(3)
    conv = ModulatedConv2d(3, 4, k, w_dim=5, demodulate=demodulate).to(device, np.float64)
    conv.affine.bias.data[...] = conv.affine.bias.data + 0.3 * rand((3,), 9, np.float64)
    x, w = rand((2, 3, 5, 6), 1, np.float64), rand((2, 5), 2, np.float64)
    y = conv(mc.Tensor(x, device=device), mc.Tensor(w, device=device))
    np.testing.assert_allclose(y.numpy(), numpy_modulated_conv(x, w, conv), rtol=1e-10, atol=1e-12)


def test_modulated_conv_gradcheck(device):
    mc.manual_seed(4)
    conv = ModulatedConv2d(2, 3, 3, w_dim=4).to(device, np.float64)
    x = mc.Tensor(rand((2, 2, 4, 4), 1, np.float64), device=device, requires_grad=True)
    w = mc.Tensor(rand((2, 4), 2, np.float64), device=device, requires_grad=True)
    gradcheck(lambda x, w: conv(x, w), [x, w])
    # and with respect to the layer's own weights (the style affine and the convolution kernel)
    params = [conv.weight, conv.affine.weight, conv.affine.bias]
    gradcheck(lambda *ps: _with(params, ps, x.detach(), w.detach(), conv),
              [mc.Tensor(p.numpy(), device=device, requires_grad=True) for p in params], mode="random")


def _with(params, values, x, w, conv):
    """conv(x, w) with its parameters replaced by the Tensors ``values`` (kept in the graph)."""
    owners = [conv, conv.affine, conv.affine]
    names = ["weight", "weight", "bias"]
    saved = [o._parameters[n] for o, n in zip(owners, names)]
    for o, n, v in zip(owners, names, values):
        o._parameters[n] = v
    try:
        return conv(x, w)
    finally:
        for o, n, p in zip(owners, names, saved):
            o._parameters[n] = p


def test_demodulation_keeps_unit_std():
    mc.manual_seed(5)
    conv = ModulatedConv2d(64, 64, 3, w_dim=16)
    x = rand((4, 64, 16, 16), 1)
    w = rand((4, 16), 2) * 3
    with mc.no_grad():
        y = conv(mc.Tensor(x), mc.Tensor(w)).numpy()[:, :, 1:-1, 1:-1]  # away from the zero padding
    assert abs(y.std() - 1) < 0.05
    # without demodulation the style scales the output
    plain = ModulatedConv2d(64, 64, 3, w_dim=16, demodulate=False)
    plain.load_state_dict(conv.state_dict())
    with mc.no_grad():
        z = plain(mc.Tensor(x), mc.Tensor(w)).numpy()[:, :, 1:-1, 1:-1]
    assert abs(z.std() - 1) > 0.2


def small_stylegan():
    mc.manual_seed(6)
    return (StyleGANGenerator(z_dim=8, w_dim=8, image_size=32, channels=1, channel_base=64, max_channels=4,
                              mapping_layers=2),
            StyleGANDiscriminator(image_size=32, channels=1, channel_base=64, max_channels=4))


def test_stylegan_shapes_counts_and_noise():
    g, d = small_stylegan()
    assert g.num_ws == 8 and g.num_noise == 7
    assert g.noise_shapes(2) == [(2, 1, s, s) for s in (4, 8, 8, 16, 16, 32, 32)]
    z = mc.Tensor(rand((2, 8)))
    g.eval()
    with mc.no_grad():
        y = g(z)
        assert y.shape == (2, 1, 32, 32) and d(y).shape == (2,)
        noise = [rand(s, seed=i) for i, s in enumerate(g.noise_shapes(2))]
        np.testing.assert_array_equal(g(z, noise=noise).numpy(), g(z, noise=noise).numpy())
    # the equalized-lr weights are stored ~N(0, 1), the mapping's ~N(0, 1/lr_mul²)
    assert abs(StyleGANGenerator().convs[2].conv.weight.numpy().std() - 1) < 0.02
    assert abs(StyleGANGenerator().mapping.layers[1].weight.numpy().std() - 100) < 2


def test_stylegan_truncation_mixing_and_w_avg():
    g, _ = small_stylegan()
    z1, z2 = mc.Tensor(rand((3, 8), 1)), mc.Tensor(rand((3, 8), 2))
    g.train()
    g(z1)
    with mc.no_grad():
        w = g.mapping(z1).numpy().mean(0)
    np.testing.assert_allclose(g.w_avg.numpy(), (1 - g.w_avg_beta) * w, rtol=1e-5)
    g.eval()
    before = g.w_avg.numpy().copy()
    noise = [np.zeros(s, np.float32) for s in g.noise_shapes(3)]
    with mc.no_grad():
        collapsed = g(z1, truncation_psi=0.0, noise=noise).numpy()  # every sample is the image of w_avg
        np.testing.assert_allclose(collapsed, np.broadcast_to(collapsed[:1], collapsed.shape), atol=1e-6)
        np.testing.assert_array_equal(g.w_avg.numpy(), before)  # no update in eval
        np.testing.assert_allclose(g(z1, mix_z=z2, mix_layer=g.num_ws, noise=noise).numpy(),
                                   g(z1, noise=noise).numpy(), atol=1e-6)
        np.testing.assert_allclose(g(z1, mix_z=z2, mix_layer=0, noise=noise).numpy(),
                                   g(z2, noise=noise).numpy(), atol=1e-6)
        mixed = g(z1, mix_z=z2, mix_layer=4, noise=noise).numpy()
    assert np.abs(mixed - g(z1, noise=noise).numpy()).max() > 1e-4
    with pytest.raises(ValueError, match="mix_z and mix_layer"):
        g(z1, mix_z=z2)
    with pytest.raises(ValueError, match=r"StyleGANGenerator.*z_dim=8.*\(3, 5\)"):
        g(mc.Tensor(rand((3, 5))))


def test_minibatch_stddev_matches_numpy():
    x = rand((6, 2, 4, 4), 1, np.float64)
    y = minibatch_stddev(mc.Tensor(x), group_size=4).numpy()  # 6 → groups of 3 (largest divisor <= 4)
    groups = x.reshape(3, 2, 2, 4, 4)
    std = np.sqrt(groups.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))  # (2,)
    np.testing.assert_allclose(y[:, 2], np.broadcast_to(np.tile(std, 3)[:, None, None], (6, 4, 4)), rtol=1e-12)
    np.testing.assert_array_equal(y[:, :2], x)
    gradcheck(lambda t: minibatch_stddev(t, 4), [mc.Tensor(x[:4, :, :2, :2], requires_grad=True)])


# ---- one training step of every generator and discriminator on cpu and cuda-emu ----------------------------
def _models():
    mc.manual_seed(7)
    sg, sd = small_stylegan()
    return {
        "dcgan": (DCGANGenerator(8, 16, 1, 4), DCGANDiscriminator(16, 1, 4), (4, 8), (4, 1, 16, 16)),
        "unet": (UnetGenerator(1, 1, 4, 4), NLayerDiscriminator(2, 4, 2), (4, 1, 16, 16), None),
        "resnet": (ResnetGenerator(1, 1, 4, 2), NLayerDiscriminator(1, 4, 2, "instance"), (4, 1, 16, 16), None),
        "stylegan": (sg, sd, (4, 8), (4, 1, 32, 32)),
    }


@pytest.mark.parametrize("name", ["dcgan", "unet", "resnet", "stylegan"])
def test_training_step_every_model(name, device):
    g, d, in_shape, _ = _models()[name]
    g.to(device)
    d.to(device)
    opt_g, opt_d = mc.optim.Adam(g.parameters(), 2e-4, (0.5, 0.999)), mc.optim.Adam(d.parameters(), 2e-4, (0.5, 0.999))
    x = mc.Tensor(rand(in_shape), device=device)
    fake = g(x)
    pair = (lambda f: mc.functional.cat([x, f], axis=1)) if name == "unet" else (lambda f: f)
    before_g = [p.numpy().copy() for p in g.parameters()]
    loss_d = mc.functional.mean(d(pair(fake.detach())) ** 2)
    opt_d.zero_grad()
    loss_d.backward()
    assert all(p.grad is None for p in g.parameters())
    opt_d.step()
    loss_g = mc.functional.mean((d(pair(fake)) - 1) ** 2)
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    assert np.isfinite(loss_d.item()) and np.isfinite(loss_g.item())
    changed = [not np.array_equal(b, p.numpy()) for b, p in zip(before_g, g.parameters())]
    assert sum(changed) >= len(changed) // 2
