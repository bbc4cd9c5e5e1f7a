"""Command line: python -m minicnn [train] --model NAME --dataset NAME --epochs E ...

With no arguments it trains the basic CNN (conv-ReLU-pool twice, then dense) on the embedded
real MNIST digits (4,000 train / 1,000 held-out test images), the README's main job, and
writes learning curves, a confusion matrix and a checkpoint to runs/<model>-<dataset>/.

--task signals trains a 1-D CNN (fcn1d, resnet1d, inception1d) on a real time-series set
(UCR/UEA archive, published splits, or MNIST-1D), e.g.
python -m minicnn train --task signals --model fcn1d --dataset gunpoint
and adds example signals per class and class activation maps over time;
python -m minicnn --task signals --help lists its models, datasets and defaults.

--task segmentation trains a segmentation network (FCN, U-Net, SegNet, DeepLab) on real pixels:
digit canvases (11 classes) or the embedded nuclei image split by region, e.g.
python -m minicnn train --task segmentation --model unet --dataset nuclei
and adds per-class IoU bars and truth/prediction overlays.

--task gan trains a generative model (DCGAN, a small StyleGAN, Pix2Pix, CycleGAN) on real images, e.g.
python -m minicnn train --task gan --model dcgan --dataset fashion-mnist
and saves sample grids every epoch, the losses of G and D, and a Fréchet distance on the features of
a classifier trained here (python -m minicnn --task gan --help lists models, datasets and recipes).

--task detection trains a detector (YOLO v1; the registry of minicnn.cli_detection) on real pixels:
digit or Fashion-MNIST canvases drawn afresh every epoch, a fixed held-out set, e.g.
python -m minicnn train --task detection --model yolo_v1 --dataset digit-canvases
and reports held-out mAP@0.5 and COCO mAP@[.5:.95] each epoch, with pictures of the detections,
precision-recall curves and the YOLO grid.

--distributed trains data-parallel over the ranks of an MPI job (images and signals tasks;
pip install -e ".[dist]"), one thread per rank on a 2-core machine, e.g.
MINICNN_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 mpiexec -n 2 python -m minicnn train --distributed;
each rank trains on its shard with --batch-size samples per step (per rank).
"""
import argparse
import functools
import json
import math
import os
import sys
import time

import numpy as np

from .device import get_device

DATASETS = ("digits", "fashion-mnist")
TASKS = ("images", "signals", "segmentation", "gan", "detection")
# --task signals: the embedded UCR/UEA sets (minicnn.data.UCR_DATASETS) and MNIST-1D
SIGNAL_DATASETS = ("gunpoint", "arrowhead", "italypowerdemand", "osuleaf", "basicmotions", "japanesevowels",
                   "mnist1d")
SIGNAL_MODELS = ("fcn1d", "resnet1d", "inception1d")
# Defaults of --task signals where the flag is not given: (epochs, batch size, eval every k epochs),
# per dataset, chosen so that fcn1d/resnet1d reach the README's accuracies in <= 10 minutes on 2 cores
SIGNAL_RECIPES = {
    "gunpoint": (150, 16, 5), "arrowhead": (300, 4, 10), "italypowerdemand": (100, 16, 5),
    "osuleaf": (100, 16, 10), "basicmotions": (100, 16, 5), "japanesevowels": (60, 32, 5), "mnist1d": (15, 64, 1),
}
# The registry models (minicnn.models.MODELS) that build_model lays out for 28x28 single-channel
# images; the registry's others (alexnet, vgg, googlenet, densenet, mobilenet) are ImageNet layouts.
_SMALL_IMAGE_MODELS = ("basic", "seed", "lenet5", "resnet18", "resnet34", "resnet50")


def model_choices(task="images"):
    """The ``--model`` names of ``task``, in the registry's order."""
    from . import models

    names = _SMALL_IMAGE_MODELS if task == "images" else SIGNAL_MODELS
    return tuple(name for name in models.MODELS if name in names)


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


