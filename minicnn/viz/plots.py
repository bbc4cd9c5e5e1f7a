"""Pictures for learners: learning curves, confusion matrices, image grids (matplotlib, optional).

Every function writes a PNG and returns its path; matplotlib is imported lazily with the
non-interactive Agg backend, so nothing here needs a screen.
"""
import os

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(history, path, title="learning curves"):
    """Loss and accuracy per epoch, on the training set and the held-out set.

    ``history``: list of dicts (``Trainer.fit``'s) with ``epoch``, ``train_loss``, ``train_acc``
    and the held-out ``test_loss``, ``test_acc`` (legend "test") or ``val_loss``, ``val_acc``
    (legend "validation": ``Trainer.fit(..., split="val")``, and histories of earlier versions)."""
    plt = _plt()
    split = _held_out_split(history)
    label = {"test": "test", "val": "validation"}[split]
    ep = [h["epoch"] for h in history]
    held = [h for h in history if f"{split}_loss" in h]  # every row, or every k-th (Trainer.fit eval_every)
    eh = [h["epoch"] for h in held]
    mark = ("o-", "s-") if len(history) <= 40 else ("-", "-")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [h["train_loss"] for h in history], mark[0], label="train")
    a1.plot(eh, [h[f"{split}_loss"] for h in held], mark[1], label=label)
    a1.set_xlabel("epoch"), a1.set_ylabel("cross-entropy"), a1.legend(), a1.set_title("loss")
    a2.plot(ep, [100 * h["train_acc"] for h in history], mark[0], label="train")
    a2.plot(eh, [100 * h[f"{split}_acc"] for h in held], mark[1], label=label)
    a2.set_xlabel("epoch"), a2.set_ylabel("accuracy (%)"), a2.legend(), a2.set_title("accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _held_out_split(history):
    """``"test"`` or ``"val"``: the prefix of the held-out metrics every row of ``history`` has."""
    if not history:
        raise ValueError("plot_learning_curves: history is empty (train at least one epoch)")
    for split in ("test", "val"):
        if f"{split}_loss" in history[-1] and f"{split}_acc" in history[-1]:
            return split
    raise ValueError(f"plot_learning_curves: the last row needs test_loss and test_acc (or val_loss and val_acc); "
                     f"it has {sorted(history[-1])}")


def plot_confusion_matrix(cm, path, class_names=None, title="confusion matrix"):
    """Counts of (true class, predicted class), the diagonal being the correct predictions."""
    plt = _plt()
    cm = np.asarray(cm)
    k = cm.shape[0]
    names = class_names or [str(i) for i in range(k)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 1.0 + 0.55 * k))
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(k), names, rotation=45, ha="right"), ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_images(images, path, labels=None, preds=None, boxes=None, pred_boxes=None, ncols=8, title=None):
    """A grid of (N, 1|3, H, W) images with optional labels/predictions and boxes (x1, y1, x2, y2)."""
    plt = _plt()
    images = np.asarray(images)
    n = len(images)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 2.1 * nrows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        text = []
        if labels is not None:
            text.append(f"y={labels[i]}")
        if preds is not None:
            text.append(f"p={preds[i]}")
        if text:
            ok = preds is None or labels is None or preds[i] == labels[i]
            ax.set_title(" ".join(text), fontsize=8, color="black" if ok else "red")
        for bs, color in ((boxes, "lime"), (pred_boxes, "red")):
            if bs is not None:
                x1, y1, x2, y2 = bs[i]
                ax.add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, color=color, lw=1))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_signals_per_class(x, y, path, class_names=None, per_class=3, title=None):
    """A few series of each class, one panel per class; ``x`` ``(N, C, L)`` (each channel a line)
    or ``(N, L)``, ``y`` class ids ``(N,)``."""
    plt = _plt()
    x, y = np.asarray(x), np.asarray(y)
    x = x[:, None] if x.ndim == 2 else x
    classes = np.unique(y)
    names = class_names or [str(c) for c in range(int(classes.max()) + 1)]
    ncols = min(len(classes), 5)
    nrows = -(-len(classes) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, c in zip(axes.flat, classes):
        for k, i in enumerate(np.flatnonzero(y == c)[:per_class]):
            for ch in range(x.shape[1]):
                ax.plot(x[i, ch], color=colors[k % len(colors)], lw=1, alpha=0.8 if x.shape[1] == 1 else 0.4)
        ax.set_title(f"class {names[int(c)]}", fontsize=9)
        ax.set_xlabel("time step", fontsize=8)
    for ax in list(axes.flat)[len(classes):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_cam(x, cam, path, labels=None, preds=None, title=None):
    """Series coloured by their class activation map (Wang et al. 2017, Fig. 3): one panel per
    series, ``x`` ``(N, C, L)`` or ``(N, L)``, ``cam`` ``(N, L')`` (resampled to L when L' != L);
    points are coloured by the CAM scaled to [0, 1] per series (red: strongest evidence)."""
    plt = _plt()
    x, cam = np.asarray(x, dtype=np.float64), np.asarray(cam, dtype=np.float64)
    x = x[:, None] if x.ndim == 2 else x
    n, length = x.shape[0], x.shape[2]
    ncols = min(n, 4)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.6 * nrows), squeeze=False)
    t = np.arange(length)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        c = np.interp(np.linspace(0, 1, length), np.linspace(0, 1, cam.shape[1]), cam[i])
        c = (c - c.min()) / (np.ptp(c) or 1.0)
        for ch in range(x.shape[1]):
            ax.plot(t, x[i, ch], color="0.75", lw=0.8, zorder=1)
            sc = ax.scatter(t, x[i, ch], c=c, cmap="jet", s=6, vmin=0, vmax=1, zorder=2)
        text = []
        if labels is not None:
            text.append(f"true {labels[i]}")
        if preds is not None:
            text.append(f"pred {preds[i]}")
        ax.set_title(", ".join(text), fontsize=9)
    fig.subplots_adjust(top=0.8 if nrows == 1 else 0.88, hspace=0.5, wspace=0.3, right=0.85)
    fig.colorbar(sc, ax=axes.ravel().tolist(), shrink=0.8, label="CAM (scaled)")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _label_colors(num_classes):
    """An RGB colour per class (background black), from matplotlib's tab20 / tab10 maps."""
    plt = _plt()
    cmap = plt.get_cmap("tab10" if num_classes <= 11 else "tab20")
    colors = np.array([cmap(i % cmap.N)[:3] for i in range(max(num_classes - 1, 1))])
    return np.vstack([np.zeros((1, 3)), colors])


