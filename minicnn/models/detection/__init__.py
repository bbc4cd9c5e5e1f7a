"""Object detection: shared machinery (box coding, matching, sampling, post-processing) and models.

Targets follow torchvision: per image a dict with ``boxes`` ``(G, 4)`` ``(x1, y1, x2, y2)`` in
pixels, ``labels`` ``(G,)`` int64 in ``1..K`` (0 is background) and optionally ``masks``
``(G, H, W)``. Detections: per image ``{"boxes", "scores", "labels"}``.
"""
from ._utils import (  # noqa: F401
    BalancedPositiveNegativeSampler, BoxCoder, Matcher, batched_nms, postprocess_detections,
)
from .anchor_utils import AnchorGenerator  # noqa: F401
from .backbone_utils import (  # noqa: F401
    BackboneWithFPN, FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7, resnet_fpn_backbone,
)
from .fast_rcnn import FastRCNN, fastrcnn_small  # noqa: F401
from .faster_rcnn import FasterRCNN, FastRCNNPredictor, TwoMLPHead, fasterrcnn_resnet50_fpn, fasterrcnn_small  # noqa: F401
from .generalized_rcnn import GeneralizedRCNN  # noqa: F401
from .mask_rcnn import MaskRCNN, MaskRCNNHeads, MaskRCNNPredictor, maskrcnn_resnet50_fpn, maskrcnn_small  # noqa: F401
from .misc import FrozenBatchNorm2d  # noqa: F401
from .poolers import LevelMapper, MultiScaleRoIAlign  # noqa: F401
from .rcnn import RCNN, rcnn_small  # noqa: F401
from .retinanet import RetinaNet, RetinaNetHead, retinanet_resnet50_fpn, retinanet_small  # noqa: F401
from .roi_heads import RoIHeads, fastrcnn_loss, maskrcnn_loss, paste_masks_in_image  # noqa: F401
from .rpn import RegionProposalNetwork, RPNHead  # noqa: F401
from .ssd import SSD, SSDClassificationHead, SSDHead, SSDRegressionHead, ssd300_vgg16, ssd_small  # noqa: F401
# selective search: minicnn.models.detection.selective_search.selective_search (the module keeps its name)
from .transform import GeneralizedRCNNTransform, ImageList  # noqa: F401
from .yolo import YOLOv1, yolo_v1_decode, yolo_v1_loss, yolo_v1_paper, yolo_v1_small  # noqa: F401

# the constructors by name: the small configurations (2-core training) and torchvision's full-size models
DETECTION_MODELS = {
    "yolo_v1": yolo_v1_small, "yolo_v1_paper": yolo_v1_paper,
    "rcnn": rcnn_small, "fast_rcnn": fastrcnn_small,
    "retinanet": retinanet_small, "retinanet_resnet50_fpn": retinanet_resnet50_fpn,
    "ssd": ssd_small, "ssd300_vgg16": ssd300_vgg16,
    "faster_rcnn": fasterrcnn_small, "faster_rcnn_resnet50_fpn": fasterrcnn_resnet50_fpn,
    "mask_rcnn": maskrcnn_small, "mask_rcnn_resnet50_fpn": maskrcnn_resnet50_fpn,
}
