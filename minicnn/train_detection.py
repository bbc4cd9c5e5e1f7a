"""Training loop for detectors, whatever their architecture: the model supplies a loss and a decoder.

One step on a batch of images ``x (B, C, H, W)`` and targets (B dicts of ``boxes``, ``labels``, …):

    out = model(x)
    loss = loss_fn(out, targets)            a scalar Tensor (a dict of Tensors is summed)
    loss.backward(); optimizer.step()

After each epoch the model (in eval mode) decodes the held-out images, ``decode(out) -> [{"boxes",
"scores", "labels"}]`` per image, and :func:`~minicnn.detection_metrics.detection_scores` reports
VOC mAP@0.5 (all-point) and COCO mAP@[.5:.95] (boxes, and masks when the detections carry them).
"""
import math
import time

import numpy as np

from .autograd import no_grad
from .detection_metrics import detection_scores
from .optim import clip_grad_norm_
from . import nn
from .tensor import Tensor
from .train import _progress


def total_loss(loss):
    """A scalar Tensor from a loss or a dict of losses (torchvision's detectors return a dict)."""
    if isinstance(loss, dict):
        parts = list(loss.values())
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        return out
    return loss


class DetectionTrainer:
    """Train a detector and evaluate it on held-out images after each epoch.

    Args:
        model: an ``nn.Module`` on ``device``.
        optimizer: from :mod:`minicnn.optim`.
        loss_fn: ``f(model_output, targets) -> scalar Tensor`` (or a dict of them, summed).
        decode: ``g(model_output) -> [detections per image]`` (boxes in the image's pixels).
        device: where batches go.
        scheduler: optional LR scheduler stepped once per epoch.
        batch_scheduler: optional LR scheduler stepped after every optimizer step (warm-up, decay).
        max_grad_norm: clip the gradients' joint L2 norm to this before each step (None: no clipping).
        masks: also report mask mAP (the detections must carry ``masks``).
        progress: a tqdm bar per epoch.
        forward: optional ``h(model, x, targets) -> model_output`` for models whose call needs the
            targets (two-stage detectors in training mode; ``targets`` is None in evaluation);
            default ``model(x)``.
    """

    def __init__(self, model, optimizer, loss_fn, decode, device="cpu", scheduler=None, masks=False, progress=True,
                 forward=None, batch_scheduler=None, max_grad_norm=None):
        self.model, self.optimizer, self.loss_fn, self.decode = model, optimizer, loss_fn, decode
        self.device, self.scheduler, self.masks, self.progress = device, scheduler, masks, progress
        self.batch_scheduler, self.max_grad_norm = batch_scheduler, max_grad_norm
        self.forward = forward or (lambda model, x, targets: model(x))
        self.history = []

    def train_epoch(self, loader, epoch=0):
        """One pass over ``loader`` (batches ``(images, [targets])``); mean loss, seconds, images/s.

        Raises FloatingPointError, before the update, at the first batch whose loss is not finite.
        """
        self.model.train()
        total, seen = 0.0, 0
        t0 = time.perf_counter()
        bar = _progress(loader, len(loader), f"epoch {epoch}", self.progress)
        for x, targets in bar:
            xt = Tensor(np.asarray(x, dtype=np.float32), device=self.device)
            loss = total_loss(self.loss_fn(self.forward(self.model, xt, targets), targets))
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"DetectionTrainer: loss is {value} at epoch {epoch} after {seen} images")
            self.optimizer.zero_grad()
            loss.backward()
            if self.max_grad_norm is not None:
                clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
            self.optimizer.step()
            if self.batch_scheduler is not None:
                self.batch_scheduler.step()
            total += value * len(x)
            seen += len(x)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{total / seen:.4f}")
        seconds = time.perf_counter() - t0
        return {"loss": total / max(seen, 1), "seconds": seconds, "images_per_s": seen / max(seconds, 1e-9)}

    def predict(self, images, batch_size=32):
        """Detections of ``images`` ``(N, C, H, W)`` in eval mode, one dict per image."""
        self.model.eval()
        out = []
        with no_grad():
            for i in range(0, len(images), batch_size):
                x = Tensor(np.asarray(images[i:i + batch_size], dtype=np.float32), device=self.device)
                out.extend(self.decode(self.forward(self.model, x, None)))
        return out

    def evaluate(self, dataset, batch_size=32):
        """:func:`~minicnn.detection_metrics.detection_scores` on a :class:`~minicnn.data.detection.DetectionSet`."""
        dets = self.predict(dataset.images, batch_size)
        return detection_scores(dets, dataset.targets, masks=self.masks)

    def fit(self, train_loader, test_set, epochs, log=print, on_epoch=None):
        """Train ``epochs`` epochs, evaluating ``test_set`` after each; returns the history (list of dicts).

        ``on_epoch(trainer, epoch, row)``, if given, runs after each epoch's evaluation (checkpoints,
        pictures)."""
        for epoch in range(1, epochs + 1):
            row = {"epoch": epoch, **self.train_epoch(train_loader, epoch)}
            if self.scheduler is not None:
                self.scheduler.step()
            t0 = time.perf_counter()
            row.update(self.evaluate(test_set))
            row["eval_seconds"] = time.perf_counter() - t0
            self.history.append(row)
            if log is not None:
                log(f"epoch {epoch}: loss {row['loss']:.4f}  mAP@0.5 {row['map50']:.4f}  "
                    f"COCO mAP {row['coco_map']:.4f}  ({row['seconds']:.0f} s, {row['images_per_s']:.1f} img/s)")
            if on_epoch is not None:
                on_epoch(self, epoch, row)
        return self.history


