"""YOLO v1 (Redmon et al., 2016): the image as an S × S grid, each cell predicting B boxes and C classes.

Output ``(N, S, S, 5B + C)``; per cell, for each of the B predictors ``(x, y, √w, √h, conf)`` then C
class probabilities:

* ``x, y`` the box centre relative to the cell (0..1 inside it): centre ``((col + x)/S, (row + y)/S)``
  in image-relative units;
* ``√w, √h`` the square roots of the box's width and height relative to the image (so the loss
  weighs a pixel of error more in a small box than in a large one);
* ``conf`` trained towards ``IoU(predicted box, truth)`` for the responsible predictor, 0 elsewhere;
* ``p(c)`` trained towards the one-hot class of the object whose centre falls in the cell.

The head is the paper's: the backbone's features flattened, a fully connected layer, leaky ReLU
(0.1), dropout 0.5, and a linear layer to ``S·S·(5B + C)`` (linear outputs, as the paper).
Labels in targets are ``1..C`` (0 is the background, torchvision's convention).
"""
import numpy as np

from ... import nn
from ...tensor import Tensor
from ._utils import postprocess_detections

# The paper's Figure 3: (kernel, channels, stride) convolutions and "M" 2×2 max pools; 24 convolutions.
PAPER_LAYOUT = ((7, 64, 2), "M", (3, 192, 1), "M",
                (1, 128, 1), (3, 256, 1), (1, 256, 1), (3, 512, 1), "M",
                *((1, 256, 1), (3, 512, 1)) * 4, (1, 512, 1), (3, 1024, 1), "M",
                *((1, 512, 1), (3, 1024, 1)) * 2, (3, 1024, 1), (3, 1024, 2),
                (3, 1024, 1), (3, 1024, 1))


def _conv(cin, cout, k, stride, batch_norm):
    """``k × k`` convolution with "same" padding, optional BatchNorm, leaky ReLU 0.1."""
    layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    return layers + [nn.LeakyReLU(0.1)]


class DarknetFeatures(nn.Sequential):
    """A plain stack of convolutions and max pools from a layout of ``(k, channels, stride)`` and "M".

    Attributes ``out_channels`` and ``stride`` (the total downsampling) let :class:`YOLOv1` size its head.
    """

    def __init__(self, layout, in_channels=3, batch_norm=False):
        layers, c, stride = [], in_channels, 1
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                stride *= 2
            else:
                k, cout, s = item
                layers += _conv(c, cout, k, s, batch_norm)
                c, stride = cout, stride * s
        super().__init__(*layers)
        self.out_channels, self.stride = c, stride


def small_layout(width=16, stride=32, reduce=None):
    """A scaled-down backbone for small canvases: five 3×3 conv stages of channels
    ``w, 2w, 4w, 8w, 8w``, each followed by a 2×2 max pool (``stride`` 32), or all but the last
    (``stride`` 16: a 128-px canvas gives an 8×8 map, one position per cell of an S = 8 grid);
    with ``reduce``, a final 1×1 convolution to ``reduce`` channels (darknet's 1×1 reduction
    layers), which shrinks the flattened input of the fully connected head."""
    if stride not in (16, 32):
        raise ValueError(f"small_layout: stride must be 16 or 32, got {stride!r}")
    w = width
    layout = ((3, w, 1), "M", (3, 2 * w, 1), "M", (3, 4 * w, 1), "M", (3, 8 * w, 1), "M", (3, 8 * w, 1), "M")
    layout = layout if stride == 32 else layout[:-1]
    return layout if reduce is None else layout + ((1, int(reduce), 1),)


