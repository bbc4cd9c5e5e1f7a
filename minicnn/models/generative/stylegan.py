"""A small StyleGAN (Karras et al. 2019, 2020) for 32×32 images: mapping network, learned constant
input, style modulation with weight demodulation, per-layer noise, style mixing, truncation.

Generator (StyleGAN2's skip architecture)::

    z ─ pixel norm ─ MappingNetwork (num_layers EqualLinear + LeakyReLU) ─> w (N, w_dim)
    const (4×4) ─ StyledConv ─────────────────────────── ToRGB ────────────┐
       └ [StyledConv ↑2 ─ StyledConv ─ ToRGB ─ + bilinear ↑2 of the rgb so far] per resolution 8 … image_size

* ModulatedConv2d: ``s = A(w)`` (an affine map, bias 1); ``w'_ijk = s_i · w_ijk``; demodulation
  ``w''_ijk = w'_ijk / √(Σ_ik w'_ijk² + ε)``; one grouped convolution over the batch.
* StyledConv adds noise ``B_c · n`` (``n ~ N(0, 1)`` per pixel, a learned strength per channel),
  a bias and LeakyReLU(0.2)·√2.
* Equalized learning rate: every weight is stored ~N(0, 1) and multiplied at run time by
  ``1/√fan_in`` (times ``lr_mul`` in the mapping network), so Adam's steps are the same size for
  every layer.
* ``w_avg`` tracks the mean w in training (a buffer); ``truncation_psi`` moves w toward it:
  ``w ← w_avg + ψ (w − w_avg)``. Style mixing: the layers from ``mix_layer`` on take the w of
  ``mix_z``. The layers read ``num_ws = 2 + 2·log2(image_size/4)`` styles (ToRGB shares its
  style with the next convolution, as the official code).

Discriminator: from-RGB 1×1 conv, residual blocks (two 3×3 convs + 2×2 average pool, a 1×1 skip,
sum / √2) down to 4×4, minibatch standard deviation, a 3×3 conv and two linear layers → one logit.
Upsampling is bilinear (a simplification of StyleGAN2's transposed conv + blur filter).
"""
import math

import numpy as np

from ... import functional as F
from ... import nn
from ...nn._checks import check_counts
from ...random import get_rng
from ...tensor import Tensor

SQRT2 = math.sqrt(2.0)


def _randn(shape):
    return get_rng().standard_normal(shape).astype(np.float32)


def _lrelu(x):
    """LeakyReLU(0.2) · √2 (keeps the signal's second moment with N(0,1) weights)."""
    return F.leaky_relu(x, 0.2) * SQRT2


class EqualLinear(nn.Module):
    """``y = x (c W)ᵀ + lr_mul · b`` with ``c = lr_mul / √in_features``; ``W`` stored ~N(0, 1/lr_mul²),
    ``b`` stored as ``bias_init / lr_mul``. ``activation=True`` applies LeakyReLU(0.2)·√2.
    Shape: ``(N, in_features) → (N, out_features)``."""

    def __init__(self, in_features, out_features, bias=True, bias_init=0.0, lr_mul=1.0, activation=False):
        super().__init__()
        self.in_features, self.out_features, self.lr_mul, self.activation = in_features, out_features, lr_mul, activation
        self.weight = nn.Parameter(_randn((out_features, in_features)) / np.float32(lr_mul))
        self.register_parameter("bias", nn.Parameter(np.full(out_features, bias_init / lr_mul, np.float32))
                                if bias else None)
        self.scale = lr_mul / math.sqrt(in_features)

    def forward(self, x):
        y = F.linear(x, self.weight * self.scale, None if self.bias is None else self.bias * self.lr_mul)
        return _lrelu(y) if self.activation else y

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, lr_mul={self.lr_mul}, activation={self.activation}"


