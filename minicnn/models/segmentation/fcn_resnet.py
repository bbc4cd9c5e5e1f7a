"""FCN on a dilated ResNet-50 (torchvision's ``fcn_resnet50``; Long et al., 2015, as torchvision
builds it): the ResNet-50 backbone with ``replace_stride_with_dilation=[False, True, True]``
(layer4 at stride 8, 2048 channels), a 3×3 convolution head, and bilinear upsampling to the
input size.

Names and structure follow torchvision, so its state_dict loads name for name:
``backbone.layer4.2.conv2.weight``, ``classifier.0.weight`` ... ``classifier.4.bias``,
``aux_classifier.*``. 32,957,013 parameters for 21 classes (35,322,218 with the auxiliary head).
"""
from ... import nn
from ...nn._checks import check_counts
from ..resnet import Bottleneck, ResNet
from ._backbone import IntermediateLayerGetter, SimpleSegmentationModel


class FCNHead(nn.Sequential):
    """torchvision's FCN head: ``Conv2d(in, in//4, 3, padding=1, bias=False)`` → BN → ReLU →
    ``Dropout(0.1)`` → ``Conv2d(in//4, channels, 1)`` (with bias).

    Shape: (N, in_channels, H, W) → (N, channels, H, W).
    """

    def __init__(self, in_channels, channels):
        inter_channels = in_channels // 4
        if inter_channels < 1:
            raise ValueError(f"FCNHead: in_channels must be >= 4 (the head has in_channels // 4 channels), "
                             f"got {in_channels}")
        super().__init__(
            nn.Conv2d(in_channels, inter_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(inter_channels),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Conv2d(inter_channels, channels, 1),
        )


class FCN(SimpleSegmentationModel):
    """Fully convolutional network: ``{"out": upsample(classifier(backbone(x)["out"]))}`` (and
    ``"aux"`` from ``aux_classifier`` on ``backbone(x)["aux"]``), bilinear, ``align_corners=False``,
    to the input's ``H × W``. Input (N, C, H, W); outputs (N, num_classes, H, W)."""


def _dilated_resnet50_backbone(fn, in_channels, width, layers, replace_stride_with_dilation, return_layers,
                               small_input=False):
    """A ResNet-50 (Bottleneck) cut after the last layer of ``return_layers``; ``fn`` names the
    caller in error messages. ``small_input``: ResNet's 3×3 stride-1 stem without the max pool, so
    every stride of the network is 4× smaller (for images of a few dozen pixels)."""
    layers = tuple(layers)
    if len(layers) != 4:
        raise ValueError(f"{fn}: layers should be 4 block counts (layer1..layer4), got {layers!r}")
    check_counts(fn, in_channels=in_channels, width=width, **{f"layers[{i}]": n for i, n in enumerate(layers)})
    resnet = ResNet(Bottleneck, list(layers), in_channels=in_channels, width=width, small_input=small_input,
                    replace_stride_with_dilation=replace_stride_with_dilation)
    return IntermediateLayerGetter(resnet, return_layers)


def fcn_resnet50(num_classes=21, aux_loss=False, in_channels=3, *, width=64, layers=(3, 4, 6, 3)):
    """torchvision's ``fcn_resnet50`` (random initialisation): dilated ResNet-50 (output stride 8)
    → :class:`FCNHead` (2048 → 512 → num_classes) → bilinear upsampling to the input.

    Args:
        num_classes: output channels (21: Pascal VOC's classes with background).
        aux_loss: add ``aux_classifier = FCNHead(1024, num_classes)`` on layer3 (output ``"aux"``).
        in_channels: image channels.
        width, layers: a smaller backbone of the same code (ResNet's base width and blocks per
            stage); the heads take ``32·width`` (layer4) and ``16·width`` (layer3) channels.

    Shape: (N, in_channels, H, W) → ``{"out": (N, num_classes, H, W)[, "aux": same]}``.

    Example:
        >>> net = fcn_resnet50(num_classes=11, in_channels=1, width=16, layers=(1, 1, 1, 1))
    """
    check_counts("fcn_resnet50", num_classes=num_classes)
    return_layers = {"layer4": "out"}
    if aux_loss:
        return_layers["layer3"] = "aux"
    backbone = _dilated_resnet50_backbone("fcn_resnet50", in_channels, width, layers, [False, True, True],
                                          return_layers)
    out_channels = width * 8 * Bottleneck.expansion
    aux_classifier = FCNHead(out_channels // 2, num_classes) if aux_loss else None
    return FCN(backbone, FCNHead(out_channels, num_classes), aux_classifier)
