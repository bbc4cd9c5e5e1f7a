"""The two-stage detector's pipeline: transform → backbone → RPN → RoI heads → transform.postprocess."""
from collections import OrderedDict

import numpy as np

from ... import nn
from ...autograd import no_grad
from ...tensor import Tensor, to_host
from .rpn import check_targets, image_list

__all__ = ["GeneralizedRCNN"]


class GeneralizedRCNN(nn.Module):
    """Faster / Mask R-CNN's composition (torchvision's ``GeneralizedRCNN``).

    Args:
        backbone: ``(N, C, H, W) -> dict of feature maps`` (or one Tensor, named ``"0"``), with an
            ``out_channels`` attribute.
        rpn: :class:`~minicnn.models.detection.rpn.RegionProposalNetwork`.
        roi_heads: :class:`~minicnn.models.detection.roi_heads.RoIHeads`.
        transform: ``GeneralizedRCNNTransform`` (normalise, resize, batch; map detections back).

    Forward ``(images, targets=None)``: ``images`` a list of ``(C, H_i, W_i)`` float images in
    ``[0, 1]`` (sizes may differ); ``targets`` a list of dicts ``boxes`` ``(G, 4)`` float (pixels of
    the image), ``labels`` ``(G,)`` int64 in ``1 .. num_classes − 1`` (``G = 0``: an image with no
    objects, every anchor and proposal a negative), ``masks`` ``(G, H_i, W_i)`` for Mask R-CNN.

    Returns in training the dict of losses (``loss_classifier``, ``loss_box_reg``,
    ``loss_objectness``, ``loss_rpn_box_reg`` [, ``loss_mask``]: scalar Tensors); in eval (run
    without a graph) a list of dicts per image: ``boxes`` float32 ``(D, 4)`` in the original
    image's pixels, ``labels`` int64 ``(D,)``, ``scores`` ``(D,)`` decreasing, and for Mask R-CNN
    ``masks`` ``(D, 1, H_i, W_i)`` probabilities.
    """

    def __init__(self, backbone, rpn, roi_heads, transform):
        super().__init__()
        self.transform = transform
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads

    def _num_classes(self):
        predictor = getattr(self.roi_heads, "box_predictor", None)
        cls = getattr(predictor, "cls_score", None)
        return getattr(cls, "out_features", None)

    def _check_inputs(self, images, targets):
        name = type(self).__name__
        if self.training:
            check_targets(targets, len(images), name, self._num_classes(), need_masks=self.roi_heads.has_mask())
            if self.roi_heads.has_mask():
                for i, (im, t) in enumerate(zip(images, targets)):
                    if tuple(to_host(t["masks"]).shape[1:]) != tuple(im.shape[-2:]):
                        raise ValueError(f"{name}: targets[{i}]['masks'] must be (G, {im.shape[-2]}, {im.shape[-1]}) "
                                         f"like image {i}, got {to_host(t['masks']).shape}")

    def forward(self, images, targets=None):
        images = image_list(images, type(self).__name__)
        self._check_inputs(images, targets)
        if not self.training:
            with no_grad():
                return self._run(images, None)
        return self._run(images, targets)

    def _run(self, images, targets):
        original_image_sizes = [tuple(int(v) for v in im.shape[-2:]) for im in images]
        images, targets = self.transform(images, targets)
        if targets is not None:
            for i, t in enumerate(targets):
                b = np.asarray(to_host(t["boxes"])).reshape(-1, 4)
                bad = np.flatnonzero((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
                if len(bad):
                    raise ValueError(f"{type(self).__name__}: targets[{i}] box {int(bad[0])} has no width or height "
                                     f"after resizing to {images.image_sizes[i]}: {b[bad[0]].tolist()}")
        features = self.backbone(images.tensors)
        if isinstance(features, Tensor):
            features = OrderedDict([("0", features)])
        proposals, proposal_losses = self.rpn(images, features, targets)
        detections, detector_losses = self.roi_heads(features, proposals, images.image_sizes, targets)
        detections = self.transform.postprocess(detections, images.image_sizes, original_image_sizes)
        if self.training:
            losses = dict(detector_losses)
            losses.update(proposal_losses)
            return losses
        return detections
