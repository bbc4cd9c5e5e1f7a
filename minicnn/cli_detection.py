"""``python -m minicnn train --task detection``: detectors, their registry, recipes and pictures.

Datasets (real pixels, nothing downloaded):

* ``digit-canvases``: 128×128 canvases of 1–6 real MNIST digits (20–48 px, 10 classes); training
  canvases are drawn afresh every epoch from the training digit pool (a
  :class:`~minicnn.data.detection.CanvasStream`: no fixed training set to memorise, new sizes and
  positions each time), the held-out canvases are a fixed set built from the test digit pool.
* ``fashion-canvases``: the same with Fashion-MNIST items (Debian's ``dataset-fashion-mnist``).
* ``nuclei``: the embedded nuclei image split by region (64×64 training tiles, the held-out
  quadrant 256×256), for the models that accept images of any size.

Models come from :data:`DETECTORS`, a registry name → :class:`Detector` (builder, loss, decoder,
recipes per dataset). Adding a model is one :func:`register_detector` call, e.g.::

    register_detector("ssd", Detector(
        build=lambda num_classes, in_channels, image_size, **kw: ssd_small(num_classes + 1, **kw),
        loss=lambda model: lambda out, targets: out,          # a dict of losses, summed
        decode=lambda model: lambda out: out,                  # eval forward returns detections
        forward=list_forward,                                  # torchvision's call: model(list, targets)
        recipes={"digit-canvases": dict(epochs=20, batch_size=16, lr=1e-3)}))

Each epoch: training on the epoch's canvases (a progress bar), then held-out VOC mAP@0.5
(all-point) and COCO mAP@[.5:.95] (:func:`~minicnn.detection_metrics.detection_scores`), and a
checkpoint. Written to the run folder: ``summary.json``, ``history.json``, ``checkpoint.npz``,
``curves.png`` (loss and mAP per epoch), ``detections.png`` (held-out images, predicted boxes with
labels and scores, truth in another colour), ``pr_curves.png`` (precision–recall per class), for
YOLO ``yolo_grid.png`` (the S×S grid, the responsible cells, their B boxes) and for SSD
``default_boxes.png`` (each feature map's default boxes and those that match the objects).
"""
import functools
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

DET_DATASETS = ("digit-canvases", "fashion-canvases", "nuclei")
CANVAS = 128                      # side of the canvases
TEST_CANVASES = 500               # held-out canvases (fixed: split "test", seed 1)
PRETRAIN_CANVAS = 64              # side of the single-item canvases of backbone pre-training


@dataclass
class Detector:
    """What the command line needs to know about one detection model.

    Attributes:
        build: ``build(num_classes, in_channels, image_size, **model_kwargs) -> nn.Module``
            (``num_classes`` without the background).
        loss: ``loss(model) -> f(model_output, targets) -> scalar Tensor or dict of Tensors``.
        decode: ``decode(model) -> g(model_output) -> [{"boxes", "scores", "labels"}]`` (pixels).
        recipes: per dataset a dict of ``epochs``, ``batch_size``, ``lr``, ``images_per_epoch``
            (canvases drawn per epoch; a fixed set's size for nuclei), ``warmup`` (steps of linear
            warm-up), ``weight_decay``, ``pretrain_epochs`` and ``pretrain_images`` (classification
            pre-training of ``model.features`` on single-item canvases; 0 epochs: none),
            ``max_grad_norm`` (None: no clipping) and ``model`` (keyword arguments of ``build``).
        forward: optional ``h(model, x, targets) -> output`` (default ``model(x)``; ``targets`` is
            None in evaluation), e.g. :func:`list_forward` for torchvision-style detectors.
        grid: optional ``grid(model) -> (S, B)`` for the YOLO grid picture.
        masks: the detections carry instance masks: mask AP@0.5 and mask COCO mAP are reported too.
    """
    build: callable
    loss: callable
    decode: callable
    recipes: dict
    forward: callable = None
    grid: callable = None
    masks: bool = False


