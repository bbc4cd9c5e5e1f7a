"""Pictures of generative models: image grids, grids across epochs, loss curves of G and D.

Images are ``(N, C, H, W)`` arrays in [−1, 1] (the generators' tanh range); one channel is drawn
in grey, three as RGB. Every function writes a PNG and returns its path.
"""
import numpy as np

from .plots import _plt, _save


def to_display(images):
    """``(N, C, H, W)`` in [−1, 1] → ``(N, H, W)`` or ``(N, H, W, 3)`` in [0, 1] for ``imshow``."""
    x = np.clip((np.asarray(images, dtype=np.float32) + 1.0) / 2.0, 0.0, 1.0)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"to_display: expected images (N, 1 or 3, H, W), got shape {x.shape}")
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)


def tile(images, ncols, pad=1):
    """One mosaic ``(rows·(H+pad)−pad, ncols·(W+pad)−pad[, 3])`` of ``images`` (display range), row-major;
    the padding is white."""
    x = to_display(images)
    n, h, w = x.shape[:3]
    rows = -(-n // ncols)
    out = np.ones((rows * (h + pad) - pad, ncols * (w + pad) - pad) + x.shape[3:], dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = x[i]
    return out


def plot_image_grid(images, path, ncols=8, title=None, scale=0.5):
    """The images as one grid (``scale`` inches per image side)."""
    mosaic = tile(images, ncols)
    rows = -(-len(images) // ncols)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(2.0, ncols * scale), max(1.5, rows * scale + (0.4 if title else 0.0))))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_rows(rows, path, row_labels=None, title=None, scale=0.6):
    """One row of images per entry of ``rows`` (each ``(k, C, H, W)``, the same ``k``), labelled on
    the left: samples across epochs, input / output / truth, a → b → a."""
    k = len(rows[0])
    plt = _plt()
    fig, axes = plt.subplots(len(rows), 1, figsize=(max(3.0, k * scale + 1.2), len(rows) * scale + 0.5),
                             squeeze=False)
    for i, row in enumerate(rows):
        ax = axes[i, 0]
        ax.imshow(tile(row, k), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if row_labels is not None:
            ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_gan_losses(history, path, title="GAN losses", keys=("loss_d", "loss_g")):
    """Per-epoch mean losses of D and G (and any other ``keys`` present in ``history``)."""
    epochs = [row["epoch"] for row in history]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key in keys:
        if key in history[0]:
            ax.plot(epochs, [row[key] for row in history], marker="o", ms=3, label=key)
    ax.set_xlabel("epoch"), ax.set_ylabel("mean loss over the epoch")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
