"""Fast R-CNN (Girshick, ICCV 2015): one feature map per image, RoI max pooling over region proposals.

Pipeline: ``transform`` (normalise, resize, batch: :class:`GeneralizedRCNNTransform`) → ``backbone``
(one feature map of stride ``1/spatial_scale``) → :func:`~minicnn.functional.roi_pool` 7 × 7 of each
selective-search proposal → ``box_head`` (:class:`TwoMLPHead`) → ``box_predictor``
(:class:`FastRCNNPredictor`: ``K + 1`` class logits and class-specific deltas).

Training (the paper's minibatches): the ground-truth boxes join the proposals; a proposal is
foreground (its best ground truth's class) at IoU ``>= 0.5``, background at IoU in ``[0.1, 0.5)``,
ignored below 0.1 (every proposal is background in an image without objects); 64 RoIs are sampled
per image, at most 25% foreground. Multi-task loss (:func:`~minicnn.models.detection.roi_heads.fastrcnn_loss`):
``L = CE(p, u) + [u >= 1] smoothL1(t^u − v)`` with ``v`` the box deltas under coder weights
``(10, 10, 5, 5)``; as in torchvision, β = 1/9 and the box term is divided by the number of sampled RoIs.

Inference: softmax scores, class-specific boxes decoded and clipped, score > 0.05, per-class NMS
(0.3, the paper's), at most 100 per image, boxes mapped back to the input image's pixels.
"""
import hashlib

import numpy as np

from ... import nn
from ...functional import box_iou, roi_pool, softmax
from ...functional.boxes import encode_boxes
from ...random import get_rng
from ...tensor import to_host
from ._utils import BalancedPositiveNegativeSampler, BoxCoder, postprocess_detections
from .faster_rcnn import FastRCNNPredictor, TwoMLPHead
from .roi_heads import fastrcnn_loss
from .rpn import check_targets, image_list
from .selective_search import selective_search
from .transform import GeneralizedRCNNTransform, resize_boxes

__all__ = ["FastRCNN", "fastrcnn_small", "small_conv_backbone", "assign_proposals", "sample_proposals",
           "check_proposals", "ProposalCache"]


def assign_proposals(proposals, gt_boxes, gt_labels, fg_iou_thresh=0.5, bg_iou_thresh_hi=0.5, bg_iou_thresh_lo=0.1):
    """Labels and matched ground truths of one image's proposals ``(P, 4)``.

    With ``m_p = max_g IoU(p, g)`` and ``g* = argmax`` (the first maximum): ``label_p =
    gt_labels[g*]`` if ``m_p >= fg_iou_thresh``, ``0`` (background) if ``bg_iou_thresh_lo <= m_p <
    bg_iou_thresh_hi``, else ``−1`` (not sampled). No ground truth: every label is 0.

    Returns ``(labels int64 (P,), matched int64 (P,))``.
    """
    p = np.asarray(proposals, np.float64).reshape(-1, 4)
    g = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    if len(g) == 0:
        return np.zeros(len(p), np.int64), np.zeros(len(p), np.int64)
    iou = np.asarray(box_iou(g, p)).reshape(len(g), len(p))
    matched = iou.argmax(axis=0).astype(np.int64)
    best = iou.max(axis=0) if len(p) else np.zeros(0)
    labels = np.asarray(gt_labels).reshape(-1)[matched].astype(np.int64)
    labels[best < fg_iou_thresh] = -1
    labels[(best >= bg_iou_thresh_lo) & (best < bg_iou_thresh_hi)] = 0
    return labels, matched


