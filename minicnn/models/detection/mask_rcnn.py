"""Mask R-CNN (He et al., 2017): Faster R-CNN plus a mask branch, torchvision's layout.

The mask branch pools 14 × 14 :class:`MultiScaleRoIAlign` features of each box, runs
:class:`MaskRCNNHeads` (four 3 × 3 convolutions of 256 channels + ReLU) and :class:`MaskRCNNPredictor`
(a 2 × 2 stride-2 transposed convolution + ReLU, then a 1 × 1 convolution to one 28 × 28 mask logit
map per class). Loss and inference: :mod:`~minicnn.models.detection.roi_heads`.
``maskrcnn_resnet50_fpn``: 44,454,513 parameters with 91 classes (torchvision's count).
"""
from collections import OrderedDict

from ... import nn
from .faster_rcnn import FasterRCNN, FastRCNNPredictor, TwoMLPHead, _resnet50_fpn_backbone, small_fpn_backbone
from .anchor_utils import AnchorGenerator
from .poolers import MultiScaleRoIAlign

__all__ = ["MaskRCNN", "MaskRCNNHeads", "MaskRCNNPredictor", "maskrcnn_resnet50_fpn", "maskrcnn_small"]


def _kaiming_fan_out(module):
    """torchvision's mask-branch initialisation: weights kaiming-normal (fan_out, ReLU gain)."""
    for name, p in module.named_parameters():
        if "weight" in name:
            nn.init.kaiming_normal_(p, mode="fan_out", nonlinearity="relu")


class MaskRCNNHeads(nn.Sequential):
    """``len(layers)`` blocks of 3 × 3 convolution (padding = dilation) + ReLU, named ``0.0``, ``1.0``, …
    (torchvision's ``Conv2dNormActivation`` without norm): ``(K, in_channels, 14, 14) ->
    (K, layers[-1], 14, 14)``. Weights kaiming-normal (fan_out), biases 0."""

    def __init__(self, in_channels, layers, dilation=1):
        blocks, c = [], in_channels
        for out in layers:
            blocks.append(nn.Sequential(nn.Conv2d(c, out, 3, padding=dilation, dilation=dilation), nn.ReLU()))
            c = out
        super().__init__(*blocks)
        _kaiming_fan_out(self)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.zeros_(m.bias)


class MaskRCNNPredictor(nn.Sequential):
    """``mask_fcn_logits(relu(conv5_mask(x)))``: ConvTranspose2d 2 × 2 stride 2 to ``dim_reduced``
    channels, then a 1 × 1 convolution to ``num_classes`` maps: ``(K, in_channels, 14, 14) ->
    (K, num_classes, 28, 28)`` mask logits."""

    def __init__(self, in_channels, dim_reduced, num_classes):
        super().__init__(OrderedDict([
            ("conv5_mask", nn.ConvTranspose2d(in_channels, dim_reduced, 2, 2, 0)),
            ("relu", nn.ReLU()),
            ("mask_fcn_logits", nn.Conv2d(dim_reduced, num_classes, 1, 1, 0)),
        ]))
        _kaiming_fan_out(self)


class MaskRCNN(FasterRCNN):
    """Mask R-CNN, torchvision's constructor: :class:`FasterRCNN`'s arguments plus

    Args:
        mask_roi_pool: default ``MultiScaleRoIAlign(["0", "1", "2", "3"], 14, sampling_ratio=2)``.
        mask_head: default ``MaskRCNNHeads(out_channels, (256, 256, 256, 256), 1)``.
        mask_predictor: default ``MaskRCNNPredictor(256, 256, num_classes)``.

    Training targets also need ``masks`` ``(G, H, W)`` (0/1); eval detections carry ``masks``
    ``(D, 1, H, W)`` probabilities pasted into the original image.
    """

    def __init__(self, backbone, num_classes=None, *args, mask_roi_pool=None, mask_head=None, mask_predictor=None,
                 **kwargs):
        if not isinstance(mask_roi_pool, (MultiScaleRoIAlign, type(None))):
            raise TypeError(f"MaskRCNN: mask_roi_pool must be a MultiScaleRoIAlign or None, "
                            f"got {type(mask_roi_pool).__name__}")
        if num_classes is not None and mask_predictor is not None:
            raise ValueError("MaskRCNN: num_classes must be None when mask_predictor is given")
        super().__init__(backbone, num_classes, *args, **kwargs)
        if mask_roi_pool is None:
            mask_roi_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=14, sampling_ratio=2)
        if mask_head is None:
            mask_head = MaskRCNNHeads(backbone.out_channels, (256, 256, 256, 256), 1)
        if mask_predictor is None:
            mask_predictor = MaskRCNNPredictor(256, 256, num_classes)
        self.roi_heads.mask_roi_pool = mask_roi_pool
        self.roi_heads.mask_head = mask_head
        self.roi_heads.mask_predictor = mask_predictor


def maskrcnn_resnet50_fpn(*, weights=None, progress=True, num_classes=None, weights_backbone=None,
                          trainable_backbone_layers=None, norm_layer=None, **kwargs):
    """Mask R-CNN with a ResNet-50-FPN backbone, torchvision's ``maskrcnn_resnet50_fpn``
    (``num_classes`` default 91; 44,454,513 parameters; other arguments as
    :func:`~minicnn.models.detection.faster_rcnn.fasterrcnn_resnet50_fpn`)."""
    backbone = _resnet50_fpn_backbone(weights, weights_backbone, trainable_backbone_layers, norm_layer,
                                      "maskrcnn_resnet50_fpn")
    return MaskRCNN(backbone, num_classes=91 if num_classes is None else num_classes, **kwargs)


def maskrcnn_small(num_classes=11, in_channels=1, image_size=128, width=16, fpn_channels=32, representation_size=128,
                   mask_channels=32, image_mean=None, image_std=None, **kwargs):
    """A small Mask R-CNN: :func:`~minicnn.models.detection.faster_rcnn.fasterrcnn_small`'s settings,
    mask head of four ``mask_channels`` convolutions and a ``mask_channels`` predictor (28 × 28 masks)."""
    backbone = small_fpn_backbone(in_channels, width, fpn_channels)
    options = dict(min_size=image_size, max_size=image_size,
                   image_mean=image_mean if image_mean is not None else [0.0] * in_channels,
                   image_std=image_std if image_std is not None else [1.0] * in_channels,
                   rpn_anchor_generator=AnchorGenerator(((16,), (32,), (64,), (128,), (256,)), ((0.5, 1.0, 2.0),) * 5),
                   rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=500, rpn_pre_nms_top_n_test=500,
                   rpn_post_nms_top_n_test=200, box_batch_size_per_image=128,
                   box_head=TwoMLPHead(fpn_channels * 7 * 7, representation_size),
                   box_predictor=FastRCNNPredictor(representation_size, num_classes),
                   mask_head=MaskRCNNHeads(fpn_channels, (mask_channels,) * 4, 1),
                   mask_predictor=MaskRCNNPredictor(mask_channels, mask_channels, num_classes))
    options.update(kwargs)
    return MaskRCNN(backbone, None, **options)
