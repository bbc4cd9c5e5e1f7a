"""SSD (Liu et al., 2016, "SSD: Single Shot MultiBox Detector"), torchvision's layout.

    images ─ GeneralizedRCNNTransform (fixed size) ─ backbone ─ maps 0..m−1 ─┬─ 3×3 conv per map ─ logits (N, ΣHWA, K)
                                                                             └─ 3×3 conv per map ─ deltas (N, ΣHWA, 4)
                  DefaultBoxGenerator: A_k = 2 + 2·len(aspect_ratios[k]) default boxes per cell of map k

One 3×3 convolution per feature map and task (no shared subnet, unlike RetinaNet), Xavier-uniform
weights and zero bias.

Training (targets per image: ``boxes`` (G, 4), ``labels`` (G,) in ``1..K−1``):

* matching (:class:`SSDMatcher`): each default box gets its best ground truth if their IoU is
  ``>= iou_thresh`` (0.5), and each ground truth also gets its own best default box;
* ``N`` = number of matched (positive) boxes of the batch (at least 1);
* ``loss_loc = Σ_positives smooth_L1(deltas − encode(gt, default box)) / N`` with
  :class:`BoxCoder` weights ``(10, 10, 5, 5)`` (the paper's variances 0.1, 0.2), smooth-L1 β = 1;
* ``loss_conf = (Σ_positives CE + Σ_hard negatives CE) / N``, ``CE`` the softmax cross-entropy
  over ``K`` classes (0 = background); per image the hard negatives are the
  ``neg_to_pos_ratio · #positives`` (3:1 for ``positive_fraction`` 0.25) unmatched boxes of
  largest CE (:func:`hard_negative_mining`).

Inference, per image: softmax over the classes, decode every default box, clip to the image; per
class ``c >= 1``: keep scores ``> score_thresh`` (0.01), the ``topk_candidates`` (400) best; then
per-class NMS at ``nms_thresh`` (0.45) and ``detections_per_img`` (200); boxes mapped back to the
original image size.
"""
from collections import OrderedDict

import numpy as np

from ... import functional as F
from ... import nn
from ...autograd import no_grad
from ...functional.boxes import box_iou, clip_boxes_to_image
from ...functional.nms import batched_nms
from ...tensor import Tensor, to_host
from .. import vgg as vgg_models
from ._utils import BoxCoder, Matcher
from .anchor_utils import DefaultBoxGenerator
from .retinanet import _check_num_classes, _flatten_level
from .rpn import _index, check_targets, image_list
from .transform import GeneralizedRCNNTransform

__all__ = ["SSD", "SSDHead", "SSDClassificationHead", "SSDRegressionHead", "SSDMatcher", "DefaultBoxGenerator",
           "hard_negative_mining", "ssd300_vgg16", "ssd_small", "default_boxes"]


