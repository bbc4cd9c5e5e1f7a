"""A training loop: epochs of mini-batch gradient descent, each followed by held-out metrics.

One step: ``loss = L(model(x), y)``; ``loss.backward()`` fills every parameter's ``grad``;
``optimizer.step()`` updates the parameters; ``optimizer.zero_grad()`` clears the grads.
"""
import json
import math
import os
import time

import numpy as np

from . import functional as F
from . import metrics
from .autograd import no_grad
from .tensor import Tensor


def _progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


class Trainer:
    """Train and evaluate a classifier.

    Args:
        model: an ``nn.Module`` mapping (N, C, H, W) to logits (N, classes).
        optimizer: an optimizer from :mod:`minicnn.optim`.
        loss_fn: ``f(logits, labels) -> scalar Tensor`` (default cross-entropy).
        device: where the batches go (``cpu``, ``cuda-emu``, ``cuda``); move the model there first.
        scheduler: optional LR scheduler stepped once per epoch.
        num_classes: for the confusion matrix and per-class metrics.
        progress: show a tqdm bar per epoch with loss and throughput.
    """

    def __init__(self, model, optimizer, loss_fn=None, device="cpu", scheduler=None, num_classes=10, progress=True):
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn or F.cross_entropy
        self.device = device
        self.scheduler = scheduler
        self.num_classes = num_classes
        self.progress = progress
        self.history = []

    def train_epoch(self, loader, epoch=0):
        """One pass over ``loader``; returns mean loss, accuracy, seconds and images/s.

        Raises FloatingPointError, before the update, at the first batch whose loss is not finite
        (the weights diverged or the data holds NaN/inf), instead of training on NaNs.
        """
        self.model.train()
        total_loss, correct, seen = 0.0, 0, 0
        t0 = time.perf_counter()
        bar = _progress(loader, len(loader), f"epoch {epoch}", self.progress)
        for batch, (x, y) in enumerate(bar, 1):
            xt, yt = Tensor(x, device=self.device), Tensor(y, device=self.device)
            logits = self.model(xt)
            loss = self.loss_fn(logits, yt)
            value = float(loss.item())
            if not math.isfinite(value):
                raise FloatingPointError(f"Trainer: the training loss is {value} at epoch {epoch}, batch {batch}: "
                                         "the weights diverged (try a lower learning rate) or the data holds NaN/inf")
            self.optimizer.zero_grad()
            loss.backward()
            self._after_backward()
            self.optimizer.step()
            n = len(y)
            total_loss += value * n
            correct += int((logits.numpy().argmax(1) == y).sum())
            seen += n
            if bar is not loader:
                rate = seen / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}", img_s=f"{rate:.0f}")
        total_loss, correct, seen = self._epoch_totals(total_loss, correct, seen)
        if seen == 0:
            raise ValueError("Trainer.train_epoch: the training loader yielded no batches")
        seconds = time.perf_counter() - t0
        if self.scheduler is not None:
            self.scheduler.step()
        return dict(train_loss=total_loss / seen, train_acc=correct / seen, seconds=seconds,
                    images_per_s=seen / seconds)

    def _after_backward(self):
        """Between ``loss.backward()`` and ``optimizer.step()``: nothing here (see DistributedTrainer)."""

    def _epoch_totals(self, total_loss, correct, seen):
        """The epoch's loss sum, correct count and samples seen, as logged (this process's here)."""
        return total_loss, correct, seen

    def predict(self, loader):
        """Logits for every batch of ``loader`` (eval mode, no graph) and the labels."""
        self.model.eval()
        logits, labels = [], []
        with no_grad():
            for x, y in loader:
                logits.append(self.model(Tensor(x, device=self.device)).numpy())
                labels.append(y)
        return np.concatenate(logits), np.concatenate(labels)

    def evaluate(self, loader, split="test"):
        """Loss, accuracy, macro precision/recall/F1 on ``loader`` as ``{split}_loss``,
        ``{split}_acc``, ``{split}_precision``, ``{split}_recall``, ``{split}_f1``, and the
        confusion matrix (``confusion``: counts of (true, predicted) class)."""
        logits, labels = self.predict(loader)
        with no_grad():
            loss = float(self.loss_fn(Tensor(logits), Tensor(labels)).item())
        pred = logits.argmax(1)
        p, r, f1 = metrics.precision_recall_f1(pred, labels, self.num_classes)
        row = {"loss": loss, "acc": metrics.accuracy(pred, labels), "precision": p, "recall": r, "f1": f1}
        out = {f"{split}_{k}": v for k, v in row.items()}
        out["confusion"] = metrics.confusion_matrix(pred, labels, self.num_classes)
        return out

    def fit(self, train_loader, test_loader, epochs, out_dir=None, log=print, split="test", eval_every=1):
        """Train for ``epochs`` (>= 1); after each, evaluate on ``test_loader``, log a line and,
        with ``out_dir``, save ``checkpoint.npz`` and ``history.json`` there.

        Returns the history: one dict per epoch with ``epoch``, ``lr``, ``train_loss``,
        ``train_acc``, ``seconds``, ``images_per_s`` and :meth:`evaluate`'s ``{split}_*``
        metrics. ``split`` names the held-out set in the keys and the log lines: ``"test"``
        (the default: the command line and the examples hold out the test split), or ``"val"``
        for a validation set (``val_*`` keys, as this loop wrote before it took ``split``).
        ``eval_every=k`` evaluates only after every k-th epoch and the last (rows in between have
        no ``{split}_*`` keys): small training sets with large test sets (UCR) spend most of the
        time evaluating otherwise.
        """
        if isinstance(eval_every, bool) or not isinstance(eval_every, (int, np.integer)) or eval_every < 1:
            raise ValueError(f"Trainer.fit: eval_every must be an integer >= 1, got {eval_every!r}")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)):
            raise TypeError(f"Trainer.fit: epochs must be an integer, got {type(epochs).__name__}")
        if epochs < 1:
            raise ValueError(f"Trainer.fit: epochs must be >= 1, got {epochs}")
        for epoch in range(1, epochs + 1):
            row = dict(epoch=epoch, lr=self.optimizer.param_groups[0]["lr"])
            row.update(self.train_epoch(train_loader, epoch))
            if epoch % eval_every and epoch != epochs:
                self.history.append(row)
                continue
            ev = self.evaluate(test_loader, split)
            self.last_confusion = ev.pop("confusion")
            row.update(ev)
            self.history.append(row)
            log(f"epoch {epoch:2d}  loss {row['train_loss']:.4f}  train acc {100 * row['train_acc']:.2f}%  "
                f"{split} loss {row[split + '_loss']:.4f}  {split} acc {100 * row[split + '_acc']:.2f}%  "
                f"macro F1 {row[split + '_f1']:.4f}  {row['seconds']:.1f}s ({row['images_per_s']:.0f} img/s)")
            if out_dir:
                save_checkpoint(self.model, os.path.join(out_dir, "checkpoint.npz"))
                with open(os.path.join(out_dir, "history.json"), "w") as f:
                    json.dump(self.history, f, indent=1)
        return self.history


