"""SegNet (Badrinarayanan, Kendall & Cipolla, 2017) and its small variant SegNet-Basic.

An encoder-decoder whose decoder upsamples with the encoder's max-pooling *indices*: every
encoder stage ends with a 2×2 max pool (stride 2) that remembers where each maximum came from;
the mirrored decoder stage starts with a max-unpool that puts each value back at exactly that
position (zeros elsewhere, the sparse map that its convolutions then densify)::

    x ─> encoder[0] ─pool─> encoder[1] ─pool─> … ─> encoder[4] ─pool─┐
                      │ indices, size           │                   │
    scores <─ decoder[0] <─unpool─ decoder[1] <─unpool─ … decoder[4] <─unpool┘

``decoder[i]`` mirrors ``encoder[i]`` (the same stage of the figure) and runs in reverse order.

* :class:`SegNet`: the encoder is VGG-16's 13 convolutions (3×3, padding 1, + BatchNorm + ReLU)
  in 5 stages of 64, 128, 256, 512, 512 channels (``width · (1, 2, 4, 8, 8)``); each decoder stage
  mirrors its encoder stage's convolutions with input and output channels swapped, and the last
  one (``decoder[0]``) ends with a 3×3 conv to ``num_classes`` scores (no BN/ReLU after it).
* :class:`SegNetBasic` (the paper's SegNet-Basic): 4 encoder stages of one 7×7 conv of 64 + BN +
  ReLU + pool; 4 decoder stages of unpool + 7×7 conv of 64 + BN (no ReLU in the decoder, as the
  paper); then a 1×1 conv ``classifier`` to the classes.

The input's H and W must be multiples of ``2^stages`` (32 for SegNet, 16 for SegNet-Basic) so that
every pool halves exactly; otherwise a ValueError names the nearest valid sizes.
"""
from ... import nn
from ...nn._checks import check_counts
from ...tensor import Tensor

VGG16_STAGES = ((1, 1), (2, 2), (4, 4, 4), (8, 8, 8), (8, 8, 8))  # conv widths per stage, in units of width


