"""R-CNN (Girshick et al., CVPR 2014): a CNN run on every warped region proposal.

1. proposals: selective search (:mod:`~minicnn.models.detection.selective_search`);
2. each proposal is dilated so that, once warped to ``warp_size × warp_size``, ``context_padding``
   pixels of image context surround it (the paper: 227 × 227 and 16 pixels), then warped with
   bilinear sampling (:func:`warp_regions`; outside the image: 0);
3. a CNN (``features``, then ``box_head``: fc6, fc7) and a :class:`FastRCNNPredictor`: ``K + 1``
   softmax scores (the paper trains per-class SVMs after fine-tuning; the softmax of the
   fine-tuned network is the variant its later papers use) and class-specific box deltas (coder
   weights ``(10, 10, 5, 5)``; the paper fits ridge regressors on pool5 features instead, here the
   regression layer trains with the classifier);
4. per-class NMS.

Fine-tuning (the paper's): proposals with IoU ``>= 0.5`` to a ground truth are positives of its
class, the rest background; minibatches of 128 crops over 2 images, 32 of them (25%) positive;
ground-truth boxes join the proposals. Loss: :func:`~minicnn.models.detection.roi_heads.fastrcnn_loss`.
"""
import numpy as np

from ... import nn
from ...random import get_rng
from ...tensor import Tensor, to_host
from ._utils import BalancedPositiveNegativeSampler, BoxCoder
from .fast_rcnn import ProposalCache, check_proposals, detections_from_logits, sample_proposals, small_conv_backbone
from .faster_rcnn import FastRCNNPredictor, TwoMLPHead
from .roi_heads import fastrcnn_loss
from .rpn import check_targets, image_list

__all__ = ["RCNN", "warp_regions", "dilate_boxes", "rcnn_small"]


