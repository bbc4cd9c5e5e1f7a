"""Semantic segmentation architectures (one file per family): FCN, U-Net, SegNet, DeepLab.

Every model maps ``(N, C, H, W)`` images to per-pixel class scores ``(N, classes, H', W')``;
the torchvision-named ones (``fcn_resnet50``, ``deeplabv3_*``) return ``{"out": scores}`` as
torchvision does, so its state_dicts load name for name.
"""
from .deeplab import ASPP, DeepLabHead, DeepLabV3, DeepLabV3Plus, deeplabv3_resnet50, deeplabv3plus_resnet50  # noqa: F401
from .deeplab_mobilenet import deeplabv3_mobilenet_v3_large  # noqa: F401
from .fcn import FCN8s, FCN16s, FCN32s, bilinear_kernel, fcn8s, fcn16s, fcn32s  # noqa: F401
from .fcn_resnet import FCN, FCNHead, fcn_resnet50  # noqa: F401
from .segnet import SegNet, SegNetBasic, segnet, segnet_basic  # noqa: F401
from .unet import UNet, unet, unet_weight_map  # noqa: F401

SEGMENTATION_MODELS = {
    "fcn8s": fcn8s, "fcn16s": fcn16s, "fcn32s": fcn32s, "fcn_resnet50": fcn_resnet50, "unet": unet,
    "segnet": segnet, "segnet_basic": segnet_basic, "deeplabv3_resnet50": deeplabv3_resnet50,
    "deeplabv3plus_resnet50": deeplabv3plus_resnet50, "deeplabv3_mobilenet_v3_large": deeplabv3_mobilenet_v3_large,
}
