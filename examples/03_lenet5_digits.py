"""LeNet-5 (LeCun et al., 1998) on the embedded real MNIST digits.

61,706 parameters: conv 6@5×5 (pad 2) → tanh → avgpool → conv 16@5×5 → tanh → avgpool → 120 → 84 → 10.

    python examples/03_lenet5_digits.py [--epochs 10]

Writes runs/lenet5-digits/ (learning curves, confusion matrix, checkpoint, summary.json).
"""
import argparse

from minicnn.__main__ import build_parser, positive_int, train


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"))
    a = p.parse_args()
    args = build_parser().parse_args(["--model", "lenet5", "--dataset", "digits", "--epochs", str(a.epochs),
                                      "--lr", "2e-3", "--device", a.device, "--augment", "--no-progress"])
    return train(args)


if __name__ == "__main__":
    main()