def sample_proposals(proposals, targets, sampler, weights, fg_iou_thresh=0.5, bg_iou_thresh_hi=0.5,
                     bg_iou_thresh_lo=0.1):
    """The training RoIs of each image: ground truth appended, :func:`assign_proposals`, ``sampler``.

    Returns per image ``(boxes (S_i, 4) float32, labels int64 (S_i,), regression_targets float64
    (S_i, 4))`` (deltas of the matched ground truth under ``weights``, zeros on background)."""
    out_boxes, out_labels, out_targets = [], [], []
    for p, t in zip(proposals, targets):
        g = np.asarray(to_host(t["boxes"]), np.float32).reshape(-1, 4)
        p = np.concatenate([np.asarray(p, np.float32).reshape(-1, 4), g])
        labels, matched = assign_proposals(p, g, to_host(t["labels"]), fg_iou_thresh, bg_iou_thresh_hi,
                                           bg_iou_thresh_lo)
        pos, neg = sampler([labels])
        keep = np.flatnonzero(pos[0] | neg[0])
        p, labels, matched = p[keep], labels[keep], matched[keep]
        reg = np.zeros((len(keep), 4))
        fg = np.flatnonzero(labels > 0)
        if len(fg):
            reg[fg] = encode_boxes(g[matched[fg]].astype(np.float64), p[fg].astype(np.float64), weights)
        out_boxes.append(p), out_labels.append(labels), out_targets.append(reg)
    return out_boxes, out_labels, out_targets


def check_proposals(proposals, images, op):
    """Proposals as a list of float32 ``(R_i, 4)`` arrays, one per image: finite, ``x1 <= x2``, ``y1 <= y2``."""
    if not isinstance(proposals, (list, tuple)) or len(proposals) != len(images):
        got = len(proposals) if hasattr(proposals, "__len__") else "?"
        raise ValueError(f"{op}: proposals must be a list of {len(images)} (R_i, 4) arrays (one per image), got "
                         f"{type(proposals).__name__} of length {got}")
    out = []
    for i, p in enumerate(proposals):
        a = np.asarray(to_host(p))
        if a.size == 0:
            a = a.reshape(0, 4)
        if a.ndim != 2 or a.shape[1] != 4:
            raise ValueError(f"{op}: proposals[{i}] must have shape (R, 4) (x1, y1, x2, y2), got {a.shape}")
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{op}: proposals[{i}] must be numeric, got dtype {a.dtype}")
        if not np.isfinite(a).all():
            raise ValueError(f"{op}: proposals[{i}] holds NaN or inf")
        if ((a[:, 2] < a[:, 0]) | (a[:, 3] < a[:, 1])).any():
            j = int(np.flatnonzero((a[:, 2] < a[:, 0]) | (a[:, 3] < a[:, 1]))[0])
            raise ValueError(f"{op}: proposals[{i}] row {j} = {a[j].tolist()} has x2 < x1 or y2 < y1")
        out.append(a.astype(np.float32))
    return out


class ProposalCache:
    """Selective-search proposals per image, computed once: keyed by the SHA-1 of the image's bytes.

    ``cache(image)`` returns float32 ``(R, 4)`` boxes of a ``(C, H, W)`` image in ``[0, 1]``;
    ``options`` go to :func:`~minicnn.models.detection.selective_search.selective_search`;
    ``max_proposals`` keeps the best-ranked ones; ``max_entries`` bounds the memory (oldest dropped).
    """

    def __init__(self, max_proposals=2000, max_entries=20000, **options):
        self.options, self.max_proposals, self.max_entries = options, max_proposals, max_entries
        self.store = {}

    def __call__(self, image):
        x = np.ascontiguousarray(to_host(image), np.float32)
        key = hashlib.sha1(x.tobytes() + str(x.shape).encode()).hexdigest()
        if key not in self.store:
            if len(self.store) >= self.max_entries:
                self.store.pop(next(iter(self.store)))
            self.store[key] = selective_search(x, **self.options)[:self.max_proposals]
        return self.store[key]