def dilate_boxes(boxes, warp_size, context_padding):
    """Boxes grown so the original box fills the central ``warp_size − 2·context_padding`` pixels of
    the warped crop: each side moves out by ``context_padding · w / (warp_size − 2·context_padding)``
    (``h`` for the vertical sides)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    inner = warp_size - 2 * context_padding
    if inner <= 0:
        raise ValueError(f"dilate_boxes: warp_size ({warp_size}) must exceed 2·context_padding ({context_padding})")
    px = context_padding * (b[:, 2] - b[:, 0]) / inner
    py = context_padding * (b[:, 3] - b[:, 1]) / inner
    return np.stack([b[:, 0] - px, b[:, 1] - py, b[:, 2] + px, b[:, 3] + py], axis=1)


def warp_regions(image, boxes, warp_size, context_padding=0):
    """Bilinear crops of an image: ``(C, H, W)`` and ``(R, 4)`` boxes -> float32 ``(R, C, S, S)``.

    The box ``(x1, y1, x2, y2)`` (pixel edges) is dilated by :func:`dilate_boxes`; output pixel
    ``(v, u)`` samples the image at ``x = x1 + (u + ½)(x2 − x1)/S − ½``, ``y = y1 + (v + ½)(y2 − y1)/S − ½``
    (pixel centres at integers), bilinearly between the four nearest pixels, a pixel outside the
    image counting as 0."""
    img = np.asarray(to_host(image), np.float32)
    C, H, W = img.shape
    b = dilate_boxes(boxes, warp_size, context_padding)
    S = int(warp_size)
    t = (np.arange(S) + 0.5) / S
    xs = b[:, :1] + t[None] * (b[:, 2:3] - b[:, :1]) - 0.5                  # (R, S)
    ys = b[:, 1:2] + t[None] * (b[:, 3:4] - b[:, 1:2]) - 0.5
    x0, y0 = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    fx, fy = (xs - x0).astype(np.float32), (ys - y0).astype(np.float32)
    padded = np.zeros((C, H + 2, W + 2), np.float32)                          # a zero ring: taps outside read 0
    padded[:, 1:-1, 1:-1] = img

    def tap(yi, xi):
        yi = np.clip(yi + 1, 0, H + 1)[:, :, None]
        xi = np.clip(xi + 1, 0, W + 1)[:, None, :]
        return padded[:, yi, xi]                                                # (C, R, S, S)

    wy, wx = fy[:, :, None], fx[:, None, :]
    out = ((1 - wy) * (1 - wx) * tap(y0, x0) + (1 - wy) * wx * tap(y0, x0 + 1)
           + wy * (1 - wx) * tap(y0 + 1, x0) + wy * wx * tap(y0 + 1, x0 + 1))
    return np.ascontiguousarray(out.transpose(1, 0, 2, 3))


class RCNN(nn.Module):
    """R-CNN (module docstring).

    Args:
        features: a CNN ``(R, C, S, S) -> (R, C', S', S')`` (e.g. :func:`rcnn_small`'s).
        num_classes: classes including the background.
        representation_size: the width of ``box_head``'s output.
        box_head: ``(R, C', S', S') -> (R, representation_size)`` (fc6, fc7: :class:`TwoMLPHead`).
        warp_size, context_padding: 227 and 16 (the paper).
        image_mean, image_std: per-channel normalisation of the crops.
        batch_size_per_image, positive_fraction: 64 and 0.25 (128 crops, 32 positive, over 2 images).
        fg_iou_thresh: 0.5 (below: background); bbox_reg_weights ``(10, 10, 5, 5)``.
        score_thresh, nms_thresh, detections_per_img: 0.05, 0.3, 100.
        max_test_proposals: the best-ranked proposals scored per image in eval (None: all).
        proposal_cache: a :class:`~minicnn.models.detection.fast_rcnn.ProposalCache` (default: "fast").
        crop_batch: crops per CNN call in eval.
        generator: seed or Generator of the crop sampling.

    ``forward(images, targets=None, proposals=None)`` as :class:`~minicnn.models.detection.fast_rcnn.FastRCNN`:
    training returns ``{"loss_classifier", "loss_box_reg"}``, eval per image ``{"boxes", "labels", "scores"}``.
    """

    def __init__(self, features, num_classes, representation_size, warp_size=227, context_padding=16, box_head=None,
                 image_mean=None,
                 image_std=None, batch_size_per_image=64, positive_fraction=0.25, fg_iou_thresh=0.5,
                 bbox_reg_weights=(10.0, 10.0, 5.0, 5.0), score_thresh=0.05, nms_thresh=0.3, detections_per_img=100,
                 max_test_proposals=None, proposal_cache=None, crop_batch=256, generator=None):
        super().__init__()
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"RCNN: num_classes must be an integer >= 2 (with the background), got {num_classes!r}")
        if warp_size - 2 * context_padding <= 0:
            raise ValueError(f"RCNN: warp_size ({warp_size}) must exceed 2·context_padding ({context_padding})")
        if box_head is None:
            raise ValueError("RCNN: give box_head, (R, C', S', S') features -> (R, representation_size)")
        self.features = features
        self.box_head = box_head
        self.box_predictor = FastRCNNPredictor(representation_size, int(num_classes))
        self.num_classes, self.warp_size = int(num_classes), int(warp_size)
        self.context_padding = float(context_padding)
        self.image_mean, self.image_std = image_mean, image_std
        self.sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.fg_iou_thresh = fg_iou_thresh
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img
        self.max_test_proposals, self.crop_batch = max_test_proposals, int(crop_batch)
        self.proposal_cache = proposal_cache if proposal_cache is not None else ProposalCache()
        self.generator = np.random.default_rng(generator) if isinstance(generator, (int, np.integer)) else generator

    def crops(self, image, boxes):
        """Normalised warped crops ``(R, C, S, S)`` of one image's boxes (:func:`warp_regions`)."""
        c = warp_regions(image, boxes, self.warp_size, self.context_padding)
        if self.image_mean is not None:
            c -= np.asarray(self.image_mean, np.float32)[:, None, None]
        if self.image_std is not None:
            c /= np.asarray(self.image_std, np.float32)[:, None, None]
        return c

    def _score(self, crops, device):
        x = Tensor(device.from_numpy(crops), device=device)
        return self.box_predictor(self.box_head(self.features(x)))

    def forward(self, images, targets=None, proposals=None):
        images = image_list(images, "RCNN")
        for i, im in enumerate(images):
            if self.image_mean is not None and im.shape[0] != len(self.image_mean):
                raise ValueError(f"RCNN: image {i} has {im.shape[0]} channels, image_mean has {len(self.image_mean)}")
        device = images[0].device if isinstance(images[0], Tensor) else None
        if device is None:
            from ...device import get_device
            device = get_device("cpu")
        if self.training:
            check_targets(targets, len(images), "RCNN", self.num_classes)
        if proposals is None:
            proposals = [self.proposal_cache(im) for im in images]
        proposals = check_proposals(proposals, images, "RCNN")
        host = [np.asarray(to_host(im), np.float32) for im in images]
        if self.training:
            self.sampler.rng = get_rng(self.generator)
            boxes, labels, reg = sample_proposals(proposals, targets, self.sampler, self.box_coder.weights,
                                                  self.fg_iou_thresh, self.fg_iou_thresh, 0.0)
            crops = np.concatenate([self.crops(im, b) for im, b in zip(host, boxes)])
            class_logits, box_regression = self._score(crops, device)
            loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, reg)
            return {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
        if self.max_test_proposals is not None:
            proposals = [p[:self.max_test_proposals] for p in proposals]
        results = []
        for im, p in zip(host, proposals):
            if len(p) == 0:
                results.append({"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64),
                                "scores": np.zeros(0, np.float32)})
                continue
            logits, deltas = [], []
            for s in range(0, len(p), self.crop_batch):
                cl, br = self._score(self.crops(im, p[s:s + self.crop_batch]), device)
                logits.append(cl.numpy()), deltas.append(br.numpy())
            cl, br = Tensor(np.concatenate(logits)), Tensor(np.concatenate(deltas))
            results += detections_from_logits(cl, br, [p], [im.shape[-2:]], self.box_coder, self.score_thresh,
                                              self.nms_thresh, self.detections_per_img)
        return results


def rcnn_small(num_classes=11, in_channels=1, warp_size=32, context_padding=None, widths=(16, 32, 64),
               representation_size=256, proposal_options=None, **kwargs):
    """R-CNN for small images (digit canvases): 32 × 32 crops; ``features`` = VGG-like stages of two
    3×3 conv + BN + ReLU each followed by a 2×2 max pool
    (:func:`~minicnn.models.detection.fast_rcnn.small_conv_backbone` with ``pool_last``), then fc6/fc7 of ``representation_size``; the paper's context ratio
    (``context_padding = 16·warp_size/227``, 2.3 px at 32) by default. ``proposal_options`` go to
    the :class:`ProposalCache`; ``**kwargs`` to :class:`RCNN`."""
    if context_padding is None:
        context_padding = 16.0 * warp_size / 227.0
    if warp_size % 2 ** len(widths):
        raise ValueError(f"rcnn_small: warp_size ({warp_size}) must be divisible by 2^{len(widths)} "
                         f"(one pool per stage)")
    backbone = small_conv_backbone(in_channels, tuple(widths), pool_last=True)
    side = warp_size // backbone.stride
    head = TwoMLPHead(backbone.out_channels * side * side, representation_size)
    return RCNN(backbone, num_classes, representation_size, warp_size, context_padding, box_head=head,
                proposal_cache=ProposalCache(**(proposal_options or {})), **kwargs)