class YOLOv1(nn.Module):
    """YOLO v1: backbone → flatten → FC ``hidden`` → leaky ReLU → dropout → FC ``S·S·(5B + C)``.

    Args:
        num_classes: C, the object classes (no background class).
        S: grid side; B: boxes per cell.
        backbone: ``"paper"`` (the 24-conv layout, no BatchNorm), ``"small"`` (:func:`small_layout`
            with BatchNorm) or an ``nn.Module`` with ``out_channels`` and ``stride`` attributes.
        image_size: input side (square), a multiple of the backbone's stride.
        in_channels: image channels (for the named backbones).
        width: base channels of the small backbone.
        hidden: units of the first fully connected layer (paper: 4096).
        dropout: after the first fully connected layer (paper: 0.5).
        stride: downsampling of the small backbone, 32 or 16 (see :func:`small_layout`).
        reduce: channels of the small backbone's final 1×1 convolution (None: none).

    Shape: ``(N, in_channels, image_size, image_size) -> (N, S, S, 5B + C)``.
    """

    def __init__(self, num_classes, S=7, B=2, backbone="small", image_size=128, in_channels=1, width=16,
                 hidden=256, dropout=0.5, stride=32, reduce=None):
        super().__init__()
        for name, v in (("num_classes", num_classes), ("S", S), ("B", B), ("image_size", image_size)):
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"YOLOv1: {name} must be a positive integer, got {v!r}")
        if backbone == "paper":
            backbone = DarknetFeatures(PAPER_LAYOUT, in_channels, batch_norm=False)
        elif backbone == "small":
            backbone = DarknetFeatures(small_layout(width, stride, reduce), in_channels, batch_norm=True)
        elif not (isinstance(backbone, nn.Module) and hasattr(backbone, "out_channels")
                  and hasattr(backbone, "stride")):
            raise ValueError(f"YOLOv1: backbone must be 'paper', 'small' or an nn.Module with out_channels and "
                             f"stride, got {backbone!r}")
        if image_size % backbone.stride:
            raise ValueError(f"YOLOv1: image_size {image_size} must be a multiple of the backbone's stride "
                             f"{backbone.stride}")
        self.num_classes, self.S, self.B, self.image_size = int(num_classes), int(S), int(B), int(image_size)
        self.in_channels = in_channels
        side = image_size // backbone.stride
        self.features = backbone
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(backbone.out_channels * side * side, hidden),
                                  nn.LeakyReLU(0.1), nn.Dropout(dropout),
                                  nn.Linear(hidden, self.S * self.S * (5 * self.B + self.num_classes)))

    def forward(self, x):
        want = (self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[2:]) != want:
            raise ValueError(f"YOLOv1: input must be (N, C, {want[0]}, {want[1]}), got {tuple(x.shape)}")
        y = self.head(self.features(x))
        return y.reshape(x.shape[0], self.S, self.S, 5 * self.B + self.num_classes)


def yolo_v1_paper(num_classes=20, in_channels=3):
    """The paper's network: 24 convolutions (no BatchNorm), FC 4096, 448 × 448 input, S = 7, B = 2
    (``(N, 7, 7, 30)`` for the 20 VOC classes)."""
    return YOLOv1(num_classes, 7, 2, "paper", 448, in_channels, hidden=4096, dropout=0.5)


def yolo_v1_small(num_classes=10, in_channels=1, image_size=128, S=7, B=2, width=16, hidden=256, dropout=0.5,
                  stride=32, reduce=None):
    """YOLO v1 scaled down for 128 × 128 canvases: the small BatchNorm backbone (stride 32 or 16,
    an optional 1×1 reduction, :func:`small_layout`) and the paper's head."""
    return YOLOv1(num_classes, S, B, "small", image_size, in_channels, width, hidden, dropout, stride, reduce)


# ---------------------------------------------------------------------------
# loss
# ---------------------------------------------------------------------------


def _image_hw(image_size):
    if image_size is None:
        return 1.0, 1.0
    if np.ndim(image_size) == 0:
        return float(image_size), float(image_size)
    return float(image_size[0]), float(image_size[1])


