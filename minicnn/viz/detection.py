"""Pictures of detectors: boxes on held-out images, precision–recall curves, learning curves, the
YOLO grid and SSD's default boxes (for learners).

Images are ``(C, H, W)`` arrays (one channel drawn in grey, min–max scaled); boxes
``(x1, y1, x2, y2)`` in pixel-edge coordinates (a box ``(0, 0, 1, 1)`` covers the top-left pixel).
Every function writes a PNG and returns its path.
"""
import numpy as np

from .plots import _plt, _save

PRED_COLOR = "#ff3b30"      # predicted boxes
TRUTH_COLOR = "#34c759"     # ground truth (dashed)


def _gray(image):
    """``(C, H, W)`` → ``(H, W)`` or ``(H, W, 3)`` in [0, 1] (min–max scaled) for ``imshow``."""
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"viz.detection: expected an image (1 or 3, H, W), got shape {x.shape}")
    lo, hi = x.min(), x.max()
    x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)


def _name(class_names, label):
    label = int(label)
    return class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)


def _draw_box(ax, box, color, dashed=False, text=None, lw=1.2):
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = (float(v) for v in box)
    # imshow puts pixel j's centre at j: the box's pixel edges are at −0.5
    ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=lw,
                           linestyle="--" if dashed else "-"))
    if text:
        ax.text(x1 - 0.5, y1 - 1.5, text, color="white", fontsize=6, va="bottom",
                bbox=dict(facecolor=color, edgecolor="none", pad=0.5, alpha=0.85))


