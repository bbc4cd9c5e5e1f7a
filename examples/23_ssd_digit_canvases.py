"""SSD on digit canvases: one network, boxes of several sizes on feature maps of several scales.

SSD (Liu et al., 2016) predicts in a single pass. A small VGG-style backbone (width 16, batch norm)
gives feature maps of 16×16, 8×8, 4×4, 2×2 and 1×1 cells on a 128-px canvas; every cell of map k
holds default boxes of scale s_k (15, 28, 49, 77, 102 px for the square ones) and aspect ratios
{1, 2, 1/2} or {1, 2, 3, 1/2, 1/3}, plus one square of scale √(s_k s_k+1). A 3×3 convolution per map
scores every default box for the 10 digits + background and regresses its offsets. Training: a
default box is positive for the object it overlaps at IoU ≥ 0.5 (and each object claims its best
box), offsets encoded with variances (0.1, 0.2), smooth-L1 on positives plus cross-entropy on the
positives and the 3× as many hardest negatives. torchvision's module names and defaults (so
`ssd300_vgg16` loads its weights); canvases drawn afresh every epoch.

    python examples/23_ssd_digit_canvases.py [--epochs E] [--limit N]

The same run as `python -m minicnn train --task detection --model ssd --dataset digit-canvases`.
Writes runs/23_ssd_digit_canvases/: default_boxes.png (per feature map, one cell's default boxes and
every default box that matches an object of a held-out canvas), detections.png, pr_curves.png,
curves.png, summary.json.
"""
import os

from minicnn.cli_detection import run_example

OUT = os.path.join("runs", "23_ssd_digit_canvases")

if __name__ == "__main__":
    summary, keep = run_example(__doc__.splitlines()[0], "ssd", "digit-canvases", OUT)
    print(f"held-out mAP@0.5 {summary['map50']:.4f}, COCO mAP@[.5:.95] {summary['coco_map']:.4f} on "
          f"{summary['test_images']} canvases; {summary['seconds']:.0f} s; pictures in {OUT}/")
