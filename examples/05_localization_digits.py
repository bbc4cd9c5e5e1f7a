"""Classification + localization: which digit, and where, on a 64×64 canvas.

A shared convolutional backbone feeds two heads: class logits and a box (cx, cy, w, h) in
[0, 1]. The loss is ``L = α·CE + (1 − α)·smoothL1`` (α = 0.5). Data: real MNIST digits pasted
at random positions (exact boxes); test canvases use the held-out digits.

    python examples/05_localization_digits.py [--epochs 8]

Reports test accuracy and the mean IoU of the predicted boxes; writes
runs/05_localization/predictions.png (green: truth, red: prediction).
"""
import argparse
import json
import os
import time

import numpy as np

import minicnn as mc
from minicnn import data, metrics, optim, viz
from minicnn.__main__ import positive_int
from minicnn.models.localization import LocalizationNet, cxcywh_to_xyxy, localization_loss, xyxy_to_cxcywh

OUT = os.path.join("runs", "05_localization")
S = 64


def make_set(n, split, seed):
    images, labels, boxes = data.digits_on_canvas(n, canvas=S, split=split, seed=seed).as_localization()
    mean, std = data.digits_mean_std()
    return (images - mean) / std, labels.astype(np.int64), xyxy_to_cxcywh(boxes, S), boxes


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=positive_int, default=8)
    p.add_argument("--train", type=positive_int, default=8000, help="training canvases")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the class loss, in [0, 1]")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"))
    a = p.parse_args()
    if not 0 <= a.alpha <= 1:
        p.error(f"argument --alpha: must be in [0, 1], got {a.alpha}")
    mc.manual_seed(0)
    x_tr, y_tr, b_tr, _ = make_set(a.train, "train", 0)
    x_te, y_te, b_te, boxes_te = make_set(1000, "test", 1)
    model = LocalizationNet(1, 10, S, width=16).to(a.device)
    opt = optim.Adam(model.parameters(), lr=2e-3)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs)
    rng = np.random.default_rng(0)
    for epoch in range(1, a.epochs + 1):
        model.train()
        t0, total = time.perf_counter(), []
        order = rng.permutation(len(x_tr))
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            logits, boxes = model(mc.Tensor(x_tr[idx], device=a.device))
            loss, loss_cls, loss_box = localization_loss(logits, boxes, mc.Tensor(y_tr[idx], device=a.device),
                                             mc.Tensor(b_tr[idx], device=a.device), a.alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total.append(loss.item())
        sched.step()
        acc, miou, pred_boxes, pred = evaluate(model, x_te, y_te, boxes_te, a.device)
        print(f"epoch {epoch}: loss {np.mean(total):.4f}  test accuracy {100 * acc:.2f}%  mean IoU {miou:.3f}  "
              f"({time.perf_counter() - t0:.1f} s)")
    mean, std = data.digits_mean_std()
    raw = x_te[:16] * std + mean
    picture = viz.plot_images(raw, os.path.join(OUT, "predictions.png"), labels=y_te[:16], preds=pred[:16],
                              boxes=boxes_te[:16], pred_boxes=pred_boxes[:16],
                              title=f"accuracy {100 * acc:.1f}%, mean IoU {miou:.2f} (green truth, red prediction)")
    summary = dict(test_accuracy=acc, mean_iou=miou, epochs=a.epochs, train_images=a.train)
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"test accuracy {100 * acc:.2f}%, mean IoU {miou:.3f} on {len(y_te):,} test canvases; "
          f"picture {picture} (green truth, red prediction), numbers in {OUT}/summary.json")
    return summary


def evaluate(model, x, y, boxes_xyxy, device):
    model.eval()
    with mc.no_grad():
        outs = [model(mc.Tensor(x[i:i + 250], device=device)) for i in range(0, len(x), 250)]
    logits = np.concatenate([o[0].numpy() for o in outs])
    pred_boxes = cxcywh_to_xyxy(np.concatenate([o[1].numpy() for o in outs]), S)
    ious = np.diag(metrics.box_iou_numpy(pred_boxes, boxes_xyxy))
    pred = logits.argmax(1)
    return metrics.accuracy(pred, y), float(ious.mean()), pred_boxes, pred


if __name__ == "__main__":
    main()
