"""Pix2Pix (Isola et al., 2017): the U-Net generator with skip connections and the PatchGAN
discriminator, with the module layout of the authors' PyTorch code (``model.model.…`` names).

U-Net, built from the innermost block outwards; every block is ``down → submodule → up`` and,
except the outermost, returns ``cat([x, block(x)])`` on channels (the skip)::

    x ─ conv 4×4/2 ────────────────────────────────────────── ReLU, convT 4×4/2, Tanh ─> y
          └ LReLU, conv 4×4/2, norm ─ … ─ ReLU, convT 4×4/2, norm [, Dropout] ┘ (cat with its input)
                   innermost: LReLU, conv 4×4/2 ─ ReLU, convT 4×4/2, norm

Level ``l`` (0 outermost) has ``ngf · min(2^l, 8)`` inner channels; with ``num_downs=8`` a
256×256 image reaches 1×1. Dropout(0.5) sits in the blocks with 8·ngf channels on both sides
(not the innermost), as the reference. PatchGAN: strided 4×4 convs → one logit per patch; with
``n_layers=3`` each logit sees a 70×70 patch (:func:`patchgan_receptive_field`).

``norm``: ``"batch"`` (BatchNorm2d; the convolutions next to a norm then have no bias),
``"instance"`` (InstanceNorm2d without affine, convolutions with bias) or ``"none"``.
"""
import numpy as np

from ... import functional as F
from ... import nn
from ...nn._checks import check_counts

_NORMS = ("batch", "instance", "none")


def norm_layer(norm, channels):
    """The normalisation layer named ``norm`` for ``channels`` channels (Identity for ``"none"``)."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels)
    return nn.Identity()


def _check_norm(owner, norm):
    if norm not in _NORMS:
        raise ValueError(f"{owner}: norm must be one of {_NORMS}, got {norm!r}")
    return norm != "batch"  # use_bias: BatchNorm's shift replaces the bias


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: ``(N, outer, H, W) → (N, 2·outer, H, W)`` (input and output
    concatenated) or, outermost, ``(N, in_channels, H, W) → (N, outer, H, W)``."""

    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 norm="batch", use_dropout=False):
        super().__init__()
        self.outermost = outermost
        use_bias = _check_norm("UnetSkipConnectionBlock", norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=use_bias)
        downrelu, uprelu = nn.LeakyReLU(0.2, True), nn.ReLU(True)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=use_bias)
            layers = [downrelu, downconv, uprelu, upconv, norm_layer(norm, outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=use_bias)
            layers = [downrelu, downconv, norm_layer(norm, inner_nc), submodule, uprelu, upconv,
                      norm_layer(norm, outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return F.cat([x, self.model(x)], axis=1)


class UnetGenerator(nn.Module):
    """U-Net generator: ``(N, in_channels, H, W) → (N, out_channels, H, W)`` in (−1, 1).

    Args:
        in_channels, out_channels: image channels of the input and output domains.
        num_downs: number of stride-2 downsamplings (>= 2; 8 for 256×256 in the paper). H and W
            must be multiples of ``2^num_downs``.
        ngf: channels of the outermost level.
        norm: ``"batch"`` (the paper), ``"instance"`` or ``"none"``.
        use_dropout: Dropout(0.5) in the 8·ngf-wide middle blocks (the paper's noise source).
    """

    def __init__(self, in_channels, out_channels, num_downs=8, ngf=64, norm="batch", use_dropout=True):
        super().__init__()
        check_counts("UnetGenerator", in_channels=in_channels, out_channels=out_channels, ngf=ngf)
        if isinstance(num_downs, bool) or not isinstance(num_downs, (int, np.integer)) or num_downs < 2:
            raise ValueError(f"UnetGenerator: num_downs must be an integer >= 2, got {num_downs!r}")
        _check_norm("UnetGenerator", norm)
        self.in_channels, self.out_channels, self.num_downs = int(in_channels), int(out_channels), int(num_downs)
        mult = [min(2 ** level, 8) for level in range(num_downs)]
        block = UnetSkipConnectionBlock(ngf * mult[-2], ngf * mult[-1], innermost=True, norm=norm)
        for level in range(num_downs - 2, 0, -1):
            outer, inner = ngf * mult[level - 1], ngf * mult[level]
            dropout = use_dropout and mult[level - 1] == 8
            block = UnetSkipConnectionBlock(outer, inner, submodule=block, norm=norm, use_dropout=dropout)
        self.model = UnetSkipConnectionBlock(out_channels, ngf, input_nc=in_channels, submodule=block,
                                             outermost=True, norm=norm)

    def forward(self, x):
        step = 2 ** self.num_downs
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % step or x.shape[3] % step:
            raise ValueError(f"UnetGenerator: expected input (N, {self.in_channels}, H, W) with H and W multiples "
                             f"of 2**num_downs = {step} (num_downs={self.num_downs}), got shape {tuple(x.shape)}")
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: ``(N, in_channels, H, W) → (N, 1, H', W')`` logits, one per overlapping patch.

    ``n_layers`` stride-2 4×4 convolutions (channels ``ndf·min(2^n, 8)``), then a stride-1 4×4
    conv with norm and LeakyReLU(0.2), then a stride-1 4×4 conv to one channel. Spatially
    ``H → H/2^n_layers − 2`` (for H a multiple of ``2^n_layers``); each logit sees a
    :func:`patchgan_receptive_field` ``(n_layers)`` square (70 for the default 3). Pix2Pix
    feeds it ``cat([input, target])`` (in_channels = both domains' channels).
    """

    def __init__(self, in_channels, ndf=64, n_layers=3, norm="batch"):
        super().__init__()
        check_counts("NLayerDiscriminator", in_channels=in_channels, ndf=ndf, n_layers=n_layers)
        use_bias = _check_norm("NLayerDiscriminator", norm)
        self.in_channels, self.n_layers = int(in_channels), int(n_layers)
        layers = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=use_bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=use_bias),
                   norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True),
                   nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    def output_size(self, size):
        """Spatial size of the logit map for an input of side ``size`` (each 4×4 conv, padding 1:
        ``⌊(n − 2)/s⌋ + 1``)."""
        for s in [2] * self.n_layers + [1, 1]:
            size = (size - 2) // s + 1
        return size

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels or min(self.output_size(n) for n in x.shape[2:]) < 1:
            raise ValueError(f"NLayerDiscriminator: expected input (N, {self.in_channels}, H, W) with H and W large "
                             f"enough for n_layers={self.n_layers} (the logit map would be "
                             f"{[self.output_size(n) for n in x.shape[2:]]}), got shape {tuple(x.shape)}")
        return self.model(x)

    @property
    def receptive_field(self):
        return patchgan_receptive_field(self.n_layers)


def patchgan_receptive_field(n_layers=3):
    """Side of the input square one PatchGAN logit depends on: ``1 + Σ_l (k − 1)·Π_{m<l} s_m``
    over the ``n_layers + 2`` 4×4 convolutions with strides ``2, …, 2, 1, 1``
    (n_layers=3: ``1 + 3·(1 + 2 + 4 + 8 + 8) = 70``)."""
    strides = [2] * n_layers + [1, 1]
    field, jump = 1, 1
    for s in strides:
        field += 3 * jump
        jump *= s
    return field
