"""DeepLab v3 on MobileNetV3-Large (torchvision's ``deeplabv3_mobilenet_v3_large``).

::

    image ─ MobileNetV3-Large features (dilated) ─┬─ [16]: 960 ch, stride 16 ─ DeepLabHead ─ upsample ─ "out"
                                                 └─ [4]:   40 ch, stride 8 ── FCNHead ───── upsample ─ "aux"

The backbone is the MobileNetV3-Large feature extractor with its last stage dilated (stride 1,
dilation 2), so the output stride is 16. As torchvision does, the stages are found from the
blocks that stride (``_is_cn``): ``stage_indices = [0, 2, 4, 7, 13, 16]``; ``"out"`` is the last
(the 1×1 conv to 960 channels) and ``"aux"`` the fourth from the end (the first 40-channel
block, stride 8). 11,025,477 parameters for 21 classes (11,029,328 with the auxiliary head),
names as torchvision's (``backbone.16.0.weight``, ``classifier.0.convs.0.0.weight``,
``aux_classifier.4.bias``), so its state_dict loads name for name.
"""
from ...nn._checks import check_counts
from ..mobilenet import mobilenet_v3_large
from ._backbone import IntermediateLayerGetter
from .deeplab import DeepLabHead, DeepLabV3
from .fcn_resnet import FCNHead


def deeplabv3_mobilenet_v3_large(num_classes=21, aux_loss=False, in_channels=3, *, width_mult=1.0,
                                 reduced_tail=False, atrous_rates=(12, 24, 36), aspp_channels=256):
    """torchvision's ``deeplabv3_mobilenet_v3_large`` (random initialisation).

    Args:
        num_classes: output channels (21: Pascal VOC with background).
        aux_loss: add ``aux_classifier = FCNHead(40, num_classes)`` on the stride-8 features.
        in_channels: image channels.
        width_mult, reduced_tail: a smaller backbone of the same code (MobileNetV3's width
            multiplier; ``reduced_tail`` halves the channels of the last stage).
        atrous_rates: the ASPP rates (torchvision's 12/24/36).
        aspp_channels: channels of ASPP and the head (256).

    Shape: (N, in_channels, H, W) → ``{"out": (N, num_classes, H, W)[, "aux": same]}``.

    Example:
        >>> net = deeplabv3_mobilenet_v3_large(num_classes=3, width_mult=0.25, aspp_channels=16)
    """
    fn = "deeplabv3_mobilenet_v3_large"
    check_counts(fn, num_classes=num_classes, in_channels=in_channels, aspp_channels=aspp_channels)
    if not width_mult > 0:
        raise ValueError(f"{fn}: width_mult must be > 0, got {width_mult}")
    features = mobilenet_v3_large(dilated=True, in_channels=in_channels, width_mult=width_mult,
                                  reduced_tail=reduced_tail).features
    # The first layer, the blocks that begin a stage (stride 2 in the undilated net), and the last.
    stage_indices = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    out_pos, aux_pos = stage_indices[-1], stage_indices[-4]
    return_layers = {str(out_pos): "out"}
    if aux_loss:
        return_layers[str(aux_pos)] = "aux"
    out_channels, aux_channels = features[out_pos].out_channels, features[aux_pos].out_channels
    backbone = IntermediateLayerGetter(features, return_layers)
    aux_classifier = FCNHead(aux_channels, num_classes) if aux_loss else None
    classifier = DeepLabHead(out_channels, num_classes, atrous_rates, aspp_channels)
    return DeepLabV3(backbone, classifier, aux_classifier)