class FastRCNN(nn.Module):
    """Fast R-CNN over externally supplied or selective-search proposals (module docstring).

    Args:
        backbone: ``(N, C, H, W) -> Tensor (N, out_channels, H/s, W/s)`` with ``out_channels``.
        num_classes: classes including the background.
        spatial_scale: ``1/s`` (default ``1/backbone.stride``).
        min_size, max_size, image_mean, image_std, size_divisible: the transform.
        roi_output_size: 7; representation_size: the two fc layers' width (4096 in the paper).
        batch_size_per_image, positive_fraction: 64 and 0.25; fg_iou_thresh 0.5; bg_iou_thresh_hi 0.5,
            bg_iou_thresh_lo 0.1; bbox_reg_weights ``(10, 10, 5, 5)``.
        score_thresh, nms_thresh, detections_per_img: 0.05, 0.3, 100.
        proposal_cache: a :class:`ProposalCache` (default: selective search "fast", 2,000 boxes).
        generator: seed or Generator of the RoI sampling (default: :mod:`minicnn.random`'s).

    ``forward(images, targets=None, proposals=None)``: ``images`` a list of ``(C, H_i, W_i)`` float
    images in ``[0, 1]`` (or an ``(N, C, H, W)`` Tensor), ``targets`` torchvision's dicts
    (``boxes`` ``(G, 4)``, ``labels`` in ``1..num_classes−1``; ``G = 0`` allowed), ``proposals`` a list
    of ``(R_i, 4)`` boxes in the images' pixels (None: selective search through the cache).
    Training returns ``{"loss_classifier", "loss_box_reg"}``; eval a list of ``{"boxes" (D, 4),
    "labels" (D,), "scores" (D,)}`` NumPy arrays per image.
    """

    def __init__(self, backbone, num_classes, spatial_scale=None, min_size=128, max_size=1333, image_mean=None,
                 image_std=None, size_divisible=32, roi_output_size=7, representation_size=1024, box_head=None,
                 box_predictor=None, batch_size_per_image=64, positive_fraction=0.25, fg_iou_thresh=0.5,
                 bg_iou_thresh_hi=0.5, bg_iou_thresh_lo=0.1, bbox_reg_weights=(10.0, 10.0, 5.0, 5.0),
                 score_thresh=0.05, nms_thresh=0.3, detections_per_img=100, proposal_cache=None, generator=None):
        super().__init__()
        name = type(self).__name__
        if not hasattr(backbone, "out_channels"):
            raise ValueError(f"{name}: backbone must have an attribute out_channels")
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"{name}: num_classes must be an integer >= 2 (with the background), got {num_classes!r}")
        if spatial_scale is None:
            if not hasattr(backbone, "stride"):
                raise ValueError(f"{name}: give spatial_scale (the backbone has no attribute stride)")
            spatial_scale = 1.0 / backbone.stride
        channels = len(image_mean) if image_mean is not None else getattr(backbone, "in_channels", 1)
        self.transform = GeneralizedRCNNTransform(min_size, max_size, image_mean or [0.0] * channels,
                                                  image_std or [1.0] * channels, size_divisible)
        self.backbone = backbone
        self.box_head = box_head or TwoMLPHead(backbone.out_channels * roi_output_size ** 2, representation_size)
        self.box_predictor = box_predictor or FastRCNNPredictor(representation_size, int(num_classes))
        self.num_classes, self.spatial_scale = int(num_classes), float(spatial_scale)
        self.roi_output_size = roi_output_size
        self.sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.fg_iou_thresh = fg_iou_thresh
        self.bg_iou_thresh_hi, self.bg_iou_thresh_lo = bg_iou_thresh_hi, bg_iou_thresh_lo
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img
        self.proposal_cache = proposal_cache if proposal_cache is not None else ProposalCache()
        self.generator = np.random.default_rng(generator) if isinstance(generator, (int, np.integer)) else generator

    @property
    def features(self):
        """The backbone (the name the command line's classification pre-training looks for)."""
        return self.backbone

    def _inputs(self, images, targets, proposals):
        name = type(self).__name__
        images = image_list(images, name)
        if self.training:
            check_targets(targets, len(images), name, self.num_classes)
        if proposals is None:
            proposals = [self.proposal_cache(im) for im in images]
        return images, check_proposals(proposals, images, name)

    def roi_features(self, features, boxes):
        """``box_head(roi_pool(features, boxes, 7, spatial_scale))``: per-image boxes -> ``(ΣR_i, representation)``."""
        pooled = roi_pool(features, [b.astype(np.float32) for b in boxes], self.roi_output_size, self.spatial_scale)
        return self.box_head(pooled)

    def forward(self, images, targets=None, proposals=None):
        images, proposals = self._inputs(images, targets, proposals)
        original_sizes = [tuple(int(v) for v in im.shape[-2:]) for im in images]
        image_list, targets = self.transform(images, targets)
        proposals = [resize_boxes(p, o, s) for p, o, s in zip(proposals, original_sizes, image_list.image_sizes)]
        features = self.backbone(image_list.tensors)
        if self.training:
            self.sampler.rng = get_rng(self.generator)
            boxes, labels, reg_targets = sample_proposals(
                proposals, targets, self.sampler, self.box_coder.weights, self.fg_iou_thresh, self.bg_iou_thresh_hi,
                self.bg_iou_thresh_lo)
            class_logits, box_regression = self.box_predictor(self.roi_features(features, boxes))
            loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, reg_targets)
            return {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
        if sum(len(p) for p in proposals) == 0:
            return [{"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64),
                     "scores": np.zeros(0, np.float32)} for _ in images]
        class_logits, box_regression = self.box_predictor(self.roi_features(features, proposals))
        result = detections_from_logits(class_logits, box_regression, proposals, image_list.image_sizes,
                                        self.box_coder, self.score_thresh, self.nms_thresh, self.detections_per_img)
        return self.transform.postprocess(result, image_list.image_sizes, original_sizes)


def detections_from_logits(class_logits, box_regression, proposals, image_sizes, box_coder, score_thresh,
                           nms_thresh, detections_per_img):
    """Per image ``{"boxes", "labels", "scores"}``: softmax over ``(ΣR_i, K+1)`` logits, deltas
    ``(ΣR_i, 4(K+1))`` decoded against each image's proposals, then :func:`postprocess_detections`
    over the foreground classes (clip, score threshold, per-class NMS, top-k)."""
    scores_all = softmax(class_logits, dim=1).numpy()
    reg = box_regression.numpy()
    C = scores_all.shape[1]
    out, start = [], 0
    for p, size in zip(proposals, image_sizes):
        rows = slice(start, start + len(p))
        start += len(p)
        boxes = box_coder.decode_single(reg[rows], p.astype(reg.dtype)).reshape(-1, C, 4)
        scores = scores_all[rows]
        labels = np.broadcast_to(np.arange(C), scores.shape)
        out.append(postprocess_detections(boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1),
                                          labels[:, 1:].reshape(-1), size, score_thresh, nms_thresh,
                                          detections_per_img))
    return out