DETECTORS = {}


def register_detector(name, detector):
    """Add ``detector`` (a :class:`Detector`) to :data:`DETECTORS` under ``name`` (``--model name``)."""
    if not isinstance(detector, Detector):
        raise TypeError(f"register_detector: {name!r} must be a Detector, got {type(detector).__name__}")
    unknown = set(detector.recipes) - set(DET_DATASETS)
    if not detector.recipes or unknown:
        raise ValueError(f"register_detector: {name!r} needs recipes for datasets among {DET_DATASETS}, "
                         f"got {sorted(detector.recipes)}")
    DETECTORS[name] = detector
    return detector


def list_forward(model, x, targets):
    """torchvision's call convention: ``model([x[0], …, x[N-1]], targets)`` (targets None in eval)."""
    images = [x[i] for i in range(x.shape[0])]
    return model(images) if targets is None else model(images, targets)


# ---------------------------------------------------------------------------
# YOLO v1
# ---------------------------------------------------------------------------

def _yolo_build(num_classes, in_channels, image_size, **kw):
    from .models.detection.yolo import yolo_v1_small

    return yolo_v1_small(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kw)


def _yolo_loss(model):
    from .models.detection.yolo import yolo_v1_loss

    return lambda out, targets: yolo_v1_loss(out, targets, model.S, model.B, model.num_classes,
                                             image_size=model.image_size)


def _yolo_decode(model, conf_threshold=0.005):
    from .models.detection.yolo import yolo_v1_decode

    return lambda out: yolo_v1_decode(out, conf_threshold, 0.5, model.B, image_size=model.image_size)


# S = 8 over a stride-16 backbone: one 8×8 feature-map position per 16-px cell of the 128-px canvas;
# a 1×1 reduction to 32 channels keeps the flattened input (8·8·32 = 2048) no wider than the hidden layer
_YOLO_MODEL = dict(S=8, B=2, width=16, hidden=2048, dropout=0.0, stride=16, reduce=32)
_YOLO_RECIPE = dict(epochs=36, batch_size=32, lr=2e-3, images_per_epoch=4096, warmup=200, weight_decay=0.0,
                    pretrain_epochs=2, pretrain_images=12000, max_grad_norm=None, model=_YOLO_MODEL)
register_detector("yolo_v1", Detector(
    build=_yolo_build, loss=_yolo_loss, decode=_yolo_decode, grid=lambda model: (model.S, model.B),
    recipes={"digit-canvases": _YOLO_RECIPE, "fashion-canvases": _YOLO_RECIPE}))


# ---------------------------------------------------------------------------
# Faster R-CNN and Mask R-CNN (torchvision's layout, small configurations)
# ---------------------------------------------------------------------------

def _rcnn_build(name):
    """``build`` of ``fasterrcnn_small`` / ``maskrcnn_small``: ``num_classes`` + the background;
    ``anchor_sizes`` (one size per FPN level P2–P6, ratios 0.5/1/2) replaces the default anchors."""
    def build(num_classes, in_channels, image_size, anchor_sizes=None, **kw):
        from .models.detection import faster_rcnn, mask_rcnn
        from .models.detection.anchor_utils import AnchorGenerator

        if anchor_sizes is not None:
            kw["rpn_anchor_generator"] = AnchorGenerator(tuple((int(s),) for s in anchor_sizes),
                                                         ((0.5, 1.0, 2.0),) * len(anchor_sizes))
        make = faster_rcnn.fasterrcnn_small if name == "faster_rcnn" else mask_rcnn.maskrcnn_small
        return make(num_classes=num_classes + 1, in_channels=in_channels, image_size=image_size, **kw)

    return build


