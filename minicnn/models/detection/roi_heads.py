"""The second stage of Faster / Mask R-CNN: classify and refine each proposal, and predict its mask.

Training (torchvision's rules): the ground-truth boxes are added to each image's proposals; a
proposal is foreground (the class of its best ground truth) at IoU >= 0.5, background below; 512 are
sampled per image, at most 25% foreground. Box head loss (:func:`fastrcnn_loss`): cross-entropy of the
class logits over the samples (mean) + smooth-L1 (β = 1/9) of the true class's deltas (coder weights
``(10, 10, 5, 5)``) over the foreground, summed and divided by the number of samples. Mask loss
(:func:`maskrcnn_loss`): per foreground proposal, BCE-with-logits between its true class's ``M × M``
mask logits and the matched ground-truth mask cropped to the proposal by RoI align.

Inference: softmax scores, class-specific boxes decoded and clipped, score > 0.05, NMS 0.5 per class,
the 100 best per image; masks: sigmoid of the predicted class's ``M × M`` logits, pasted into the
image by :func:`paste_masks_in_image` (called by the transform's ``postprocess``).
"""
import numpy as np

from ... import nn
from ...functional import binary_cross_entropy_with_logits, box_iou, cross_entropy, roi_align, sigmoid, smooth_l1_loss
from ...functional.boxes import encode_boxes
from ...functional.resample import linear_table
from ...random import get_rng
from ...tensor import Tensor, to_host
from ._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher, postprocess_detections
from .rpn import _index

__all__ = ["RoIHeads", "fastrcnn_loss", "maskrcnn_loss", "maskrcnn_inference", "project_masks_on_boxes",
           "paste_masks_in_image"]


def fastrcnn_loss(class_logits, box_regression, labels, regression_targets):
    """Fast R-CNN's multi-task loss ``(classification_loss, box_loss)``.

    Args:
        class_logits: ``Tensor[K, num_classes]``; box_regression: ``Tensor[K, 4·num_classes]``.
        labels: per image int arrays (``0`` background), ``Σ = K``.
        regression_targets: per image ``(K_i, 4)`` deltas (only the foreground rows are read).

    ``classification_loss = mean_k CE(class_logits[k], labels[k])``;
    ``box_loss = Σ_{k: labels[k] > 0} smoothL1_{β=1/9}(box_regression[k, labels[k]] − t[k]) / K``.
    """
    labels = np.concatenate([np.asarray(to_host(lab)).reshape(-1) for lab in labels]).astype(np.int64)
    targets = np.concatenate([np.asarray(to_host(t), np.float64).reshape(-1, 4) for t in regression_targets])
    dev = class_logits.device
    classification_loss = cross_entropy(class_logits, Tensor(dev.from_numpy(labels), device=dev))
    pos = np.flatnonzero(labels > 0)
    K = class_logits.shape[0]
    if len(pos) == 0:
        return classification_loss, box_regression.sum() * 0.0
    flat = pos * (box_regression.shape[1] // 4) + labels[pos]  # row of (k, class) in the (K·C, 4) view
    picked = _index(box_regression.reshape(-1, 4), flat)
    t = Tensor(targets[pos].astype(box_regression.dtype), device=dev)
    box_loss = smooth_l1_loss(picked, t, beta=1 / 9, reduction="sum") / K
    return classification_loss, box_loss


def project_masks_on_boxes(gt_masks, boxes, matched_idxs, M):
    """``(P, M, M)`` targets: ``roi_align(gt_masks[matched_idxs[p]], boxes[p], M)`` (scale 1,
    adaptive sampling, ``aligned=False``, as torchvision) of one image's ``(G, H, W)`` masks."""
    masks = np.asarray(to_host(gt_masks), np.float32)
    rois = np.concatenate([np.asarray(matched_idxs, np.float32).reshape(-1, 1),
                           np.asarray(to_host(boxes), np.float32).reshape(-1, 4)], axis=1)
    return roi_align(Tensor(masks[:, None]), rois, (M, M), 1.0).numpy()[:, 0]


def maskrcnn_loss(mask_logits, proposals, gt_masks, gt_labels, mask_matched_idxs):
    """Mean BCE-with-logits between each foreground proposal's true-class mask logits
    ``mask_logits[p, label_p]`` (``M × M``) and its target from :func:`project_masks_on_boxes`;
    ``0·Σ mask_logits`` when there is no foreground proposal.

    Args:
        mask_logits: ``Tensor[P, num_classes, M, M]``.
        proposals: per image ``(P_i, 4)`` foreground proposals; gt_masks: per image ``(G_i, H, W)``;
        gt_labels: per image ``(G_i,)``; mask_matched_idxs: per image ``(P_i,)`` ground-truth indices.
    """
    M = mask_logits.shape[-1]
    labels = [np.asarray(to_host(g)).reshape(-1)[np.asarray(i, np.int64)] for g, i in zip(gt_labels, mask_matched_idxs)]
    targets = [project_masks_on_boxes(m, p, i, M) for m, p, i in zip(gt_masks, proposals, mask_matched_idxs)
               if len(i)]
    labels = np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64)
    if len(labels) == 0:
        return mask_logits.sum() * 0.0
    C = mask_logits.shape[1]
    picked = _index(mask_logits.reshape(-1, M, M), np.arange(len(labels)) * C + labels)
    t = Tensor(np.concatenate(targets).astype(mask_logits.dtype), device=mask_logits.device)
    return binary_cross_entropy_with_logits(picked, t)


