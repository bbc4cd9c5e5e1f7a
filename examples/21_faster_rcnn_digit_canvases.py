"""Faster R-CNN on digit canvases: a Region Proposal Network replaces selective search.

Faster R-CNN (Ren et al., 2015) learns its proposals. A ResNet-18 layout (width 16) with a feature
pyramid (FPN, 32 channels) gives maps at strides 4–64; at every position of every level the RPN
scores 3 anchors (ratios 0.5, 1, 2; one size per level, 16–256 px) as object or not and regresses
them to boxes; the best ~200 after NMS go to the RoI heads, which pool each from its pyramid level
(RoIAlign 7×7, level by the box's size), classify it into 10 digits + background and refine its box.
Anchor targets: IoU ≥ 0.7 positive, < 0.3 negative, 256 samples per image, half positive; RoI targets:
IoU ≥ 0.5 foreground, 25% of the samples. torchvision's module names and defaults (so
`fasterrcnn_resnet50_fpn` loads its weights); canvases as they are (128 px, no resizing), drawn
afresh every epoch.

    python examples/21_faster_rcnn_digit_canvases.py [--epochs E] [--limit N]

The same run as `python -m minicnn train --task detection --model faster_rcnn --dataset digit-canvases`.
Writes runs/21_faster_rcnn_digit_canvases/: rpn_proposals.png (the RPN's 20 best proposals on held-out
canvases, before the RoI heads), detections.png, pr_curves.png, curves.png, summary.json.
"""
import os

import numpy as np

import minicnn as mc
from minicnn.cli_detection import run_example
from minicnn.viz import detection as vd

OUT = os.path.join("runs", "21_faster_rcnn_digit_canvases")


def rpn_proposals(model, images, top=20):
    """The RPN's best ``top`` proposals per image (eval mode; pixels of the input images)."""
    model.eval()
    with mc.no_grad():
        image_list, _ = model.transform([mc.Tensor(im) for im in images])
        features = model.backbone(image_list.tensors)
        proposals, _ = model.rpn(image_list, features)
    return [dict(boxes=np.asarray(p)[:top], scores=np.ones(min(top, len(p))), labels=np.zeros(min(top, len(p)), int))
            for p in proposals]


if __name__ == "__main__":
    summary, keep = run_example(__doc__.splitlines()[0], "faster_rcnn", "digit-canvases", OUT)
    test = keep["test"]
    vd.plot_detections(test.images[:4], rpn_proposals(keep["model"], test.images[:4]), test.targets[:4],
                       os.path.join(OUT, "rpn_proposals.png"), ["proposal"], score_threshold=0.5,
                       title="the RPN's 20 best proposals (truth dashed)")
    print(f"held-out mAP@0.5 {summary['map50']:.4f}, COCO mAP@[.5:.95] {summary['coco_map']:.4f} on "
          f"{summary['test_images']} canvases; {summary['seconds']:.0f} s; pictures in {OUT}/")