def rcnn_forward(model, x, targets):
    """:func:`list_forward` at the images' own size: the transform's ``min_size`` and ``max_size``
    are set to the batch's sides, so nothing is resized (64-pixel nuclei tiles in training, the
    256-pixel held-out quadrant in evaluation; 128-pixel canvases both)."""
    model.transform.min_size, model.transform.max_size = (min(x.shape[-2:]),), max(x.shape[-2:])
    return list_forward(model, x, targets)


def _rcnn_loss(model):
    return lambda out, targets: out                    # the dict of the four (five) losses, summed


def _rcnn_decode(model):
    """Eval detections as they are; Mask R-CNN's pasted ``(D, 1, H, W)`` probabilities -> binary
    ``(D, H, W)`` masks at 0.5 (what the mask metrics read)."""
    def decode(out):
        dets = []
        for o in out:
            d = {"boxes": o["boxes"], "scores": o["scores"], "labels": o["labels"]}
            if "masks" in o:
                m = np.asarray(o["masks"])
                d["masks"] = (m.reshape(-1, *m.shape[-2:]) >= 0.5).astype(np.uint8)
            dets.append(d)
        return dets

    return decode


_RCNN_CANVAS_MODEL = dict(width=16, fpn_channels=32, representation_size=128, anchor_sizes=(16, 32, 64, 128, 256))
_FASTER_RCNN_RECIPE = dict(epochs=10, batch_size=8, lr=1e-3, images_per_epoch=1024, warmup=100, weight_decay=0.0,
                           pretrain_epochs=0, pretrain_images=0, max_grad_norm=None, model=_RCNN_CANVAS_MODEL)
register_detector("faster_rcnn", Detector(
    build=_rcnn_build("faster_rcnn"), loss=_rcnn_loss, decode=_rcnn_decode, forward=rcnn_forward,
    recipes={"digit-canvases": _FASTER_RCNN_RECIPE}))

_MASK_RCNN_RECIPE = dict(_FASTER_RCNN_RECIPE, epochs=8,
                         model=dict(_RCNN_CANVAS_MODEL, mask_channels=32, box_batch_size_per_image=64))
# nuclei are 4-38 px: smaller anchors; an epoch is the 147 training tiles
_MASK_RCNN_NUCLEI = dict(epochs=30, batch_size=8, lr=1e-3, images_per_epoch=147, warmup=50, weight_decay=0.0,
                         pretrain_epochs=0, pretrain_images=0, max_grad_norm=None,
                         model=dict(width=16, fpn_channels=32, representation_size=128, mask_channels=32,
                                    anchor_sizes=(8, 16, 32, 64, 128), box_batch_size_per_image=64))
register_detector("mask_rcnn", Detector(
    build=_rcnn_build("mask_rcnn"), loss=_rcnn_loss, decode=_rcnn_decode, forward=rcnn_forward, masks=True,
    recipes={"digit-canvases": _MASK_RCNN_RECIPE, "nuclei": _MASK_RCNN_NUCLEI}))


# ---------------------------------------------------------------------------
# RetinaNet (torchvision's layout, a small configuration)
# ---------------------------------------------------------------------------

def _retinanet_build(num_classes, in_channels, image_size, head_norm_groups=None, **kw):
    """``retinanet_small`` with ``num_classes`` + the background column, images kept at ``image_size``;
    ``head_norm_groups`` G: ``GroupNorm(G, ·)`` after each subnet convolution (None: the v1 head)."""
    from . import nn
    from .models.detection.retinanet import retinanet_small

    if head_norm_groups is not None:
        kw["head_norm_layer"] = functools.partial(nn.GroupNorm, int(head_norm_groups))
    return retinanet_small(num_classes=num_classes + 1, in_channels=in_channels, min_size=image_size,
                           max_size=image_size, **kw)


