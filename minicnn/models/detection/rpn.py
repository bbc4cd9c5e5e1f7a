"""Region Proposal Network (Faster R-CNN): objectness and box deltas for every anchor, then proposals.

Per feature map the head predicts, for each of the ``A`` anchors of every cell, an objectness logit
and R-CNN deltas ``(dx, dy, dw, dh)`` (box coder weights ``(1, 1, 1, 1)``). Proposals: per image and
per level the ``pre_nms_top_n`` most object-like anchors, decoded, clipped to the image, boxes
smaller than ``min_size`` dropped, scores ``sigmoid(logit) >= score_thresh`` kept, NMS per level at
``nms_thresh``, the ``post_nms_top_n`` best kept. Training targets (torchvision's): an anchor is
positive at IoU >= 0.7 with a ground truth (and every ground truth keeps its best anchors), negative
below 0.3; 256 anchors sampled per image, at most half positive; loss = BCE-with-logits of the
objectness over the sampled anchors (mean) + smooth-L1 (β = 1/9) of the positives' deltas summed and
divided by the number of sampled anchors. Target assignment and proposal filtering run on NumPy
arrays outside autograd; the losses are differentiable in the head's outputs.
"""
import numpy as np

from ... import nn
from ...functional import binary_cross_entropy_with_logits, box_iou, cat, smooth_l1_loss
from ...random import get_rng
from ...tensor import Tensor, to_host
from ._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher
from ...functional.boxes import clip_boxes_to_image, encode_boxes, remove_small_boxes
from ...functional.nms import batched_nms

__all__ = ["RPNHead", "RegionProposalNetwork", "concat_box_prediction_layers", "check_targets"]


class RPNHead(nn.Module):
    """A 3×3 convolution + ReLU shared by all levels, then 1×1 convolutions to ``A`` objectness
    logits and ``4A`` box deltas per cell (weights ~ N(0, 0.01²), biases 0, as torchvision).

    Args:
        in_channels: channels of every feature map.
        num_anchors: anchors per cell ``A``.
        conv_depth: number of 3×3 conv + ReLU blocks (1).

    Forward: list of ``Tensor[N, C, H_l, W_l]`` -> ``(logits, bbox_reg)``, lists of
    ``Tensor[N, A, H_l, W_l]`` and ``Tensor[N, 4A, H_l, W_l]``.
    """

    def __init__(self, in_channels, num_anchors, conv_depth=1):
        super().__init__()
        self.conv = nn.Sequential(*[nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU())
                                    for _ in range(conv_depth)])
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, 4 * num_anchors, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.constant_(m.bias, 0.0)

    def forward(self, x):
        logits, bbox_reg = [], []
        for feature in x:
            t = self.conv(feature)
            logits.append(self.cls_logits(t))
            bbox_reg.append(self.bbox_pred(t))
        return logits, bbox_reg


def _permute_and_flatten(layer, C):
    """``(N, A·C, H, W) -> (N, H·W·A, C)``: cells row-major, then anchors (the anchors' order)."""
    N, AC, H, W = layer.shape
    A = AC // C
    return layer.reshape(N, A, C, H, W).permute(0, 3, 4, 1, 2).reshape(N, H * W * A, C)


