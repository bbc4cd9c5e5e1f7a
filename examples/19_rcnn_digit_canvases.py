"""R-CNN on digit canvases: selective search proposes regions, a small CNN classifies each warped crop.

R-CNN (Girshick et al., 2014) is detection in three steps. (1) Selective search (written in
minicnn.models.detection.selective_search: Felzenszwalb–Huttenlocher segments merged bottom-up by
colour, texture, size and fill similarity) proposes ~600 boxes per 128×128 canvas, class-agnostic.
(2) Every proposal, dilated by the paper's context ratio, is warped to 32×32 and passed through a CNN
pre-trained on single digits (the paper's ImageNet stage), then fine-tuned on proposals: IoU ≥ 0.5
with a digit is that digit, else background (2 canvases × 64 crops per step, 25% foreground). (3) A
softmax over 11 classes and a class-specific box regression per crop, then per-class NMS. (The paper
trains per-class SVMs and a ridge box regressor on frozen features; here both heads train jointly.)

    python examples/19_rcnn_digit_canvases.py [--epochs 1]

Writes runs/19_rcnn_digit_canvases/: segments.png (the Felzenszwalb–Huttenlocher regions selective search
starts from, at two scales), proposals.png (selective search's top boxes on a held-out canvas),
detections.png (held-out canvases: predictions solid, truth dashed), pr_curves.png, summary.json
(VOC mAP@0.5, COCO mAP@[.5:.95], proposal recall, seconds).
"""
import argparse
import json
import os
import time

import numpy as np

import minicnn as mc
from minicnn import viz
from minicnn.data.datasets import digits_arrays
from minicnn.data.detection import digit_detection
from minicnn.detection_metrics import detection_scores, voc_evaluate
from minicnn.models.detection.rcnn import rcnn_small
from minicnn.models.detection.selective_search import cached_proposals, proposal_recall
from minicnn.optim import Adam
from minicnn.optim.lr_scheduler import CosineAnnealingLR
from minicnn.train_detection import pretrain_backbone
from minicnn.kernels.cpu.felzenszwalb import felzenszwalb
from minicnn.viz import detection as vd

OUT = os.path.join("runs", "19_rcnn_digit_canvases")
N_TRAIN, N_TEST, TOP_K, IMAGES_PER_STEP = 1500, 200, 300, 2
CLASSES = ["bg"] + [str(d) for d in range(10)]


def plot_segments(image, path, scales=(50, 100)):
    """The canvas and its Felzenszwalb–Huttenlocher regions at each scale k (intensities × 255, the
    minimum size scaled to the canvas, as selective search does): where the grouping starts."""
    plt = viz._plt()
    fig, axes = plt.subplots(1, len(scales) + 1, figsize=(3.2 * (len(scales) + 1), 3.4))
    axes[0].imshow(image[0], cmap="gray"), axes[0].set_title("held-out canvas")
    for ax, k in zip(axes[1:], scales):
        min_size = max(1, round(k * image[0].size / (500 * 375)))
        labels = felzenszwalb(image[0] * 255.0, scale=k, sigma=0.8, min_size=min_size)
        ax.imshow(labels % 20, cmap="tab20", interpolation="nearest")
        ax.set_title(f"k = {k}: {labels.max() + 1} regions")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return viz._save(fig, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1, help="passes over the 1,500 training canvases (1)")
    a = p.parse_args(argv)
    os.makedirs(OUT, exist_ok=True)
    t0 = time.perf_counter()
    train = digit_detection(N_TRAIN, split="train", seed=0)          # digits of the training pool
    test = digit_detection(N_TEST, split="test", seed=1)             # held-out digits
    p_train = cached_proposals(train.images, os.path.join(OUT, "proposals_train.npz"), mode="fast")
    p_test = cached_proposals(test.images, os.path.join(OUT, "proposals_test.npz"), mode="fast")
    recall = proposal_recall(p_test, test.targets)
    print(f"selective search: {np.mean([len(q) for q in p_test]):.0f} proposals per held-out canvas, "
          f"recall@0.5 {recall:.4f} ({time.perf_counter() - t0:.0f} s)")
    plot_segments(test.images[0], os.path.join(OUT, "segments.png"))
    vd.plot_detections(test.images[:1], [dict(boxes=p_test[0][:40], scores=np.ones(40), labels=np.zeros(40, int))],
                       test.targets[:1], os.path.join(OUT, "proposals.png"), ["proposal"], score_threshold=0.5,
                       title="selective search: the 40 best-ranked proposals (truth dashed)")

    model = rcnn_small(widths=(16, 32, 64), representation_size=256, max_test_proposals=TOP_K)
    digits, labels = digits_arrays("train")                          # pre-training on single digits, 32×32
    x_pre = np.pad(digits.astype(np.float32) / 255, ((0, 0), (2, 2), (2, 2)))[:, None]
    pretrain_backbone(model.features, x_pre, labels, 10, epochs=2, batch_size=64, lr=2e-3, log=None)

    steps_per_epoch = N_TRAIN // IMAGES_PER_STEP
    opt = Adam(model.parameters(), lr=1e-3)
    sched = CosineAnnealingLR(opt, T_max=a.epochs * steps_per_epoch)
    rng = np.random.default_rng(0)
    t_train = time.perf_counter()
    for epoch in range(a.epochs):
        model.train()
        order = rng.permutation(N_TRAIN)
        for b in range(steps_per_epoch):
            idx = order[b * IMAGES_PER_STEP:(b + 1) * IMAGES_PER_STEP]
            losses = model([train.images[i] for i in idx], [train.targets[i] for i in idx], [p_train[i] for i in idx])
            loss = losses["loss_classifier"] + losses["loss_box_reg"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: last loss {loss.item():.4f}, {time.perf_counter() - t_train:.0f} s")
    train_seconds = time.perf_counter() - t_train

    model.eval()
    with mc.no_grad():
        dets = model([im for im in test.images], None, p_test)
    scores = detection_scores(dets, test.targets)
    vd.plot_detections(test.images[:8], dets[:8], test.targets[:8], os.path.join(OUT, "detections.png"), CLASSES,
                       title="R-CNN on held-out canvases (predictions solid, truth dashed)")
    vd.plot_precision_recall(voc_evaluate(dets, test.targets, 0.5), os.path.join(OUT, "pr_curves.png"), CLASSES)
    summary = dict(model="rcnn_small", parameters=sum(q.size for q in model.parameters()), proposal_recall=recall,
                   train_seconds=train_seconds, total_seconds=time.perf_counter() - t0, **scores)
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"held-out mAP@0.5 {scores['map50']:.4f}, COCO mAP {scores['coco_map']:.4f}; pictures in {OUT}/")


if __name__ == "__main__":
    main()
