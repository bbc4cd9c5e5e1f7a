"""DCGAN (Radford, Metz & Chintala, 2016), laid out as the PyTorch DCGAN tutorial (``main``).

Generator, for ``image_size = 2^k`` (k >= 4) and ``width = w``::

    z (N, latent_dim, 1, 1)
      ─> ConvTranspose 4×4, stride 1 ─> BN ─> ReLU      (N, w·2^(k−3), 4, 4)
      ─> [ConvTranspose 4×4, stride 2, pad 1 ─> BN ─> ReLU] × (k − 3), halving channels, doubling size
      ─> ConvTranspose 4×4, stride 2, pad 1 ─> Tanh     (N, channels, 2^k, 2^k), values in (−1, 1)

Discriminator, the mirror image: strided 4×4 convolutions, LeakyReLU(0.2), BatchNorm on all but
the first, and a final 4×4 convolution over the 4×4 map giving one *logit* per image (the tutorial
ends in a Sigmoid; the logit suits ``binary_cross_entropy_with_logits`` and the LSGAN loss). The
convolutions have no bias (BatchNorm's shift replaces it). With the defaults (64×64 RGB, width 64)
the modules, names and shapes equal the tutorial's ``Generator``/``Discriminator``.

Sizes are powers of two only; 28×28 images (MNIST, Fashion-MNIST) are padded to 32×32 with
:func:`pad_images`.
"""
import numpy as np

from ... import nn
from ...nn._checks import check_counts


def _log2_size(owner, image_size):
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 16 \
            or image_size & (image_size - 1):
        raise ValueError(f"{owner}: image_size must be a power of two >= 16, got {image_size!r} "
                         "(pad 28×28 images to 32 with minicnn.models.generative.pad_images)")
    return int(image_size).bit_length() - 1


class DCGANGenerator(nn.Module):
    """``z (N, latent_dim)`` or ``(N, latent_dim, 1, 1)`` → images ``(N, channels, image_size, image_size)``
    in (−1, 1). See the module docstring for the layout; :func:`dcgan_init` gives the paper's init."""

    def __init__(self, latent_dim=100, image_size=64, channels=3, width=64):
        super().__init__()
        check_counts("DCGANGenerator", latent_dim=latent_dim, channels=channels, width=width)
        k = _log2_size("DCGANGenerator", image_size)
        self.latent_dim, self.image_size, self.channels, self.width = int(latent_dim), int(image_size), channels, width
        c = width * 2 ** (k - 3)
        layers = [nn.ConvTranspose2d(latent_dim, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
        for _ in range(k - 3):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z):
        shape = tuple(z.shape)
        if z.ndim == 2 and shape[1] == self.latent_dim:
            z = z.reshape(shape[0], self.latent_dim, 1, 1)
        elif not (z.ndim == 4 and shape[1:] == (self.latent_dim, 1, 1)):
            raise ValueError(f"DCGANGenerator: expected latent codes (N, {self.latent_dim}) or "
                             f"(N, {self.latent_dim}, 1, 1) for latent_dim={self.latent_dim}, got shape {shape}")
        return self.main(z)

    def extra_repr(self):
        return f"latent_dim={self.latent_dim}, image_size={self.image_size}, channels={self.channels}, width={self.width}"


class DCGANDiscriminator(nn.Module):
    """Images ``(N, channels, image_size, image_size)`` → logits ``(N,)`` (real > 0 > fake)."""

    def __init__(self, image_size=64, channels=3, width=64):
        super().__init__()
        check_counts("DCGANDiscriminator", channels=channels, width=width)
        k = _log2_size("DCGANDiscriminator", image_size)
        self.image_size, self.channels, self.width = int(image_size), channels, width
        layers = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        c = width
        for _ in range(k - 3):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2, True)]
            c *= 2
        layers += [nn.Conv2d(c, 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        want = (self.channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"DCGANDiscriminator: expected images (N, {', '.join(map(str, want))}) for "
                             f"image_size={self.image_size}, channels={self.channels}, got shape {tuple(x.shape)}")
        return self.main(x).reshape(x.shape[0])

    def extra_repr(self):
        return f"image_size={self.image_size}, channels={self.channels}, width={self.width}"


def dcgan_init(module, rng=None):
    """The DCGAN paper's initialisation, applied to ``module`` and every descendant (use with
    ``model.apply(dcgan_init)``): convolution and transposed-convolution weights ~ N(0, 0.02²),
    BatchNorm weights ~ N(1, 0.02²), biases 0. ``rng``: a NumPy Generator or seed (default: the
    global generator of :func:`minicnn.manual_seed`). Returns ``module``."""
    from ...random import get_rng

    gen = get_rng(rng)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            _fill(m.weight, gen.normal(0.0, 0.02, m.weight.shape))
            if m.bias is not None:
                _fill(m.bias, np.zeros(m.bias.shape))
        elif isinstance(m, nn.BatchNorm2d) and m.weight is not None:
            _fill(m.weight, gen.normal(1.0, 0.02, m.weight.shape))
            _fill(m.bias, np.zeros(m.bias.shape))
    return module


def _fill(param, values):
    param.data[...] = param.device.from_numpy(np.asarray(values, dtype=param.dtype))


def pad_images(images, size=32, value=-1.0):
    """Centre ``images (N, C, H, W)`` (NumPy) on a ``size × size`` canvas filled with ``value``
    (−1: black in the generator's tanh range), e.g. 28×28 → 32×32 for a DCGAN of image_size 32.
    The extra row/column of an odd margin goes to the bottom/right."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[2] > size or images.shape[3] > size:
        raise ValueError(f"pad_images: expected images (N, C, H, W) with H, W <= {size}, got shape {images.shape}")
    top, left = (size - images.shape[2]) // 2, (size - images.shape[3]) // 2
    out = np.full(images.shape[:2] + (size, size), value, dtype=images.dtype)
    out[:, :, top:top + images.shape[2], left:left + images.shape[3]] = images
    return out