def concat_box_prediction_layers(box_cls, box_regression):
    """Per-level head outputs -> ``(Σ_images Σ_levels H·W·A, C)`` class logits and ``(…, 4)``
    deltas, images outer, then levels, cells, anchors (torchvision's layout)."""
    cls, reg = [], []
    for c, r in zip(box_cls, box_regression):
        A = r.shape[1] // 4
        cls.append(_permute_and_flatten(c, c.shape[1] // A))
        reg.append(_permute_and_flatten(r, 4))
    C = cls[0].shape[2]
    cls = cls[0] if len(cls) == 1 else cat(cls, axis=1)
    reg = reg[0] if len(reg) == 1 else cat(reg, axis=1)
    return cls.reshape(-1, C), reg.reshape(-1, 4)


def image_list(images, op):
    """The images of a detector's call as a list of ``(C, H, W)`` tensors: a batch Tensor
    ``(N, C, H, W)`` is split; anything else must be a non-empty list or tuple of 3-D images
    (ValueError naming ``op`` and the offending image otherwise)."""
    if isinstance(images, Tensor) and images.ndim == 4:
        images = [images[i] for i in range(images.shape[0])]
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise ValueError(f"{op}: images must be a non-empty list of (C, H, W) tensors, got "
                         f"{type(images).__name__}; a batch tensor (N, C, H, W) can be passed as list(x)")
    for i, im in enumerate(images):
        if getattr(im, "ndim", None) != 3:
            raise ValueError(f"{op}: image {i} must be 3-D (C, H, W), got shape {getattr(im, 'shape', None)}")
    return list(images)


def check_targets(targets, num_images, op, num_classes=None, need_masks=False):
    """Validate training targets before anything runs: ValueError/TypeError naming the image and box.

    Each target needs ``boxes`` ``(G, 4)`` finite with ``x1 < x2`` and ``y1 < y2``, ``labels``
    ``(G,)`` integers (in ``1 .. num_classes − 1`` when ``num_classes`` is given) and, with
    ``need_masks``, ``masks`` ``(G, H, W)``.
    """
    if targets is None:
        raise ValueError(f"{op}: targets must be given in training mode")
    if len(targets) != num_images:
        raise ValueError(f"{op}: {len(targets)} targets for {num_images} images")
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
            raise ValueError(f"{op}: targets[{i}] must be a dict with 'boxes' and 'labels'")
        boxes, labels = to_host(t["boxes"]), to_host(t["labels"])
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"{op}: targets[{i}]['boxes'] must have shape (G, 4), got {boxes.shape}")
        if boxes.dtype.kind != "f":
            raise TypeError(f"{op}: targets[{i}]['boxes'] must be floating, got {boxes.dtype}")
        if labels.reshape(-1).shape[0] != boxes.shape[0]:
            raise ValueError(f"{op}: targets[{i}] has {boxes.shape[0]} boxes but {labels.size} labels")
        if labels.size and labels.dtype.kind not in "iu":
            raise TypeError(f"{op}: targets[{i}]['labels'] must be integers, got {labels.dtype}")
        for j, b in enumerate(boxes):
            if not np.isfinite(b).all():
                raise ValueError(f"{op}: targets[{i}] box {j} is not finite: {b.tolist()}")
            if b[2] <= b[0] or b[3] <= b[1]:
                raise ValueError(f"{op}: targets[{i}] box {j} must have x1 < x2 and y1 < y2 (positive width "
                                 f"and height), got {b.tolist()}")
        lab = labels.reshape(-1)
        if num_classes is not None and lab.size and (lab.min() < 1 or lab.max() >= num_classes):
            j = int(np.flatnonzero((lab < 1) | (lab >= num_classes))[0])
            raise ValueError(f"{op}: targets[{i}] label of box {j} is {int(lab[j])}, must lie in "
                             f"1..{num_classes - 1} (0 is the background)")
        if need_masks:
            if "masks" not in t:
                raise ValueError(f"{op}: targets[{i}] must have 'masks' (G, H, W) for a mask head")
            masks = to_host(t["masks"])
            if masks.ndim != 3 or masks.shape[0] != boxes.shape[0]:
                raise ValueError(f"{op}: targets[{i}]['masks'] must have shape ({boxes.shape[0]}, H, W), "
                                 f"got {masks.shape}")


def _index(t, idx):
    """``t[idx]`` with a host integer index array moved to ``t``'s device."""
    return t[Tensor._from_array(t.device.from_numpy(np.asarray(idx, dtype=np.int64)), t.device)]


class RegionProposalNetwork(nn.Module):
    """The RPN: head, anchors, proposals, and in training its losses (module docstring).

    Args:
        anchor_generator: an ``AnchorGenerator`` (``(images, features) -> list of (Σ, 4)`` anchors).
        head: e.g. :class:`RPNHead`.
        fg_iou_thresh, bg_iou_thresh: 0.7 and 0.3.
        batch_size_per_image, positive_fraction: 256 and 0.5.
        pre_nms_top_n, post_nms_top_n: dicts ``{"training": n, "testing": n}`` (2000/2000, 1000/1000).
        nms_thresh: 0.7.  score_thresh: 0.0 (keeps ``sigmoid >= score_thresh``).
        generator: a seed or ``numpy.random.Generator`` for the anchor sampling (default: the global
            generator of :mod:`minicnn.random`).

    Forward ``(images, features, targets=None)`` with an ``ImageList`` and a dict (or list) of
    ``Tensor[N, C, H_l, W_l]`` -> ``(boxes, losses)``: per image a float array ``(P_i, 4)`` of
    proposals (decreasing objectness) and ``{"loss_objectness", "loss_rpn_box_reg"}`` in training
    (``{}`` in eval).
    """

    def __init__(self, anchor_generator, head, fg_iou_thresh, bg_iou_thresh, batch_size_per_image,
                 positive_fraction, pre_nms_top_n, post_nms_top_n, nms_thresh, score_thresh=0.0, generator=None):
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self._pre_nms_top_n = dict(pre_nms_top_n)
        self._post_nms_top_n = dict(post_nms_top_n)
        self.nms_thresh = float(nms_thresh)
        self.score_thresh = float(score_thresh)
        self.min_size = 1e-3
        self.generator = generator

    def pre_nms_top_n(self):
        return self._pre_nms_top_n["training" if self.training else "testing"]

    def post_nms_top_n(self):
        return self._post_nms_top_n["training" if self.training else "testing"]

    def assign_targets_to_anchors(self, anchors, targets):
        """Per image: labels ``(Σ,)`` float (1 positive, 0 negative, −1 ignored) and the index of
        each anchor's matched ground truth (int64, −1 where none)."""
        labels, matched = [], []
        for anchors_i, t in zip(anchors, targets):
            gt = to_host(t["boxes"]).reshape(-1, 4)
            if len(gt) == 0:  # an image without objects: every anchor is a negative
                labels.append(np.zeros(len(anchors_i), np.float32))
                matched.append(np.full(len(anchors_i), -1, np.int64))
                continue
            idx = self.proposal_matcher(box_iou(gt.astype(anchors_i.dtype), anchors_i))
            lab = (idx >= 0).astype(np.float32)
            lab[idx == Matcher.BETWEEN_THRESHOLDS] = -1.0
            labels.append(lab)
            matched.append(idx)
        return labels, matched

    def filter_proposals(self, proposals_fn, objectness, image_shapes, num_anchors_per_level):
        """Top-n per level, decode (``proposals_fn(image, anchor indices) -> boxes``), clip, drop
        small and low-scoring boxes, NMS per level, keep ``post_nms_top_n``; returns per image
        ``(boxes, scores)`` arrays."""
        num_images = len(image_shapes)
        obj = objectness.reshape(num_images, -1)
        levels = np.concatenate([np.full(n, i, np.int64) for i, n in enumerate(num_anchors_per_level)])
        final_boxes, final_scores = [], []
        for i in range(num_images):
            top, offset = [], 0
            for n in num_anchors_per_level:
                ob = obj[i, offset:offset + n]
                top.append(np.argsort(-ob, kind="stable")[:min(self.pre_nms_top_n(), n)] + offset)
                offset += n
            top = np.concatenate(top)
            boxes = clip_boxes_to_image(proposals_fn(i, top), image_shapes[i])
            logits = obj[i, top]
            scores = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(logits.dtype)
            lvl = levels[top]
            keep = remove_small_boxes(boxes, self.min_size)
            boxes, scores, lvl = boxes[keep], scores[keep], lvl[keep]
            keep = np.flatnonzero(scores >= self.score_thresh)
            boxes, scores, lvl = boxes[keep], scores[keep], lvl[keep]
            keep = batched_nms(boxes, scores, lvl, self.nms_thresh).numpy()[:self.post_nms_top_n()]
            final_boxes.append(boxes[keep])
            final_scores.append(scores[keep])
        return final_boxes, final_scores

    def compute_loss(self, objectness, pred_bbox_deltas, labels, regression_targets_fn):
        """``(objectness_loss, box_loss)`` over the sampled anchors of all images.

        ``objectness`` ``Tensor[Σ_images Σ]`` logits, ``pred_bbox_deltas`` ``Tensor[Σ_images Σ, 4]``,
        ``labels`` per image, ``regression_targets_fn(positive flat indices) -> (P, 4)`` targets.
        """
        self.fg_bg_sampler.rng = get_rng(self.generator)
        pos_masks, neg_masks = self.fg_bg_sampler(labels)
        pos = np.flatnonzero(np.concatenate(pos_masks))
        neg = np.flatnonzero(np.concatenate(neg_masks))
        sampled = np.concatenate([pos, neg])
        flat_labels = np.concatenate(labels)
        if len(sampled) == 0:  # nothing to learn from (every anchor ignored)
            zero = objectness.sum() * 0.0
            return zero, pred_bbox_deltas.sum() * 0.0
        dev, dtype = objectness.device, objectness.dtype
        if len(pos):
            targets = Tensor(regression_targets_fn(pos).astype(dtype), device=dev)
            box_loss = smooth_l1_loss(_index(pred_bbox_deltas, pos), targets, beta=1 / 9, reduction="sum") / len(sampled)
        else:
            box_loss = pred_bbox_deltas.sum() * 0.0
        target_obj = Tensor(flat_labels[sampled].astype(dtype), device=dev)
        objectness_loss = binary_cross_entropy_with_logits(_index(objectness, sampled), target_obj)
        return objectness_loss, box_loss

    def forward(self, images, features, targets=None):
        features = list(features.values()) if isinstance(features, dict) else list(features)
        objectness, pred_bbox_deltas = self.head(features)
        anchors = [np.asarray(to_host(a)).reshape(-1, 4) for a in self.anchor_generator(images, features)]
        num_images = len(anchors)
        num_anchors_per_level = [o.shape[1] * o.shape[2] * o.shape[3] for o in objectness]
        objectness, pred_bbox_deltas = concat_box_prediction_layers(objectness, pred_bbox_deltas)
        deltas = pred_bbox_deltas.numpy().reshape(num_images, -1, 4)  # proposals are not differentiated

        def proposals_fn(i, idx):
            return self.box_coder.decode_single(deltas[i, idx], anchors[i][idx].astype(deltas.dtype))

        boxes, _ = self.filter_proposals(proposals_fn, objectness.numpy(), images.image_sizes,
                                         num_anchors_per_level)
        losses = {}
        if self.training:
            if targets is None:
                raise ValueError("RegionProposalNetwork: targets must be given in training mode")
            labels, matched = self.assign_targets_to_anchors(anchors, targets)
            sizes = np.cumsum([0] + [len(a) for a in anchors])

            def regression_targets_fn(flat_idx):
                out = np.zeros((len(flat_idx), 4), np.float64)
                img = np.searchsorted(sizes, flat_idx, side="right") - 1
                for i in np.unique(img):
                    rows = np.flatnonzero(img == i)
                    local = flat_idx[rows] - sizes[i]
                    gt = to_host(targets[i]["boxes"]).reshape(-1, 4)[matched[i][local]]
                    out[rows] = encode_boxes(gt.astype(np.float64), anchors[i][local].astype(np.float64),
                                             self.box_coder.weights)
                return out

            loss_objectness, loss_rpn_box_reg = self.compute_loss(objectness.reshape(-1), pred_bbox_deltas,
                                                                  labels, regression_targets_fn)
            losses = {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_rpn_box_reg}
        return boxes, losses
