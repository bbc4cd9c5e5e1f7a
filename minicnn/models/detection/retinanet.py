"""RetinaNet (Lin et al., 2017, "Focal Loss for Dense Object Detection"), torchvision's v1 layout.

    images ─ GeneralizedRCNNTransform ─ ResNet + FPN (P3..P7) ─┬─ classification subnet ─ (N, ΣHWA, K) logits
                                                               └─ box subnet ──────────── (N, ΣHWA, 4) deltas
                                      AnchorGenerator: A = 9 anchors per location (3 sizes × 3 ratios)

Each subnet: four 3×3 convolutions + ReLU (no normalisation, v1; with ``norm_layer``, e.g.
GroupNorm as torchvision's v2 head, bias-free convolutions each followed by it), then a 3×3
convolution to ``A·K`` logits or ``A·4`` deltas. Convolutions start from N(0, 0.01²) with zero bias, except the
logits' bias ``−log((1 − π)/π)``, π = 0.01: every anchor starts at probability 0.01 of each class,
so the many background anchors do not swamp the first steps.

Training (targets per image: ``boxes`` (G, 4), ``labels`` (G,) in ``1..K−1``):

* each anchor's ground truth by IoU (:class:`Matcher` 0.5 / 0.4, low-quality matches kept):
  foreground ``>= 0.5``, background ``< 0.4``, the rest ignored;
* classification: ``Σ sigmoid_focal_loss(logits, one-hot)`` (α = 0.25, γ = 2) over foreground and
  background anchors, divided by the number of foreground anchors (at least 1);
* regression: ``Σ |deltas − encode(gt, anchor)|`` (L1, weights (1, 1, 1, 1)) over foreground anchors,
  divided by their number; both averaged over the images.

Inference, per image and FPN level: sigmoid scores of every (anchor, class), keep ``> 0.05``, the
``1000`` best, decode; then over all levels: clip to the image, per-class NMS at 0.5, keep 300; boxes
mapped back to the original image size.
"""
import math
from collections import OrderedDict

import numpy as np

from ... import functional as F
from ... import nn
from ...functional.boxes import box_iou, clip_boxes_to_image
from ...functional.nms import batched_nms
from ...tensor import Tensor, to_host
from ._utils import BoxCoder, Matcher
from .anchor_utils import AnchorGenerator
from .backbone_utils import LastLevelP6P7, _resnet_fpn_extractor
from .misc import FrozenBatchNorm2d, drop_frozen_bn_counters
from .transform import GeneralizedRCNNTransform
from .. import resnet as resnet_models


def _subnet(in_channels, norm_layer=None):
    """Four of torchvision's ``Conv2dNormActivation``: ``Sequential(Conv2d 3×3, ReLU)`` without
    ``norm_layer``, ``Sequential(Conv2d 3×3 without bias, norm_layer(in_channels), ReLU)`` with it."""
    def block():
        if norm_layer is None:
            return nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU())
        return nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False), norm_layer(in_channels),
                             nn.ReLU())

    return nn.Sequential(*[block() for _ in range(4)])


def _normal_init(conv, bias=0.0):
    nn.init.normal_(conv.weight, std=0.01)
    if conv.bias is not None:
        nn.init.constant_(conv.bias, bias)


def _flatten_level(y, k):
    """``(N, A·k, H, W) -> (N, H·W·A, k)``: anchors ordered by cell (row-major), then anchor."""
    N, _, H, W = y.shape
    return y.reshape(N, -1, k, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, k)


