"""1-D CNNs on real time series: FCN-1D / ResNet-1D / InceptionTime-1D (Wang et al. 2017) on a UCR set.

GunPoint (UCR archive, embedded with its published 50 / 150 split): the x-position of an actor's
hand drawing a gun or pointing, 150 samples. FCN-1D: three Conv1d-BN-ReLU blocks (128, 256, 128
channels; kernels 8, 5, 3), global average pooling over time, a linear layer.

    python examples/06_time_series_fcn1d.py [--epochs 150] [--model resnet1d] [--dataset osuleaf]

Writes runs/<model>-<dataset>/: example signals per class, class activation maps over time
(which part of the series decided the class), learning curves, confusion matrix, checkpoint.
"""
import argparse
import os

from minicnn.__main__ import SIGNAL_DATASETS, SIGNAL_MODELS, build_parser, positive_int, train


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=positive_int, help="default: the dataset's recipe (GunPoint: 150)")
    p.add_argument("--model", default="fcn1d", choices=SIGNAL_MODELS)
    p.add_argument("--dataset", default="gunpoint", choices=SIGNAL_DATASETS)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"))
    a = p.parse_args()
    argv = ["--task", "signals", "--model", a.model, "--dataset", a.dataset, "--device", a.device, "--no-progress"]
    if a.epochs is not None:
        argv += ["--epochs", str(a.epochs)]
    summary = train(build_parser("signals").parse_args(argv), log=lambda line: None)
    out = os.path.join("runs", f"{a.model}-{a.dataset}")
    pictures = ", ".join(os.path.join(out, n) for n in ("signals_per_class.png", "cam.png", "learning_curves.png"))
    print(f"{a.model} on {a.dataset}: {summary['epochs']} epochs in {summary['seconds']:.0f} s, "
          f"test accuracy {100 * summary['test_accuracy']:.2f}%; pictures: {pictures}")
    return summary


if __name__ == "__main__":
    main()