class EqualConv2d(nn.Module):
    """``conv2d(x, W / √(in·k²), b)`` with ``W`` stored ~N(0, 1). ``(N, in, H, W) → (N, out, H', W')``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(_randn((out_channels, in_channels, kernel_size, kernel_size)))
        self.register_parameter("bias", nn.Parameter(np.zeros(out_channels, np.float32)) if bias else None)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class MappingNetwork(nn.Module):
    """``z (N, z_dim) → w (N, w_dim)``: pixel norm ``z / √(mean(z²) + 1e-8)``, then ``num_layers``
    :class:`EqualLinear` layers with LeakyReLU(0.2)·√2 and learning-rate multiplier ``lr_mul``."""

    def __init__(self, z_dim, w_dim, num_layers=8, lr_mul=0.01):
        super().__init__()
        check_counts("MappingNetwork", z_dim=z_dim, w_dim=w_dim, num_layers=num_layers)
        self.z_dim, self.w_dim = z_dim, w_dim
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, activation=True) for a, b in zip(dims, dims[1:])])

    def forward(self, z):
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"MappingNetwork: expected latent codes (N, {self.z_dim}) for z_dim={self.z_dim}, "
                             f"got shape {tuple(z.shape)}")
        z = z / F.sqrt(F.mean(z * z, axis=1, keepdims=True) + 1e-8)
        return self.layers(z)


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution, ``(x (N, in, H, W), w (N, w_dim)) → (N, out, H, W)`` ("same" padding).

    Per sample n: ``s = affine(w_n)`` (``(in,)``, bias initialised to 1);
    ``W'[o, i] = c · W[o, i] · s[i]`` with ``c = 1/√(in·k²)``; with ``demodulate``
    ``W''[o] = W'[o] / √(Σ_{i,kh,kw} W'[o]² + eps)``; ``y_n = conv2d(x_n, W''_n)``. All samples run
    as ONE grouped convolution: x as ``(1, N·in, H, W)``, weights ``(N·out, in, k, k)``, ``groups=N``.
    Demodulation makes the output std ≈ the input std for unit-variance, independent inputs.
    """

    def __init__(self, in_channels, out_channels, kernel_size, w_dim, demodulate=True, eps=1e-8):
        super().__init__()
        check_counts("ModulatedConv2d", in_channels=in_channels, out_channels=out_channels,
                     kernel_size=kernel_size, w_dim=w_dim)
        if kernel_size % 2 == 0:
            raise ValueError(f"ModulatedConv2d: kernel_size must be odd (same padding), got {kernel_size}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.w_dim, self.demodulate, self.eps = w_dim, demodulate, eps
        self.weight = nn.Parameter(_randn((out_channels, in_channels, kernel_size, kernel_size)))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x, w):
        if x.ndim != 4 or x.shape[1] != self.in_channels or w.ndim != 2 or w.shape != (x.shape[0], self.w_dim):
            raise ValueError(f"ModulatedConv2d: expected x (N, {self.in_channels}, H, W) and w (N, {self.w_dim}), "
                             f"got shapes {tuple(x.shape)} and {tuple(w.shape)}")
        n, _, h, wd = x.shape
        o, i, k = self.out_channels, self.in_channels, self.kernel_size
        s = self.affine(w)                                                      # (N, in)
        weight = self.weight.reshape(1, o, i, k, k) * s.reshape(n, 1, i, 1, 1) * self.scale
        if self.demodulate:
            d = 1.0 / F.sqrt(F.sum(weight * weight, axis=(2, 3, 4)) + self.eps)  # (N, out)
            weight = weight * d.reshape(n, o, 1, 1, 1)
        y = F.conv2d(x.reshape(1, n * i, h, wd), weight.reshape(n * o, i, k, k), padding=k // 2, groups=n)
        return y.reshape(n, o, h, wd)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, w_dim={self.w_dim}, "
                f"demodulate={self.demodulate}")


