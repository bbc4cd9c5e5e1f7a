"""Training loop for semantic segmentation: per-pixel cross-entropy, held-out IoU after each epoch.

One step on a batch of images ``x (B, C, H, W)`` and label masks ``y (B, H, W)``:

    scores = model(x)                                  (B, K, H', W'); a dict's ``"out"`` (torchvision style)
    ℓ[b, i, j] = −log softmax(scores[b, :, i, j])[y[b, i, j]]
    loss = Σ w[b, i, j] · ℓ[b, i, j] / Σ w[b, i, j]    (w = 1 without a weight map: the plain mean)
    (+ 0.5 · the same loss of ``"aux"`` when the model has an auxiliary head, as torchvision's reference)

Models whose output is smaller than their input (U-Net with valid convolutions) are scored on
the centre of the target: ``y`` and ``w`` are centre-cropped to ``H' × W'``.
"""
import math
import time

import numpy as np

from . import functional as F
from . import metrics
from .autograd import no_grad
from .models.segmentation.unet import center_crop
from .tensor import Tensor
from .train import _progress


def main_output(out):
    """The score map of a model's output: ``out["out"]`` for torchvision-style dicts, else ``out``."""
    return out["out"] if isinstance(out, dict) else out


def dihedral_augment(rng, *arrays):
    """The same random flip / 90° rotation (one of the 8 symmetries of the square) of every array's
    last two axes, per sample along the first axis. Returns new C-contiguous arrays."""
    n = len(arrays[0])
    out = [np.array(a, copy=True) for a in arrays]
    k, flip = rng.integers(4, size=n), rng.integers(2, size=n)
    for i in range(n):
        for a, src in zip(out, arrays):
            v = np.rot90(src[i], k[i], axes=(-2, -1))
            a[i] = v[..., ::-1] if flip[i] else v
    return out


def segmentation_loss(out, target, weight=None, aux_weight=0.5):
    """The loss above for a model output ``out`` (a Tensor or a dict with ``"out"``/``"aux"``),
    int64 ``target (B, H, W)`` and optional float ``weight (B, H, W)`` (NumPy arrays)."""
    terms = [(main_output(out), 1.0)]
    if isinstance(out, dict) and out.get("aux") is not None:
        terms.append((out["aux"], aux_weight))
    total = None
    for scores, factor in terms:
        size = tuple(scores.shape[-2:])
        y = center_crop(target, size)
        pixel = F.cross_entropy(scores, Tensor(np.ascontiguousarray(y), device=scores.device), reduction="none")
        if weight is None:
            loss = F.mean(pixel)
        else:
            w = center_crop(weight, size)
            w = np.ascontiguousarray(w, dtype=pixel.dtype)
            loss = F.sum(pixel * Tensor(w, device=scores.device)) * (1.0 / float(w.sum()))
        total = loss * factor if total is None else total + loss * factor
    return total


def _check_pair(split, images, masks, num_classes, weights=None):
    """ValueError naming the split and the shapes unless images ``(N, C, H, W)``, masks ``(N, H, W)``
    (and weights ``(N, H, W)``) agree and every label is in ``0..num_classes-1``."""
    images, masks = np.asarray(images), np.asarray(masks)
    if images.ndim != 4 or masks.ndim != 3 or images.shape[0] != masks.shape[0] or images.shape[2:] != masks.shape[1:]:
        raise ValueError(f"SegmentationTrainer.fit: {split} images {images.shape} and masks {masks.shape} do not match: "
                         "expected (N, C, H, W) and (N, H, W)")
    if weights is not None and np.shape(weights) != masks.shape:
        raise ValueError(f"SegmentationTrainer.fit: {split} weights {np.shape(weights)} do not match masks {masks.shape}")
    if masks.size and (masks.min() < 0 or masks.max() >= num_classes):
        raise ValueError(f"SegmentationTrainer.fit: {split} mask labels span {masks.min()}..{masks.max()}, outside "
                         f"0..{num_classes - 1} for {num_classes} classes")


