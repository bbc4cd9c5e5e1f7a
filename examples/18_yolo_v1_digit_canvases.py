"""YOLO v1 on digit canvases: one network looks once at the image and says where the digits are.

YOLO v1 (Redmon, Divvala, Girshick & Farhadi, 2016) divides the image into an S×S grid. The cell
holding an object's centre is responsible for it: each cell predicts B boxes, each as
(x, y, √w, √h, confidence) with x, y relative to the cell and w, h to the image, and C class
probabilities; the whole answer is one S×S×(5B + C) tensor (here 7×7×20: B = 2, C = 10 digits)
from a convolutional backbone and two fully connected layers. Training is one sum-squared loss:
λcoord = 5 on the coordinates of the predictor responsible for an object (the one whose box
overlaps the truth most), the confidence pulled towards that IoU, λnoobj = 0.5 on the confidence
of every other predictor, and the class probabilities of cells with an object. At test time
score = confidence × p(class), then per-class non-maximum suppression.

Recipe (the paper's, scaled down for 128×128 canvases and 2 cores): the convolutional backbone
(five 3×3 conv + BatchNorm + leaky ReLU + 2×2 pool stages) is first pre-trained on classifying
single digits; then the detector trains on canvases drawn afresh every epoch from the training
digits (new digits, sizes and positions: no fixed set to memorise; flips would be wrong for
digits), Adam with a linear warm-up and a cosine decay. Held-out canvases come from the test
digits only.

    python examples/18_yolo_v1_digit_canvases.py [--epochs E] [--limit N]

Writes runs/18_yolo_v1_digit_canvases/: summary.json (held-out mAP@0.5 and COCO mAP@[.5:.95],
seconds, machine load), history.json, checkpoint.npz, curves.png, detections.png (predicted
boxes with labels and scores, truth dashed), pr_curves.png (precision-recall per digit) and
yolo_grid.png (the grid, the cell responsible for each digit and its two boxes).
"""
import os

from minicnn.cli_detection import run_example

OUT = os.path.join("runs", "18_yolo_v1_digit_canvases")

if __name__ == "__main__":
    summary, _ = run_example(__doc__.splitlines()[0], "yolo_v1", "digit-canvases", OUT)
    print(f"held-out mAP@0.5 {summary['map50']:.4f}, COCO mAP@[.5:.95] {summary['coco_map']:.4f} on "
          f"{summary['test_images']} canvases; {summary['seconds']:.0f} s in all "
          f"(mean 1-minute load {summary['load_1min_mean']:.1f} on {os.cpu_count()} cores)")
