"""Command line: python -m minicnn [train] --model NAME --dataset NAME --epochs E ...

With no arguments it trains the basic CNN (conv-ReLU-pool twice, then dense) on the embedded
real MNIST digits (4,000 train / 1,000 held-out test images), the README's main job, and
writes learning curves, a confusion matrix and a checkpoint to runs/<model>-<dataset>/.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

from .device import get_device

DATASETS = ("digits", "fashion-mnist")
# The registry models (minicnn.models.MODELS) that build_model lays out for 28x28 single-channel
# images; the registry's others (alexnet, vgg, googlenet, densenet, mobilenet) are ImageNet layouts.
_SMALL_IMAGE_MODELS = ("basic", "seed", "lenet5", "resnet18", "resnet34", "resnet50")


def model_choices():
    """The ``--model`` names, in the registry's order."""
    from . import models

    return tuple(name for name in models.MODELS if name in _SMALL_IMAGE_MODELS)


def _int_at_least(low):
    """An argparse ``type=`` accepting integers >= ``low``, with one clear line otherwise."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value

    return parse


def _finite_float(low, inclusive):
    """An argparse ``type=`` accepting finite floats > ``low`` (>= with ``inclusive``)."""
    bound = f"{'>=' if inclusive else '>'} {low}"

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text!r}")
        return value

    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)
positive_float = _finite_float(0, inclusive=False)
non_negative_float = _finite_float(0, inclusive=True)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written; each flag's default after its help, where it has one."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = getattr(action, "shown_default", action.default)
        shown = not any(default is d for d in (None, False, argparse.SUPPRESS))  # `is`: 0 == False
        if shown and "%(default)" not in text:
            text += f" (default: {default})".replace("%", "%%")
        return text


def build_parser():
    """The argument parser of ``python -m minicnn``; the same flags are accepted after ``train``."""
    description = __doc__.strip().removeprefix("Command line: ")
    p = argparse.ArgumentParser(prog="python -m minicnn", description=description, formatter_class=_HelpFormatter)
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train a classifier (the default command)", description=description,
                       formatter_class=_HelpFormatter)
    _add_flags(p, with_defaults=True)
    # argparse copies every default of a sub-parser over the values parsed before it, so
    # "--epochs 3 train" would train 15 epochs: after "train" the defaults are only shown
    _add_flags(t, with_defaults=False)
    return p


def _add_flags(parser, with_defaults):
    """The training flags; without ``with_defaults`` a flag left out sets nothing."""
    def flag(*names, default=None, **kw):
        action = parser.add_argument(*names, default=default if with_defaults else argparse.SUPPRESS, **kw)
        action.shown_default = default

    flag("--model", default="basic", choices=model_choices(), help="architecture, from minicnn.models")
    flag("--dataset", default="digits", choices=DATASETS,
         help="embedded real MNIST digits, or Fashion-MNIST from Debian's package")
    flag("--epochs", type=positive_int, default=15, help="passes over the training images")
    flag("--batch-size", type=positive_int, default=32, help="images per gradient step")
    flag("--lr", type=positive_float, default=1e-3, help="learning rate")
    flag("--optimizer", default="adam", choices=("adam", "sgd", "adamw"), help="sgd has momentum 0.9")
    flag("--weight-decay", type=non_negative_float, default=0.0, help="L2 penalty")
    flag("--schedule", default="cosine", choices=("none", "cosine", "step"),
         help="learning-rate schedule over the epochs")
    flag("--augment", action=argparse.BooleanOptionalAction, default=True,
         help="random rotation ±10°, translation ±2 px, zoom 0.9-1.1")
    flag("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"),
         help="cuda-emu runs the CUDA kernels on the CPU")
    flag("--seed", type=non_negative_int, default=0, help="seeds weights, shuffling, augmentation")
    flag("--limit", type=positive_int, help="use only the first N training images (default: all)")
    flag("--out", help="output folder (default: runs/<model>-<dataset>)")
    flag("--no-progress", action="store_true", default=False, help="no progress bar")


def load_data(name, limit=None):
    from . import data

    if name == "digits":
        train, test = data.load_digits("train"), data.load_digits("test")
        classes = [str(i) for i in range(10)]
    else:
        train, test = data.load_fashion_mnist("train"), data.load_fashion_mnist("test")
        classes = list(data.FASHION_MNIST_CLASSES)
    if limit is not None:
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
    raise ValueError(f"build_model: unknown model {name!r}; expected one of {model_choices()}")


def train(args, log=print):
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
        f"{len(test_set):,} test images, {plural(args.epochs, 'epoch')}, device {args.device}")
    trainer = Trainer(model, opt, device=args.device, scheduler=sched, num_classes=len(classes),
                      progress=not args.no_progress and sys.stderr.isatty())
    t0 = time.perf_counter()
    history = trainer.fit(train_loader, test_loader, args.epochs, out_dir=out, log=log)
    total = time.perf_counter() - t0
    final = history[-1]
    viz.plot_learning_curves(history, os.path.join(out, "learning_curves.png"), f"{args.model} on {args.dataset}")
    viz.plot_confusion_matrix(trainer.last_confusion, os.path.join(out, "confusion_matrix.png"), classes,
                              f"{args.model} on {args.dataset}: test accuracy {100 * final['test_acc']:.2f}%")
    summary = dict(model=args.model, dataset=args.dataset, epochs=args.epochs, parameters=n_params,
                   test_accuracy=final["test_acc"], test_macro_f1=final["test_f1"], seconds=total,
                   seconds_per_epoch=float(np.mean([h["seconds"] for h in history])), device=args.device,
                   seed=args.seed)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log(f"test accuracy {100 * final['test_acc']:.2f}%  (macro F1 {final['test_f1']:.4f}); "
        f"{total:.0f} s in all; pictures and checkpoint in {out}/")
    return summary


def plural(n, noun):
    """``1 epoch``, ``2 epochs``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        get_device(args.device).xp  # noqa: B018 - cuda without a usable GPU fails here, before any work
        train(args)
    except RuntimeError as e:
        # the device's own one-line message ("cuda: ... use cuda-emu ..."), without a traceback
        if not str(e).startswith("cuda:"):
            raise
        parser.error(str(e))
    except FloatingPointError as e:  # training diverged: Trainer stops at the first non-finite loss
        sys.exit(f"{parser.prog}: error: {e}")


if __name__ == "__main__":
    main()