def maskrcnn_inference(x, labels):
    """``sigmoid(x[k, labels[k]])`` as ``(K_i, 1, M, M)`` NumPy arrays per image (``x``:
    ``Tensor[Σ K_i, num_classes, M, M]`` mask logits, ``labels``: per image predicted classes)."""
    counts = [len(lab) for lab in labels]
    lab = np.concatenate([np.asarray(to_host(v)).reshape(-1) for v in labels]).astype(np.int64) if counts else \
        np.zeros(0, np.int64)
    prob = sigmoid(x).numpy()[np.arange(len(lab)), lab][:, None]
    return np.split(prob, np.cumsum(counts)[:-1]) if counts else []


def expand_boxes(boxes, scale):
    """Boxes scaled by ``scale`` about their centres: ``(cx ∓ scale·w/2, cy ∓ scale·h/2)``."""
    b = np.asarray(boxes)
    w_half, h_half = (b[:, 2] - b[:, 0]) * 0.5 * scale, (b[:, 3] - b[:, 1]) * 0.5 * scale
    x_c, y_c = (b[:, 2] + b[:, 0]) * 0.5, (b[:, 3] + b[:, 1]) * 0.5
    return np.stack([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half], axis=1).astype(b.dtype)


def _resize_bilinear(m, h, w):
    """``m (H0, W0)`` resized to ``(h, w)`` bilinearly, ``align_corners=False`` (PyTorch's tables)."""
    y0, y1, ly = linear_table(m.shape[0], h, False, dtype=m.dtype)
    x0, x1, lx = linear_table(m.shape[1], w, False, dtype=m.dtype)
    ly, lx = ly[:, None], lx[None, :]
    top = (1 - lx) * m[y0][:, x0] + lx * m[y0][:, x1]
    bottom = (1 - lx) * m[y1][:, x0] + lx * m[y1][:, x1]
    return ((1 - ly) * top + ly * bottom).astype(m.dtype)


def paste_masks_in_image(masks, boxes, img_shape, padding=1):
    """Paste ``M × M`` mask probabilities into an ``(H, W)`` image at their boxes (torchvision's rule).

    Each mask is zero-padded by ``padding`` and its box enlarged by ``(M + 2·padding)/M`` about its
    centre, truncated to integers; the padded mask is resized bilinearly (``align_corners=False``)
    to ``(y2 − y1 + 1) × (x2 − x1 + 1)`` pixels (at least 1) and written at ``(x1, y1)``, the part
    inside the image.

    Args:
        masks: ``(K, 1, M, M)`` (Tensor or array); boxes: ``(K, 4)``; img_shape: ``(H, W)``.

    Returns:
        ``(K, 1, H, W)`` NumPy array of the masks' dtype.
    """
    m = np.asarray(to_host(masks))
    if m.ndim != 4 or m.shape[1] != 1:
        raise ValueError(f"paste_masks_in_image: masks must have shape (K, 1, M, M), got {m.shape}")
    b = np.asarray(to_host(boxes)).reshape(-1, 4)
    if len(b) != len(m):
        raise ValueError(f"paste_masks_in_image: {len(m)} masks for {len(b)} boxes")
    H, W = int(img_shape[0]), int(img_shape[1])
    M = m.shape[-1]
    padded = np.pad(m[:, 0], ((0, 0), (padding, padding), (padding, padding)))
    scale = float(M + 2 * padding) / M
    b = np.trunc(expand_boxes(b, scale)).astype(np.int64)
    out = np.zeros((len(m), 1, H, W), dtype=m.dtype)
    for k in range(len(m)):
        x1, y1, x2, y2 = (int(v) for v in b[k])
        w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        resized = _resize_bilinear(padded[k], h, w)
        xa, xb, ya, yb = max(x1, 0), min(x2 + 1, W), max(y1, 0), min(y2 + 1, H)
        if xb > xa and yb > ya:
            out[k, 0, ya:yb, xa:xb] = resized[ya - y1:yb - y1, xa - x1:xb - x1]
    return out