class RetinaNetClassificationHead(nn.Module):
    """Per FPN level ``(N, C, H, W)``: ``cls_logits(conv(x))`` ``-> (N, H·W·A, K)``, concatenated
    over levels ``-> (N, ΣHWA, K)``. The logits' bias is ``−log((1 − π)/π)``. ``norm_layer``
    (``channels -> module``, e.g. ``partial(nn.GroupNorm, 32)`` as torchvision's v2 head) follows
    each bias-free 3×3 convolution of ``conv``; None (v1): no normalisation."""

    def __init__(self, in_channels, num_anchors, num_classes, prior_probability=0.01, norm_layer=None):
        super().__init__()
        self.conv = _subnet(in_channels, norm_layer)
        for m in self.conv.modules():
            if isinstance(m, nn.Conv2d):
                _normal_init(m)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors * num_classes, 3, padding=1)
        _normal_init(self.cls_logits, -math.log((1 - prior_probability) / prior_probability))
        self.num_classes, self.num_anchors = num_classes, num_anchors

    def forward(self, x):
        return F.cat([_flatten_level(self.cls_logits(self.conv(f)), self.num_classes) for f in x], axis=1)

    def compute_loss(self, targets, head_outputs, matched_idxs):
        """``mean_i Σ_{anchors not ignored} focal(logits_i, one-hot_i) / max(1, #foreground_i)``."""
        logits = head_outputs["cls_logits"]
        losses = []
        for i, (target, matched) in enumerate(zip(targets, matched_idxs)):
            fg = matched >= 0
            gt = np.zeros((len(matched), self.num_classes), dtype=logits.dtype)
            gt[np.flatnonzero(fg), target["labels"][matched[fg]]] = 1.0
            valid = np.flatnonzero(matched != Matcher.BETWEEN_THRESHOLDS)
            li = logits[i][valid]
            gt_t = Tensor._from_array(li.device.from_numpy(gt[valid]), li.device)
            losses.append(F.sigmoid_focal_loss(li, gt_t, reduction="sum") / max(1, int(fg.sum())))
        return sum(losses[1:], losses[0]) / len(targets)


class RetinaNetRegressionHead(nn.Module):
    """Per FPN level: ``bbox_reg(conv(x))`` ``-> (N, H·W·A, 4)`` deltas, concatenated over levels;
    L1 loss on :class:`BoxCoder` ``(1, 1, 1, 1)`` targets of the foreground anchors; ``norm_layer``
    as in :class:`RetinaNetClassificationHead`."""

    def __init__(self, in_channels, num_anchors, norm_layer=None):
        super().__init__()
        self.conv = _subnet(in_channels, norm_layer)
        self.bbox_reg = nn.Conv2d(in_channels, num_anchors * 4, 3, padding=1)
        _normal_init(self.bbox_reg)
        for m in self.conv.modules():
            if isinstance(m, nn.Conv2d):
                _normal_init(m)
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))

    def forward(self, x):
        return F.cat([_flatten_level(self.bbox_reg(self.conv(f)), 4) for f in x], axis=1)

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs):
        """``mean_i Σ_{foreground} |deltas − encode(gt, anchor)| / max(1, #foreground_i)``."""
        reg = head_outputs["bbox_regression"]
        losses = []
        for i, (target, anchors_i, matched) in enumerate(zip(targets, anchors, matched_idxs)):
            fg = np.flatnonzero(matched >= 0)
            if len(fg) == 0:  # an image with no objects: no regression term (kept in the graph)
                losses.append(reg[i].sum() * 0.0)
                continue
            goal = self.box_coder.encode_single(target["boxes"][matched[fg]], to_host(anchors_i.data)[fg])
            pred = reg[i][fg]
            goal_t = Tensor._from_array(pred.device.from_numpy(goal.astype(pred.dtype)), pred.device)
            losses.append(F.l1_loss(pred, goal_t, reduction="sum") / max(1, len(fg)))
        return sum(losses[1:], losses[0]) / max(1, len(targets))


class RetinaNetHead(nn.Module):
    """``{"cls_logits": (N, ΣHWA, K), "bbox_regression": (N, ΣHWA, 4)}`` of a list of FPN maps;
    ``norm_layer`` (None: v1) normalises both subnets' convolutions (torchvision's v2 head)."""

    def __init__(self, in_channels, num_anchors, num_classes, norm_layer=None):
        super().__init__()
        self.classification_head = RetinaNetClassificationHead(in_channels, num_anchors, num_classes,
                                                               norm_layer=norm_layer)
        self.regression_head = RetinaNetRegressionHead(in_channels, num_anchors, norm_layer=norm_layer)

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs):
        return {"classification": self.classification_head.compute_loss(targets, head_outputs, matched_idxs),
                "bbox_regression": self.regression_head.compute_loss(targets, head_outputs, anchors, matched_idxs)}

    def forward(self, x):
        return {"cls_logits": self.classification_head(x), "bbox_regression": self.regression_head(x)}