def _xavier_init(module):
    """Every ``Conv2d`` of ``module``: Xavier-uniform weight, zero bias (torchvision's SSD init)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0)


class SSDScoringHead(nn.Module):
    """One module per feature map; map ``k`` ``(N, C_k, H_k, W_k) -> (N, A_k·k, H_k, W_k)`` is
    flattened to ``(N, H_k·W_k·A_k, num_columns)`` and the maps concatenated ``-> (N, Σ H·W·A, num_columns)``."""

    def __init__(self, module_list, num_columns):
        super().__init__()
        self.module_list = module_list
        self.num_columns = num_columns

    def forward(self, x):
        if len(x) != len(self.module_list):
            raise ValueError(f"{type(self).__name__}: {len(x)} feature maps for {len(self.module_list)} "
                             "convolutions (one per feature map)")
        return F.cat([_flatten_level(m(f), self.num_columns) for m, f in zip(self.module_list, x)], axis=1)


class SSDClassificationHead(SSDScoringHead):
    """``Conv2d(C_k, A_k·K, 3, padding=1)`` per map -> ``(N, Σ H·W·A, K)`` class logits."""

    def __init__(self, in_channels, num_anchors, num_classes):
        cls_logits = nn.ModuleList([nn.Conv2d(c, num_classes * a, 3, padding=1)
                                    for c, a in zip(in_channels, num_anchors)])
        _xavier_init(cls_logits)
        super().__init__(cls_logits, num_classes)


class SSDRegressionHead(SSDScoringHead):
    """``Conv2d(C_k, A_k·4, 3, padding=1)`` per map -> ``(N, Σ H·W·A, 4)`` box deltas."""

    def __init__(self, in_channels, num_anchors):
        bbox_reg = nn.ModuleList([nn.Conv2d(c, 4 * a, 3, padding=1) for c, a in zip(in_channels, num_anchors)])
        _xavier_init(bbox_reg)
        super().__init__(bbox_reg, 4)


class SSDHead(nn.Module):
    """``{"bbox_regression": (N, ΣHWA, 4), "cls_logits": (N, ΣHWA, K)}`` of a list of feature maps.

    Args: ``in_channels`` and ``num_anchors`` (``A_k``) one per feature map; ``num_classes`` ``K``
    with the background."""

    def __init__(self, in_channels, num_anchors, num_classes):
        super().__init__()
        if len(in_channels) != len(num_anchors):
            raise ValueError(f"SSDHead: in_channels ({len(in_channels)}) and num_anchors ({len(num_anchors)}) "
                             "must have one entry per feature map")
        self.classification_head = SSDClassificationHead(in_channels, num_anchors, num_classes)
        self.regression_head = SSDRegressionHead(in_channels, num_anchors)

    def forward(self, x):
        return {"bbox_regression": self.regression_head(x), "cls_logits": self.classification_head(x)}


class SSDMatcher(Matcher):
    """``Matcher(threshold, threshold)`` (IoU ``>= threshold`` positive, else background), then
    every ground truth ``i`` also claims its best prediction ``argmax_j M[i, j]`` (the first
    maximum; a later ground truth wins a prediction two of them claim)."""

    def __init__(self, threshold):
        super().__init__(threshold, threshold, allow_low_quality_matches=False)

    def __call__(self, match_quality_matrix):
        matches = super().__call__(match_quality_matrix)
        m = to_host(match_quality_matrix)
        matches[m.argmax(axis=1)] = np.arange(m.shape[0], dtype=np.int64)
        return matches


def hard_negative_mining(cls_loss, foreground, neg_to_pos_ratio):
    """The negatives that enter SSD's classification loss, per image.

    Args:
        cls_loss: ``(N, A)`` per-box cross-entropy (host array).
        foreground: ``(N, A)`` bool, the matched boxes.
        neg_to_pos_ratio: ``r`` (3 for the paper's 3:1).

    Returns ``(N, A)`` bool: in image ``i``, the boxes whose rank in decreasing loss among the
    unmatched ones is ``< r·#foreground_i`` (ties: the lower index first). An image without
    foreground has no negatives; positives are never negatives.
    """
    loss = np.where(foreground, -np.inf, np.asarray(cls_loss, dtype=np.float64))
    order = np.argsort(-loss, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(loss.shape[1])[None, :].repeat(loss.shape[0], 0), axis=1)
    num_negative = neg_to_pos_ratio * foreground.sum(axis=1, keepdims=True)
    return (rank < num_negative) & ~foreground


def _host(t):
    return to_host(t.data) if isinstance(t, Tensor) else np.asarray(t)


class SSD(nn.Module):
    """SSD over a backbone returning a Tensor or an ordered dict of feature maps.

    Args (torchvision's): backbone (with ``out_channels``, one per map; else found by a dummy
    forward); anchor_generator (:class:`DefaultBoxGenerator`); size ``(W, H)`` every image is
    resized to; num_classes (with the background, 91 for COCO); image_mean, image_std (ImageNet's
    by default); head (default :class:`SSDHead`); score_thresh (0.01), nms_thresh (0.45),
    detections_per_img (200), iou_thresh (0.5), topk_candidates (400) and positive_fraction
    (0.25: 3 negatives per positive); ``kwargs`` go to :class:`GeneralizedRCNNTransform`.

    ``forward(images, targets=None)``: ``images`` a non-empty list of ``(C, H_i, W_i)`` float
    Tensors or arrays. Training: ``{"bbox_regression", "classification"}`` scalar losses (module
    docstring). Eval: per image ``{"boxes" (D, 4) float32, "scores" (D,), "labels" (D,) int64}``
    (NumPy) in the original image's pixels, decreasing score.
    """

    def __init__(self, backbone, anchor_generator, size, num_classes, image_mean=None, image_std=None, head=None,
                 score_thresh=0.01, nms_thresh=0.45, detections_per_img=200, iou_thresh=0.5, topk_candidates=400,
                 positive_fraction=0.25, **kwargs):
        super().__init__()
        _check_num_classes("SSD", num_classes)
        if not 0.0 < positive_fraction <= 1.0:
            raise ValueError(f"SSD: positive_fraction must lie in (0, 1], got {positive_fraction!r}")
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"SSD: size must be (W, H) with positive sides, got {size!r}")
        image_mean = [0.485, 0.456, 0.406] if image_mean is None else list(image_mean)
        image_std = [0.229, 0.224, 0.225] if image_std is None else list(image_std)
        self.backbone = backbone
        self.anchor_generator = anchor_generator
        self.box_coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
        if head is None:
            out_channels = getattr(backbone, "out_channels", None)
            if out_channels is None:
                out_channels = retrieve_out_channels(backbone, size, len(image_mean))
            if len(out_channels) != len(anchor_generator.aspect_ratios):
                raise ValueError(f"SSD: the backbone has {len(out_channels)} output maps but the anchor generator "
                                 f"{len(anchor_generator.aspect_ratios)} lists of aspect ratios")
            head = SSDHead(list(out_channels), anchor_generator.num_anchors_per_location(), num_classes)
        self.head = head
        self.proposal_matcher = SSDMatcher(iou_thresh)
        self.transform = GeneralizedRCNNTransform(min(size), max(size), image_mean, image_std, size_divisible=1,
                                                  fixed_size=tuple(size), **kwargs)
        self.num_classes = num_classes
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img, self.topk_candidates = detections_per_img, topk_candidates
        self.neg_to_pos_ratio = (1.0 - positive_fraction) / positive_fraction

    # ---- training -----------------------------------------------------------------------------
    def _check_targets(self, targets, n):
        """Host copies ``{"boxes": float32 (G, 4), "labels": int64 (G,)}`` after
        :func:`~minicnn.models.detection.rpn.check_targets` (errors name the image and the box)."""
        check_targets(targets, n, "SSD", self.num_classes)
        out = []
        for t in targets:
            boxes = np.asarray(to_host(t["boxes"]), dtype=np.float32).reshape(-1, 4)
            out.append({**t, "boxes": boxes, "labels": np.asarray(to_host(t["labels"])).reshape(-1).astype(np.int64)})
        return out

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs):
        """The two losses of the module docstring from the head outputs and the matches
        (``matched_idxs[i]`` ``(A,)``: a ground-truth index or < 0)."""
        reg, logits = head_outputs["bbox_regression"], head_outputs["cls_logits"]
        N_img, A, K = logits.shape
        cls_targets = np.zeros((N_img, A), dtype=np.int64)
        bbox_losses, num_foreground = [], 0
        for i, (target, anchors_i, matched) in enumerate(zip(targets, anchors, matched_idxs)):
            fg = np.flatnonzero(matched >= 0)
            num_foreground += len(fg)
            cls_targets[i, fg] = target["labels"][matched[fg]]
            if len(fg) == 0:
                continue
            goal = self.box_coder.encode_single(target["boxes"][matched[fg]], _host(anchors_i)[fg])
            pred = _index(reg[i], fg)
            goal_t = Tensor._from_array(pred.device.from_numpy(goal.astype(pred.dtype)), pred.device)
            bbox_losses.append(F.smooth_l1_loss(pred, goal_t, reduction="sum"))
        N = max(1, num_foreground)
        bbox_loss = sum(bbox_losses[1:], bbox_losses[0]) if bbox_losses else reg.sum() * 0.0
        t = Tensor._from_array(logits.device.from_numpy(cls_targets.reshape(-1)), logits.device)
        cls_loss = F.cross_entropy(logits.reshape(N_img * A, K), t, reduction="none")
        foreground = cls_targets > 0
        background = hard_negative_mining(cls_loss.numpy().reshape(N_img, A), foreground, self.neg_to_pos_ratio)
        chosen = np.flatnonzero((foreground | background).reshape(-1))
        cls_sum = _index(cls_loss, chosen).sum() if len(chosen) else cls_loss.sum() * 0.0
        return {"bbox_regression": bbox_loss / N, "classification": cls_sum / N}

    # ---- inference ----------------------------------------------------------------------------
    def postprocess_detections(self, head_outputs, image_anchors, image_shapes):
        """Per image (host arrays ``head_outputs[k][i]``, ``image_anchors[i]``): softmax, decode, clip,
        per class ``score > score_thresh`` and top ``topk_candidates``, per-class NMS, ``detections_per_img``."""
        detections = []
        for i, image_shape in enumerate(image_shapes):
            logits = head_outputs["cls_logits"][i].astype(np.float64)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            scores = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
            boxes = self.box_coder.decode_single(head_outputs["bbox_regression"][i], image_anchors[i])
            boxes = clip_boxes_to_image(np.asarray(boxes, dtype=np.float32), image_shape)
            all_boxes, all_scores, all_labels = [], [], []
            for label in range(1, scores.shape[1]):
                idx = np.flatnonzero(scores[:, label] > self.score_thresh)
                idx = idx[np.argsort(-scores[idx, label], kind="stable")[:self.topk_candidates]]
                all_boxes.append(boxes[idx])
                all_scores.append(scores[idx, label])
                all_labels.append(np.full(len(idx), label, dtype=np.int64))
            b, s, lab = np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_labels)
            keep = batched_nms(b, s, lab, self.nms_thresh).numpy()[:self.detections_per_img] if len(b) else \
                np.zeros(0, dtype=np.int64)
            detections.append({"boxes": b[keep].astype(np.float32), "scores": s[keep], "labels": lab[keep]})
        return detections

    def forward(self, images, targets=None):
        images = image_list(images, "SSD")
        if self.training:
            targets = self._check_targets(targets, len(images))
        original_sizes = [tuple(int(v) for v in im.shape[-2:]) for im in images]
        images_t, targets = self.transform(images, targets if self.training else None)
        device = next(iter(self.parameters())).device
        if images_t.tensors.device != device:
            images_t = images_t.to(device)
        features = self.backbone(images_t.tensors)
        if isinstance(features, Tensor):
            features = OrderedDict([("0", features)])
        features = list(features.values())
        head_outputs = self.head(features)
        anchors = self.anchor_generator(images_t, features)
        if self.training:
            matched_idxs = []
            for anchors_i, target in zip(anchors, targets):
                a = _host(anchors_i)
                if len(target["boxes"]) == 0:   # no objects: every default box is background
                    matched_idxs.append(np.full(len(a), Matcher.BELOW_LOW_THRESHOLD, dtype=np.int64))
                else:
                    matched_idxs.append(self.proposal_matcher(box_iou(target["boxes"], a)))
            return self.compute_loss(targets, head_outputs, anchors, matched_idxs)
        host = {k: v.numpy() for k, v in head_outputs.items()}
        detections = self.postprocess_detections(host, [_host(a) for a in anchors], images_t.image_sizes)
        return self.transform.postprocess(detections, images_t.image_sizes, original_sizes)


def default_boxes(model, image):
    """The default boxes ``model`` (an :class:`SSD`) lays over ``image`` ``(C, H, W)``, for pictures:
    ``(level_shapes, num_anchors, boxes)`` with the feature maps' ``(H_k, W_k)``, the boxes per cell
    ``A_k`` and the ``(Σ H_k W_k A_k, 4)`` boxes in pixels of ``image`` (mapped back from the
    transform's fixed size)."""
    was_training = model.training
    model.eval()
    with no_grad():
        device = next(iter(model.parameters())).device
        images_t, _ = model.transform([Tensor(np.asarray(image, dtype=np.float32), device=device)])
        features = model.backbone(images_t.tensors)
        features = [features] if isinstance(features, Tensor) else list(features.values())
        boxes = _host(model.anchor_generator(images_t, features)[0]).astype(np.float64)
    model.train(was_training)
    (h, w), (H, W) = images_t.image_sizes[0], np.asarray(image).shape[-2:]
    boxes *= np.array([W / w, H / h, W / w, H / h])
    return ([tuple(int(v) for v in f.shape[-2:]) for f in features], model.anchor_generator.num_anchors_per_location(),
            boxes)


def retrieve_out_channels(model, size, in_channels=3):
    """The channels of each map ``model`` returns for a zero image of ``size = (W, H)`` (eval, no grad)."""
    was_training = model.training
    model.eval()
    with no_grad():
        device = next(iter(model.parameters())).device
        x = Tensor(np.zeros((1, in_channels, size[1], size[0]), dtype=np.float32), device=device)
        features = model(x)
    model.train(was_training)
    if isinstance(features, Tensor):
        features = OrderedDict([("0", features)])
    return [int(f.shape[1]) for f in features.values()]


# ---- backbones ------------------------------------------------------------------------------------
def _l2_normalize(x, eps=1e-12):
    """``x / max(‖x‖₂ over channels, eps)`` of ``(N, C, H, W)`` (PyTorch's ``F.normalize(x)``)."""
    norm = F.sqrt(F.sum(x * x, axis=1, keepdims=True))
    return x / F.clamp(norm, eps, None)


class SSDFeatureExtractorVGG(nn.Module):
    """torchvision's SSD300 VGG-16 extractor (``highres=False``), six maps for a 300×300 input:

    * ``features`` = VGG-16 up to conv4_3 + ReLU (pool3 with ``ceil_mode``: 75 -> 38), output 0 is
      ``scale_weight[c] · x / ‖x‖₂`` (L2Norm, ``scale_weight`` = 20 initially): 512 × 38²;
    * ``extra[0]`` = pool4, conv5_1..5_3, then ``MaxPool(3, 1, 1)`` (pool5), conv6 (3×3,
      dilation 6, 1024) and conv7 (1×1, 1024): 1024 × 19²;
    * ``extra[1..4]``: 1×1 reduction + 3×3 (stride 2, padding 1 twice; then no padding twice):
      512 × 10², 256 × 5², 256 × 3², 256 × 1².

    ``forward(x) -> OrderedDict "0".."5"``; ``out_channels`` = (512, 1024, 512, 256, 256, 256).
    """

    out_channels = (512, 1024, 512, 256, 256, 256)

    def __init__(self, backbone):
        super().__init__()
        pools = [i for i, m in enumerate(backbone) if isinstance(m, nn.MaxPool2d)]
        if len(pools) != 5:
            raise ValueError(f"SSDFeatureExtractorVGG: expected VGG features with 5 max pools, got {len(pools)}")
        backbone[pools[2]].ceil_mode = True
        self.scale_weight = nn.Parameter(Tensor(np.full(512, 20.0, dtype=np.float32)))
        self.features = backbone[:pools[3]]
        fc = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                           nn.Conv2d(512, 1024, 3, padding=6, dilation=6), nn.ReLU(),
                           nn.Conv2d(1024, 1024, 1), nn.ReLU())
        _xavier_init(fc)
        extra = [nn.Sequential(nn.Conv2d(cin, mid, 1), nn.ReLU(), nn.Conv2d(mid, cout, 3, **conv), nn.ReLU())
                 for cin, mid, cout, conv in ((1024, 256, 512, dict(padding=1, stride=2)),
                                              (512, 128, 256, dict(padding=1, stride=2)),
                                              (256, 128, 256, {}), (256, 128, 256, {}))]
        for block in extra:
            _xavier_init(block)
        self.extra = nn.ModuleList([nn.Sequential(*list(backbone)[pools[3]:-1], fc)] + extra)

    def forward(self, x):
        x = self.features(x)
        output = [self.scale_weight.reshape(1, -1, 1, 1) * _l2_normalize(x)]
        for block in self.extra:
            x = block(x)
            output.append(x)
        return OrderedDict((str(i), v) for i, v in enumerate(output))


def ssd300_vgg16(num_classes=91, weights=None, weights_backbone=None, trainable_backbone_layers=None, **kwargs):
    """torchvision's ``ssd300_vgg16``: :class:`SSDFeatureExtractorVGG`, default boxes with ratios
    ``[[2], [2, 3], [2, 3], [2, 3], [2], [2]]`` (4, 6, 6, 6, 4, 4 per cell: 8,732 boxes),
    scales (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05), steps (8, 16, 32, 64, 100, 300), images
    resized to 300×300, mean (0.48235, 0.45882, 0.40784) and std 1/255 (pixels in 0..255).
    35,641,826 parameters at 91 classes.

    ``trainable_backbone_layers`` (0..5, default 5: all, torchvision's value without pretrained
    weights): the VGG stages (conv1..conv5) left trainable, counted from the last.
    ``weights`` and ``weights_backbone`` must be None: nothing is downloaded.
    """
    if weights is not None or weights_backbone is not None:
        raise ValueError("ssd300_vgg16: weights and weights_backbone must be None (minicnn downloads nothing; load a "
                         "torchvision state_dict with load_state_dict)")
    if "size" in kwargs:
        raise ValueError("ssd300_vgg16: the size is fixed at (300, 300); build SSD directly for another size")
    trainable = 5 if trainable_backbone_layers is None else trainable_backbone_layers
    features = vgg_models.vgg16().features
    stages = [0] + [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)][:-1]
    if isinstance(trainable, bool) or not isinstance(trainable, int) or not 0 <= trainable <= len(stages):
        raise ValueError(f"ssd300_vgg16: trainable_backbone_layers must be in 0..{len(stages)}, got {trainable!r}")
    freeze_before = len(features) if trainable == 0 else stages[len(stages) - trainable]
    for m in list(features)[:freeze_before]:
        for p in m.parameters():
            p.requires_grad = False
    anchor_generator = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                                           scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
                                           steps=[8, 16, 32, 64, 100, 300])
    kwargs = {"image_mean": [0.48235, 0.45882, 0.40784], "image_std": [1.0 / 255.0] * 3, **kwargs}
    return SSD(SSDFeatureExtractorVGG(features), anchor_generator, (300, 300), num_classes, **kwargs)