class RoIHeads(nn.Module):
    """The box (and optional mask) branch over the RPN's proposals (module docstring).

    Args:
        box_roi_pool: :class:`~minicnn.models.detection.poolers.MultiScaleRoIAlign` (7 × 7).
        box_head: e.g. ``TwoMLPHead``; box_predictor: e.g. ``FastRCNNPredictor`` (class logits, deltas).
        fg_iou_thresh, bg_iou_thresh: 0.5, 0.5.  batch_size_per_image, positive_fraction: 512, 0.25.
        bbox_reg_weights: box coder weights (``None``: ``(10, 10, 5, 5)``).
        score_thresh, nms_thresh, detections_per_img: 0.05, 0.5, 100.
        mask_roi_pool, mask_head, mask_predictor: the mask branch (14 × 14 pool, Mask R-CNN).
        generator: a seed or Generator for the proposal sampling (default: the global generator).

    Forward ``(features, proposals, image_shapes, targets=None) -> (result, losses)``: in eval,
    ``result`` is per image ``{"boxes" (D, 4), "labels" (D,), "scores" (D,)[, "masks" (D, 1, M, M)]}``
    (NumPy arrays, in the resized image's pixels); in training, ``losses`` holds
    ``loss_classifier``, ``loss_box_reg`` [, ``loss_mask``].
    """

    def __init__(self, box_roi_pool, box_head, box_predictor, fg_iou_thresh, bg_iou_thresh, batch_size_per_image,
                 positive_fraction, bbox_reg_weights, score_thresh, nms_thresh, detections_per_img,
                 mask_roi_pool=None, mask_head=None, mask_predictor=None, generator=None):
        super().__init__()
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.box_coder = BoxCoder(bbox_reg_weights if bbox_reg_weights is not None else (10.0, 10.0, 5.0, 5.0))
        self.box_roi_pool = box_roi_pool
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.score_thresh, self.nms_thresh = float(score_thresh), float(nms_thresh)
        self.detections_per_img = int(detections_per_img)
        self.mask_roi_pool = mask_roi_pool
        self.mask_head = mask_head
        self.mask_predictor = mask_predictor
        self.generator = generator

    def has_mask(self):
        return self.mask_roi_pool is not None and self.mask_head is not None and self.mask_predictor is not None

    def assign_targets_to_proposals(self, proposals, gt_boxes, gt_labels):
        """Per image: matched ground-truth index (clamped at 0) and label (0 background, −1 ignored)."""
        matched_idxs, labels = [], []
        for p, g, lab in zip(proposals, gt_boxes, gt_labels):
            if len(g) == 0:
                matched_idxs.append(np.zeros(len(p), np.int64))
                labels.append(np.zeros(len(p), np.int64))
                continue
            idx = self.proposal_matcher(box_iou(g.astype(p.dtype), p))
            lab_i = np.asarray(lab).reshape(-1)[np.maximum(idx, 0)].astype(np.int64)
            lab_i[idx == Matcher.BELOW_LOW_THRESHOLD] = 0
            lab_i[idx == Matcher.BETWEEN_THRESHOLDS] = -1
            matched_idxs.append(np.maximum(idx, 0))
            labels.append(lab_i)
        return matched_idxs, labels

    def select_training_samples(self, proposals, targets):
        """Add the ground truth to the proposals, match, sample; returns per image the sampled
        ``proposals``, ``matched_idxs``, ``labels`` and ``regression_targets`` (zeros on background)."""
        dtype = proposals[0].dtype if len(proposals) else np.float32
        gt_boxes = [np.asarray(to_host(t["boxes"]), dtype).reshape(-1, 4) for t in targets]
        gt_labels = [np.asarray(to_host(t["labels"])).reshape(-1) for t in targets]
        proposals = [np.concatenate([p, g]) for p, g in zip(proposals, gt_boxes)]
        matched_idxs, labels = self.assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        self.fg_bg_sampler.rng = get_rng(self.generator)
        pos_masks, neg_masks = self.fg_bg_sampler(labels)
        regression_targets = []
        for i in range(len(proposals)):
            keep = np.flatnonzero(pos_masks[i] | neg_masks[i])
            proposals[i], labels[i], matched_idxs[i] = proposals[i][keep], labels[i][keep], matched_idxs[i][keep]
            t = np.zeros((len(keep), 4), np.float64)
            fg = np.flatnonzero(labels[i] > 0)
            if len(fg):
                t[fg] = encode_boxes(gt_boxes[i][matched_idxs[i][fg]].astype(np.float64),
                                     proposals[i][fg].astype(np.float64), self.box_coder.weights)
            regression_targets.append(t)
        return proposals, matched_idxs, labels, regression_targets

    def postprocess_detections(self, class_logits, box_regression, proposals, image_shapes):
        """Per image ``(boxes, scores, labels)`` arrays after decoding, clipping, the score threshold,
        small-box removal, per-class NMS and top-k (torchvision's order)."""
        num_classes = class_logits.shape[-1]
        logits = class_logits.numpy()
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        scores_all = (e / e.sum(axis=1, keepdims=True)).astype(logits.dtype)
        reg = box_regression.numpy()
        counts = np.cumsum([0] + [len(p) for p in proposals])
        all_boxes, all_scores, all_labels = [], [], []
        for i, (p, shape) in enumerate(zip(proposals, image_shapes)):
            rows = slice(counts[i], counts[i + 1])
            boxes = self.box_coder.decode_single(reg[rows], p.astype(reg.dtype)).reshape(-1, num_classes, 4)
            scores = scores_all[rows]
            labels = np.broadcast_to(np.arange(num_classes), scores.shape)
            det = postprocess_detections(boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1),
                                         labels[:, 1:].reshape(-1), shape, self.score_thresh, self.nms_thresh,
                                         self.detections_per_img, min_size=1e-2)
            all_boxes.append(det["boxes"].astype(reg.dtype))
            all_scores.append(det["scores"].astype(reg.dtype))
            all_labels.append(det["labels"])
        return all_boxes, all_scores, all_labels

    def forward(self, features, proposals, image_shapes, targets=None):
        proposals = [np.asarray(to_host(p)).reshape(-1, 4) for p in proposals]
        if self.training:
            if targets is None:
                raise ValueError("RoIHeads: targets must be given in training mode")
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        result, losses = [], {}
        if self.training:
            loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
            losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
        else:
            boxes, scores, det_labels = self.postprocess_detections(class_logits, box_regression, proposals,
                                                                    image_shapes)
            result = [{"boxes": b, "labels": lab, "scores": s} for b, s, lab in zip(boxes, scores, det_labels)]
        if self.has_mask():
            if self.training:
                fg = [np.flatnonzero(lab > 0) for lab in labels]
                mask_proposals = [p[f] for p, f in zip(proposals, fg)]
                pos_matched_idxs = [m[f] for m, f in zip(matched_idxs, fg)]
            else:
                mask_proposals = [r["boxes"] for r in result]
            mask_features = self.mask_head(self.mask_roi_pool(features, mask_proposals, image_shapes))
            mask_logits = self.mask_predictor(mask_features)
            if self.training:
                gt_masks = [t["masks"] for t in targets]
                gt_labels = [t["labels"] for t in targets]
                losses["loss_mask"] = maskrcnn_loss(mask_logits, mask_proposals, gt_masks, gt_labels, pos_matched_idxs)
            else:
                for prob, r in zip(maskrcnn_inference(mask_logits, [r["labels"] for r in result]), result):
                    r["masks"] = prob
        return result, losses