def _check_num_classes(owner, num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"{owner}: num_classes (with the background) must be an integer >= 2, got {num_classes!r}")


def _default_anchorgen(base=(32, 64, 128, 256, 512)):
    """Sizes ``(x, int(x·2^(1/3)), int(x·2^(2/3)))`` per level × ratios (0.5, 1, 2): 9 anchors."""
    sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in base)
    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))


class RetinaNet(nn.Module):
    """RetinaNet over a backbone with ``out_channels`` that returns an ordered dict of FPN maps.

    Args (torchvision's): backbone; num_classes (with the background column 0: 91 for COCO);
    min_size, max_size, image_mean, image_std (the transform); anchor_generator (default 9
    anchors per location over sizes 32..512); head; proposal_matcher (default
    ``Matcher(fg_iou_thresh, bg_iou_thresh, True)``); score_thresh, nms_thresh,
    detections_per_img, fg_iou_thresh, bg_iou_thresh, topk_candidates; ``transform_kwargs``
    (size_divisible, fixed_size) go to :class:`GeneralizedRCNNTransform`.

    ``forward(images, targets=None)``: ``images`` a list of ``(C, H_i, W_i)`` float Tensors or
    arrays. Training: the dict ``{"classification", "bbox_regression"}`` of scalar losses. Eval: per
    image ``{"boxes" (D, 4) float32, "scores" (D,), "labels" (D,) int64}`` (NumPy arrays) in the
    original image's pixels, decreasing score.
    """

    def __init__(self, backbone, num_classes, min_size=800, max_size=1333, image_mean=None, image_std=None,
                 anchor_generator=None, head=None, proposal_matcher=None, score_thresh=0.05, nms_thresh=0.5,
                 detections_per_img=300, fg_iou_thresh=0.5, bg_iou_thresh=0.4, topk_candidates=1000,
                 **transform_kwargs):
        super().__init__()
        if not hasattr(backbone, "out_channels"):
            raise ValueError("RetinaNet: backbone should have an out_channels attribute (the FPN's channels)")
        _check_num_classes("RetinaNet", num_classes)
        self.backbone = backbone
        self.anchor_generator = anchor_generator if anchor_generator is not None else _default_anchorgen()
        if head is None:
            head = RetinaNetHead(backbone.out_channels, self.anchor_generator.num_anchors_per_location()[0], num_classes)
        self.head = head
        self.proposal_matcher = proposal_matcher or Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        image_mean = [0.485, 0.456, 0.406] if image_mean is None else image_mean
        image_std = [0.229, 0.224, 0.225] if image_std is None else image_std
        self.transform = GeneralizedRCNNTransform(min_size, max_size, image_mean, image_std, **transform_kwargs)
        self.num_classes = num_classes
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img, self.topk_candidates = detections_per_img, topk_candidates

    def load_state_dict(self, state_dict, strict=True):
        """As :meth:`nn.Module.load_state_dict`, ignoring ``num_batches_tracked`` of frozen BatchNorms."""
        return super().load_state_dict(drop_frozen_bn_counters(self, state_dict), strict)

    # ---- targets ----------------------------------------------------------------------------
    def _check_targets(self, targets, n):
        """Host copies ``{"boxes": float32 (G, 4), "labels": int64 (G,)}``; ValueError naming the image and box."""
        if targets is None or len(targets) != n:
            raise ValueError(f"RetinaNet: training needs one target dict per image ({n}), got "
                             f"{None if targets is None else len(targets)}")
        out = []
        for i, t in enumerate(targets):
            if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
                raise ValueError(f"RetinaNet: target {i} must be a dict with 'boxes' and 'labels'")
            boxes = np.asarray(to_host(t["boxes"]), dtype=np.float64)
            labels = np.asarray(to_host(t["labels"]))
            if boxes.size == 0:
                boxes = boxes.reshape(0, 4)
            if boxes.ndim != 2 or boxes.shape[1] != 4:
                raise ValueError(f"RetinaNet: target {i} boxes must have shape (G, 4), got {boxes.shape}")
            if labels.shape != (len(boxes),) or (labels.size and labels.dtype.kind not in "iu"):
                raise ValueError(f"RetinaNet: target {i} labels must be {len(boxes)} integers, got {labels.dtype} {labels.shape}")
            bad = np.flatnonzero(~np.isfinite(boxes).all(axis=1))
            if len(bad):
                raise ValueError(f"RetinaNet: target {i} box {bad[0]} is not finite: {boxes[bad[0]].tolist()}")
            bad = np.flatnonzero((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
            if len(bad):
                raise ValueError(f"RetinaNet: all boxes should have positive width and height; target {i} box "
                                 f"{bad[0]} is {boxes[bad[0]].tolist()}")
            bad = np.flatnonzero((labels < 1) | (labels >= self.num_classes))
            if len(bad):
                raise ValueError(f"RetinaNet: target {i} label of box {bad[0]} is {labels[bad[0]]}, expected "
                                 f"1..{self.num_classes - 1} (0 is the background)")
            out.append({**t, "boxes": boxes.astype(np.float32), "labels": labels.astype(np.int64)})
        return out

    def compute_loss(self, targets, head_outputs, anchors):
        """Match anchors to ground truth per image (no boxes: every anchor background), then the head's losses."""
        matched_idxs = []
        for anchors_i, target in zip(anchors, targets):
            a = to_host(anchors_i.data)
            if len(target["boxes"]) == 0:
                matched_idxs.append(np.full(len(a), Matcher.BELOW_LOW_THRESHOLD, dtype=np.int64))
                continue
            matched_idxs.append(self.proposal_matcher(box_iou(target["boxes"], a)))
        return self.head.compute_loss(targets, head_outputs, anchors, matched_idxs)

    # ---- inference --------------------------------------------------------------------------
    def postprocess_detections(self, head_outputs, anchors, image_shapes):
        """Per image: per level score ``> score_thresh``, top ``topk_candidates``, decode, clip;
        then per-class NMS and ``detections_per_img``. ``head_outputs[k]`` and ``anchors[i]``
        are lists over levels of NumPy arrays."""
        detections = []
        for i, image_shape in enumerate(image_shapes):
            all_boxes, all_scores, all_labels = [], [], []
            for logits, deltas, anc in zip(head_outputs["cls_logits"], head_outputs["bbox_regression"], anchors[i]):
                logits, deltas = logits[i], deltas[i]
                k = logits.shape[-1]
                scores = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32).reshape(-1)
                idx = np.flatnonzero(scores > self.score_thresh)
                order = np.argsort(-scores[idx], kind="stable")[:self.topk_candidates]
                idx = idx[order]
                anchor_idx, labels = idx // k, idx % k
                boxes = self.box_coder.decode_single(deltas[anchor_idx], anc[anchor_idx]) if len(idx) else np.zeros((0, 4), np.float32)
                all_boxes.append(clip_boxes_to_image(boxes, image_shape))
                all_scores.append(scores[idx])
                all_labels.append(labels.astype(np.int64))
            boxes, scores, labels = (np.concatenate(v) for v in (all_boxes, all_scores, all_labels))
            keep = batched_nms(boxes, scores, labels, self.nms_thresh).numpy()[:self.detections_per_img]
            detections.append({"boxes": boxes[keep].astype(np.float32), "scores": scores[keep].astype(np.float32),
                               "labels": labels[keep]})
        return detections

    def forward(self, images, targets=None):
        if not isinstance(images, (list, tuple)):
            raise TypeError(f"RetinaNet: images must be a list of (C, H, W) tensors, got {type(images).__name__}")
        if self.training:
            targets = self._check_targets(targets, len(images))
        original_sizes = [tuple(int(v) for v in im.shape[-2:]) for im in images]
        image_list, targets = self.transform(images, targets if self.training else None)
        device = next(iter(self.parameters())).device
        if image_list.tensors.device != device:
            image_list = image_list.to(device)
        features = self.backbone(image_list.tensors)
        if isinstance(features, Tensor):
            features = OrderedDict([("0", features)])
        features = list(features.values())
        head_outputs = self.head(features)
        anchors = self.anchor_generator(image_list, features)
        if self.training:
            return self.compute_loss(targets, head_outputs, anchors)
        per_level = [f.shape[2] * f.shape[3] for f in features]
        A = head_outputs["cls_logits"].shape[1] // sum(per_level)
        bounds = np.cumsum([0] + [hw * A for hw in per_level])
        split = {k: [v.numpy()[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])] for k, v in head_outputs.items()}
        host_anchors = [[a.numpy()[s:e] for s, e in zip(bounds[:-1], bounds[1:])] for a in anchors]
        detections = self.postprocess_detections(split, host_anchors, image_list.image_sizes)
        return self.transform.postprocess(detections, image_list.image_sizes, original_sizes)