def _conv_block(in_channels, out_channels, kernel_size, batch_norm, relu):
    """``conv k×k (padding k//2) → [BatchNorm] → [ReLU]`` as a Sequential (sizes kept)."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    if relu:
        layers.append(nn.ReLU())
    return layers


class _UnpoolingEncoderDecoder(nn.Module):
    """What SegNet and SegNet-Basic share: ``encoder`` and ``decoder`` ModuleLists of stages
    (``decoder[i]`` mirrors ``encoder[i]``), the 2×2 pool/unpool pair, and a ``classifier``.

    Forward: for each encoder stage, ``x = stage(x)``, remember ``x``'s size, ``x, idx = pool(x)``;
    then for each decoder stage from the deepest, ``x = unpool(x, idx, output_size=size)``,
    ``x = stage(x)``; finally ``classifier(x)``.
    """

    def __init__(self, in_channels, num_classes):
        super().__init__()
        check_counts(type(self).__name__, in_channels=in_channels, num_classes=num_classes)
        self.in_channels, self.num_classes = in_channels, num_classes
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, stride=2)

    @property
    def stages(self):
        """Number of pool/unpool pairs; H and W must be multiples of ``2 ** stages``."""
        return len(self.encoder)

    def _check_input(self, x):
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a minicnn Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"{name}: expected input of shape (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{name}: expected {self.in_channels} input channels, got input of shape {tuple(x.shape)}")
        S = 2 ** self.stages
        for what, n in (("height", x.shape[2]), ("width", x.shape[3])):
            if n % S or n == 0:
                below, above = n // S * S, (n // S + 1) * S
                nearest = (f"nearest valid sizes are {below} and {above}" if below
                           else f"the smallest valid size is {above}")
                raise ValueError(f"{name}: input {what} {n} (input shape {tuple(x.shape)}) is not a multiple of "
                                 f"2**{self.stages} = {S}; {nearest}")

    def encode(self, x):
        """``(features, indices, sizes)``: the deepest pooled map, and per stage the pool's argmax
        indices and the pre-pool shape (what the decoder's unpools need)."""
        self._check_input(x)
        indices, sizes = [], []
        for stage in self.encoder:
            x = stage(x)
            sizes.append(x.shape)
            x, idx = self.pool(x)
            indices.append(idx)
        return x, indices, sizes

    def decode(self, x, indices, sizes):
        """The decoder stages from the deepest, each after an unpool with its encoder's indices."""
        for i in reversed(range(len(self.decoder))):
            x = self.unpool(x, indices[i], output_size=sizes[i])
            x = self.decoder[i](x)
        return self.classifier(x)

    def forward(self, x):
        return self.decode(*self.encode(x))


class SegNet(_UnpoolingEncoderDecoder):
    """SegNet with the VGG-16 encoder: ``(N, in_channels, H, W) → (N, num_classes, H, W)``.

    Args:
        in_channels: image channels.
        num_classes: score maps (11 in the paper's CamVid experiments).
        width: channels of the first stage; the stages have ``width · (1, 2, 4, 8, 8)``.
        batch_norm: BatchNorm after every conv but the last (the paper's SegNet has it).

    H and W must be multiples of 32. ``classifier`` is the identity: the last decoder stage ends
    with the conv to ``num_classes``.
    """

    def __init__(self, in_channels=3, num_classes=11, width=64, batch_norm=True):
        super().__init__(in_channels, num_classes)
        check_counts("SegNet", width=width)
        encoder, decoder = [], []
        cin = in_channels
        for stage, units in enumerate(VGG16_STAGES):
            widths = [width * u for u in units]
            ins = [cin] + widths[:-1]  # conv j maps ins[j] -> widths[j]
            encoder.append(nn.Sequential(*[layer for a, b in zip(ins, widths)
                                           for layer in _conv_block(a, b, 3, batch_norm, relu=True)]))
            # mirror: the same convs in reverse order, input and output channels swapped
            mirror = list(zip(widths, ins))[::-1]
            layers = []
            for j, (a, b) in enumerate(mirror):
                last = stage == 0 and j == len(mirror) - 1
                layers += _conv_block(a, num_classes if last else b, 3, batch_norm and not last, relu=not last)
            decoder.append(nn.Sequential(*layers))
            cin = widths[-1]
        self.encoder = nn.ModuleList(encoder)
        self.decoder = nn.ModuleList(decoder)
        self.classifier = nn.Identity()


class SegNetBasic(_UnpoolingEncoderDecoder):
    """SegNet-Basic: ``(N, in_channels, H, W) → (N, num_classes, H, W)``; H, W multiples of 16.

    4 encoder stages ``conv 7×7 (width) → BN → ReLU → pool``; 4 decoder stages
    ``unpool → conv 7×7 (width) → BN`` (no ReLU, as the paper); ``classifier``: 1×1 conv to the classes.
    """

    def __init__(self, in_channels=3, num_classes=11, width=64):
        super().__init__(in_channels, num_classes)
        check_counts("SegNetBasic", width=width)
        self.encoder = nn.ModuleList([nn.Sequential(*_conv_block(in_channels if i == 0 else width, width, 7,
                                                                 batch_norm=True, relu=True)) for i in range(4)])
        self.decoder = nn.ModuleList([nn.Sequential(*_conv_block(width, width, 7, batch_norm=True, relu=False))
                                      for _ in range(4)])
        self.classifier = nn.Conv2d(width, num_classes, 1)


def segnet(in_channels=3, num_classes=11, width=64, batch_norm=True):
    """SegNet with the VGG-16 encoder (see :class:`SegNet`)."""
    return SegNet(in_channels, num_classes, width, batch_norm)


def segnet_basic(in_channels=3, num_classes=11, width=64):
    """The paper's SegNet-Basic (see :class:`SegNetBasic`)."""
    return SegNetBasic(in_channels, num_classes, width)
