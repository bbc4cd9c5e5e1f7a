"""A ResNet-18-style network (basic residual blocks, width 16, 3×3 stem for 28×28) on Fashion-MNIST.

    python examples/04_resnet_small_fashion_mnist.py [--epochs 3] [--limit 20000]

ResNet-18's layout (2-2-2-2 basic blocks, stride-2 stages, BN, identity/1×1 shortcuts) at a
quarter of the width, so an epoch fits a 2-core CPU. Writes runs/resnet18s-fashion-mnist/.
"""
import argparse
import json
import os

from minicnn import data, models, optim
from minicnn.__main__ import plural, positive_int
from minicnn.random import manual_seed
from minicnn.train import Trainer
from minicnn import viz


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--limit", type=positive_int, default=20000, help="use only the first N training images")
    p.add_argument("--width", type=positive_int, default=16, help="channels of the first stage")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"))
    a = p.parse_args()
    manual_seed(0)
    train_set = data.load_fashion_mnist("train")
    if a.limit < len(train_set):
        train_set = data.Subset(train_set, range(a.limit))
    test_set = data.load_fashion_mnist("test")
    model = models.resnet18(num_classes=10, in_channels=1, small_input=True, width=a.width).to(a.device)
    opt = optim.Adam(model.parameters(), lr=2e-3)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs)
    trainer = Trainer(model, opt, device=a.device, scheduler=sched, progress=False)
    out = os.path.join("runs", "resnet18s-fashion-mnist")
    history = trainer.fit(data.DataLoader(train_set, 128, shuffle=True, seed=0), data.DataLoader(test_set, 500),
                          a.epochs, out_dir=out)
    viz.plot_learning_curves(history, os.path.join(out, "learning_curves.png"), f"ResNet-18 (width {a.width}) on Fashion-MNIST")
    viz.plot_confusion_matrix(trainer.last_confusion, os.path.join(out, "confusion_matrix.png"),
                              list(data.FASHION_MNIST_CLASSES))
    summary = dict(test_accuracy=history[-1]["test_acc"], epochs=a.epochs, train_images=len(train_set),
                   seconds_per_epoch=sum(h["seconds"] for h in history) / len(history),
                   parameters=sum(p.size for p in model.parameters()))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"test accuracy {100 * summary['test_accuracy']:.2f}% on {len(test_set):,} test images after "
          f"{plural(a.epochs, 'epoch')} on {len(train_set):,} training images "
          f"({summary['seconds_per_epoch']:.0f} s/epoch); pictures (learning_curves.png, confusion_matrix.png), "
          f"checkpoint and summary.json in {out}/")
    return summary


if __name__ == "__main__":
    main()