# digits are 20-48 px: anchors of 16-25 px on P3 and 32-50 px on P4 match every digit (P5-P7 only see
# background); GroupNorm in the 64-channel subnets keeps their N(0, 0.01²) start from shrinking the signal
# ~10⁴-fold (v1 head: 0.32 mAP@0.5 after 16k canvases, 0.76 with GroupNorm); scores down to 0.01 for mAP
_RETINANET_CANVAS_MODEL = dict(width=16, fpn_channels=64, anchor_base=(16, 32, 64, 128, 256), head_norm_groups=8,
                               score_thresh=0.01, detections_per_img=100)
_RETINANET_RECIPE = dict(epochs=10, batch_size=8, lr=2e-3, images_per_epoch=3072, warmup=200, weight_decay=0.0,
                         pretrain_epochs=0, pretrain_images=0, max_grad_norm=None, model=_RETINANET_CANVAS_MODEL)
register_detector("retinanet", Detector(
    build=_retinanet_build, loss=_rcnn_loss, decode=_rcnn_decode, forward=rcnn_forward,
    recipes={"digit-canvases": _RETINANET_RECIPE}))


# ---------------------------------------------------------------------------
# SSD (torchvision's layout, a small configuration)
# ---------------------------------------------------------------------------

def _ssd_build(num_classes, in_channels, image_size, **kw):
    """``ssd_small`` with ``num_classes`` + the background column, images kept at ``image_size``."""
    from .models.detection.ssd import ssd_small

    return ssd_small(num_classes=num_classes + 1, in_channels=in_channels, size=image_size, **kw)


# default boxes of 15-102 px on 16², 8², 4², 2², 1² maps for the 20-48 px digits
_SSD_CANVAS_MODEL = dict(width=16, detections_per_img=100, topk_candidates=100)
_SSD_RECIPE = dict(epochs=20, batch_size=16, lr=2e-3, images_per_epoch=2048, warmup=100, weight_decay=0.0,
                   pretrain_epochs=0, pretrain_images=0, max_grad_norm=None, model=_SSD_CANVAS_MODEL)
register_detector("ssd", Detector(
    build=_ssd_build, loss=_rcnn_loss, decode=_rcnn_decode, forward=list_forward,
    recipes={"digit-canvases": _SSD_RECIPE}))


# ---------------------------------------------------------------------------
# R-CNN and Fast R-CNN over selective-search proposals (computed per canvas, cached by content)
# ---------------------------------------------------------------------------

def _fast_rcnn_build(num_classes, in_channels, image_size, **kw):
    from .models.detection.fast_rcnn import fastrcnn_small

    return fastrcnn_small(num_classes=num_classes + 1, in_channels=in_channels, image_size=image_size, **kw)


def _rcnn_small_build(num_classes, in_channels, image_size, **kw):
    from .models.detection.rcnn import rcnn_small

    return rcnn_small(num_classes=num_classes + 1, in_channels=in_channels, **kw)


# the settings of examples 19 and 20 (their README figures come from those scripts, on a fixed set of
# 1,500 canvases; here the canvases are drawn afresh each epoch)
register_detector("fast_rcnn", Detector(
    build=_fast_rcnn_build, loss=_rcnn_loss, decode=_rcnn_decode, forward=list_forward,
    recipes={"digit-canvases": dict(epochs=4, batch_size=2, lr=1e-3, images_per_epoch=1500, warmup=0,
                                    weight_decay=0.0, pretrain_epochs=2, pretrain_images=4000, max_grad_norm=None,
                                    model=dict(widths=(32, 64, 96, 128), representation_size=256))}))
register_detector("rcnn", Detector(
    build=_rcnn_small_build, loss=_rcnn_loss, decode=_rcnn_decode, forward=list_forward,
    recipes={"digit-canvases": dict(epochs=1, batch_size=2, lr=1e-3, images_per_epoch=1500, warmup=0,
                                    weight_decay=0.0, pretrain_epochs=2, pretrain_images=4000, max_grad_norm=None,
                                    model=dict(widths=(16, 32, 64), representation_size=256,
                                               max_test_proposals=300))}))


# ---------------------------------------------------------------------------
# flags and defaults
# ---------------------------------------------------------------------------

