"""Classification + localization: one backbone, two heads.

The classification head predicts class logits; the regression head predicts the box as
``(x, y, w, h)``: centre and size, each divided by the image side (so in [0, 1], through a
sigmoid). Training minimises ``L = α·Lc + (1 − α)·Lr`` with ``Lc`` the cross-entropy and ``Lr``
the smooth-L1 loss of the box.
"""
from .. import functional as F
from .. import nn


class LocalizationNet(nn.Module):
    """Shape: (N, C, S, S) → (logits (N, num_classes), boxes (N, 4) as normalised (cx, cy, w, h)).

    Backbone: four conv-BN-ReLU-maxpool stages (S → S/16). The classification head pools the
    features globally (max over positions: *what* does not depend on *where*); the box head
    keeps the spatial layout (flatten: *where* is the question).
    """

    def __init__(self, in_channels=1, num_classes=10, image_size=64, width=16):
        super().__init__()
        w = width
        stages, c = [], in_channels
        for cout in (w, 2 * w, 4 * w, 4 * w):
            stages += [nn.Conv2d(c, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
            c = cout
        self.backbone = nn.Sequential(*stages)
        side = image_size // 16
        self.cls_head = nn.Sequential(nn.AdaptiveMaxPool2d((1, 1)), nn.Flatten(), nn.Linear(c, 128), nn.ReLU(),
                                      nn.Linear(128, num_classes))
        self.box_head = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, 128), nn.ReLU(), nn.Linear(128, 4),
                                      nn.Sigmoid())

    def forward(self, x):
        h = self.backbone(x)
        return self.cls_head(h), self.box_head(h)


def localization_loss(logits, boxes, labels, target_boxes, alpha=0.5):
    """``α·CE(logits, labels) + (1 − α)·smoothL1(boxes, target_boxes)``; returns (total, Lc, Lr)."""
    lc = F.cross_entropy(logits, labels)
    lr = F.smooth_l1_loss(boxes, target_boxes)
    return alpha * lc + (1 - alpha) * lr, lc, lr


def xyxy_to_cxcywh(boxes, size):
    """(x1, y1, x2, y2) pixel boxes → normalised (cx, cy, w, h) numpy array."""
    import numpy as np

    b = np.asarray(boxes, dtype=np.float32)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1) / size


def cxcywh_to_xyxy(boxes, size):
    """Normalised (cx, cy, w, h) → (x1, y1, x2, y2) pixel boxes (numpy)."""
    import numpy as np

    b = np.asarray(boxes, dtype=np.float32) * size
    return np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], 1)