class SegmentationTrainer:
    """Train and evaluate a semantic-segmentation model.

    Args:
        model: an ``nn.Module`` mapping ``(N, C, H, W)`` to scores ``(N, K, H', W')`` (or ``{"out": …}``).
        optimizer: from :mod:`minicnn.optim`.
        num_classes: K.
        device: where the batches go; move the model there first.
        scheduler: optional LR scheduler stepped once per epoch.
        augment: a random flip/rotation by 90° of every training image with its mask (for
            orientation-free data such as nuclei; not for digits).
        instances: score instances too (nuclei): connected components of the predicted
            foreground (``"foreground"``) or interior class (``"interior"``, 3-class masks),
            matched to the true instances at IoU > 0.5 (:func:`minicnn.metrics.instance_f1`).
        progress: a tqdm bar per epoch.
    """

    def __init__(self, model, optimizer, num_classes, device="cpu", scheduler=None, augment=False, instances=None,
                 seed=0, progress=True):
        self.model, self.optimizer, self.num_classes = model, optimizer, num_classes
        self.device, self.scheduler, self.augment, self.instances = device, scheduler, augment, instances
        self.rng = np.random.default_rng(seed)
        self.progress = progress
        self.history = []

    def train_epoch(self, images, masks, weights=None, batch_size=8, epoch=0):
        """One shuffled pass; returns mean loss, pixel accuracy, seconds and images/s. Raises
        FloatingPointError at the first non-finite loss, before the update."""
        self.model.train()
        n = len(images)
        order = self.rng.permutation(n)
        batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
        total, correct, pixels, t0 = 0.0, 0, 0, time.perf_counter()
        bar = _progress(batches, len(batches), f"epoch {epoch}", self.progress)
        for b, idx in enumerate(bar, 1):
            x, y = images[idx], masks[idx]
            w = None if weights is None else weights[idx]
            if self.augment:
                x, y, *rest = dihedral_augment(self.rng, x, y, *(() if w is None else (w,)))
                w = rest[0] if rest else None
            out = self.model(Tensor(np.ascontiguousarray(x), device=self.device))
            loss = segmentation_loss(out, y, w)
            value = float(loss.item())
            if not math.isfinite(value):
                raise FloatingPointError(f"SegmentationTrainer: the training loss is {value} at epoch {epoch}, "
                                         f"batch {b}: lower the learning rate, or check the data for NaN/inf")
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            scores = main_output(out).numpy()
            yc = center_crop(y, scores.shape[-2:])
            total += value * len(idx)
            correct += int((scores.argmax(1) == yc).sum())
            pixels += yc.size
            if bar is not batches:
                bar.set_postfix(loss=f"{total / (b * batch_size):.4f}")
        seconds = time.perf_counter() - t0
        if self.scheduler is not None:
            self.scheduler.step()
        return dict(train_loss=total / n, train_pixel_acc=correct / pixels, seconds=seconds, images_per_s=n / seconds)

    def predict(self, images, batch_size=16):
        """Predicted labels ``(N, H', W')`` and class probabilities ``(N, K, H', W')`` (eval mode, no graph)."""
        self.model.eval()
        probs = []
        with no_grad():
            for i in range(0, len(images), batch_size):
                scores = main_output(self.model(Tensor(np.ascontiguousarray(images[i:i + batch_size]),
                                                       device=self.device)))
                probs.append(F.softmax(scores, dim=1).numpy())
        p = np.concatenate(probs)
        return p.argmax(1), p

    def evaluate(self, images, masks, instances=None):
        """``test_`` metrics: pixel accuracy, per-class and mean IoU and Dice, foreground IoU; with
        ``instances`` and :attr:`instances` set, instance precision/recall/F1 at IoU 0.5."""
        pred, _ = self.predict(images)
        target = center_crop(masks, pred.shape[-2:])
        s = metrics.segmentation_scores(pred, target, self.num_classes)
        row = {f"test_{k}": (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        if self.instances and instances is not None:
            found = metrics.instances_from_semantic(pred, mode=self.instances)
            r = metrics.instance_f1(found, center_crop(instances, pred.shape[-2:]))  # counts summed over images
            row.update(test_instance_precision=r["precision"], test_instance_recall=r["recall"],
                       test_instance_f1=r["f1"])
        self.last_prediction = pred
        return row

    def fit(self, train, test, epochs, batch_size=8, eval_every=1, log=print, on_eval=None):
        """Train ``epochs`` epochs on ``train = (images, masks[, weights])``; evaluate on
        ``test = (images, masks[, instances])`` after every ``eval_every``-th epoch and the last.
        Returns the history (one dict per epoch); ``on_eval(model)`` is called after each evaluation
        (e.g. to save a checkpoint)."""
        if epochs < 1 or eval_every < 1:
            raise ValueError(f"SegmentationTrainer.fit: epochs and eval_every must be >= 1, got {epochs}, {eval_every}")
        images, masks, *w = train
        weights = w[0] if w else None
        for name, (x, y, *rest) in (("train", train), ("test", test)):
            _check_pair(name, x, y, self.num_classes, rest[0] if rest and name == "train" else None)
        for epoch in range(1, epochs + 1):
            row = dict(epoch=epoch, lr=self.optimizer.param_groups[0]["lr"])
            row.update(self.train_epoch(images, masks, weights, batch_size, epoch))
            if epoch % eval_every == 0 or epoch == epochs:
                row.update(self.evaluate(*test))
                extra = (f"  instance F1 {row['test_instance_f1']:.3f}" if "test_instance_f1" in row else "")
                log(f"epoch {epoch:3d}  loss {row['train_loss']:.4f}  test mIoU {row['test_mean_iou']:.4f}  "
                    f"foreground IoU {row['test_foreground_iou']:.4f}  pixel acc {100 * row['test_pixel_accuracy']:.2f}%"
                    f"{extra}  {row['seconds']:.1f}s")
                if on_eval is not None:
                    on_eval(self.model)
            self.history.append(row)
        return self.history
