"""The textbook CNN, step by step: conv-ReLU-pool twice, then dense, on real MNIST digits.

Everything the training loop does is written out here (minicnn.train.Trainer does the same):

    logits = model(x)                       # forward: conv → relu → pool → … → linear
    loss   = cross_entropy(logits, y)       # −log softmax(logits)[y], averaged over the batch
    loss.backward()                         # reverse-mode autodiff fills every p.grad
    optimizer.step()                        # Adam update of every parameter

    python examples/01_basic_cnn_digits.py [--epochs 5]    # ~1-2 minutes on 2 cores

Writes runs/01_basic_cnn/predictions.png (test digits with predicted labels, mistakes in red)
and learning_curves.png.
"""
import argparse
import os
import time

import numpy as np

import minicnn as mc
import minicnn.functional as F
from minicnn import data, metrics, models, optim, viz
from minicnn.__main__ import plural, positive_int

OUT = os.path.join("runs", "01_basic_cnn")


def main(epochs=5, batch_size=64, device="cpu"):
    mc.manual_seed(0)
    train_set, test_set = data.load_digits("train"), data.load_digits("test")
    train_loader = data.DataLoader(train_set, batch_size, shuffle=True, seed=0)
    model = models.BasicCNN().to(device)
    print(model)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        t0, losses, correct = time.perf_counter(), [], 0
        for x, y in train_loader:
            x, y = mc.Tensor(x, device=device), mc.Tensor(y, device=device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            correct += int((logits.numpy().argmax(1) == y.numpy()).sum())
        model.eval()
        with mc.no_grad():
            test_logits = model(mc.Tensor(test_set.images, device=device))
            test_loss = F.cross_entropy(test_logits, mc.Tensor(test_set.labels, device=device)).item()
        pred = test_logits.numpy().argmax(1)
        acc = metrics.accuracy(pred, test_set.labels)
        history.append(dict(epoch=epoch, train_loss=float(np.mean(losses)), train_acc=correct / len(train_set),
                            test_loss=test_loss, test_acc=acc))
        print(f"epoch {epoch}: train loss {np.mean(losses):.4f}, test accuracy {100 * acc:.2f}% "
              f"({time.perf_counter() - t0:.1f} s)")
    raw_test = data.load_digits("test", normalize=False)
    viz.plot_images(raw_test.images[:32], os.path.join(OUT, "predictions.png"), labels=test_set.labels[:32],
                    preds=pred[:32], title=f"test digits: prediction p, truth y (accuracy {100 * acc:.1f}%)")
    viz.plot_learning_curves(history, os.path.join(OUT, "learning_curves.png"), "basic CNN on MNIST digits")
    print(f"test accuracy {100 * acc:.2f}% on {len(test_set):,} test digits after {plural(epochs, 'epoch')}; "
          f"pictures (predictions.png, learning_curves.png) in {OUT}/")
    return acc


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"))
    a = p.parse_args()
    main(epochs=a.epochs, device=a.device)
