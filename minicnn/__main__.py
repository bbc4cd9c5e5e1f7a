"""Command line: ``python -m minicnn [train] --model NAME --dataset NAME --epochs E …``.

With no arguments it trains the basic CNN (conv-ReLU-pool twice, then dense) on the embedded
real MNIST digits (4,000 train / 1,000 held-out test) — the README's main job — and writes
learning curves, a confusion matrix and a checkpoint to ``runs/<model>-<dataset>/``.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

DATASETS = ("digits", "fashion-mnist")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m minicnn", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train a classifier (the default command)")
    for parser in (p, t):
        parser.add_argument("--model", default="basic", help="basic, seed, lenet5, resnet18, … (default basic)")
        parser.add_argument("--dataset", default="digits", choices=DATASETS)
        parser.add_argument("--epochs", type=int, default=15)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--lr", type=float, default=1e-3)
        parser.add_argument("--optimizer", default="adam", choices=("adam", "sgd", "adamw"))
        parser.add_argument("--weight-decay", type=float, default=0.0)
        parser.add_argument("--schedule", default="cosine", choices=("none", "cosine", "step"))
        parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                            help="random rotation ±10°, translation ±2 px, zoom 0.9-1.1 (default on)")
        parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"))
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
        parser.add_argument("--out", default=None, help="output folder (default runs/<model>-<dataset>)")
        parser.add_argument("--no-progress", action="store_true")
    return p


def load_data(name, limit=None):
    from . import data

    if name == "digits":
        train, test = data.load_digits("train"), data.load_digits("test")
        classes = [str(i) for i in range(10)]
    else:
        train, test = data.load_fashion_mnist("train"), data.load_fashion_mnist("test")
        classes = list(data.FASHION_MNIST_CLASSES)
    if limit:
        train = data.Subset(train, np.arange(min(limit, len(train))))
    return train, test, classes


def build_model(name, num_classes=10, in_channels=1, image_size=28):
    from . import models

    if name in ("basic", "seed"):
        return models.MODELS[name](in_channels=in_channels, num_classes=num_classes, image_size=image_size)
    if name == "lenet5":
        return models.lenet5(in_channels=in_channels, num_classes=num_classes)
    if name.startswith("resnet"):
        return models.MODELS[name](num_classes=num_classes, in_channels=in_channels, small_input=True)
    raise SystemExit(f"unknown model {name!r}; choose basic, seed, lenet5, resnet18/34/50")


def train(args, log=print):
    import minicnn as mc
    from . import data, optim, viz
    from .random import manual_seed
    from .train import Trainer

    manual_seed(args.seed)
    train_set, test_set, classes = load_data(args.dataset, args.limit)
    transform = None
    if args.augment:
        T = data.transforms
        transform = T.Compose([T.RandomRotation(10), T.RandomTranslation(2), T.RandomZoom((0.9, 1.1))])
    train_loader = data.DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed, transform=transform)
    test_loader = data.DataLoader(test_set, 500)
    model = build_model(args.model, len(classes)).to(args.device)
    params = list(model.parameters())
    if args.optimizer == "sgd":
        opt = optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    elif args.optimizer == "adamw":
        opt = optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    else:
        opt = optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    sched = None
    if args.schedule == "cosine":
        sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    elif args.schedule == "step":
        sched = optim.lr_scheduler.StepLR(opt, step_size=max(1, args.epochs // 3), gamma=0.1)
    out = args.out or os.path.join("runs", f"{args.model}-{args.dataset}")
    os.makedirs(out, exist_ok=True)
    n_params = sum(p.size for p in params)
    log(f"minicnn: {args.model} ({n_params:,} parameters) on {args.dataset}: {len(train_set):,} train / "
        f"{len(test_set):,} test images, {args.epochs} epochs, device {args.device}")
    trainer = Trainer(model, opt, device=args.device, scheduler=sched, num_classes=len(classes),
                      progress=not args.no_progress and sys.stderr.isatty())
    t0 = time.perf_counter()
    history = trainer.fit(train_loader, test_loader, args.epochs, out_dir=out, log=log)
    total = time.perf_counter() - t0
    final = history[-1]
    viz.plot_learning_curves(history, os.path.join(out, "learning_curves.png"), f"{args.model} on {args.dataset}")
    viz.plot_confusion_matrix(trainer.last_confusion, os.path.join(out, "confusion_matrix.png"), classes,
                              f"{args.model} on {args.dataset}: test accuracy {100 * final['val_acc']:.2f}%")
    summary = dict(model=args.model, dataset=args.dataset, epochs=args.epochs, parameters=n_params,
                   test_accuracy=final["val_acc"], test_macro_f1=final["val_f1"], seconds=total,
                   seconds_per_epoch=float(np.mean([h["seconds"] for h in history])), device=args.device,
                   seed=args.seed)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log(f"test accuracy {100 * final['val_acc']:.2f}%  (macro F1 {final['val_f1']:.4f}); "
        f"{total:.0f} s in all; pictures and checkpoint in {out}/")
    return summary


def main(argv=None):
    args = build_parser().parse_args(argv)
    train(args)


if __name__ == "__main__":
    main()