# ---- a small configuration for 128-px canvases ------------------------------------------------------
def _conv_bn(cin, cout, stride=1, kernel=3):
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU()]


class SSDSmallBackbone(nn.Module):
    """A VGG-style extractor with BatchNorm: map 0 at stride 8, then one map per stride-2 block.

    ``features``: three stages of ``depth`` (1, 1, 2) ``conv3×3-BN-ReLU`` of ``width·(1, 2, 4)``
    channels, a 2×2 max pool after the first two, then a stride-2 ``conv3×3-BN-ReLU``:
    ``(N, C, S, S) -> (N, 4w, S/8, S/8)`` = map 0. ``extra[k]``: 1×1 to ``2w``, then 3×3 stride 2
    (padding 1) to ``4w``, each halving the map (``num_maps − 1`` of them; S = 128 and 5 maps:
    16², 8², 4², 2², 1²). ``forward(x) -> OrderedDict "0".."num_maps−1"``; ``out_channels`` ``[4w]·num_maps``.
    """

    def __init__(self, in_channels=1, width=16, num_maps=5, depth=(1, 1, 2)):
        super().__init__()
        layers, c = [], in_channels
        for stage, (mult, d) in enumerate(zip((1, 2, 4), depth)):
            for _ in range(d):
                layers += _conv_bn(c, width * mult)
                c = width * mult
            if stage < 2:
                layers.append(nn.MaxPool2d(2, 2))
        layers += _conv_bn(c, 4 * width, stride=2)
        self.features = nn.Sequential(*layers)
        self.extra = nn.ModuleList([nn.Sequential(*_conv_bn(4 * width, 2 * width, kernel=1),
                                                  *_conv_bn(2 * width, 4 * width, stride=2))
                                    for _ in range(num_maps - 1)])
        self.out_channels = [4 * width] * num_maps

    def forward(self, x):
        x = self.features(x)
        output = [x]
        for block in self.extra:
            x = block(x)
            output.append(x)
        return OrderedDict((str(i), v) for i, v in enumerate(output))


def ssd_small(num_classes=11, in_channels=1, width=16, size=128, aspect_ratios=((2,), (2, 3), (2, 3), (2,), (2,)),
              scales=(0.12, 0.22, 0.38, 0.6, 0.8, 1.0), image_mean=(0.1307,), image_std=(0.3081,), depth=(1, 1, 2),
              **kwargs):
    """An SSD for small single-channel canvases trained on 1–2 cores: :class:`SSDSmallBackbone`
    (``width`` 16, BatchNorm) with one map per entry of ``aspect_ratios`` (5: 16², 8², 4², 2², 1² at
    ``size`` 128), default boxes of ``scales`` (fractions of ``size``: 15, 28, 49, 77, 102 px for
    the square boxes at 128), images resized to ``size × size``. Keywords as :class:`SSD`."""
    backbone = SSDSmallBackbone(in_channels, width, len(aspect_ratios), depth)
    anchor_generator = DefaultBoxGenerator([list(r) for r in aspect_ratios], scales=list(scales))
    return SSD(backbone, anchor_generator, (size, size), num_classes, image_mean=list(image_mean),
               image_std=list(image_std), **kwargs)
