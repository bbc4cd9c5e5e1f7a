"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer & Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015) on a VGG-16 backbone, as the reference Caffe nets
voc-fcn32s / voc-fcn16s / voc-fcn8s.

The diagram (``pad100=True``; ``/s`` is a feature map's stride relative to the input)::

    x ─ features: conv1_1 (padding 100) … pool3 (/8) … pool4 (/16) … pool5 (/32)
      ─ fc6 (7×7 conv) ─ relu6 ─ drop6 ─ fc7 (1×1 conv) ─ relu7 ─ drop7 ─ score_fr (1×1, → classes)

    FCN-32s: score_fr ─ upscore (×32) ─ crop 19 ─────────────────────────────────────── out
    FCN-16s: score_fr ─ upscore2 (×2) ─ + crop(score_pool4(pool4), 5) = fuse_pool4
             fuse_pool4 ─ upscore16 (×16) ─ crop 27 ──────────────────────────────── out
    FCN-8s:  fuse_pool4 ─ upscore_pool4 (×2) ─ + crop(score_pool3(pool3), 9) = fuse_pool3
             fuse_pool3 ─ upscore8 (×8) ─ crop 31 ────────────────────────────────── out

Output ``(N, num_classes, H, W)``, the input's size.

* ``features`` is VGG-16's (:func:`minicnn.models.vgg.make_layers`, torchvision's names
  ``features.0`` … ``features.30``), with the first convolution padded by 100 and the pools in
  ``ceil_mode`` (Caffe rounds pooled sizes up). The 100-pixel margin makes every input size
  ≥ 1 work: pool5 is then at least 7×7, enough for the 7×7 ``fc6``, and every crop fits.
* The crop offsets (19 / 5, 27 / 5, 9, 31 for ``pad100=True``) are not typed in: they are
  derived from the layers' kernel, stride and padding by :func:`coord_map` and
  :func:`crop_offset`, the way Caffe's ``coord_map.py`` derives them for the reference nets.
* ``pad100=False`` (small inputs, fast training): the first convolution has padding 1, fc6
  stays a 7×7 convolution with padding 3 (so the parameter shapes, and state_dicts, are the same
  as with ``pad100=True``, and VGG-16's classifier converts to it alike), and each transposed
  convolution has padding ``stride/2``. Then every map lines up with no crop (all offsets 0) and
  the output is exactly ``H × W`` for ``H, W`` multiples of 32 (other sizes raise ValueError).
* Initialisation as the paper: the upsampling layers (no bias) hold the bilinear interpolation
  filter (:func:`bilinear_kernel`); the scoring layers ``score_fr``, ``score_pool4``,
  ``score_pool3`` are zero; the rest has PyTorch's default initialisation (the paper starts
  ``features``, ``fc6``, ``fc7`` from VGG-16: see :func:`fcn_state_dict_from_vgg16`). All
  upsampling filters are trainable Parameters; the reference nets keep them fixed (Caffe
  ``lr_mult=0``): call ``requires_grad_(False)`` on each ``upscore*`` layer to do the same.

