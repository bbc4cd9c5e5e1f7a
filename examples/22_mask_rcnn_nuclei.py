"""Mask R-CNN on real nuclei: every nucleus of the held-out quadrant found, boxed and outlined.

Mask R-CNN (He et al., 2017) is Faster R-CNN with a third head: for each detected box, RoIAlign
(bilinear sampling, no rounding of the box) cuts a 14×14 window from the feature pyramid, four 3×3
convolutions and a 2×2 transposed convolution give a 28×28 mask per class, and the loss is the
binary cross-entropy of the true class's mask only. At test time the predicted class's mask is
pasted back into its box and thresholded at 0.5. Here on the embedded fluorescence image: 64×64
tiles of three quadrants train, the fourth quadrant (256×256, 29 nuclei) is held out; anchors 8–128
px, as the nuclei are 4–38 px wide. ``--dataset digit-canvases`` trains on digit canvases instead.

    python examples/22_mask_rcnn_nuclei.py [--dataset digit-canvases] [--epochs E]

The same run as `python -m minicnn train --task detection --model mask_rcnn --dataset nuclei`.
Writes runs/22_mask_rcnn_<dataset>/: masks.png (the held-out image, predicted masks and the truth),
detections.png, pr_curves.png, curves.png, summary.json (box and mask AP).
"""
import os
import sys

import numpy as np

import minicnn as mc
from minicnn import viz
from minicnn.cli_detection import rcnn_forward, run_example


def plot_masks(image, pred_masks, true_masks, path):
    """The image, the predicted instance masks and the true ones, each instance its own colour."""
    plt = viz._plt()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    axes[0].imshow(image[0], cmap="gray"), axes[0].set_title("held-out image")
    for ax, masks, title in ((axes[1], pred_masks, f"Mask R-CNN: {len(pred_masks)} masks"),
                             (axes[2], true_masks, f"truth: {len(true_masks)} nuclei")):
        labels = np.zeros(image.shape[1:], dtype=np.int32)
        for k, m in enumerate(masks, 1):
            labels[np.asarray(m) > 0] = k
        ax.imshow(np.where(labels > 0, labels % 20 + 1, 0), cmap="tab20", interpolation="nearest")
        ax.set_title(title)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return viz._save(fig, path)


if __name__ == "__main__":
    argv = sys.argv[1:]
    dataset = "nuclei"
    if "--dataset" in argv:
        i = argv.index("--dataset")
        dataset = argv[i + 1]
        del argv[i:i + 2]
    out = os.path.join("runs", f"22_mask_rcnn_{dataset}")
    summary, keep = run_example(__doc__.splitlines()[0], "mask_rcnn", dataset, out, argv=argv)
    model, test = keep["model"], keep["test"]
    model.eval()
    with mc.no_grad():
        det = rcnn_forward(model, mc.Tensor(test.images[:1]), None)[0]
    keep_ = np.asarray(det["scores"]) >= 0.5
    masks = np.asarray(det["masks"]).reshape(-1, *test.images.shape[2:])[keep_] >= 0.5
    plot_masks(test.images[0], masks, test.targets[0]["masks"], os.path.join(out, "masks.png"))
    print(f"held-out box AP@0.5 {summary['map50']:.4f}, mask AP@0.5 {summary['mask_ap50']:.4f} "
          f"(mask COCO mAP {summary['mask_coco_map']:.4f}); {summary['seconds']:.0f} s; pictures in {out}/")
