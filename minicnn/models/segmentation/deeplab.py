"""DeepLab v3 (Chen et al., 2017, "Rethinking Atrous Convolution") and the v3+ decoder
(Chen et al., 2018, "Encoder-Decoder with Atrous Separable Convolution") on a dilated ResNet-50.

::

    v3:  image ─ ResNet-50 ─ layer4 ─ ASPP ─ 3×3 conv ─ 1×1 conv ─ upsample ─ "out"
    v3+: image ─ ResNet-50 ─ layer4 ─ ASPP ─ upsample to layer1's size ─┐
                     └─── layer1 (stride 4) ─ 1×1 conv → 48 ────────────┴─ concat ─ two 3×3 convs
                                                                           ─ 1×1 conv ─ upsample ─ "out"

ASPP (atrous spatial pyramid pooling) runs five branches on the same feature map: a 1×1 conv,
three 3×3 convs with dilation rates r1 < r2 < r3, and image pooling (global average → 1×1 conv →
upsampled back); their concatenation is projected to 256 channels.

``deeplabv3_resnet50`` follows torchvision's names, structure and defaults (output stride 8, rates
12/24/36; 39,638,869 parameters for 21 classes, 42,004,074 with the auxiliary FCN head), so its
state_dict loads name for name. Output stride 16 dilates only layer4 and halves the rates to
6/12/18 (the paper's rule: rates double when the output stride halves).
"""
from ... import functional as F
from ... import nn
from ...nn._checks import check_counts
from ..resnet import Bottleneck
from ._backbone import SimpleSegmentationModel
from .fcn_resnet import FCNHead, _dilated_resnet50_backbone

# output stride → (replace_stride_with_dilation for layer2..layer4, ASPP rates)
_OUTPUT_STRIDES = {8: ([False, True, True], (12, 24, 36)), 16: ([False, False, True], (6, 12, 18))}


class ASPPConv(nn.Sequential):
    """One atrous branch: ``Conv2d(in, out, 3, padding=d, dilation=d, bias=False)`` → BN → ReLU.
    Shape: (N, in_channels, H, W) → (N, out_channels, H, W)."""

    def __init__(self, in_channels, out_channels, dilation):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