def save_checkpoint(model, path):
    """Write ``model.state_dict()`` to ``path`` as ``.npz`` (names as keys)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    arrays = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in model.state_dict().items()}
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


class DistributedTrainer(Trainer):
    """:class:`Trainer` for data-parallel training over the ranks of :mod:`minicnn.distributed`.

    ``model`` is a :class:`~minicnn.distributed.DistributedDataParallel`; the training loader's
    ``sampler`` a :class:`~minicnn.distributed.DistributedSampler` (its epoch is set before each
    epoch, so the shards are reshuffled). Differences from :class:`Trainer`:

    - gradients are averaged over the ranks after every backward (``model.sync_gradients()``);
    - the epoch's loss sum, correct count and samples seen are summed over the ranks, so
      ``train_loss``/``train_acc`` are those of all the samples of the epoch, on every rank;
    - evaluation is sharded: each rank predicts a contiguous 1/K of the held-out set, the logits
      are gathered in order, and every rank computes the metrics of the whole set.

    Pass ``log`` and ``out_dir`` to :meth:`fit` on rank 0 only (the command line does).
    """

    def _after_backward(self):
        self.model.sync_gradients()

    def _epoch_totals(self, total_loss, correct, seen):
        from .distributed import reduce_sums

        total_loss, correct, seen = reduce_sums(total_loss, correct, seen)
        return float(total_loss), int(correct), int(seen)

    def train_epoch(self, loader, epoch=0):
        sampler = getattr(loader, "sampler", None)
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        return super().train_epoch(loader, epoch)

    def predict(self, loader):
        from .data import DataLoader, Subset
        from .distributed import allgather_object, rank, world_size

        shards = np.array_split(np.arange(len(loader.dataset)), world_size())
        mine = DataLoader(Subset(loader.dataset, shards[rank()]), loader.batch_size)
        logits, labels = super().predict(mine) if len(mine) else (None, None)
        parts = [p for p in allgather_object((logits, labels)) if p[0] is not None]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
