"""Fast R-CNN on digit canvases: one feature map per image, RoI pooling over selective-search proposals.

Fast R-CNN (Girshick, 2015) removes R-CNN's thousands of CNN passes per image: the CNN runs once
over the whole canvas (stride 8 here), and each selective-search proposal is cut out of the feature
map by RoI max pooling to a fixed 7×7 grid, then two fully connected layers give class scores and
class-specific box offsets (coded with weights (10, 10, 5, 5)). One multi-task loss trains both:
cross-entropy + smooth-L1 on the foreground RoIs; each step samples 2 canvases × 64 RoIs, 25% of them
foreground (IoU ≥ 0.5), the rest background (IoU in [0.1, 0.5)). The backbone is first pre-trained to
classify single digits (the paper's ImageNet stage).

    python examples/20_fast_rcnn_digit_canvases.py [--epochs 4]

Writes runs/20_fast_rcnn_digit_canvases/: detections.png (held-out canvases: predictions solid, truth
dashed), pr_curves.png, summary.json (VOC mAP@0.5, COCO mAP@[.5:.95], proposal recall, seconds).
"""
import argparse
import json
import os
import time

import numpy as np

import minicnn as mc
from minicnn.data.datasets import digits_arrays
from minicnn.data.detection import digit_detection
from minicnn.detection_metrics import detection_scores, voc_evaluate
from minicnn.models.detection.fast_rcnn import fastrcnn_small
from minicnn.models.detection.selective_search import cached_proposals, proposal_recall
from minicnn.optim import Adam
from minicnn.optim.lr_scheduler import CosineAnnealingLR
from minicnn.train_detection import pretrain_backbone
from minicnn.viz import detection as vd

OUT = os.path.join("runs", "20_fast_rcnn_digit_canvases")
N_TRAIN, N_TEST, MAX_PROPOSALS, IMAGES_PER_STEP = 1500, 200, 2000, 2
CLASSES = ["bg"] + [str(d) for d in range(10)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4, help="passes over the 1,500 training canvases (4)")
    a = p.parse_args(argv)
    os.makedirs(OUT, exist_ok=True)
    t0 = time.perf_counter()
    train = digit_detection(N_TRAIN, split="train", seed=0)          # digits of the training pool
    test = digit_detection(N_TEST, split="test", seed=1)             # held-out digits
    p_train = cached_proposals(train.images, os.path.join(OUT, "proposals_train.npz"), mode="fast")
    p_test = cached_proposals(test.images, os.path.join(OUT, "proposals_test.npz"), mode="fast")
    recall = proposal_recall(p_test, test.targets)
    print(f"selective search: recall@0.5 {recall:.4f} on the held-out canvases ({time.perf_counter() - t0:.0f} s)")

    mc.manual_seed(0)
    model = fastrcnn_small(widths=(32, 64, 96, 128), representation_size=256)
    digits, labels = digits_arrays("train")                          # pre-training on single 28×28 digits
    pretrain_backbone(model.backbone, digits[:, None].astype(np.float32) / 255, labels, 10, epochs=2,
                      batch_size=64, lr=2e-3, log=None)

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
            x = mc.Tensor(train.images[idx])
            losses = model([x[i] for i in range(IMAGES_PER_STEP)], [train.targets[i] for i in idx],
                           [p_train[i][:MAX_PROPOSALS] for i in idx])
            loss = losses["loss_classifier"] + losses["loss_box_reg"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: last loss {loss.item():.4f}, {time.perf_counter() - t_train:.0f} s")
    train_seconds = time.perf_counter() - t_train

    model.eval()
    dets = []
    with mc.no_grad():
        for i in range(0, N_TEST, 8):
            x = mc.Tensor(test.images[i:i + 8])
            dets += model([x[j] for j in range(x.shape[0])], None, p_test[i:i + 8])
    scores = detection_scores(dets, test.targets)
    vd.plot_detections(test.images[:8], dets[:8], test.targets[:8], os.path.join(OUT, "detections.png"), CLASSES,
                       title="Fast R-CNN on held-out canvases (predictions solid, truth dashed)")
    vd.plot_precision_recall(voc_evaluate(dets, test.targets, 0.5), os.path.join(OUT, "pr_curves.png"), CLASSES)
    summary = dict(model="fastrcnn_small", parameters=sum(q.size for q in model.parameters()), proposal_recall=recall,
                   train_seconds=train_seconds, total_seconds=time.perf_counter() - t0, **scores)
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"held-out mAP@0.5 {scores['map50']:.4f}, COCO mAP {scores['coco_map']:.4f}; pictures in {OUT}/")


if __name__ == "__main__":
    main()