class ASPPPooling(nn.Sequential):
    """Image-level features: ``AdaptiveAvgPool2d(1)`` → ``Conv2d(in, out, 1, bias=False)`` → BN →
    ReLU, then bilinear upsampling (``align_corners=False``) of the 1×1 map back to ``H × W``
    (every pixel gets the same vector). Shape: (N, in_channels, H, W) → (N, out_channels, H, W).

    Its BatchNorm sees one value per channel per image, so in training mode (batch statistics)
    a batch of one image raises ``ValueError`` (PyTorch raises "Expected more than 1 value per
    channel when training"); train with N ≥ 2 or put that BatchNorm in eval mode.
    """

    def __init__(self, in_channels, out_channels):
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x):
        bn = self[2]
        if bn.training and x.ndim == 4 and x.shape[0] == 1:
            raise ValueError("ASPPPooling: expected more than 1 value per channel when training: the pooled "
                             f"features are (1, {bn.num_features}, 1, 1) for an input of shape {tuple(x.shape)}; "
                             "use a batch of N >= 2 images or call .eval() on the BatchNorm")
        size = tuple(x.shape[-2:])
        for module in self:
            x = module(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: ``convs`` = [1×1 conv+BN+ReLU, one :class:`ASPPConv` per
    rate, :class:`ASPPPooling`], concatenated on channels (``(2 + len(rates))·out`` channels),
    then ``project`` = 1×1 conv → BN → ReLU → ``Dropout(0.5)``.

    Shape: (N, in_channels, H, W) → (N, out_channels, H, W).
    """

    def __init__(self, in_channels, atrous_rates, out_channels=256):
        super().__init__()
        rates = tuple(atrous_rates)
        if any(int(r) != r or r < 1 for r in rates):
            raise ValueError(f"ASPP: atrous_rates must be positive integers, got {rates!r}")
        modules = [nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
                                 nn.ReLU())]
        modules += [ASPPConv(in_channels, out_channels, int(r)) for r in rates]
        modules.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(modules)
        self.project = nn.Sequential(
            nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Dropout(0.5),
        )

    def forward(self, x):
        return self.project(F.cat([conv(x) for conv in self.convs], axis=1))


class DeepLabHead(nn.Sequential):
    """torchvision's DeepLab v3 head: :class:`ASPP` → ``Conv2d(c, c, 3, padding=1, bias=False)`` →
    BN → ReLU → ``Conv2d(c, num_classes, 1)``, with ``c = channels`` (256).

    Shape: (N, in_channels, H, W) → (N, num_classes, H, W).
    """

    def __init__(self, in_channels, num_classes, atrous_rates=(12, 24, 36), channels=256):
        super().__init__(
            ASPP(in_channels, atrous_rates, channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, num_classes, 1),
        )


class DeepLabV3(SimpleSegmentationModel):
    """DeepLab v3: ``{"out": upsample(classifier(backbone(x)["out"]))}`` (and ``"aux"`` from an
    FCN head on layer3), bilinear, ``align_corners=False``, to the input's ``H × W``."""


class DeepLabV3PlusHead(nn.Module):
    """The DeepLab v3+ decoder on top of ASPP.

    ``low = project(low_level)``: 1×1 conv to ``low_level_channels`` (48) → BN → ReLU;
    ``y = upsample(aspp(x))`` bilinear to ``low``'s size; ``classifier(cat([y, low]))``: two
    (3×3 conv ``channels`` → BN → ReLU), then ``Conv2d(channels, num_classes, 1)``.

    Shape: x (N, in_channels, h, w), low_level (N, low_level_in_channels, H4, W4) →
    (N, num_classes, H4, W4).
    """

    def __init__(self, in_channels, low_level_in_channels, num_classes, atrous_rates=(6, 12, 18), channels=256,
                 low_level_channels=48):
        super().__init__()
        self.aspp = ASPP(in_channels, atrous_rates, channels)
        self.project = nn.Sequential(
            nn.Conv2d(low_level_in_channels, low_level_channels, 1, bias=False),
            nn.BatchNorm2d(low_level_channels),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.Conv2d(channels + low_level_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, num_classes, 1),
        )

    def forward(self, x, low_level):
        low = self.project(low_level)
        y = F.interpolate(self.aspp(x), size=tuple(low.shape[-2:]), mode="bilinear", align_corners=False)
        return self.classifier(F.cat([y, low], axis=1))


class DeepLabV3Plus(nn.Module):
    """DeepLab v3+: ``backbone`` gives ``{"out": layer4, "low_level": layer1}``; ``classifier`` is a
    :class:`DeepLabV3PlusHead`; its stride-4 scores are upsampled bilinearly (``align_corners=False``)
    to the input. Input (N, C, H, W) → ``{"out": (N, num_classes, H, W)}``."""

    def __init__(self, backbone, classifier):
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier

    def forward(self, x):
        size = tuple(x.shape[-2:])
        features = self.backbone(x)
        scores = self.classifier(features["out"], features["low_level"])
        return {"out": F.interpolate(scores, size=size, mode="bilinear", align_corners=False)}


def _stride_and_rates(fn, output_stride, atrous_rates):
    if output_stride not in _OUTPUT_STRIDES:
        raise ValueError(f"{fn}: output_stride must be one of {sorted(_OUTPUT_STRIDES)}, got {output_stride!r}")
    dilate, rates = _OUTPUT_STRIDES[output_stride]
    if atrous_rates is not None:
        rates = tuple(atrous_rates)
        if not rates or any(int(r) != r or r < 1 for r in rates):
            raise ValueError(f"{fn}: atrous_rates must be positive integers, got {rates!r}")
    return dilate, rates


def deeplabv3_resnet50(num_classes=21, aux_loss=False, in_channels=3, output_stride=8, *, atrous_rates=None,
                       width=64, layers=(3, 4, 6, 3), aspp_channels=256, small_input=False):
    """torchvision's ``deeplabv3_resnet50`` (random initialisation): dilated ResNet-50 →
    :class:`DeepLabHead` → bilinear upsampling to the input.

    Args:
        num_classes: output channels (21: Pascal VOC with background).
        aux_loss: add ``aux_classifier = FCNHead(1024, num_classes)`` on layer3 (output ``"aux"``).
        in_channels: image channels.
        output_stride: 8 (torchvision's: layer3 and layer4 dilated, rates 12/24/36) or 16 (layer4
            dilated, rates 6/12/18).
        atrous_rates: override the ASPP rates (e.g. smaller ones for small feature maps).
        width, layers: a smaller backbone of the same code (ResNet's base width, blocks per stage).
        aspp_channels: channels of ASPP and the head (256).
        small_input: ResNet's 3×3 stride-1 stem without max pool (small images): the feature
            maps are 4× larger, ``output_stride`` counts from a 4× smaller stem (16 → 4).

    Shape: (N, in_channels, H, W) → ``{"out": (N, num_classes, H, W)[, "aux": same]}``.

    Example:
        >>> net = deeplabv3_resnet50(num_classes=11, in_channels=1, width=16, layers=(1, 1, 1, 1), aspp_channels=64)
    """
    check_counts("deeplabv3_resnet50", num_classes=num_classes, aspp_channels=aspp_channels)
    dilate, rates = _stride_and_rates("deeplabv3_resnet50", output_stride, atrous_rates)
    return_layers = {"layer4": "out"}
    if aux_loss:
        return_layers["layer3"] = "aux"
    backbone = _dilated_resnet50_backbone("deeplabv3_resnet50", in_channels, width, layers, dilate, return_layers,
                                          small_input)
    out_channels = width * 8 * Bottleneck.expansion
    aux_classifier = FCNHead(out_channels // 2, num_classes) if aux_loss else None
    classifier = DeepLabHead(out_channels, num_classes, rates, aspp_channels)
    return DeepLabV3(backbone, classifier, aux_classifier)


def deeplabv3plus_resnet50(num_classes=21, in_channels=3, output_stride=16, *, atrous_rates=None, width=64,
                           layers=(3, 4, 6, 3), aspp_channels=256, low_level_channels=48, small_input=False):
    """DeepLab v3+ on a dilated ResNet-50: ASPP on layer4 plus the decoder of
    :class:`DeepLabV3PlusHead` on layer1 (stride 4), upsampled to the input.

    Args:
        num_classes, in_channels: as :func:`deeplabv3_resnet50`.
        output_stride: 16 (the paper's default for training: layer4 dilated, rates 6/12/18) or 8
            (layer3 and layer4 dilated, rates 12/24/36).
        atrous_rates, width, layers: as :func:`deeplabv3_resnet50`.
        aspp_channels: channels of ASPP and of the decoder's 3×3 convolutions (256).
        low_level_channels: channels the layer1 features are reduced to (48).
        small_input: as :func:`deeplabv3_resnet50` (the decoder then works at the input's resolution).

    Shape: (N, in_channels, H, W) → ``{"out": (N, num_classes, H, W)}``.
    """
    check_counts("deeplabv3plus_resnet50", num_classes=num_classes, aspp_channels=aspp_channels,
                  low_level_channels=low_level_channels)
    dilate, rates = _stride_and_rates("deeplabv3plus_resnet50", output_stride, atrous_rates)
    backbone = _dilated_resnet50_backbone("deeplabv3plus_resnet50", in_channels, width, layers, dilate,
                                          {"layer4": "out", "layer1": "low_level"}, small_input)
    head = DeepLabV3PlusHead(width * 8 * Bottleneck.expansion, width * Bottleneck.expansion, num_classes, rates,
                             aspp_channels, low_level_channels)
    return DeepLabV3Plus(backbone, head)
