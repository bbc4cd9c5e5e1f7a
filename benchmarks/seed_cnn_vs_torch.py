"""The seed network trained by minicnn and by PyTorch on the same data, in one run.

    python benchmarks/seed_cnn_vs_torch.py --epochs 10            # full Fashion-MNIST, both libraries
    python benchmarks/seed_cnn_vs_torch.py --epochs 1 --limit 5000  # a quick look

Same network (conv 32-64-64 3×3, dense 64; 28×28×1), same initial weights (PyTorch's init,
copied into ours), same batches in the same order (one minicnn DataLoader feeds both), same
optimizer (Adam, lr 1e-3, cosine schedule), same threads (all cores). Reports test accuracy
and seconds per epoch for each, and the ratio. Writes benchmarks/results/seed_cnn_vs_torch.json.
"""
import argparse
import json
import os
import time

import numpy as np


def torch_seed_cnn(torch):
    tn = torch.nn
    return tn.Sequential(
        tn.Sequential(tn.Conv2d(1, 32, 3), tn.ReLU(), tn.MaxPool2d(2), tn.Conv2d(32, 64, 3), tn.ReLU(), tn.MaxPool2d(2),
                      tn.Conv2d(64, 64, 3), tn.ReLU()),
        tn.Sequential(tn.Flatten(), tn.Linear(576, 64), tn.ReLU(), tn.Linear(64, 10)),
    )


def to_ours_names(sd):
    """PyTorch's ``0.k``/``1.k`` Sequential names → our ``features.k``/``classifier.k``."""
    out = {}
    for k, v in sd.items():
        head, rest = k.split(".", 1)
        out[("features." if head == "0" else "classifier.") + rest] = v.detach().numpy().copy()
    return out


def fit(model, opt, sched, loss_of, accuracy, train_loader, epochs, label, log):
    """The loop both libraries run: per epoch one timed pass over ``train_loader`` (``loss_of(x, y)``,
    then zero_grad, backward, step), a scheduler step, and ``accuracy()`` on the test set in eval mode."""
    secs = []
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for x, y in train_loader:
            loss = loss_of(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        secs.append(time.perf_counter() - t0)
        sched.step()
        model.eval()
        acc = accuracy()
        log(f"  {label:<7} epoch {epoch + 1}: test accuracy {100 * acc:.2f}%  {secs[-1]:.1f} s")
    return acc, secs


def train_torch(torch, model, train_loader, test_set, epochs, lr, log):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)

    def loss_of(x, y):
        return torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))

    def accuracy():
        with torch.no_grad():
            pred = model(torch.from_numpy(test_set.images)).argmax(1).numpy()
        return float((pred == test_set.labels).mean())

    return fit(model, opt, sched, loss_of, accuracy, train_loader, epochs, "torch", log)


def train_ours(model, train_loader, test_set, epochs, lr, log):
    import minicnn as mc
    import minicnn.functional as F
    from minicnn import optim

    opt = optim.Adam(model.parameters(), lr=lr)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)

    def loss_of(x, y):
        return F.cross_entropy(model(mc.Tensor(x)), mc.Tensor(y))

    def accuracy():
        with mc.no_grad():
            logits = np.concatenate([model(mc.Tensor(test_set.images[i:i + 1000])).numpy()
                                     for i in range(0, len(test_set), 1000)])
        return float((logits.argmax(1) == test_set.labels).mean())

    return fit(model, opt, sched, loss_of, accuracy, train_loader, epochs, "minicnn", log)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--limit", type=int, default=None, help="first N training images only")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # one wait policy for both OpenMP pools (see run.py)
    import torch

    from minicnn import data, models

    torch.set_num_threads(os.cpu_count() or 1)
    train_set, test_set = data.load_fashion_mnist("train"), data.load_fashion_mnist("test")
    if a.limit:
        train_set = data.Subset(train_set, np.arange(a.limit))
    torch.manual_seed(a.seed)
    theirs = torch_seed_cnn(torch)
    ours = models.seed_cnn(in_channels=1, image_size=28)
    ours.load_state_dict(to_ours_names(theirs.state_dict()))  # identical starting weights
    results = {}
    for name in ("minicnn", "torch"):
        loader = data.DataLoader(train_set, a.batch_size, shuffle=True, seed=a.seed)  # identical batches
        print(f"{name}: {a.epochs} epochs on {len(train_set):,} Fashion-MNIST images")
        if name == "torch":
            acc, secs = train_torch(torch, theirs, loader, test_set, a.epochs, a.lr, print)
        else:
            acc, secs = train_ours(ours, loader, test_set, a.epochs, a.lr, print)
        results[name] = dict(test_accuracy=acc, seconds_per_epoch=float(np.median(secs)), seconds=secs)
    ratio = results["minicnn"]["seconds_per_epoch"] / results["torch"]["seconds_per_epoch"]
    gap = 100 * (results["minicnn"]["test_accuracy"] - results["torch"]["test_accuracy"])
    summary = dict(epochs=a.epochs, train_images=len(train_set), batch_size=a.batch_size, lr=a.lr,
                   torch_version=torch.__version__, cores=os.cpu_count(), results=results,
                   seconds_per_epoch_ratio_ours_over_torch=ratio, accuracy_gap_points=gap)
    print(f"\n| library | test accuracy | s/epoch (median) |\n|---|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {100 * r['test_accuracy']:.2f}% | {r['seconds_per_epoch']:.1f} |")
    print(f"\nminicnn − torch accuracy: {gap:+.2f} points; minicnn s/epoch = {ratio:.2f} × torch's")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "seed_cnn_vs_torch.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


if __name__ == "__main__":
    main()