class _GlobalPoolClassifier(nn.Module):
    """``backbone → global average pool → linear``: ``(N, C, H, W) -> (N, num_classes)``."""

    def __init__(self, backbone, num_classes):
        super().__init__()
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(backbone.out_channels, num_classes)

    def forward(self, x):
        y = self.pool(self.backbone(x))
        return self.fc(y.reshape(y.shape[0], y.shape[1]))


def pretrain_backbone(backbone, images, labels, num_classes, epochs=2, batch_size=64, lr=2e-3, device="cpu",
                      seed=0, progress=False, log=print):
    """Pre-train a convolutional backbone on classification (YOLO's ImageNet stage, here on small images).

    The backbone (an ``nn.Module`` with ``out_channels``) gets a temporary head, global average
    pooling then a linear layer to ``num_classes`` logits, and ``backbone + head`` are trained
    with cross-entropy: Adam at ``lr`` with a cosine decay over all steps, shuffled batches.
    The backbone keeps the trained weights (the head is dropped). Images ``(N, C, H, W)`` may
    be smaller than the detector's (the pooled head accepts any size); labels ``(N,)`` in
    ``0..num_classes-1``.

    Returns:
        the training accuracy of each epoch (list of floats).
    """
    from . import functional as F
    from .optim import Adam
    from .optim.lr_scheduler import CosineAnnealingLR

    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"pretrain_backbone: images must be (N, C, H, W) with N labels, got {images.shape} and "
                         f"{labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"pretrain_backbone: labels must lie in 0..{num_classes - 1}, "
                         f"got {labels.min()}..{labels.max()}")
    model = _GlobalPoolClassifier(backbone, int(num_classes)).to(device)
    model.train()
    steps = epochs * -(-len(images) // batch_size)
    opt = Adam(model.parameters(), lr=lr)
    sched = CosineAnnealingLR(opt, T_max=max(steps, 1))
    rng = np.random.default_rng(seed)
    accuracies = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(images))
        correct = 0
        bar = _progress(range(0, len(images), batch_size), -(-len(images) // batch_size), f"pretrain {epoch}",
                        progress)
        for i in bar:
            idx = order[i:i + batch_size]
            logits = model(Tensor(images[idx], device=device))
            loss = F.cross_entropy(logits, Tensor(labels[idx], device=device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            correct += int((logits.numpy().argmax(1) == labels[idx]).sum())
        accuracies.append(correct / len(images))
        if log is not None:
            log(f"pretrain epoch {epoch}: train accuracy {accuracies[-1]:.4f}")
    return accuracies