def _cell_iou(p, t):
    """IoU of centre-size boxes ``p (B, 4)`` with one ``t (4,)`` -> ``(B,)``."""
    px1, py1, px2, py2 = p[:, 0] - p[:, 2] / 2, p[:, 1] - p[:, 3] / 2, p[:, 0] + p[:, 2] / 2, p[:, 1] + p[:, 3] / 2
    tx1, ty1, tx2, ty2 = t[0] - t[2] / 2, t[1] - t[3] / 2, t[0] + t[2] / 2, t[1] + t[3] / 2
    inter = np.clip(np.minimum(px2, tx2) - np.maximum(px1, tx1), 0, None) * \
        np.clip(np.minimum(py2, ty2) - np.maximum(py1, ty1), 0, None)
    union = p[:, 2] * p[:, 3] + t[2] * t[3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def yolo_v1_targets(pred, targets, S, B, C, lambda_coord=5.0, lambda_noobj=0.5, image_size=None, rescore=True):
    """The regression targets ``T`` and weights ``W`` (both shaped like ``pred``) of the YOLO v1 loss.

    The object of a cell is the first target box whose centre falls in it (``col = ⌊cx·S⌋``,
    clamped to ``S − 1``); its responsible predictor is the one whose predicted box has the highest
    IoU with it (the first on ties; when every IoU is 0, the one of least RMSE over
    ``(x, y, w, h)``, as darknet). Weights: ``λcoord`` on its ``x, y, √w, √h``; 1 on its ``conf``
    (target: the IoU, detached, when ``rescore``, else 1); ``λnoobj`` on every other ``conf``
    (target 0); 1 on the C class outputs of object cells (target one-hot).
    """
    P = np.asarray(pred.numpy() if isinstance(pred, Tensor) else pred, dtype=np.float64)
    H, W = _image_hw(image_size)
    T = np.zeros(P.shape)
    Wt = np.zeros(P.shape)
    for b in range(B):
        Wt[..., 5 * b + 4] = lambda_noobj
    for n, t in enumerate(targets):
        boxes = np.asarray(t["boxes"], dtype=np.float64).reshape(-1, 4) / np.array([W, H, W, H])
        labels = np.asarray(t["labels"]).reshape(-1)
        taken = set()
        for (x1, y1, x2, y2), label in zip(boxes, labels):
            cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
            col, row = min(int(np.floor(cx * S)), S - 1), min(int(np.floor(cy * S)), S - 1)
            if (row, col) in taken:
                continue
            taken.add((row, col))
            cell = P[n, row, col]
            boxes_p = np.stack([(col + cell[0:5 * B:5]) / S, (row + cell[1:5 * B:5]) / S,
                                cell[2:5 * B:5] ** 2, cell[3:5 * B:5] ** 2], axis=1)
            truth = np.array([cx, cy, w, h])
            iou = _cell_iou(boxes_p, truth)
            r = int(np.argmax(iou)) if iou.max() > 0 else int(np.argmin(((boxes_p - truth) ** 2).sum(1)))
            T[n, row, col, 5 * r:5 * r + 4] = (cx * S - col, cy * S - row, np.sqrt(w), np.sqrt(h))
            Wt[n, row, col, 5 * r:5 * r + 4] = lambda_coord
            T[n, row, col, 5 * r + 4] = iou[r] if rescore else 1.0
            Wt[n, row, col, 5 * r + 4] = 1.0
            T[n, row, col, 5 * B + int(label) - 1] = 1.0
            Wt[n, row, col, 5 * B:] = 1.0
    return T, Wt


def _check_yolo_inputs(pred, targets, S, B, C, op):
    if not isinstance(pred, Tensor) or pred.ndim != 4 or pred.shape[1:] != (S, S, 5 * B + C):
        raise ValueError(f"{op}: pred must be a Tensor (N, {S}, {S}, {5 * B + C}) for S={S}, B={B}, C={C}, "
                         f"got {getattr(pred, 'shape', type(pred))}")
    if targets is not None:
        if len(targets) != pred.shape[0]:
            raise ValueError(f"{op}: {len(targets)} targets for a batch of {pred.shape[0]}")
        for n, t in enumerate(targets):
            boxes = np.asarray(t["boxes"], dtype=np.float64).reshape(-1, 4)
            labels = np.asarray(t["labels"]).reshape(-1)
            if len(labels) != len(boxes):
                raise ValueError(f"{op}: image {n}: {len(boxes)} boxes but {len(labels)} labels")
            if not np.isfinite(boxes).all() or ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any():
                raise ValueError(f"{op}: image {n}: boxes must be finite with x1 < x2, y1 < y2, got {boxes.tolist()}")
            if labels.size and (labels.min() < 1 or labels.max() > C):
                raise ValueError(f"{op}: image {n}: labels must lie in 1..{C}, got {labels.tolist()}")


def yolo_v1_loss(pred, targets, S, B, C, lambda_coord=5.0, lambda_noobj=0.5, image_size=None, rescore=True):
    """The paper's sum-squared loss, summed over cells and predictors and averaged over the batch.

    ``L = (1/N) Σ W ⊙ (pred − T)²`` with ``T, W`` of :func:`yolo_v1_targets`, i.e.
    ``λcoord Σ 1obj [(x − x̂)² + (y − ŷ)² + (√w − √ŵ)² + (√h − √ĥ)²] + Σ 1obj (C − Ĉ)²
    + λnoobj Σ 1noobj (C − Ĉ)² + Σ_cells-with-object Σ_c (p(c) − p̂(c))²``.
    An image without objects contributes only the ``λnoobj`` terms.

    Args:
        pred: ``(N, S, S, 5B + C)`` model output; targets: N dicts with ``boxes`` ``(G, 4)`` (pixels
            of an ``image_size`` image, or in [0, 1] when ``image_size`` is None) and ``labels`` in 1..C.
        rescore: confidence target = IoU of the predicted box with the truth (paper), else 1.
    """
    _check_yolo_inputs(pred, targets, S, B, C, "yolo_v1_loss")
    T, Wt = yolo_v1_targets(pred, targets, S, B, C, lambda_coord, lambda_noobj, image_size, rescore)
    t = Tensor(T.astype(pred.dtype), device=pred.device)
    w = Tensor(Wt.astype(pred.dtype), device=pred.device)
    d = pred - t
    return (w * d * d).sum() / pred.shape[0]


def yolo_v1_decode(pred, conf_threshold=0.1, iou_threshold=0.5, B=2, image_size=None, max_detections=100):
    """Detections of each image: class-specific scores, threshold, per-class NMS.

    For cell ``(row, col)``, predictor ``b`` and class ``c``: score ``= conf_b · p(c)`` (both clipped to
    [0, 1]), box ``((col + x)/S ± w/2, (row + y)/S ± h/2)`` with ``w = (√w)²``, scaled to pixels when
    ``image_size`` (int or ``(H, W)``) is given. Candidates with score ``> conf_threshold`` go through
    :func:`~minicnn.models.detection.postprocess_detections` (clip to the image, per-class NMS at
    ``iou_threshold``, the ``max_detections`` best).

    Returns:
        N dicts ``{"boxes": (D, 4), "scores": (D,), "labels": (D,) in 1..C}``.
    """
    if not isinstance(pred, Tensor) or pred.ndim != 4 or pred.shape[1] != pred.shape[2] or pred.shape[3] <= 5 * B:
        raise ValueError(f"yolo_v1_decode: pred must be a Tensor (N, S, S, 5B + C) with B={B}, "
                         f"got {getattr(pred, 'shape', type(pred))}")
    P = pred.numpy().astype(np.float64)
    N, S = P.shape[0], P.shape[1]
    C = P.shape[3] - 5 * B
    H, W = _image_hw(image_size)
    rows, cols = np.meshgrid(np.arange(S), np.arange(S), indexing="ij")
    out = []
    for n in range(N):
        boxes, scores, labels = [], [], []
        probs = np.clip(P[n, :, :, 5 * B:], 0, 1)                       # (S, S, C)
        for b in range(B):
            x, y, sw, sh, conf = (P[n, :, :, 5 * b + k] for k in range(5))
            cx, cy, w, h = (cols + x) / S * W, (rows + y) / S * H, sw ** 2 * W, sh ** 2 * H
            box = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).reshape(-1, 1, 4)
            score = (np.clip(conf, 0, 1)[..., None] * probs).reshape(-1, C)
            boxes.append(np.broadcast_to(box, (S * S, C, 4)).reshape(-1, 4))
            scores.append(score.reshape(-1))
            labels.append(np.broadcast_to(np.arange(1, C + 1), (S * S, C)).reshape(-1))
        out.append(postprocess_detections(np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels),
                                          (H, W), conf_threshold, iou_threshold, max_detections, min_size=0.0))
    return out
