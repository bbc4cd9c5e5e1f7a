"""The seed's CIFAR-style network (conv 32-64-64 3×3, dense 64) on Fashion-MNIST (70,000 images).

Adapted to 28×28×1: valid convolutions 28 → 26 → 13 → 11 → 5 → 3, dense on 3·3·64 features.
Data: Debian's dataset-fashion-mnist package (``sudo apt-get install dataset-fashion-mnist``).

    python examples/02_seed_cnn_fashion_mnist.py --epochs 10

Writes learning curves, a confusion matrix and sample predictions to runs/seed-fashion-mnist/.
The same network and hyperparameters in PyTorch: ``python benchmarks/seed_cnn_vs_torch.py``.
"""
import argparse
import os

import numpy as np

from minicnn.__main__ import build_parser, positive_int, train
from minicnn import data, viz


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N training images")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"))
    a = p.parse_args()
    args = build_parser().parse_args(["--model", "seed", "--dataset", "fashion-mnist", "--epochs", str(a.epochs),
                                      "--batch-size", "64", "--lr", "1e-3", "--schedule", "cosine",
                                      "--device", a.device, "--no-augment", "--no-progress"]
                                     + (["--limit", str(a.limit)] if a.limit is not None else []))
    # sample images first, into the run folder, so that train()'s last line (the result and
    # where the pictures are) is the last line printed
    test = data.load_fashion_mnist("test", normalize=False)
    x = test.images[:16] if hasattr(test, "images") else np.stack([test[i][0] for i in range(16)])
    viz.plot_images(x, os.path.join("runs", "seed-fashion-mnist", "samples.png"),
                    labels=[data.FASHION_MNIST_CLASSES[int(test[i][1])][:7] for i in range(16)],
                    title="Fashion-MNIST test images")
    return train(args)


if __name__ == "__main__":
    main()
