"""U-Net on real nuclei: train on three quadrants of the embedded fluorescence image, segment the fourth.

U-Net (Ronneberger et al., 2015) is a contracting path (3×3 convs, 2×2 max pools, channels
doubling) and an expanding path (2×2 up-convolutions, channels halving) joined by skips that
concatenate the contracting path's feature maps: the skips bring back the fine detail the pools
threw away. Here a small configuration of the same code (16 base channels, same-size convs).

The three-class labels (background / interior / boundary) and the paper's weight map
``w(x) = w_c(x) + w0·exp(−(d1 + d2)² / 2σ²)`` (w0 = 10, σ = 5; d1, d2 the distances to the
nearest and second-nearest nucleus) make the net draw a line between touching nuclei, so
connected components of the predicted interior separate them: instances are then scored by F1
at IoU 0.5 against the true nuclei of the held-out quadrant.

    python examples/08_unet_nuclei.py [--epochs 60]

Writes runs/08_unet_nuclei/: weight_map.png (a training tile, its labels and weights),
predictions.png (held-out quadrant: truth vs prediction), instances.png (the nuclei found),
class_iou.png, learning_curves.png.
"""
import os

import numpy as np

from minicnn import metrics, viz
from minicnn.cli_segmentation import run_example
from minicnn.models.segmentation.unet import unet_weight_map

OUT = os.path.join("runs", "08_unet_nuclei")


def plot_weight_map(image, labels, weights, path):
    """A training tile, its 3-class labels, and the U-Net weight map."""
    plt = viz._plt()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    axes[0].imshow(image[0], cmap="gray"), axes[0].set_title("training tile")
    axes[1].imshow(labels, cmap="viridis", interpolation="nearest"), axes[1].set_title("0 background, 1 interior, 2 boundary")
    im = axes[2].imshow(weights, cmap="magma")
    axes[2].set_title("weight map w(x)")
    fig.colorbar(im, ax=axes[2], shrink=0.8)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return viz._save(fig, path)


def plot_instances(image, found, true, path, f1):
    """Outlines of the true nuclei (green) and of the instances found (red) on the held-out image."""
    plt = viz._plt()
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(image[0], cmap="gray")
    for inst, color in ((true, "lime"), (found, "red")):
        for k in range(1, int(inst.max()) + 1):
            if (inst == k).any():
                ax.contour(inst == k, levels=[0.5], colors=color, linewidths=0.8)
    ax.set_title(f"held-out quadrant: true nuclei (green), found (red); F1@0.5 = {f1:.3f}")
    ax.axis("off")
    fig.tight_layout()
    return viz._save(fig, path)


def main():
    summary, keep = run_example(__doc__.split("\n\n")[0], "unet", "nuclei", epochs=60, out=OUT,
                                extra=("--classes", "3", "--weight-map"))
    (x, y, inst), (tx, _, tinst) = keep["train"], keep["test"]
    busiest = int(np.argmax([len(np.unique(i)) for i in inst]))
    plot_weight_map(x[busiest], y[busiest], unet_weight_map(inst[busiest]), os.path.join(OUT, "weight_map.png"))
    pred = keep["trainer"].last_prediction[0]
    found = metrics.instances_from_semantic(pred, mode="interior")
    plot_instances(tx[0], found, tinst[0], os.path.join(OUT, "instances.png"), summary["test_instance_f1"])
    print(f"held-out quadrant: foreground IoU {summary['test_foreground_iou']:.4f}, "
          f"instance F1@0.5 {summary['test_instance_f1']:.4f}; pictures in {OUT}/")


if __name__ == "__main__":
    main()