def _recipe_help(key):
    return ", ".join(f"{m}/{d} {r[key]}" for m, det in DETECTORS.items() for d, r in det.recipes.items())


def add_detection_flags(flag):
    """The flags of ``--task detection`` (``flag`` = ``__main__._add_flags``'s helper)."""
    from .__main__ import non_negative_float, non_negative_int, positive_float, positive_int

    flag("--model", default="yolo_v1", choices=tuple(DETECTORS), help="detector (a small configuration), from "
         "minicnn.models.detection")
    flag("--dataset", choices=DET_DATASETS, help="per model: " + "; ".join(
        f"{m}: {', '.join(det.recipes)}" for m, det in DETECTORS.items()) + " (default: the first)")
    flag("--epochs", type=positive_int, help=f"epochs (per model/dataset: {_recipe_help('epochs')})")
    flag("--batch-size", type=positive_int, help=f"images per step ({_recipe_help('batch_size')})")
    flag("--lr", type=positive_float, help=f"peak learning rate of Adam ({_recipe_help('lr')})")
    flag("--weight-decay", type=non_negative_float, help="L2 penalty (the recipe's)")
    flag("--warmup", type=non_negative_int, help="steps of linear learning-rate warm-up before the cosine decay "
         f"over the remaining steps ({_recipe_help('warmup')})")
    flag("--pretrain-epochs", type=non_negative_int, help="epochs of classification pre-training of the backbone "
         f"on single items of the training pool (0: none; {_recipe_help('pretrain_epochs')})")
    flag("--test-images", type=positive_int, help=f"held-out canvases (default: {TEST_CANVASES})")


_RECIPE_FLAGS = (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"), ("weight_decay", "weight_decay"),
                 ("warmup", "warmup"), ("pretrain_epochs", "pretrain_epochs"), ("limit", "images_per_epoch"))


def resolve_detection_defaults(args):
    """Fill the dataset and every flag left out from the model's recipe; ValueError for a dataset the
    model has no recipe for."""
    det = DETECTORS[args.model]
    if getattr(args, "dataset", None) is None:
        args.dataset = next(iter(det.recipes))
    if args.dataset not in det.recipes:
        raise ValueError(f"--dataset: {args.model} trains on {', '.join(det.recipes)}, got {args.dataset!r}")
    recipe = det.recipes[args.dataset]
    for key, rkey in _RECIPE_FLAGS:
        if getattr(args, key, None) is None:
            setattr(args, key, recipe[rkey])
    if getattr(args, "test_images", None) is None:
        args.test_images = TEST_CANVASES
    return args


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------

def _canvas_maker(dataset):
    from .data import detection as dd

    return dd.digit_detection if dataset == "digit-canvases" else dd.fashion_detection


def load_detection_data(dataset, images_per_epoch, batch_size, test_images, seed=0):
    """``(train, test)``: ``train`` a loader of batches (a :class:`CanvasStream` of fresh canvases, or a
    shuffled DataLoader over the nuclei tiles), ``test`` a fixed held-out DetectionSet."""
    from .data import DataLoader
    from .data import detection as dd

    if dataset == "nuclei":
        train = dd.nuclei_detection("train")
        keep = np.arange(min(images_per_epoch, len(train)))
        train = dd.DetectionSet(train.images[keep], [train.targets[i] for i in keep], train.num_classes,
                                train.class_names)
        return (DataLoader(train, batch_size, shuffle=True, seed=seed, collate_fn=dd.detection_collate),
                dd.nuclei_detection("test"))
    make = _canvas_maker(dataset)
    test = make(test_images, canvas=CANVAS, split="test", seed=1)
    stream = dd.CanvasStream(functools.partial(make, canvas=CANVAS, split="train"), images_per_epoch, batch_size,
                             seed=seed)
    return stream, test