Parameter counts (21 classes, width 64, fc_channels 4096): fcn32s 136,152,917 (its 64×64
``upscore`` filter alone has 21·21·64·64 = 1,806,336), fcn16s 134,815,994, fcn8s 134,489,759;
134,260,544 of them are VGG-16's convolutions and fc6/fc7.
"""
from fractions import Fraction

import numpy as np

from ... import nn
from ...nn._checks import check_counts
from ...tensor import Tensor
from ..vgg import CONFIGS, make_layers

__all__ = ["FCN32s", "FCN16s", "FCN8s", "fcn32s", "fcn16s", "fcn8s", "bilinear_kernel", "coord_map",
           "crop_offset", "fcn_state_dict_from_vgg16"]


def bilinear_kernel(in_channels, out_channels, kernel_size):
    """Weight ``(in_channels, out_channels, k, k)`` of a transposed convolution that upsamples each
    channel by bilinear interpolation (the classic FCN filter; ``k = 2·stride`` is the usual choice).

    ``f = ⌈k/2⌉``, ``c = f − 1`` (k odd) or ``f − ½`` (k even); the 2-D filter is
    ``w[u, v] = (1 − |u − c|/f) · (1 − |v − c|/f)``, placed on the channel diagonal:
    ``W[i, i] = w`` for ``i < min(in, out)``, every other ``W[i, j] = 0`` (no mixing of channels).
    Returns a float64 NumPy array.

    With stride ``s``, ``k = 2s`` and padding ``s/2`` (s even) the transposed convolution equals
    ``F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)`` on all but the
    outer ``s/2`` rows and columns of each side (there the interpolation repeats the edge pixel,
    the convolution sees zeros beyond it).
    """
    k = int(kernel_size)
    if k < 1 or in_channels < 1 or out_channels < 1:
        raise ValueError(f"bilinear_kernel: in_channels, out_channels and kernel_size must be >= 1, got "
                         f"{in_channels}, {out_channels}, {kernel_size}")
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    taps = 1 - np.abs(np.arange(k) - center) / factor
    weight = np.zeros((in_channels, out_channels, k, k), dtype=np.float64)
    for i in range(min(in_channels, out_channels)):
        weight[i, i] = np.outer(taps, taps)
    return weight


# ---- crop offsets from the layer geometry -------------------------------------------------------
# A map (a, b) says: index i of a feature map sits at input-image coordinate a·i + b (window
# centres, exact fractions). Offsets between two maps of the same scale are then b differences.

def _layer_map(module):
    """(α, β) with ``input index = α·output index + β`` for one layer (identity for layers that
    keep the geometry: ReLU, Dropout, ...). Square kernels: the first spatial axis is used."""
    def first(v):
        if isinstance(v, str):
            raise ValueError(f"coord_map: {type(module).__name__} has padding={v!r}; give the padding as numbers")
        return int(v[0]) if isinstance(v, (tuple, list)) else int(v)

    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.ConvTranspose2d)):
        k, s, p, d = (first(getattr(module, a)) for a in ("kernel_size", "stride", "padding", "dilation"))
        centre = Fraction(d * (k - 1), 2) - p          # window centre of output 0, in input indices
        if isinstance(module, nn.ConvTranspose2d):      # output = s·input + centre, inverted
            return Fraction(1, s), -centre / s
        return Fraction(s), centre
    return Fraction(1), Fraction(0)


def coord_map(modules, start=(Fraction(1), Fraction(0))):
    """Compose the layers ``modules`` (run in order) onto the map ``start`` of their input.

    Returns ``(a, b)``: index ``i`` of the last layer's output sits at image coordinate
    ``a·i + b`` (Fractions). A convolution or pool (kernel k, stride s, padding p, dilation d)
    maps output ``i`` to input ``s·i + d(k−1)/2 − p``; a transposed convolution inverts that.
    """
    a, b = start
    for m in modules:
        alpha, beta = _layer_map(m)
        a, b = a * alpha, a * beta + b
    return a, b


def crop_offset(big, small):
    """The index of map ``big`` aligned with index 0 of map ``small`` (both from :func:`coord_map`):
    crop ``big[offset : offset + len(small)]``. Needs equal scales and a whole, non-negative offset."""
    (a1, b1), (a2, b2) = big, small
    if a1 != a2:
        raise ValueError(f"crop_offset: maps of different scales {a1} and {a2} cannot be aligned by a crop")
    offset = (b2 - b1) / a1
    if offset.denominator != 1 or offset < 0:
        raise ValueError(f"crop_offset: the maps are {offset} indices apart, not a whole non-negative number")
    return int(offset)


# ---- the networks -------------------------------------------------------------------------------

class _FCN(nn.Module):
    """VGG-16 ``features`` + ``fc6``/``fc7`` as convolutions + ``score_fr``; the subclasses add the
    upsampling path. Not used directly: see :class:`FCN32s`, :class:`FCN16s`, :class:`FCN8s`."""

    def __init__(self, num_classes=21, in_channels=3, width=64, fc_channels=4096, pad100=True, dropout=0.5):
        super().__init__()
        name = type(self).__name__
        check_counts(name, num_classes=num_classes, in_channels=in_channels, width=width, fc_channels=fc_channels)
        self.num_classes, self.in_channels, self.pad100 = int(num_classes), int(in_channels), bool(pad100)
        config = [v if v == "M" else v // 64 * int(width) for v in CONFIGS["D"]]
        self.features = make_layers(config, batch_norm=False, in_channels=in_channels)
        if self.pad100:
            self.features[0].padding = (100, 100)
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        for i in pools:
            self.features[i].ceil_mode = True
        self._pool3, self._pool4 = pools[2], pools[3]
        self._pool_channels = {3: 4 * int(width), 4: 8 * int(width), 5: 8 * int(width)}
        self.fc6 = nn.Conv2d(self._pool_channels[5], fc_channels, 7, padding=0 if self.pad100 else 3)
        self.relu6 = nn.ReLU()
        self.drop6 = nn.Dropout(dropout)
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, 1)
        self.relu7 = nn.ReLU()
        self.drop7 = nn.Dropout(dropout)
        self.score_fr = self._scorer(fc_channels)

    def _scorer(self, channels):
        """A zero-initialised 1×1 class-scoring convolution (the reference nets' constant-0 filler)."""
        conv = nn.Conv2d(channels, self.num_classes, 1)
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
        return conv

    def _upsample(self, stride):
        """A bias-free ``2s × 2s`` stride-``s`` transposed convolution holding :func:`bilinear_kernel`
        (padding ``s/2`` when ``pad100=False``, so no crop is needed)."""
        up = nn.ConvTranspose2d(self.num_classes, self.num_classes, 2 * stride, stride=stride,
                                padding=0 if self.pad100 else stride // 2, bias=False)
        up.weight.data[...] = bilinear_kernel(self.num_classes, self.num_classes, 2 * stride).astype(up.weight.dtype)
        return up

    # geometry: the maps of pool3, pool4 and score_fr, from which the subclasses derive offsets
    def _maps(self):
        layers = list(self.features)
        pool3 = coord_map(layers[:self._pool3 + 1])
        pool4 = coord_map(layers[:self._pool4 + 1])
        score = coord_map(layers + [self.fc6, self.fc7, self.score_fr])
        return pool3, pool4, score

    def _check(self, x):
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: the input must be a minicnn Tensor (N, {self.in_channels}, H, W), "
                            f"got {type(x).__name__}")
        shape = tuple(x.shape)
        if x.ndim != 4 or shape[1] != self.in_channels:
            raise ValueError(f"{name}: expected an input (N, {self.in_channels}, H, W), got shape {shape}")
        if min(shape[2:]) < 1:
            raise ValueError(f"{name}: the input has an empty spatial axis, shape {shape}")
        if not self.pad100:
            bad = [(axis, n) for axis, n in zip("HW", shape[2:]) if n % 32]
            if bad:
                hints = "; ".join(f"{axis}={n}: nearest valid {_nearest32(n)}" for axis, n in bad)
                raise ValueError(f"{name}: with pad100=False H and W must be multiples of 32, got input shape "
                                 f"{shape} ({hints}); pad100=True takes any size")

    def _backbone(self, x):
        """Returns ``(pool3, pool4, score_fr)`` for an input ``x``."""
        pool3 = pool4 = None
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == self._pool3:
                pool3 = x
            elif i == self._pool4:
                pool4 = x
        x = self.drop6(self.relu6(self.fc6(x)))
        x = self.drop7(self.relu7(self.fc7(x)))
        return pool3, pool4, self.score_fr(x)


def _nearest32(n):
    lo = n // 32 * 32
    return f"{lo} or {lo + 32}" if lo else "32"


def _crop(x, offset, size):
    """``x[..., o:o+h, o:o+w]`` for ``size = (h, w)``: the crop aligning ``x`` with a smaller map."""
    h, w = size
    return x[:, :, offset:offset + h, offset:offset + w]


class FCN32s(_FCN):
    """FCN-32s: ``score_fr`` upsampled ×32 by ``upscore`` (64×64, stride 32) and cropped.

    Input ``(N, in_channels, H, W)`` → output ``(N, num_classes, H, W)``. Arguments as :func:`fcn32s`.
    """

    def __init__(self, num_classes=21, in_channels=3, width=64, fc_channels=4096, pad100=True, dropout=0.5):
        super().__init__(num_classes, in_channels, width, fc_channels, pad100, dropout)
        self.upscore = self._upsample(32)
        _, _, score = self._maps()
        self.offsets = {"upscore": crop_offset(coord_map([self.upscore], score), coord_map([]))}

    def forward(self, x):
        self._check(x)
        _, _, score = self._backbone(x)
        return _crop(self.upscore(score), self.offsets["upscore"], x.shape[2:])


class FCN16s(_FCN):
    """FCN-16s: ``score_fr`` ×2 (``upscore2``) + the cropped ``score_pool4`` scores, then ×16
    (``upscore16``, 32×32 stride 16) and cropped.

    Input ``(N, in_channels, H, W)`` → output ``(N, num_classes, H, W)``. Arguments as :func:`fcn16s`.
    """

    def __init__(self, num_classes=21, in_channels=3, width=64, fc_channels=4096, pad100=True, dropout=0.5):
        super().__init__(num_classes, in_channels, width, fc_channels, pad100, dropout)
        self.upscore2 = self._upsample(2)
        self.score_pool4 = self._scorer(self._pool_channels[4])
        self.upscore16 = self._upsample(16)
        _, pool4, score = self._maps()
        fuse4 = coord_map([self.upscore2], score)
        self.offsets = {"score_pool4": crop_offset(pool4, fuse4),
                        "upscore16": crop_offset(coord_map([self.upscore16], fuse4), coord_map([]))}

    def forward(self, x):
        self._check(x)
        _, pool4, score = self._backbone(x)
        up2 = self.upscore2(score)
        fuse_pool4 = up2 + _crop(self.score_pool4(pool4), self.offsets["score_pool4"], up2.shape[2:])
        return _crop(self.upscore16(fuse_pool4), self.offsets["upscore16"], x.shape[2:])


class FCN8s(_FCN):
    """FCN-8s: as FCN-16s up to ``fuse_pool4``; ×2 (``upscore_pool4``) + the cropped ``score_pool3``
    scores, then ×8 (``upscore8``, 16×16 stride 8) and cropped.

    ``at_once=True`` scales pool4 by 0.01 and pool3 by 0.0001 before their scoring layers, as the
    reference "voc-fcn8s-atonce" net trained in one stage (fixed factors, not learned): the skips
    then start small against the fc7 scores. Off by default (the staged nets have no scaling).

    Input ``(N, in_channels, H, W)`` → output ``(N, num_classes, H, W)``. Arguments as :func:`fcn8s`.
    """

    def __init__(self, num_classes=21, in_channels=3, width=64, fc_channels=4096, pad100=True, dropout=0.5,
                 at_once=False):
        super().__init__(num_classes, in_channels, width, fc_channels, pad100, dropout)
        self.at_once = bool(at_once)
        self.pool4_scale, self.pool3_scale = (0.01, 0.0001) if self.at_once else (1.0, 1.0)
        self.upscore2 = self._upsample(2)
        self.score_pool4 = self._scorer(self._pool_channels[4])
        self.upscore_pool4 = self._upsample(2)
        self.score_pool3 = self._scorer(self._pool_channels[3])
        self.upscore8 = self._upsample(8)
        pool3, pool4, score = self._maps()
        fuse4 = coord_map([self.upscore2], score)
        fuse3 = coord_map([self.upscore_pool4], fuse4)
        self.offsets = {"score_pool4": crop_offset(pool4, fuse4), "score_pool3": crop_offset(pool3, fuse3),
                        "upscore8": crop_offset(coord_map([self.upscore8], fuse3), coord_map([]))}

    def forward(self, x):
        self._check(x)
        pool3, pool4, score = self._backbone(x)
        if self.at_once:
            pool3, pool4 = pool3 * self.pool3_scale, pool4 * self.pool4_scale
        up2 = self.upscore2(score)
        fuse_pool4 = up2 + _crop(self.score_pool4(pool4), self.offsets["score_pool4"], up2.shape[2:])
        up4 = self.upscore_pool4(fuse_pool4)
        fuse_pool3 = up4 + _crop(self.score_pool3(pool3), self.offsets["score_pool3"], up4.shape[2:])
        return _crop(self.upscore8(fuse_pool3), self.offsets["upscore8"], x.shape[2:])


def fcn32s(num_classes=21, in_channels=3, width=64, fc_channels=4096, pad100=True, **kw):
    """FCN-32s on VGG-16 (the paper's net: 21 PASCAL VOC classes, width 64, fc 4096, pad100).

    Args:
        num_classes: output channels (scores per pixel).
        in_channels: input channels.
        width: channels of the first VGG stage (64 in VGG-16); the stages have width·(1, 2, 4, 8, 8).
        fc_channels: channels of fc6 and fc7 (4096 in VGG-16).
        pad100: pad the first convolution by 100 (any input size), or by 1 (H, W multiples of 32).
        dropout: probability of drop6 / drop7 (0.5).

    Shape: ``(N, in_channels, H, W)`` → ``(N, num_classes, H, W)``.

    Example: ``fcn32s(num_classes=11, in_channels=1, width=16, fc_channels=128, pad100=False)``.
    """
    return FCN32s(num_classes, in_channels, width, fc_channels, pad100, **kw)


def fcn16s(num_classes=21, in_channels=3, width=64, fc_channels=4096, pad100=True, **kw):
    """FCN-16s on VGG-16 (arguments and shapes as :func:`fcn32s`)."""
    return FCN16s(num_classes, in_channels, width, fc_channels, pad100, **kw)


def fcn8s(num_classes=21, in_channels=3, width=64, fc_channels=4096, pad100=True, **kw):
    """FCN-8s on VGG-16 (arguments and shapes as :func:`fcn32s`; ``at_once=True`` for the
    one-stage variant's pool scaling, see :class:`FCN8s`). 134,489,759 parameters for 21 classes."""
    return FCN8s(num_classes, in_channels, width, fc_channels, pad100, **kw)


def fcn_state_dict_from_vgg16(vgg_state_dict):
    """The FCN entries of a VGG-16 state_dict (torchvision's names), for
    ``model.load_state_dict(..., strict=False)``: ``features.*`` as they are, and the classifier's
    fully connected layers as convolutions, the paper's "convolutionalization":
    ``classifier.0`` (4096, 512·7·7) → ``fc6`` (4096, 512, 7, 7), ``classifier.3`` (4096, 4096) →
    ``fc7`` (4096, 4096, 1, 1). The scoring and upsampling layers keep their initialisation.
    Values may be minicnn Tensors, NumPy arrays or PyTorch tensors."""
    def array(v):
        if hasattr(v, "detach"):
            v = v.detach().cpu()
        return np.asarray(v.numpy() if hasattr(v, "numpy") else v)

    out = {k: array(v) for k, v in vgg_state_dict.items() if k.startswith("features.")}
    for src, dst in (("classifier.0", "fc6"), ("classifier.3", "fc7")):
        w = array(vgg_state_dict[f"{src}.weight"])
        channels = w.shape[1] // (49 if dst == "fc6" else 1)
        side = 7 if dst == "fc6" else 1
        out[f"{dst}.weight"] = w.reshape(w.shape[0], channels, side, side)
        out[f"{dst}.bias"] = array(vgg_state_dict[f"{src}.bias"])
    return out
