"""Object detection: shared machinery (box coding, matching, sampling, post-processing) and models.

Targets follow torchvision: per image a dict with ``boxes`` ``(G, 4)`` ``(x1, y1, x2, y2)`` in
pixels, ``labels`` ``(G,)`` int64 in ``1..K`` (0 is background) and optionally ``masks``
``(G, H, W)``. Detections: per image ``{"boxes", "scores", "labels"}``.
"""
from ._utils import (  # noqa: F401
    BalancedPositiveNegativeSampler, BoxCoder, Matcher, batched_nms, postprocess_detections,
)
from .yolo import YOLOv1, yolo_v1_decode, yolo_v1_loss, yolo_v1_paper, yolo_v1_small  # noqa: F401

DETECTION_MODELS = {"yolo_v1": yolo_v1_small, "yolo_v1_paper": yolo_v1_paper}