def _pretrain_items(dataset, n, seed):
    """Single-item canvases of the training pool and their class (0-based) for backbone pre-training."""
    ds = _canvas_maker(dataset)(n, canvas=PRETRAIN_CANVAS, split="train", seed=(seed, 7), **{
        ("digits_per_image" if dataset == "digit-canvases" else "items_per_image"): 1})
    return ds.images, np.array([int(t["labels"][0]) - 1 for t in ds.targets])


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------

def warmup_cosine(warmup, total):
    """LambdaLR factor per step ``t``: ``(t + 1)/warmup`` during the warm-up, then
    ``½(1 + cos(π (t − warmup)/(total − warmup)))`` down to 0 at ``total``."""
    def factor(t):
        if t < warmup:
            return (t + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(t - warmup, total - warmup) / max(total - warmup, 1)))

    return factor


def build_detector(name, dataset, num_classes, in_channels, image_size):
    """The model of ``name`` in its recipe's configuration for ``dataset``."""
    det = DETECTORS[name]
    return det.build(num_classes, in_channels, image_size, **det.recipes[dataset].get("model", {}))


def train_detection(args, log=print, keep=None):
    """Train ``args.model`` on ``args.dataset``; figures, checkpoint and pictures in the output folder.
    Returns the summary; a dict ``keep`` receives the trainer, model and held-out set."""
    from . import optim
    from .optim.lr_scheduler import LambdaLR
    from .random import manual_seed
    from .train import save_checkpoint
    from .train_detection import DetectionTrainer, pretrain_backbone

    resolve_detection_defaults(args)
    det = DETECTORS[args.model]
    recipe = det.recipes[args.dataset]
    manual_seed(args.seed)
    out = args.out or os.path.join("runs", f"{args.model}-{args.dataset}")
    os.makedirs(out, exist_ok=True)
    progress = not args.no_progress and sys.stderr.isatty()
    title = f"{args.model} on {args.dataset}"
    t_start = time.perf_counter()
    train, test = load_detection_data(args.dataset, args.limit, args.batch_size, args.test_images, args.seed)
    C = test.num_classes - 1
    model = build_detector(args.model, args.dataset, C, test.images.shape[1], test.images.shape[2]).to(args.device)
    n_params = sum(p.size for p in model.parameters())
    log(f"minicnn: {title}: {n_params:,} parameters; {args.epochs} epochs of {args.limit} training images, "
        f"batch {args.batch_size}, lr {args.lr}, {len(test)} held-out images, device {args.device}")
    pretrain = []
    if args.pretrain_epochs and hasattr(model, "features") and args.dataset != "nuclei":
        x, y = _pretrain_items(args.dataset, recipe.get("pretrain_images", 10000), args.seed)
        pretrain = pretrain_backbone(model.features, x, y, C, epochs=args.pretrain_epochs, device=args.device,
                                     seed=args.seed, progress=progress, log=log)
    opt = optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * len(train)
    sched = LambdaLR(opt, warmup_cosine(min(args.warmup, steps), steps))
    trainer = DetectionTrainer(model, opt, det.loss(model), det.decode(model), device=args.device, progress=progress,
                               forward=det.forward, batch_scheduler=sched, max_grad_norm=recipe.get("max_grad_norm"),
                               masks=det.masks)

    def on_epoch(tr, epoch, row):
        row["lr"] = float(opt.param_groups[0]["lr"])
        row["load_1min"] = float(os.getloadavg()[0])
        save_checkpoint(model, os.path.join(out, "checkpoint.npz"))
        with open(os.path.join(out, "history.json"), "w") as f:
            json.dump(tr.history, f, indent=1)

    t0 = time.perf_counter()
    history = trainer.fit(train, test, args.epochs, log=log, on_epoch=on_epoch)
    seconds = time.perf_counter() - t0
    summary = dict(task="detection", model=args.model, dataset=args.dataset, epochs=args.epochs,
                   batch_size=args.batch_size, lr=args.lr, warmup=args.warmup, weight_decay=args.weight_decay,
                   images_per_epoch=args.limit, test_images=len(test), parameters=n_params,
                   model_kwargs=dict(recipe.get("model", {})), pretrain_epochs=args.pretrain_epochs,
                   pretrain_accuracy=pretrain[-1] if pretrain else None, seed=args.seed, device=args.device,
                   train_seconds=seconds, seconds=time.perf_counter() - t_start,
                   load_1min_mean=float(np.mean([h["load_1min"] for h in history])),
                   map50=history[-1]["map50"], coco_map=history[-1]["coco_map"], coco_ap50=history[-1]["coco_ap50"])
    if det.masks:
        summary.update(mask_ap50=history[-1]["mask_ap50"], mask_coco_map=history[-1]["mask_coco_map"])
    summary.update(_pictures(trainer, det, model, test, out, title))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if keep is not None:
        keep.update(trainer=trainer, model=model, test=test, out=out)
    masks = f", mask AP@0.5 {summary['mask_ap50']:.4f}" if det.masks else ""
    log(f"{title}: held-out mAP@0.5 {summary['map50']:.4f}, COCO mAP@[.5:.95] {summary['coco_map']:.4f}{masks}; "
        f"{seconds:.0f} s of training ({summary['seconds']:.0f} s in all, mean 1-min load "
        f"{summary['load_1min_mean']:.1f}); pictures and checkpoint in {out}/")
    return summary