def retinanet_resnet50_fpn(num_classes=91, norm_layer=FrozenBatchNorm2d, trainable_backbone_layers=3, weights=None,
                           weights_backbone=None, **kwargs):
    """torchvision's ``retinanet_resnet50_fpn``: ResNet-50, FPN on layer2..4 (256 channels) + P6/P7
    from P5 (:class:`LastLevelP6P7` (256, 256)), 9 anchors per location, min_size 800, max_size 1333.

    Defaults are those of torchvision's pretrained configuration (FrozenBatchNorm2d, 3 trainable
    backbone stages). torchvision's ``weights=None, weights_backbone=None`` build uses
    ``norm_layer=nn.BatchNorm2d, trainable_backbone_layers=5``; its state_dict loads into either
    (BatchNorm counters are ignored by frozen layers). 34,068,119 parameters with BatchNorm2d and
    91 classes (FrozenBatchNorm2d keeps the 53,120 BatchNorm affine values as buffers instead).
    ``weights`` must be None: nothing is downloaded.
    """
    if weights is not None or weights_backbone is not None:
        raise ValueError("retinanet_resnet50_fpn: weights and weights_backbone must be None (minicnn downloads "
                         "nothing; load a torchvision state_dict with load_state_dict)")
    backbone = resnet_models.resnet50(norm_layer=norm_layer)
    backbone = _resnet_fpn_extractor(backbone, trainable_backbone_layers, returned_layers=[2, 3, 4],
                                     extra_blocks=LastLevelP6P7(256, 256))
    return RetinaNet(backbone, num_classes, **kwargs)


