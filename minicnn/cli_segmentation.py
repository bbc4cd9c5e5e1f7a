"""``python -m minicnn train --task segmentation``: the models, datasets and recipes it knows.

Datasets (real pixels, nothing downloaded):

* ``digits``: 64×64 canvases of 1–3 real MNIST digits, 11 classes (background + 10 digits);
  train canvases from the embedded training digits, test canvases from the held-out digits.
* ``nuclei``: the embedded fluorescence image split by region: 64×64 tiles of three quadrants
  for training, the fourth quadrant (256×256) held out; background / nucleus (2 classes) or
  background / interior / boundary (3 classes, ``--classes 3``), instances scored at IoU 0.5.

A recipe per model and dataset gives the small configuration of the model (the same code as
the full-size constructor) and the epochs, batch size and learning rate that reach the README's
results on 2 cores; flags given on the command line win.
"""
import json
import os
import sys
import time

import numpy as np

SEG_DATASETS = ("digits", "nuclei")
SEG_MODELS = ("unet", "segnet", "segnet_basic", "fcn8s", "fcn16s", "fcn32s", "fcn_resnet50", "deeplabv3_resnet50",
              "deeplabv3plus_resnet50", "deeplabv3_mobilenet_v3_large")
DIGIT_CANVASES = dict(train=4000, test=500, canvas=64)

_SMALL_FCN = dict(width=16, fc_channels=128, pad100=False, dropout=0.1)
# 64×64 inputs give 8×8 maps at output stride 8: the paper's rates (12/24/36, for 65×65 maps) would
# leave only the centre tap of each atrous 3×3 inside the map, so the rates shrink with the map
_SMALL_RESNET = dict(width=16, layers=(1, 1, 1, 1), aspp_channels=64, atrous_rates=(2, 4, 6))
# model keyword arguments per model (the same for both datasets), for 2 cores
SEG_MODEL_KWARGS = {
    "unet": dict(base_channels=16, padding=True),
    "segnet": dict(width=16),
    "segnet_basic": dict(width=32),
    "fcn8s": _SMALL_FCN, "fcn16s": _SMALL_FCN, "fcn32s": _SMALL_FCN,
    "fcn_resnet50": dict(width=16, layers=(1, 1, 1, 1)),
    "deeplabv3_resnet50": dict(_SMALL_RESNET, output_stride=8),
    # v3+ with ResNet's stride-1 stem (small_input): layer1's features, at the input's resolution,
    # feed the decoder, so strokes two pixels wide survive; narrower to stay as fast as U-Net
    "deeplabv3plus_resnet50": dict(width=8, layers=(1, 1, 1, 1), aspp_channels=32, low_level_channels=16,
                                   atrous_rates=(2, 4, 6), output_stride=16, small_input=True),
    "deeplabv3_mobilenet_v3_large": dict(width_mult=0.5, aspp_channels=64, atrous_rates=(1, 2, 3)),  # 4×4 map
}
# (epochs, batch size, learning rate, eval every) per dataset
SEG_RECIPES = {"digits": (12, 16, 2e-3, 1), "nuclei": (60, 8, 1e-3, 10)}


def add_segmentation_flags(flag):
    """The flags only ``--task segmentation`` has (``flag`` = ``_add_flags``'s helper)."""
    import argparse

    flag("--classes", type=int, choices=(2, 3),
         help="nuclei only: background/nucleus (2), or background/interior/boundary (3, the default: a line "
              "between touching nuclei separates the instances)")
    flag("--weight-map", action=argparse.BooleanOptionalAction,
         help="nuclei only: U-Net's border-weighted loss (Ronneberger et al.: w0 = 10, sigma = 5) from the "
              "instance masks (default: on for unet)")


def load_segmentation_data(name, classes=2, limit=None):
    """``(train, test, class_names)``: ``train = (images, masks, instances)``, the same for test."""
    from . import data

    if name == "digits":
        n, m, s = DIGIT_CANVASES["train"], DIGIT_CANVASES["test"], DIGIT_CANVASES["canvas"]
        train = data.digit_segmentation(n if limit is None else min(n, limit), canvas=s, split="train", seed=0)
        test = data.digit_segmentation(m, canvas=s, split="test", seed=1)
    elif name == "nuclei":
        train, test = data.nuclei_segmentation("train", classes=classes), data.nuclei_segmentation("test", classes=classes)
        if limit is not None:
            train.images, train.masks = train.images[:limit], train.masks[:limit]
            train.instances = None if train.instances is None else train.instances[:limit]
    else:
        raise ValueError(f"--dataset: expected one of {SEG_DATASETS} for --task segmentation, got {name!r}")
    unpack = lambda s: (s.images, s.masks.astype(np.int64), s.instances)  # noqa: E731
    return unpack(train), unpack(test), list(test.class_names)


def build_segmentation_model(name, num_classes, in_channels):
    """The small configuration of ``name`` (:data:`SEG_MODEL_KWARGS`)."""
    from .models import segmentation

    if name not in SEG_MODELS:
        raise ValueError(f"build_segmentation_model: unknown model {name!r}; expected one of {SEG_MODELS}")
    return getattr(segmentation, name)(num_classes=num_classes, in_channels=in_channels, **SEG_MODEL_KWARGS[name])