def _pictures(trainer, det, model, test, out, title):
    """``detections.png``, ``pr_curves.png``, ``curves.png`` and (YOLO) ``yolo_grid.png``; returns per-class AP."""
    from .autograd import no_grad
    from .detection_metrics import voc_evaluate
    from .tensor import Tensor
    from .viz import detection as vd

    dets = trainer.predict(test.images)
    voc = voc_evaluate(dets, test.targets, 0.5)
    names = list(test.class_names)
    k = min(8, len(test))
    vd.plot_detections(test.images[:k], dets[:k], test.targets[:k], os.path.join(out, "detections.png"), names,
                       title=f"{title}: held-out images (predictions score >= 0.3; truth dashed)")
    vd.plot_precision_recall(voc, os.path.join(out, "pr_curves.png"), names,
                             title=f"{title}: precision-recall at IoU 0.5, mAP {voc['map']:.3f}")
    vd.plot_detection_curves(trainer.history, os.path.join(out, "curves.png"), title)
    from .models.detection.ssd import SSD, default_boxes

    if isinstance(model, SSD):
        shapes, per_cell, boxes = default_boxes(model, test.images[0])
        vd.plot_default_boxes(test.images[0], shapes, per_cell, boxes, os.path.join(out, "default_boxes.png"),
                              test.targets[0], title=f"{title}: default boxes of one cell per feature map, "
                              "shaded: those matching an object at IoU >= 0.5")
    if det.grid is not None:
        S, B = det.grid(model)
        model.eval()
        with no_grad():
            pred = det.forward(model, Tensor(test.images[:1], device=trainer.device), None) if det.forward \
                else model(Tensor(test.images[:1], device=trainer.device))
        vd.plot_yolo_grid(test.images[0], pred.numpy()[0], test.targets[0], S, B, os.path.join(out, "yolo_grid.png"),
                          names, title=f"{title}: the {S}x{S} grid, responsible cells and their {B} boxes")
    return {"ap50_per_class": {names[c]: float(a) for c, a in voc["ap"].items()}}


def run_example(description, model, dataset, out, argv=None, extra=()):
    """What the detection examples share: ``--epochs``, ``--device``, ``--limit`` flags
    (:func:`~minicnn.__main__.example_args`) and a :func:`train_detection` run. Returns ``(summary, keep)``."""
    from .__main__ import example_args

    args = example_args("detection", description, model, dataset, out, argv, extra)
    keep = {}
    return train_detection(args, keep=keep), keep
