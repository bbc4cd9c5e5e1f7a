"""CycleGAN's ResNet generator (Zhu et al., 2017; Johnson et al.'s transformation network), with
the module layout of the authors' PyTorch code (``model.<i>…`` names).

::

    x ─ ReflectionPad(3), conv 7×7, norm, ReLU                        (N, ngf, H, W)
      ─ [conv 3×3 stride 2, norm, ReLU] × n_downsampling              (N, ngf·2^d, H/2^d, W/2^d)
      ─ ResnetBlock × n_blocks:  y = x + (ReflectionPad(1), conv 3×3, norm, ReLU,
                                          ReflectionPad(1), conv 3×3, norm)(x)
      ─ [convT 3×3 stride 2, output_padding 1, norm, ReLU] × n_downsampling
      ─ ReflectionPad(3), conv 7×7 (with bias), Tanh                  (N, out_channels, H, W)

Norm is InstanceNorm2d (no affine) by default, the convolutions next to it have biases (as the
reference: an instance norm has no shift of its own). The discriminator of CycleGAN is the
PatchGAN :class:`~minicnn.models.generative.pix2pix.NLayerDiscriminator` (``norm="instance"``).
"""
import numpy as np

from ... import nn
from ...nn._checks import check_counts
from .pix2pix import _check_norm, norm_layer


class ResnetBlock(nn.Module):
    """``(N, dim, H, W) → (N, dim, H, W)``: ``x + conv_block(x)`` (two reflection-padded 3×3 convs)."""

    def __init__(self, dim, norm="instance", use_dropout=False, use_bias=True):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=use_bias), norm_layer(norm, dim),
                  nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=use_bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """``(N, in_channels, H, W) → (N, out_channels, H, W)`` in (−1, 1); H and W must be multiples
    of ``2^n_downsampling`` and larger than 3 (the 7×7 reflection padding).

    Args:
        in_channels, out_channels: channels of the source and target domains.
        ngf: channels after the first 7×7 conv; the residual blocks have ``ngf·2^n_downsampling``.
        n_blocks: residual blocks (9 for 256×256, 6 for 128×128 in the paper).
        norm: ``"instance"`` (the paper), ``"batch"`` or ``"none"``.
        n_downsampling: stride-2 convolutions before the blocks (and transposed ones after).
        use_dropout: Dropout(0.5) inside every residual block (off in CycleGAN).
    """

    def __init__(self, in_channels, out_channels, ngf=64, n_blocks=9, norm="instance", n_downsampling=2,
                 use_dropout=False):
        super().__init__()
        check_counts("ResnetGenerator", in_channels=in_channels, out_channels=out_channels, ngf=ngf)
        for name, v in (("n_blocks", n_blocks), ("n_downsampling", n_downsampling)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"ResnetGenerator: {name} must be an integer >= 0, got {v!r}")
        use_bias = _check_norm("ResnetGenerator", norm)
        self.in_channels, self.out_channels, self.n_downsampling = int(in_channels), int(out_channels), int(n_downsampling)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, padding=0, bias=use_bias),
                  norm_layer(norm, ngf), nn.ReLU(True)]
        for i in range(n_downsampling):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=use_bias), norm_layer(norm, 2 * c), nn.ReLU(True)]
        c = ngf * 2 ** n_downsampling
        layers += [ResnetBlock(c, norm, use_dropout, use_bias) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            c = ngf * 2 ** (n_downsampling - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=use_bias),
                       norm_layer(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        step = 2 ** self.n_downsampling
        if (x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % step or x.shape[3] % step
                or min(x.shape[2:]) <= 3):
            raise ValueError(f"ResnetGenerator: expected input (N, {self.in_channels}, H, W) with H and W multiples of "
                             f"2**n_downsampling = {step} (n_downsampling={self.n_downsampling}) and > 3, "
                             f"got shape {tuple(x.shape)}")
        return self.model(x)
