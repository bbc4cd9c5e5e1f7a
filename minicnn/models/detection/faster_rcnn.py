"""Faster R-CNN (Ren et al., 2015) with a feature pyramid (Lin et al., 2017), torchvision's layout.

``FasterRCNN`` = :class:`GeneralizedRCNN` of a backbone with ``out_channels``, a
:class:`RegionProposalNetwork` (anchors 32–512 px over P2–P6, ratios 0.5/1/2), and
:class:`RoIHeads` over 7 × 7 :class:`MultiScaleRoIAlign` features with :class:`TwoMLPHead` (two fully
connected layers of 1024) and :class:`FastRCNNPredictor` (class logits and class-specific deltas).
Module names, defaults and post-processing follow torchvision, so its state_dicts load name for name
(``fasterrcnn_resnet50_fpn``: 41,808,406 parameters with 91 classes and BatchNorm2d, torchvision's
count for ``weights=None``; 41,755,286 of them are Parameters when the backbone uses
FrozenBatchNorm2d, whose affine terms are buffers).
"""
from ... import nn
from ...functional import relu
from .. import resnet as resnet_models
from .anchor_utils import AnchorGenerator
from .backbone_utils import _resnet_fpn_extractor
from .generalized_rcnn import GeneralizedRCNN
from .poolers import MultiScaleRoIAlign
from .roi_heads import RoIHeads
from .rpn import RegionProposalNetwork, RPNHead
from .transform import GeneralizedRCNNTransform

__all__ = ["FasterRCNN", "TwoMLPHead", "FastRCNNPredictor", "fasterrcnn_resnet50_fpn", "fasterrcnn_small"]


def _default_anchorgen():
    """torchvision's FPN anchors: one size per level (32, 64, 128, 256, 512), ratios 0.5, 1, 2."""
    return AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)


class TwoMLPHead(nn.Module):
    """``relu(fc7(relu(fc6(flatten(x)))))``: ``(K, C, 7, 7) -> (K, representation_size)``.

    Args:
        in_channels: ``C · 7 · 7``; representation_size: 1024 in torchvision.
    """

    def __init__(self, in_channels, representation_size):
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x):
        return relu(self.fc7(relu(self.fc6(x.flatten(1)))))