def build_parser(task="images"):
    """The argument parser of ``python -m minicnn``; the same flags are accepted after ``train``.

    ``--model`` and ``--dataset`` choices and some defaults depend on ``--task``, so :func:`main`
    finds the task first (:func:`task_of`) and builds the parser of that task.
    """
    if task not in TASKS:
        raise ValueError(f"build_parser: task must be one of {TASKS}, got {task!r}")
    description = __doc__.strip().removeprefix("Command line: ")
    p = argparse.ArgumentParser(prog="python -m minicnn", description=description, formatter_class=_HelpFormatter)
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train a classifier (the default command)", description=description,
                       formatter_class=_HelpFormatter)
    _add_flags(p, with_defaults=True, task=task)
    # argparse copies every default of a sub-parser over the values parsed before it, so
    # "--epochs 3 train" would train 15 epochs: after "train" the defaults are only shown
    _add_flags(t, with_defaults=False, task=task)
    return p


def task_of(argv):
    """The ``--task`` of ``argv`` (``images`` when absent or not a known task: the parser then says why)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default="images")
    known, _ = pre.parse_known_args([a for a in argv if a != "train"])
    return known.task if known.task in TASKS else "images"


def _add_flags(parser, with_defaults, task="images"):
    """The training flags; without ``with_defaults`` a flag left out sets nothing."""
    def flag(*names, default=None, **kw):
        action = parser.add_argument(*names, default=default if with_defaults else argparse.SUPPRESS, **kw)
        action.shown_default = default

    signals, segmentation, gan = task == "signals", task == "segmentation", task == "gan"
    detection = task == "detection"
    flag("--task", default="images", choices=TASKS,
         help="images (2-D CNNs on digits), signals (1-D CNNs on time series), segmentation (per-pixel "
              "classes), gan (generative models) or detection (boxes); --model and --dataset choices follow it")
    if detection:
        from .cli_detection import add_detection_flags
        add_detection_flags(flag)
    elif gan:
        from .cli_gan import add_gan_flags
        add_gan_flags(flag)
    elif segmentation:
        from .cli_segmentation import SEG_DATASETS, SEG_MODELS, SEG_RECIPES, add_segmentation_flags
        flag("--model", default="unet", choices=SEG_MODELS, help="segmentation architecture (a small configuration), "
             "from minicnn.models.segmentation")
        flag("--dataset", default="nuclei", choices=SEG_DATASETS, help="digit canvases or the nuclei image by region")
        for name, i, what in (("--epochs", 0, "passes over the training images"),
                              ("--batch-size", 1, "images per gradient step"),
                              ("--eval-every", 3, "evaluate on the test split after every k-th epoch and the last")):
            flag(name, type=positive_int, help=f"{what} (per dataset: " +
                 ", ".join(f"{k} {v[i]}" for k, v in SEG_RECIPES.items()) + ")")
    elif signals:
        flag("--model", default="fcn1d", choices=model_choices(task), help="1-D architecture, from minicnn.models")
        flag("--dataset", default="gunpoint", choices=SIGNAL_DATASETS,
             help="embedded UCR/UEA time series (published splits) or MNIST-1D")
        per_dataset = "per dataset: " + ", ".join(f"{k} {v[0]}" for k, v in SIGNAL_RECIPES.items())
        flag("--epochs", type=positive_int, help=f"passes over the training series ({per_dataset})")
        flag("--batch-size", type=positive_int, help="series per gradient step (per dataset: " +
             ", ".join(f"{k} {v[1]}" for k, v in SIGNAL_RECIPES.items()) + ")")
        flag("--eval-every", type=positive_int, help="evaluate on the test split after every k-th epoch and the "
             "last (per dataset: " + ", ".join(f"{k} {v[2]}" for k, v in SIGNAL_RECIPES.items()) + ")")
    else:
        flag("--model", default="basic", choices=model_choices(), help="architecture, from minicnn.models")
        flag("--dataset", default="digits", choices=DATASETS,
             help="embedded real MNIST digits, or Fashion-MNIST from Debian's package")
        flag("--epochs", type=positive_int, default=15, help="passes over the training images")
        flag("--batch-size", type=positive_int, default=32, help="images per gradient step")
        flag("--eval-every", type=positive_int, default=1, help="evaluate on the test split after every k-th "
             "epoch and the last")
    if segmentation:
        flag("--lr", type=positive_float, help="learning rate (per dataset: " +
             ", ".join(f"{k} {v[2]}" for k, v in SEG_RECIPES.items()) + ")")
    elif not (gan or detection):
        flag("--lr", type=positive_float, default=1e-3, help="learning rate")
    # the GAN trainers use Adam with each paper's betas (minicnn.cli_gan); detection: Adam, warm-up, cosine
    if not (gan or detection):
        flag("--optimizer", default="adam", choices=("adam", "sgd", "adamw"), help="sgd has momentum 0.9")
        flag("--weight-decay", type=non_negative_float, default=0.0, help="L2 penalty")
        flag("--schedule", default="cosine", choices=("none", "cosine", "step"),
             help="learning-rate schedule over the epochs")
        if segmentation:
            flag("--augment", action=argparse.BooleanOptionalAction,
                 help="random flips and 90-degree rotations of image and mask (default: on for nuclei, off for digits)")
            add_segmentation_flags(flag)
        elif signals:
            flag("--augment", action=argparse.BooleanOptionalAction, default=False,
                 help="not defined for signals: --augment is an error")
        else:
            flag("--augment", action=argparse.BooleanOptionalAction, default=True,
                 help="random rotation ±10°, translation ±2 px, zoom 0.9-1.1")
    flag("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"),
         help="cuda-emu runs the CUDA kernels on the CPU")
    flag("--seed", type=non_negative_int, default=0, help="seeds weights, shuffling, augmentation")
    limit_help = (f"use only the first N training {'series' if signals else 'images'} "
                  f"(default: {'the recipe' if gan else 'all'})")
    if detection:
        limit_help = "training canvases drawn per epoch (nuclei: the first N tiles) (default: the recipe)"
    flag("--limit", type=positive_int, help=limit_help)
    flag("--out", help="output folder (default: runs/<model>-<dataset>)")
    flag("--no-progress", action="store_true", default=False, help="no progress bar")
    flag("--distributed", action="store_true", default=False,
         help="data-parallel training over the ranks of mpiexec -n K (needs the dist extra; images and signals "
              "tasks): --batch-size is per rank (a step sees K x batch-size samples), gradients are averaged "
              "over the ranks, BatchNorm becomes SyncBatchNorm, evaluation is sharded over the ranks, and only "
              "rank 0 logs and writes outputs")


def load_data(name, limit=None):
    from . import data

    if name in SIGNAL_DATASETS:
        return load_signals(name, limit)
    if name == "digits":
        train, test = data.load_digits("train"), data.load_digits("test")
        classes = [str(i) for i in range(10)]
    else:
        train, test = data.load_fashion_mnist("train"), data.load_fashion_mnist("test")
        classes = list(data.FASHION_MNIST_CLASSES)
    if limit is not None:
        train = data.Subset(train, np.arange(min(limit, len(train))))
    return train, test, classes


def load_signals(name, limit=None):
    """Train and test sets of a signal dataset and its class names; variable lengths are padded."""
    from . import data

    if name == "mnist1d":
        train, test = data.load_mnist1d("train"), data.load_mnist1d("test")
        classes = [str(i) for i in range(10)]
    else:
        train, test = data.load_ucr(name, "train", pad=True), data.load_ucr(name, "test", pad=True)
        classes = data.ucr_classes(name)
    if limit is not None:
        train = data.Subset(train, np.arange(min(limit, len(train))))
    return train, test, classes


def build_model(name, num_classes=10, in_channels=1, image_size=28):
    from . import models

    if name in SIGNAL_MODELS:
        return models.MODELS[name](in_channels=in_channels, num_classes=num_classes)
    if name in ("basic", "seed"):
        return models.MODELS[name](in_channels=in_channels, num_classes=num_classes, image_size=image_size)
    if name == "lenet5":
        return models.lenet5(in_channels=in_channels, num_classes=num_classes)
    if name.startswith("resnet"):
        return models.MODELS[name](num_classes=num_classes, in_channels=in_channels, small_input=True)
    raise ValueError(f"build_model: unknown model {name!r}; expected one of "
                     f"{model_choices('images') + model_choices('signals')}")


def train(args, log=print):
    from . import data, viz
    from .random import manual_seed
    from .train import DistributedTrainer, Trainer

    task = getattr(args, "task", "images")
    if task == "gan":
        from .cli_gan import train_gan
        return train_gan(args, log)
    if task == "detection":
        from .cli_detection import train_detection
        return train_detection(args, log)
    if task == "segmentation":
        from .cli_segmentation import train_segmentation
        return train_segmentation(args, log)
    signals = task == "signals"
    if signals:
        resolve_signal_defaults(args)
    distributed = getattr(args, "distributed", False)
    main_rank = True
    if distributed:
        from . import distributed as dist
        dist.init(require_mpi=True, nccl=args.device == "cuda")
        main_rank = dist.is_main_process()
        if not main_rank:
            log = _silent
    manual_seed(args.seed)
    train_set, test_set, classes = load_data(args.dataset, args.limit)
    transform = None
    if args.augment and not signals:
        T = data.transforms
        transform = T.Compose([T.RandomRotation(10), T.RandomTranslation(2), T.RandomZoom((0.9, 1.1))])
    if distributed:  # this rank's shard, reshuffled every epoch; its own augmentation stream
        sampler = dist.DistributedSampler(len(train_set), shuffle=True, seed=args.seed)
        train_loader = data.DataLoader(train_set, args.batch_size, sampler=sampler, seed=args.seed + dist.rank(),
                                       transform=transform)
    else:
        train_loader = data.DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed, transform=transform)
    test_loader = data.DataLoader(test_set, 500)
    in_channels = train_set[0][0].shape[0]
    model = build_model(args.model, len(classes), in_channels=in_channels).to(args.device)
    plain_model = model
    if distributed:
        model = dist.DistributedDataParallel(dist.convert_sync_batchnorm(model))
        manual_seed(args.seed + dist.rank())  # rank 0 keeps the stream of one process; others draw their own dropout
    params = list(model.parameters())
    opt, sched = optimizer_and_schedule(args, params)
    out = args.out or os.path.join("runs", f"{args.model}-{args.dataset}")
    if main_rank:
        os.makedirs(out, exist_ok=True)
    n_params = sum(p.size for p in params)
    what = "series" if signals else "images"
    ranks = f", {dist.world_size()} ranks x batch {args.batch_size}" if distributed else ""
    log(f"minicnn: {args.model} ({n_params:,} parameters) on {args.dataset}: {len(train_set):,} train / "
        f"{len(test_set):,} test {what}, {plural(args.epochs, 'epoch')}, device {args.device}{ranks}")
    trainer_class = DistributedTrainer if distributed else Trainer
    trainer = trainer_class(model, opt, device=args.device, scheduler=sched, num_classes=len(classes),
                            progress=not args.no_progress and sys.stderr.isatty() and main_rank)
    t0 = time.perf_counter()
    history = trainer.fit(train_loader, test_loader, args.epochs, out_dir=out if main_rank else None, log=log,
                          eval_every=getattr(args, "eval_every", 1))
    total = time.perf_counter() - t0
    final = history[-1]
    if not main_rank:  # rank 0 writes the pictures and the summary
        return None
    viz.plot_learning_curves(history, os.path.join(out, "learning_curves.png"), f"{args.model} on {args.dataset}")
    viz.plot_confusion_matrix(trainer.last_confusion, os.path.join(out, "confusion_matrix.png"), classes,
                              f"{args.model} on {args.dataset}: test accuracy {100 * final['test_acc']:.2f}%")
    summary = dict(model=args.model, dataset=args.dataset, epochs=args.epochs, parameters=n_params,
                   test_accuracy=final["test_acc"], test_macro_f1=final["test_f1"], seconds=total,
                   seconds_per_epoch=float(np.mean([h["seconds"] for h in history])), device=args.device,
                   seed=args.seed)
    if distributed:
        summary.update(world_size=dist.world_size(), batch_size_per_rank=args.batch_size)
    if signals:
        summary.update(task=task, batch_size=args.batch_size)
        plot_signal_pictures(plain_model, test_set, classes, out, f"{args.model} on {args.dataset}")
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log(f"test accuracy {100 * final['test_acc']:.2f}%  (macro F1 {final['test_f1']:.4f}); "
        f"{total:.0f} s in all; pictures and checkpoint in {out}/")
    return summary


def optimizer_and_schedule(args, params):
    """The optimizer of ``--optimizer`` (sgd with momentum 0.9, adam, adamw; ``--lr``, ``--weight-decay``)
    over ``params`` and the schedule of ``--schedule`` over ``--epochs`` (None for ``none``)."""
    from . import optim

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
    return opt, sched


def resolve_signal_defaults(args):
    """Fill ``epochs``, ``batch_size`` and ``eval_every`` left out on the command line from :data:`SIGNAL_RECIPES`;
    ``--augment`` is an error for signals (no augmentation is defined for them)."""
    if args.augment:
        raise ValueError("--augment: no augmentation is defined for --task signals; leave it out")
    for key, value in zip(("epochs", "batch_size", "eval_every"), SIGNAL_RECIPES[args.dataset]):
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def plot_signal_pictures(model, test_set, classes, out, title, per_class=3):
    """``signals_per_class.png`` (test series, a few per class) and ``cam.png`` (class activation
    maps over time of one test series per class, for its true class) in ``out``."""
    from . import viz
    from .models import class_activation_map

    x, y = test_set.get_batch(np.arange(len(test_set)))
    viz.plot_signals_per_class(x, y, os.path.join(out, "signals_per_class.png"), classes, per_class,
                               f"{title}: test series per class")
    pick = [int(np.flatnonzero(y == c)[0]) for c in range(len(classes)) if (y == c).any()]
    cam = class_activation_map(model, x[pick])
    logits_cam = cam.mean(axis=2)
    viz.plot_cam(x[pick], cam[np.arange(len(pick)), y[pick]], os.path.join(out, "cam.png"),
                 [classes[y[i]] for i in pick], [classes[int(k)] for k in logits_cam.argmax(1)],
                 f"{title}: class activation maps (true class)")


def _silent(*args, **kwargs):
    """The log of the ranks other than 0: they train and evaluate, rank 0 reports."""


def example_args(task, description, model, dataset, out, argv=None, extra=()):
    """What the GAN and detection examples share: their own flags (``--epochs``, ``--device``,
    ``--limit``; the recipe's values where left out) turned into the parsed arguments of
    ``python -m minicnn train --task task --model model --dataset dataset --out out``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--epochs", type=positive_int, help="passes over the training data (the recipe's)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"))
    p.add_argument("--limit", type=positive_int, help="training images (per epoch for detection; the recipe's)")
    a = p.parse_args(argv)
    flags = ["--epochs", str(a.epochs)] if a.epochs else []
    flags += ["--limit", str(a.limit)] if a.limit else []
    return build_parser(task).parse_args(["train", "--task", task, "--model", model, "--dataset", dataset,
                                          "--device", a.device, "--out", out, *flags, *extra])


def plural(n, noun):
    """``1 epoch``, ``2 epochs``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(task_of(argv))
    args = parser.parse_args(argv)
    if getattr(args, "augment", None) and args.task == "signals":
        parser.error("--augment: no augmentation is defined for --task signals; leave it out")
    if args.task == "gan":
        from .cli_gan import resolve_gan_defaults
        try:
            resolve_gan_defaults(args)   # a dataset the model does not train on: one line, before any work
        except ValueError as e:
            parser.error(str(e))
    if args.task == "detection":
        from .cli_detection import resolve_detection_defaults
        try:
            resolve_detection_defaults(args)   # a dataset the model has no recipe for: one line, before any work
        except ValueError as e:
            parser.error(str(e))
    run = train
    if args.distributed:
        from .distributed import comm
        if args.task in ("segmentation", "gan", "detection"):
            parser.error(f"--distributed: data-parallel training covers --task images and signals, not {args.task}")
        if not comm.mpi_available():
            parser.error(f"--distributed needs mpi4py and an MPI runtime, which are not installed: {comm.INSTALL_HINT}")
        run = functools.partial(comm.run_or_abort, train)  # a rank that raises ends the whole job
    try:
        get_device(args.device).xp  # noqa: B018 - cuda without a usable GPU fails here, before any work
        run(args)
    except RuntimeError as e:
        # the device's own one-line message ("cuda: ... use cuda-emu ..."), without a traceback
        if not str(e).startswith("cuda:"):
            raise
        parser.error(str(e))
    except FloatingPointError as e:  # training diverged: Trainer stops at the first non-finite loss
        sys.exit(f"{parser.prog}: error: {e}")


if __name__ == "__main__":
    main()