def plot_detections(images, detections, targets, path, class_names=None, score_threshold=0.3, ncols=4, title=None):
    """Images ``(N, C, H, W)`` with their predicted boxes (solid, ``"label score"``, score >=
    ``score_threshold``) and the ground truth (dashed, another colour)."""
    n = len(images)
    if len(detections) != n or (targets is not None and len(targets) != n):
        raise ValueError(f"plot_detections: {n} images, {len(detections)} detections and "
                         f"{len(targets) if targets is not None else 0} targets must match")
    ncols = max(1, min(ncols, n))
    rows = -(-n // ncols)
    plt = _plt()
    fig, axes = plt.subplots(rows, ncols, figsize=(2.6 * ncols, 2.6 * rows + (0.4 if title else 0)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes[i // ncols, i % ncols]
        ax.imshow(_gray(images[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if targets is not None:
            for box in np.asarray(targets[i]["boxes"]).reshape(-1, 4):
                _draw_box(ax, box, TRUTH_COLOR, dashed=True)
        d = detections[i]
        scores = np.asarray(d["scores"]).reshape(-1)
        for box, s, lab in zip(np.asarray(d["boxes"]).reshape(-1, 4), scores, np.asarray(d["labels"]).reshape(-1)):
            if s >= score_threshold:
                _draw_box(ax, box, PRED_COLOR, text=f"{_name(class_names, lab)} {s:.2f}")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_precision_recall(voc, path, class_names=None, title="precision-recall at IoU 0.5"):
    """Precision against recall per class from :func:`~minicnn.detection_metrics.voc_evaluate`'s
    ``precision``/``recall`` (one curve per class, its AP in the legend)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    cmap = plt.get_cmap("tab10" if len(voc["ap"]) <= 10 else "tab20")
    for i, c in enumerate(sorted(voc["ap"])):
        r, p = np.asarray(voc["recall"][c]), np.asarray(voc["precision"][c])
        ax.step(np.concatenate([[0.0], r]), np.concatenate([[p[0] if len(p) else 0.0], p]), where="post",
                color=cmap(i % cmap.N), lw=1.2, label=f"{_name(class_names, c)}  AP {voc['ap'][c]:.3f}")
    ax.set_xlim(0, 1.01), ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall"), ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_detection_curves(history, path, title="learning curves"):
    """Training loss and held-out mAP@0.5 / COCO mAP@[.5:.95] per epoch (``DetectionTrainer``'s history)."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(ep, [h["loss"] for h in history], marker="o", ms=3)
    a.set_xlabel("epoch"), a.set_ylabel("training loss"), a.set_yscale("log"), a.grid(alpha=0.3)
    for key, label in (("map50", "mAP@0.5 (VOC)"), ("coco_map", "COCO mAP@[.5:.95]")):
        b.plot(ep, [h[key] for h in history], marker="o", ms=3, label=label)
    b.set_xlabel("epoch"), b.set_ylabel("held-out"), b.set_ylim(0, 1), b.grid(alpha=0.3), b.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def yolo_cells(target, S, image_size):
    """The responsible cell ``(row, col)`` of each object: the cell holding its box centre,
    ``col = min(⌊cx·S/W⌋, S − 1)``, ``row = min(⌊cy·S/H⌋, S − 1)`` (``image_size = (H, W)``)."""
    H, W = image_size
    boxes = np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return [(min(int(np.floor(y * S / H)), S - 1), min(int(np.floor(x * S / W)), S - 1)) for x, y in zip(cx, cy)]


def plot_yolo_grid(image, pred, target, S, B, path, class_names=None, title=None):
    """How YOLO v1 sees an image: the S×S grid, the responsible cell of each object (shaded, the
    truth box dashed and its centre dotted) and the B boxes that cell predicts, each with its
    confidence (the one of highest confidence solid, the others dotted) and the cell's most
    probable class.

    Args:
        image: ``(C, H, W)``; pred: the model's output for it ``(S, S, 5B + C)``; target: its dict.
    """
    from matplotlib.patches import Rectangle

    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape[:2] != (S, S) or pred.shape[2] <= 5 * B:
        raise ValueError(f"plot_yolo_grid: pred must be (S, S, 5B + C) with S={S}, B={B}, got {pred.shape}")
    H, W = np.asarray(image).shape[1:]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.imshow(_gray(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for k in range(1, S):
        ax.axvline(k * W / S - 0.5, color="#5ac8fa", lw=0.6, alpha=0.7)
        ax.axhline(k * H / S - 0.5, color="#5ac8fa", lw=0.6, alpha=0.7)
    boxes = np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4)
    colors = plt.get_cmap("tab10")
    for i, ((row, col), box) in enumerate(zip(yolo_cells(target, S, (H, W)), boxes)):
        color = colors(i % 10)
        ax.add_patch(Rectangle((col * W / S - 0.5, row * H / S - 0.5), W / S, H / S, facecolor=color, alpha=0.3,
                               edgecolor=color))
        _draw_box(ax, box, color, dashed=True)
        ax.plot((box[0] + box[2]) / 2 - 0.5, (box[1] + box[3]) / 2 - 0.5, "o", color=color, ms=3)
        cell = pred[row, col]
        best = int(np.argmax([cell[5 * b + 4] for b in range(B)]))
        cls = int(np.argmax(cell[5 * B:])) + 1
        for b in range(B):
            x, y, sw, sh, conf = cell[5 * b:5 * b + 5]
            cx, cy, w, h = (col + x) / S * W, (row + y) / S * H, sw ** 2 * W, sh ** 2 * H
            ax.add_patch(Rectangle((cx - w / 2 - 0.5, cy - h / 2 - 0.5), w, h, fill=False, edgecolor=color,
                                   lw=1.6 if b == best else 0.9, linestyle="-" if b == best else ":"))
            ax.text(cx - w / 2 - 0.5, cy + h / 2 - 0.5, f"b{b} {conf:.2f}" + (f" '{_name(class_names, cls)}'"
                    if b == best else ""), color="white", fontsize=6, va="top",
                    bbox=dict(facecolor=color, edgecolor="none", pad=0.4, alpha=0.8))
    ax.set_xlim(-0.5, W - 0.5), ax.set_ylim(H - 0.5, -0.5)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(title or f"YOLO v1: {S}x{S} grid, {B} boxes per cell", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)



def default_box_panels(level_shapes, num_anchors, anchors, target=None, iou_threshold=0.5):
    """What :func:`plot_default_boxes` draws, as data. Level ``l`` is a feature map of shape
    ``(H_l, W_l)`` with ``A_l = num_anchors[l]`` default boxes per cell; ``anchors`` holds the
    ``Σ H_l W_l A_l`` boxes (pixels) level by level, each level cell by cell in row order, then box
    (SSD's and torchvision's order). Per level a dict: ``shape``, ``cell`` ``(row, col)`` (the cell
    whose default boxes are centred nearest the first truth box's centre, else the centre of the
    anchors' extent), ``boxes`` (that cell's ``A_l`` default boxes) and ``matched`` (every box of the
    level with IoU ≥ ``iou_threshold`` against a truth box: the priors that become positives in
    SSD's matching, before the best-prior rule adds one per object)."""
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 4)
    counts = [int(h) * int(w) * int(a) for (h, w), a in zip(level_shapes, num_anchors)]
    if len(level_shapes) != len(num_anchors) or min(counts, default=0) <= 0 or sum(counts) != len(anchors):
        raise ValueError(f"default_box_panels: level_shapes {list(level_shapes)} × num_anchors {list(num_anchors)} "
                         f"must give the {len(anchors)} anchors (each positive)")
    truth = np.zeros((0, 4)) if target is None else np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4)
    if len(truth):
        cx, cy = (truth[0, 0] + truth[0, 2]) / 2, (truth[0, 1] + truth[0, 3]) / 2
    else:
        cx, cy = (anchors[:, 0].min() + anchors[:, 2].max()) / 2, (anchors[:, 1].min() + anchors[:, 3].max()) / 2
    panels, start = [], 0
    for (h, w), a, n in zip(level_shapes, num_anchors, counts):
        level = anchors[start:start + n]
        start += n
        centres = ((level[:, 0] + level[:, 2]) / 2).reshape(h, w, a)[..., 0], \
            ((level[:, 1] + level[:, 3]) / 2).reshape(h, w, a)[..., 0]
        # the cell whose default-box centre is nearest the point
        d = (centres[0] - cx) ** 2 + (centres[1] - cy) ** 2
        row, col = (int(v) for v in np.unravel_index(int(np.argmin(d)), d.shape))
        k = (row * w + col) * a
        matched = np.zeros((0, 4))
        if len(truth):
            iou = _iou(level, truth)
            matched = level[(iou >= iou_threshold).any(axis=1)]
        panels.append(dict(shape=(int(h), int(w)), cell=(row, col), boxes=level[k:k + a], matched=matched))
    return panels


def _iou(a, b):
    """IoU matrix ``(len(a), len(b))`` of ``(x1, y1, x2, y2)`` boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def plot_default_boxes(image, level_shapes, num_anchors, anchors, path, target=None, iou_threshold=0.5, title=None):
    """How SSD sees an image (for learners): one panel per feature-map level, its cell grid, the
    default boxes of one cell (the cell under the first object, see :func:`default_box_panels`) and,
    shaded, every default box of that level that matches a truth box at IoU ≥ ``iou_threshold``.
    Small maps (fine cells) hold small boxes, coarse maps large ones: an object is matched on the
    levels whose box sizes fit it."""
    from matplotlib.patches import Rectangle

    panels = default_box_panels(level_shapes, num_anchors, anchors, target, iou_threshold)
    H, W = np.asarray(image).shape[1:]
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, p in zip(axes[0], panels):
        ax.imshow(_gray(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        h, w = p["shape"]
        for k in range(1, w):
            ax.axvline(k * W / w - 0.5, color="#5ac8fa", lw=0.4, alpha=0.6)
        for k in range(1, h):
            ax.axhline(k * H / h - 0.5, color="#5ac8fa", lw=0.4, alpha=0.6)
        for box in p["matched"]:
            x1, y1, x2, y2 = box
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, facecolor="#ffcc00", alpha=0.12,
                                   edgecolor="#ffcc00", lw=0.6))
        for i, box in enumerate(p["boxes"]):
            _draw_box(ax, box, colors(i % 10), lw=1.0)
        if target is not None:
            for box in np.asarray(target["boxes"]).reshape(-1, 4):
                _draw_box(ax, box, TRUTH_COLOR, dashed=True)
        ax.set_xlim(-0.5, W - 0.5), ax.set_ylim(H - 0.5, -0.5)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"{h}×{w} map: {len(p['boxes'])} boxes/cell\n{len(p['matched'])} match at IoU ≥ {iou_threshold}",
                     fontsize=7)
    fig.suptitle(title or "SSD default boxes per feature map", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