class FastRCNNPredictor(nn.Module):
    """Class logits ``cls_score(x)`` ``(K, num_classes)`` and deltas ``bbox_pred(x)``
    ``(K, 4·num_classes)`` (``num_classes`` counts the background) of ``(K, in_channels)`` features."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_classes * 4)

    def forward(self, x):
        if x.ndim == 4:
            if tuple(x.shape[2:]) != (1, 1):
                raise ValueError(f"FastRCNNPredictor: 4-D input must be (K, C, 1, 1), got {tuple(x.shape)}")
            x = x.flatten(1)
        return self.cls_score(x), self.bbox_pred(x)


class FasterRCNN(GeneralizedRCNN):
    """Faster R-CNN, torchvision's constructor (arguments and defaults are its own).

    Args:
        backbone: module with ``out_channels``; ``(N, C, H, W) -> dict`` of maps (FPN) or a Tensor.
        num_classes: classes including the background (None when ``box_predictor`` is given).
        min_size, max_size, image_mean, image_std: the transform (800, 1333, ImageNet statistics).
        rpn_*: anchor generator (FPN defaults), head, top-n (train 2000/2000, test 1000/1000), NMS 0.7,
            IoU 0.7/0.3, 256 anchors, half positive, score threshold 0.
        box_*: RoI pool (7 × 7 over maps "0".."3", sampling ratio 2), head, predictor, score 0.05, NMS
            0.5, 100 detections, IoU 0.5/0.5, 512 samples, 25% positive; bbox_reg_weights (10, 10, 5, 5).
        generator: seed or Generator for the RPN/RoI sampling (default: :mod:`minicnn.random`'s).
        **kwargs: passed to ``GeneralizedRCNNTransform`` (``size_divisible``, ``fixed_size``).

    See :class:`GeneralizedRCNN` for inputs and outputs.
    """

    def __init__(self, backbone, num_classes=None, min_size=800, max_size=1333, image_mean=None, image_std=None,
                 rpn_anchor_generator=None, rpn_head=None, rpn_pre_nms_top_n_train=2000, rpn_pre_nms_top_n_test=1000,
                 rpn_post_nms_top_n_train=2000, rpn_post_nms_top_n_test=1000, rpn_nms_thresh=0.7,
                 rpn_fg_iou_thresh=0.7, rpn_bg_iou_thresh=0.3, rpn_batch_size_per_image=256, rpn_positive_fraction=0.5,
                 rpn_score_thresh=0.0, box_roi_pool=None, box_head=None, box_predictor=None, box_score_thresh=0.05,
                 box_nms_thresh=0.5, box_detections_per_img=100, box_fg_iou_thresh=0.5, box_bg_iou_thresh=0.5,
                 box_batch_size_per_image=512, box_positive_fraction=0.25, bbox_reg_weights=None, generator=None,
                 **kwargs):
        name = type(self).__name__
        if not hasattr(backbone, "out_channels"):
            raise ValueError(f"{name}: backbone must have an attribute out_channels (channels of every feature map)")
        if not isinstance(rpn_anchor_generator, (AnchorGenerator, type(None))):
            raise TypeError(f"{name}: rpn_anchor_generator must be an AnchorGenerator or None, "
                            f"got {type(rpn_anchor_generator).__name__}")
        if not isinstance(box_roi_pool, (MultiScaleRoIAlign, type(None))):
            raise TypeError(f"{name}: box_roi_pool must be a MultiScaleRoIAlign or None, got {type(box_roi_pool).__name__}")
        if num_classes is not None and box_predictor is not None:
            raise ValueError(f"{name}: num_classes must be None when box_predictor is given")
        if num_classes is None and box_predictor is None:
            raise ValueError(f"{name}: give num_classes (including the background) or a box_predictor")
        if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) != num_classes
                                        or num_classes < 2):
            raise ValueError(f"{name}: num_classes must be an integer >= 2 (the background and at least one class), "
                             f"got {num_classes!r}")
        out_channels = backbone.out_channels
        if rpn_anchor_generator is None:
            rpn_anchor_generator = _default_anchorgen()
        if rpn_head is None:
            rpn_head = RPNHead(out_channels, rpn_anchor_generator.num_anchors_per_location()[0])
        rpn = RegionProposalNetwork(
            rpn_anchor_generator, rpn_head, rpn_fg_iou_thresh, rpn_bg_iou_thresh, rpn_batch_size_per_image,
            rpn_positive_fraction, dict(training=rpn_pre_nms_top_n_train, testing=rpn_pre_nms_top_n_test),
            dict(training=rpn_post_nms_top_n_train, testing=rpn_post_nms_top_n_test), rpn_nms_thresh,
            score_thresh=rpn_score_thresh, generator=generator)
        if box_roi_pool is None:
            box_roi_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
        if box_head is None:
            resolution = box_roi_pool.output_size[0]
            box_head = TwoMLPHead(out_channels * resolution ** 2, 1024)
        if box_predictor is None:
            box_predictor = FastRCNNPredictor(1024, num_classes)
        roi_heads = RoIHeads(box_roi_pool, box_head, box_predictor, box_fg_iou_thresh, box_bg_iou_thresh,
                             box_batch_size_per_image, box_positive_fraction, bbox_reg_weights, box_score_thresh,
                             box_nms_thresh, box_detections_per_img, generator=generator)
        if image_mean is None:
            image_mean = [0.485, 0.456, 0.406]
        if image_std is None:
            image_std = [0.229, 0.224, 0.225]
        transform = GeneralizedRCNNTransform(min_size, max_size, image_mean, image_std, **kwargs)
        super().__init__(backbone, rpn, roi_heads, transform)


def _resnet50_fpn_backbone(weights, weights_backbone, trainable_backbone_layers, norm_layer, op):
    if weights is not None or weights_backbone is not None:
        raise ValueError(f"{op}: weights and weights_backbone must be None (minicnn downloads nothing; load a "
                         f"torchvision state_dict with load_state_dict instead)")
    # torchvision without pretrained weights: every layer trainable, BatchNorm2d
    if trainable_backbone_layers is None:
        trainable_backbone_layers = 5
    backbone = resnet_models.resnet50(norm_layer=norm_layer or nn.BatchNorm2d)
    return _resnet_fpn_extractor(backbone, trainable_backbone_layers)


def fasterrcnn_resnet50_fpn(*, weights=None, progress=True, num_classes=None, weights_backbone=None,
                            trainable_backbone_layers=None, norm_layer=None, **kwargs):
    """Faster R-CNN with a ResNet-50-FPN backbone, torchvision's ``fasterrcnn_resnet50_fpn``.

    ``num_classes`` defaults to 91 (COCO with background). ``norm_layer`` (default
    ``nn.BatchNorm2d``, torchvision's choice without pretrained weights; pass
    ``FrozenBatchNorm2d`` for its pretrained layout). ``weights`` must be None. 41,808,406
    parameters with 91 classes. ``**kwargs`` go to :class:`FasterRCNN`.
    """
    backbone = _resnet50_fpn_backbone(weights, weights_backbone, trainable_backbone_layers, norm_layer,
                                      "fasterrcnn_resnet50_fpn")
    return FasterRCNN(backbone, num_classes=91 if num_classes is None else num_classes, **kwargs)


def small_fpn_backbone(in_channels=1, width=16, out_channels=32, trainable_layers=5):
    """A narrow ResNet-18-like body (BasicBlocks, channels ``w, 2w, 4w, 8w``, strides 4–32) with an
    FPN of ``out_channels`` channels (maps "0".."3" and "pool"), for small images on 2 cores."""
    body = resnet_models.resnet18(in_channels=in_channels, width=width)
    return _resnet_fpn_extractor(body, trainable_layers, out_channels=out_channels)


def fasterrcnn_small(num_classes=11, in_channels=1, image_size=128, width=16, fpn_channels=32,
                     representation_size=128, image_mean=None, image_std=None, **kwargs):
    """A small Faster R-CNN + FPN for ``image_size``-pixel images (digit canvases: 10 classes + background).

    Backbone :func:`small_fpn_backbone`; anchors (16, 32, 64, 128, 256) px over P2–P6 with ratios
    0.5/1/2; images not resized (``min_size = max_size = image_size``); TwoMLPHead of
    ``representation_size``; RPN top-n train 1000/500, test 500/200; 128 RoI samples per image.
    Defaults can be overridden through ``**kwargs`` (any :class:`FasterRCNN` argument).
    """
    backbone = small_fpn_backbone(in_channels, width, fpn_channels)
    if image_mean is None:
        image_mean = [0.0] * in_channels
    if image_std is None:
        image_std = [1.0] * in_channels
    options = dict(min_size=image_size, max_size=image_size, image_mean=image_mean, image_std=image_std,
                   rpn_anchor_generator=AnchorGenerator(((16,), (32,), (64,), (128,), (256,)), ((0.5, 1.0, 2.0),) * 5),
                   rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=500, rpn_pre_nms_top_n_test=500,
                   rpn_post_nms_top_n_test=200, box_batch_size_per_image=128,
                   box_head=TwoMLPHead(fpn_channels * 7 * 7, representation_size),
                   box_predictor=FastRCNNPredictor(representation_size, num_classes))
    options.update(kwargs)
    return FasterRCNN(backbone, None, **options)