def resolve_segmentation_defaults(args):
    """Fill epochs, batch size, learning rate and eval-every left out on the command line from :data:`SEG_RECIPES`."""
    for key, value in zip(("epochs", "batch_size", "lr", "eval_every"), SEG_RECIPES[args.dataset]):
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    nuclei = args.dataset == "nuclei"
    if not nuclei and (args.classes not in (None, 2) or args.weight_map):
        raise ValueError("--classes and --weight-map apply to --dataset nuclei only")
    if args.augment is None:
        args.augment = nuclei                         # digits are not symmetric under flips
    if args.classes is None:
        args.classes = 3 if nuclei else 2
    if args.weight_map is None:
        args.weight_map = nuclei and args.model == "unet"
    return args


def train_segmentation(args, log=print, keep=None):
    """Train ``args.model`` on ``args.dataset``; pictures and ``summary.json`` in the output folder.
    Returns the summary; a dict ``keep`` receives ``model``, ``trainer``, ``train``, ``test``, ``class_names``
    (the examples draw more pictures from them)."""
    from . import viz
    from .__main__ import optimizer_and_schedule
    from .random import manual_seed
    from .train import save_checkpoint
    from .train_segmentation import SegmentationTrainer

    resolve_segmentation_defaults(args)
    manual_seed(args.seed)
    train, test, names = load_segmentation_data(args.dataset, args.classes, args.limit)
    k = len(names)
    weights = None
    if args.weight_map:
        from .models.segmentation.unet import unet_weight_map
        weights = np.stack([unet_weight_map(inst) for inst in train[2]]).astype(np.float32)
    model = build_segmentation_model(args.model, k, train[0].shape[1]).to(args.device)
    params = list(model.parameters())
    opt, sched = optimizer_and_schedule(args, params)
    out = args.out or os.path.join("runs", f"{args.model}-{args.dataset}")
    os.makedirs(out, exist_ok=True)
    n_params = sum(p.size for p in params)
    log(f"minicnn: {args.model} ({n_params:,} parameters) on {args.dataset} segmentation ({k} classes): "
        f"{len(train[0]):,} train / {len(test[0]):,} test images, {args.epochs} epochs, device {args.device}")
    trainer = SegmentationTrainer(model, opt, k, device=args.device, scheduler=sched, augment=args.augment,
                                  instances=("interior" if k == 3 else "foreground") if args.dataset == "nuclei" else None,
                                  seed=args.seed, progress=not args.no_progress and sys.stderr.isatty())
    t0 = time.perf_counter()
    history = trainer.fit((train[0], train[1]) + ((weights,) if weights is not None else ()), test, args.epochs,
                          args.batch_size, args.eval_every, log=log,
                          on_eval=lambda m: save_checkpoint(m, os.path.join(out, "checkpoint.npz")))
    seconds = time.perf_counter() - t0
    final = history[-1]
    title = f"{args.model} on {args.dataset}"
    viz.plot_segmentation_curves(history, os.path.join(out, "learning_curves.png"), title)
    viz.plot_class_iou(final["test_per_class_iou"], os.path.join(out, "class_iou.png"), names,
                       f"{title}: held-out IoU per class")
    viz.plot_segmentation(test[0], test[1], trainer.last_prediction, os.path.join(out, "predictions.png"), k, names,
                          f"{title}: held-out images")
    summary = dict(task="segmentation", model=args.model, dataset=args.dataset, classes=k, epochs=args.epochs,
                   parameters=n_params, seconds=seconds, device=args.device, seed=args.seed,
                   **{key: value for key, value in final.items() if key.startswith("test_")})
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if keep is not None:
        keep.update(model=model, trainer=trainer, train=train, test=test, class_names=names)
    with open(os.path.join(out, "history.json"), "w") as f:
        json.dump(history, f, indent=1)
    extra = f", instance F1 {final['test_instance_f1']:.3f}" if "test_instance_f1" in final else ""
    log(f"test mean IoU {final['test_mean_iou']:.4f} (foreground IoU {final['test_foreground_iou']:.4f}{extra}); "
        f"{seconds:.0f} s in all; pictures and checkpoint in {out}/")
    return summary


def run_example(description, model, dataset, epochs, out, extra=(), argv=None):
    """What the segmentation examples share: their flags (``--epochs``, ``--device``, ``--limit``)
    and a :func:`train_segmentation` run of ``model`` on ``dataset`` writing to ``out``.
    Returns ``(summary, keep)`` (``keep``: the model, trainer and data, for more pictures)."""
    import argparse

    from .__main__ import build_parser, positive_int

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--epochs", type=positive_int, default=epochs, help=f"passes over the training images ({epochs})")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"))
    p.add_argument("--limit", type=positive_int, help="use only the first N training images (default: all)")
    a = p.parse_args(argv)
    limit = ["--limit", str(a.limit)] if a.limit else []
    args = build_parser("segmentation").parse_args(
        ["train", "--task", "segmentation", "--model", model, "--dataset", dataset, "--epochs", str(a.epochs),
         "--device", a.device, "--out", out, *extra, *limit])
    keep = {}
    return train_segmentation(args, keep=keep), keep