def retinanet_small(num_classes=11, in_channels=1, width=16, fpn_channels=32, min_size=128, max_size=128,
                    image_mean=(0.1307,), image_std=(0.3081,), anchor_base=(16, 32, 64, 128, 256), norm_layer=None,
                    head_norm_layer=None, **kwargs):
    """A RetinaNet for small canvases and 2-core training: ResNet-18 layout of ``width`` (16)
    channels with trainable BatchNorm, FPN of ``fpn_channels`` (32) on layer2..4 + P6/P7,
    anchors ``anchor_base × 2^(0, 1/3, 2/3) × (0.5, 1, 2)``, images kept at 128 px.

    ``head_norm_layer`` (``channels -> module``; None: torchvision's v1 head) goes to
    :class:`RetinaNetHead`'s ``norm_layer``. With N(0, 0.01²) weights a narrow subnet shrinks its
    input about ``0.01·sqrt(9·C/2)`` times per convolution (C = 32: 0.12, so 10⁻⁴ after four),
    which a normalisation after each convolution undoes, e.g. ``partial(nn.GroupNorm, 8)``.
    Keywords as :class:`RetinaNet` (score_thresh, detections_per_img, ...)."""
    _check_num_classes("retinanet_small", num_classes)
    backbone = resnet_models.resnet18(in_channels=in_channels, width=width, norm_layer=norm_layer)
    backbone = _resnet_fpn_extractor(backbone, 5, returned_layers=[2, 3, 4],
                                     extra_blocks=LastLevelP6P7(fpn_channels, fpn_channels), out_channels=fpn_channels)
    anchor_generator = _default_anchorgen(anchor_base)
    if "head" not in kwargs:
        kwargs["head"] = RetinaNetHead(fpn_channels, anchor_generator.num_anchors_per_location()[0], num_classes,
                                       norm_layer=head_norm_layer)
    elif head_norm_layer is not None:
        raise ValueError("retinanet_small: pass either head or head_norm_layer, not both")
    return RetinaNet(backbone, num_classes, min_size=min_size, max_size=max_size, image_mean=list(image_mean),
                     image_std=list(image_std), anchor_generator=anchor_generator, **kwargs)