def overlay_labels(image, labels, num_classes, alpha=0.55):
    """An RGB picture ``(H, W, 3)``: the grey image scaled to [0, 1] with each pixel of class ``c >= 1``
    blended with the colour of ``c`` (weight ``alpha``); background pixels stay grey."""
    image, labels = np.asarray(image, dtype=np.float64), np.asarray(labels)
    h, w = labels.shape
    if image.shape[-2:] != (h, w):            # a valid-convolution output: the image's centre
        top, left = (image.shape[-2] - h) // 2, (image.shape[-1] - w) // 2
        image = image[..., top:top + h, left:left + w]
    g = image[0] if image.ndim == 3 else image
    g = (g - g.min()) / (np.ptp(g) or 1.0)
    rgb = np.repeat(g[..., None], 3, axis=2)
    colors = _label_colors(num_classes)
    fg = labels > 0
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * colors[labels[fg]]
    return rgb


def plot_segmentation(images, truth, pred, path, num_classes, class_names=None, title=None, max_rows=6):
    """Rows of (image, truth overlaid, prediction overlaid, pixels where they differ) for the first
    ``max_rows`` images; ``images (N, C, H, W)``, ``truth``/``pred`` label masks ``(N, H', W')``."""
    plt = _plt()
    n = min(len(images), max_rows)
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.6 * n), squeeze=False)
    for i in range(n):
        t, p = np.asarray(truth[i]), np.asarray(pred[i])
        panels = [(overlay_labels(images[i], np.zeros_like(t), num_classes), "image"),
                  (overlay_labels(images[i], t, num_classes), "truth"),
                  (overlay_labels(images[i], p, num_classes), "prediction"),
                  (p != t, f"errors ({100 * np.mean(p != t):.1f}% of pixels)")]
        for ax, (picture, name) in zip(axes[i], panels):
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, interpolation="nearest")
            ax.set_title(name, fontsize=9)
            ax.axis("off")
    if class_names:
        colors = _label_colors(num_classes)
        handles = [plt.Rectangle((0, 0), 1, 1, color=colors[c]) for c in range(1, num_classes)]
        fig.legend(handles, class_names[1:], loc="lower center", ncol=min(num_classes - 1, 10), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04 if class_names else 0, 1, 1))
    return _save(fig, path)


def plot_class_iou(iou, path, class_names=None, title="per-class IoU"):
    """Bars of the held-out IoU of every class, with the mean IoU as a dashed line."""
    plt = _plt()
    iou = np.asarray(iou, dtype=np.float64)
    names = class_names or [str(c) for c in range(len(iou))]
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * len(iou), 3.6))
    ax.bar(range(len(iou)), np.nan_to_num(iou), color="tab:blue")
    ax.axhline(np.nanmean(iou), color="k", ls="--", lw=1, label=f"mean IoU {np.nanmean(iou):.3f}")
    ax.set_xticks(range(len(iou)), names, rotation=45, ha="right")
    ax.set_ylim(0, 1), ax.set_ylabel("IoU"), ax.legend(loc="lower right"), ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_segmentation_curves(history, path, title="learning curves"):
    """Training loss per epoch, and the held-out mean IoU (and instance F1 where measured)."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    held = [h for h in history if "test_mean_iou" in h]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [h["train_loss"] for h in history], "-", label="train")
    a1.set_xlabel("epoch"), a1.set_ylabel("cross-entropy"), a1.set_title("loss"), a1.legend()
    a2.plot([h["epoch"] for h in held], [h["test_mean_iou"] for h in held], "o-", label="test mean IoU")
    if held and "test_instance_f1" in held[-1]:
        a2.plot([h["epoch"] for h in held], [h["test_instance_f1"] for h in held], "s-", label="test instance F1")
    a2.set_xlabel("epoch"), a2.set_ylim(0, 1), a2.set_title("held-out scores"), a2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