class NoiseInjection(nn.Module):
    """``x + B · n``: ``n (N, 1, H, W)`` ~ N(0, 1) (fresh from the global generator when not given),
    ``B (C,)`` a learned per-channel strength initialised to 0."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(np.zeros(channels, np.float32))

    def forward(self, x, noise=None):
        if noise is None:
            noise = get_rng().standard_normal((x.shape[0], 1) + tuple(x.shape[2:]))
        if not isinstance(noise, Tensor):
            noise = Tensor(np.asarray(noise, dtype=x.dtype), device=x.device)
        return x + self.weight.reshape(1, -1, 1, 1) * noise


class StyledConv(nn.Module):
    """[bilinear ↑2] → ModulatedConv2d → noise → + bias → LeakyReLU(0.2)·√2."""

    def __init__(self, in_channels, out_channels, kernel_size, w_dim, upsample=False):
        super().__init__()
        self.upsample = upsample
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, w_dim)
        self.noise = NoiseInjection(out_channels)
        self.bias = nn.Parameter(np.zeros(out_channels, np.float32))

    def forward(self, x, w, noise=None):
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        y = self.noise(self.conv(x, w), noise)
        return _lrelu(y + self.bias.reshape(1, -1, 1, 1))


class ToRGB(nn.Module):
    """1×1 modulated conv without demodulation + bias; adds the bilinearly upsampled ``skip`` image."""

    def __init__(self, in_channels, channels, w_dim):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(np.zeros(channels, np.float32))

    def forward(self, x, w, skip=None):
        y = self.conv(x, w) + self.bias.reshape(1, -1, 1, 1)
        if skip is not None:
            y = y + F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
        return y


def _widths(owner, image_size, channel_base, max_channels):
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 8 \
            or image_size & (image_size - 1):
        raise ValueError(f"{owner}: image_size must be a power of two >= 8, got {image_size!r}")
    check_counts(owner, channel_base=channel_base, max_channels=max_channels)
    sizes = [4 * 2 ** j for j in range(int(image_size).bit_length() - 2)]
    return {r: max(1, min(max_channels, channel_base // r)) for r in sizes}


class StyleGANGenerator(nn.Module):
    """``z (N, z_dim) → images (N, channels, image_size, image_size)`` (see the module docstring).

    Args:
        z_dim, w_dim: latent and style sizes.
        image_size: a power of two >= 8 (32 by default).
        channels: image channels.
        channel_base, max_channels: resolution r has ``min(max_channels, channel_base // r)`` channels.
        mapping_layers, lr_mul: the mapping network's depth and learning-rate multiplier.
        w_avg_beta: ``w_avg ← β w_avg + (1 − β) mean_batch(w)`` in training.

    ``forward(z, truncation_psi=1.0, mix_z=None, mix_layer=None, noise=None)``: ``noise`` is None
    (fresh noise) or a list of :attr:`num_noise` arrays/Tensors ``(N, 1, H_l, W_l)``
    (see :meth:`noise_shapes`).
    """

    def __init__(self, z_dim=64, w_dim=64, image_size=32, channels=1, channel_base=2048, max_channels=128,
                 mapping_layers=8, lr_mul=0.01, w_avg_beta=0.995):
        super().__init__()
        check_counts("StyleGANGenerator", z_dim=z_dim, w_dim=w_dim, channels=channels)
        widths = _widths("StyleGANGenerator", image_size, channel_base, max_channels)
        self.z_dim, self.latent_dim, self.w_dim = z_dim, z_dim, w_dim
        self.image_size, self.channels, self.w_avg_beta = int(image_size), channels, w_avg_beta
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, lr_mul)
        c4 = widths[4]
        self.input = nn.Parameter(_randn((1, c4, 4, 4)))
        self.conv1 = StyledConv(c4, c4, 3, w_dim)
        self.to_rgb1 = ToRGB(c4, channels, w_dim)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        prev = c4
        for r in list(widths)[1:]:
            self.convs.append(StyledConv(prev, widths[r], 3, w_dim, upsample=True))
            self.convs.append(StyledConv(widths[r], widths[r], 3, w_dim))
            self.to_rgbs.append(ToRGB(widths[r], channels, w_dim))
            prev = widths[r]
        self.num_ws = 2 + len(self.convs)
        self.num_noise = 1 + len(self.convs)
        self.register_buffer("w_avg", Tensor(np.zeros(w_dim, np.float32)))

    def noise_shapes(self, batch):
        """Shapes of the per-layer noise inputs, in the order ``forward(noise=...)`` takes them."""
        sizes = [4] + [4 * 2 ** (1 + j // 2) for j in range(len(self.convs))]
        return [(batch, 1, s, s) for s in sizes]

    def _truncate(self, w, psi):
        if psi == 1.0:
            return w
        avg = Tensor._from_array(self.w_avg.data.astype(w.dtype), w.device)
        return avg + (w - avg) * psi

    def _check_z(self, name, z):
        if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != self.z_dim:
            shape = tuple(z.shape) if hasattr(z, "shape") else type(z).__name__
            raise ValueError(f"StyleGANGenerator: expected {name} as a Tensor (N, {self.z_dim}) for z_dim={self.z_dim}, "
                             f"got {shape}")

    def forward(self, z, truncation_psi=1.0, mix_z=None, mix_layer=None, noise=None):
        self._check_z("z", z)
        n = z.shape[0]
        if (mix_z is None) != (mix_layer is None):
            raise ValueError("StyleGANGenerator: style mixing needs both mix_z and mix_layer")
        if mix_z is not None:
            self._check_z("mix_z", mix_z)
            if mix_z.shape[0] != n or not 0 <= mix_layer <= self.num_ws:
                raise ValueError(f"StyleGANGenerator: mix_z {tuple(mix_z.shape)} must have z's batch {n} and "
                                 f"mix_layer (got {mix_layer}) must be in 0..{self.num_ws}")
        if noise is not None and len(noise) != self.num_noise:
            raise ValueError(f"StyleGANGenerator: noise must be a list of {self.num_noise} arrays "
                             f"{self.noise_shapes(n)}, got {len(noise)}")
        w = self.mapping(z)
        if self.training:
            xp = w.device.xp
            batch_mean = w.data.mean(axis=0).astype(self.w_avg.data.dtype)
            self.w_avg.data[...] = self.w_avg_beta * self.w_avg.data + (1 - self.w_avg_beta) * xp.asarray(batch_mean)
        w = self._truncate(w, truncation_psi)
        ws = [w] * self.num_ws
        if mix_z is not None:
            ws[mix_layer:] = [self._truncate(self.mapping(mix_z), truncation_psi)] * (self.num_ws - mix_layer)
        noise = [None] * self.num_noise if noise is None else list(noise)
        x = self.input * Tensor._from_array(z.device.xp.ones((n, 1, 1, 1), dtype=self.input.dtype), z.device)
        x = self.conv1(x, ws[0], noise[0])
        rgb = self.to_rgb1(x, ws[1])
        for j, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * j](x, ws[2 * j + 1], noise[2 * j + 1])
            x = self.convs[2 * j + 1](x, ws[2 * j + 2], noise[2 * j + 2])
            rgb = to_rgb(x, ws[2 * j + 3], rgb)
        return rgb


class DiscriminatorBlock(nn.Module):
    """``(N, in, H, W) → (N, out, H/2, W/2)``: ``(main(x) + skip(x)) / √2`` with main = two 3×3
    EqualConv2d + LeakyReLU·√2 then 2×2 average pool, skip = 2×2 average pool then a 1×1 conv."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = EqualConv2d(in_channels, in_channels, 3, padding=1)
        self.conv2 = EqualConv2d(in_channels, out_channels, 3, padding=1)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        y = F.avg_pool2d(_lrelu(self.conv2(_lrelu(self.conv1(x)))), 2)
        return (y + self.skip(F.avg_pool2d(x, 2))) * (1.0 / SQRT2)


def minibatch_stddev(x, group_size=4):
    """Append one channel: the std over groups of ``g`` samples (the largest ``g <= group_size``
    dividing N; sample n is in group ``n mod N/g``), averaged over C, H, W.
    ``(N, C, H, W) → (N, C + 1, H, W)``."""
    n, c, h, w = x.shape
    g = max(d for d in range(1, min(group_size, n) + 1) if n % d == 0)
    m = n // g
    y = x.reshape(g, m, c, h, w)
    y = y - F.mean(y, axis=0, keepdims=True)
    y = F.sqrt(F.mean(y * y, axis=0) + 1e-8)                  # (m, c, h, w)
    y = F.mean(y, axis=(1, 2, 3)).reshape(1, m, 1, 1, 1)
    ones = Tensor._from_array(x.device.xp.ones((g, m, 1, h, w), dtype=x.dtype), x.device)
    return F.cat([x, (y * ones).reshape(n, 1, h, w)], axis=1)


class StyleGANDiscriminator(nn.Module):
    """``images (N, channels, image_size, image_size) → logits (N,)`` (see the module docstring)."""

    def __init__(self, image_size=32, channels=1, channel_base=2048, max_channels=128, mbstd_group=4):
        super().__init__()
        check_counts("StyleGANDiscriminator", channels=channels, mbstd_group=mbstd_group)
        widths = _widths("StyleGANDiscriminator", image_size, channel_base, max_channels)
        self.image_size, self.channels, self.mbstd_group = int(image_size), channels, mbstd_group
        sizes = sorted(widths, reverse=True)
        self.from_rgb = EqualConv2d(channels, widths[sizes[0]], 1)
        self.blocks = nn.ModuleList([DiscriminatorBlock(widths[r], widths[r // 2]) for r in sizes[:-1]])
        c4 = widths[4]
        self.final_conv = EqualConv2d(c4 + 1, c4, 3, padding=1)
        self.fc = EqualLinear(c4 * 16, c4, activation=True)
        self.out = EqualLinear(c4, 1)

    def forward(self, x):
        want = (self.channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"StyleGANDiscriminator: expected images (N, {', '.join(map(str, want))}), "
                             f"got shape {tuple(x.shape)}")
        y = _lrelu(self.from_rgb(x))
        for block in self.blocks:
            y = block(y)
        y = _lrelu(self.final_conv(minibatch_stddev(y, self.mbstd_group)))
        y = self.fc(y.reshape(x.shape[0], -1))
        return self.out(y).reshape(x.shape[0])