class _ConvBackbone(nn.Module):
    """``features(x)``: VGG-style stages of two 3×3 conv + BN + ReLU, a 2×2 max pool after each stage
    but the last (after the last too with ``pool_last``); ``stride = 2^(pools)``, ``out_channels = widths[-1]``."""

    def __init__(self, in_channels, widths, pool_last=False):
        super().__init__()
        layers, c = [], in_channels
        for s, w in enumerate(widths):
            for _ in range(2):
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
                c = w
            if s < len(widths) - 1 or pool_last:
                layers.append(nn.MaxPool2d(2, stride=2))
        self.features = nn.Sequential(*layers)
        self.in_channels, self.out_channels = in_channels, widths[-1]
        self.stride = 2 ** (len(widths) - (0 if pool_last else 1))

    def forward(self, x):
        return self.features(x)


def small_conv_backbone(in_channels=1, widths=(32, 64, 128, 128), pool_last=False):
    """A small VGG-like backbone (:class:`_ConvBackbone`): stride 8 with four stages (16 with ``pool_last``)."""
    return _ConvBackbone(in_channels, tuple(widths), pool_last)


def fastrcnn_small(num_classes=11, in_channels=1, image_size=128, widths=(32, 64, 128, 128), representation_size=256,
                   proposal_options=None, **kwargs):
    """Fast R-CNN for small images (digit canvases: 10 classes + background): :func:`small_conv_backbone`
    (stride 8), 7 × 7 RoI pooling, fc layers of ``representation_size``, images not resized.
    ``proposal_options`` go to the :class:`ProposalCache`; ``**kwargs`` to :class:`FastRCNN`."""
    backbone = small_conv_backbone(in_channels, widths)
    cache = ProposalCache(**(proposal_options or {}))
    return FastRCNN(backbone, num_classes, min_size=image_size, max_size=image_size, image_mean=[0.0] * in_channels,
                    image_std=[1.0] * in_channels, representation_size=representation_size, proposal_cache=cache,
                    **kwargs)
