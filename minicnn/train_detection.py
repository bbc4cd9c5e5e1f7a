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
        masks: also report mask mAP (the detections must carry ``masks``).
        progress: a tqdm bar per epoch.
        forward: optional ``h(model, x, targets) -> model_output`` for models whose call needs the
            targets (two-stage detectors in training mode); default ``model(x)``.
    """

    def __init__(self, model, optimizer, loss_fn, decode, device="cpu", scheduler=None, masks=False, progress=True,
                 forward=None):
        self.model, self.optimizer, self.loss_fn, self.decode = model, optimizer, loss_fn, decode
        self.device, self.scheduler, self.masks, self.progress = device, scheduler, masks, progress
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
            self.optimizer.step()
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
                out.extend(self.decode(self.model(x)))
        return out

    def evaluate(self, dataset, batch_size=32):
        """:func:`~minicnn.detection_metrics.detection_scores` on a :class:`~minicnn.data.detection.DetectionSet`."""
        dets = self.predict(dataset.images, batch_size)
        return detection_scores(dets, dataset.targets, masks=self.masks)

    def fit(self, train_loader, test_set, epochs, log=print):
        """Train ``epochs`` epochs, evaluating ``test_set`` after each; returns the history (list of dicts)."""
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
        return self.history
