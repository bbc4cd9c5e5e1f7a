"""RetinaNet on digit canvases: dense one-stage detection trained with the focal loss.

RetinaNet (Lin et al., 2017) scores every anchor of every pyramid level at once: a ResNet-18 layout
(width 16) with a feature pyramid of 64 channels (P3–P7, strides 8–128), 9 anchors per position
(3 sizes × ratios 0.5, 1, 2; 16–25 px on P3, 32–50 px on P4), and two small subnets shared by the
levels (four 3×3 convolutions each, here with GroupNorm as torchvision's v2 head) that give the 10
digit probabilities (sigmoids) and 4 box offsets per anchor. Of the ~3,000 anchors of a canvas only
a handful overlap a digit: the focal loss FL(p_t) = −α_t (1 − p_t)^γ log p_t (α = 0.25, γ = 2)
scales the easy background anchors down, and the logits start at probability π = 0.01. Anchor
targets: IoU ≥ 0.5 with a digit foreground, < 0.4 background, in between ignored. torchvision's
module names and defaults (so `retinanet_resnet50_fpn` loads its weights); canvases drawn afresh
every epoch.

    python examples/24_retinanet_digit_canvases.py [--epochs E] [--limit N]

The same run as `python -m minicnn train --task detection --model retinanet --dataset digit-canvases`.
Writes runs/24_retinanet_digit_canvases/: detections.png, pr_curves.png, curves.png, summary.json.
"""
import os

from minicnn.cli_detection import run_example

OUT = os.path.join("runs", "24_retinanet_digit_canvases")

if __name__ == "__main__":
    summary, keep = run_example(__doc__.splitlines()[0], "retinanet", "digit-canvases", OUT)
    print(f"held-out mAP@0.5 {summary['map50']:.4f}, COCO mAP@[.5:.95] {summary['coco_map']:.4f} on "
          f"{summary['test_images']} canvases; {summary['seconds']:.0f} s; pictures in {OUT}/")
