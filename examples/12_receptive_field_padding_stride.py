"""Receptive fields, padding and stride: which input pixels an output pixel sees, and how big a map is.

1. receptive_field.png: LeNet-5 on a real digit. For the centre unit of each convolution and
   pooling layer, the window of input pixels it depends on, from ``minicnn.summary``'s receptive
   field (size r, jump j, start s per axis: output pixel o sees input pixels
   ``s + o·j ± (r − 1)/2``; through a layer of kernel k, dilation d, stride σ, padding p:
   ``r ← r + (d(k − 1))·j``, ``s ← s + ((d(k − 1))/2 − p)·j``, ``j ← j·σ``), drawn over
   ``|∂y/∂x|``, the gradient of that unit with respect to the image computed by autograd: the
   gradient is zero outside the window and the window is where it lives.
2. padding_stride.png: a 3×3 convolution over a 7×7 input with different padding, stride and
   dilation; the output size is ``⌊(H + 2p − d(k − 1) − 1)/σ⌋ + 1``, checked against ``F.conv2d``,
   and the window that output pixel (1, 1) reads is drawn on the (padded) input.

    python examples/12_receptive_field_padding_stride.py [--out runs/12_receptive_field]
"""
import argparse
import os

import numpy as np

import minicnn as mc
import minicnn.functional as F
from minicnn import data, models, viz

OUT = os.path.join("runs", "12_receptive_field")
CASES = [dict(padding=0, stride=1, dilation=1), dict(padding=1, stride=1, dilation=1),
         dict(padding=1, stride=2, dilation=1), dict(padding=0, stride=1, dilation=2)]


def unit_window(rf, o):
    """Input rows (or columns) ``[lo, hi]`` seen by output index ``o``, from ``(size, jump, start)``."""
    size, jump, start = rf
    centre = start + o * jump
    return centre - (size - 1) / 2, centre + (size - 1) / 2


def plot_receptive_fields(model, image, path):
    """Per conv/pool layer of LeNet-5's ``features``: the centre unit's window over its gradient."""
    plt = viz._plt()
    rows = [r for r in mc.summary(model, image.shape).rows
            if r["name"].startswith("features.") and r["type"] in ("Conv2d", "AvgPool2d", "MaxPool2d")]
    layers = dict(model.features.named_children())
    fig, axes = plt.subplots(1, len(rows), figsize=(3.3 * len(rows), 3.6))
    for ax, row in zip(axes, rows):
        oh = row["output_shape"][2]
        o = oh // 2
        x = mc.Tensor(image[None], requires_grad=True)
        h = x
        for name, layer in layers.items():                      # run features up to this layer
            h = layer(h)
            if f"features.{name}" == row["name"]:
                break
        h[0, 0, o, o].backward()
        g = np.abs(x.grad.numpy()[0, 0])
        lo, hi = unit_window(row["receptive_field"][0], o)
        rows_hit = np.flatnonzero(g.any(1))                     # the gradient lives inside the window
        assert lo <= rows_hit.min() and rows_hit.max() <= hi, (row["name"], lo, hi, rows_hit)
        ax.imshow(image[0], cmap="gray")
        ax.imshow(np.ma.masked_where(g == 0, g), cmap="autumn", alpha=0.6)
        ax.add_patch(plt.Rectangle((lo - 0.5, lo - 0.5), hi - lo + 1, hi - lo + 1, fill=False, color="cyan", lw=1.5))
        size, jump, start = row["receptive_field"][0]
        ax.set_title(f"{row['name']} ({row['type']}), unit ({o}, {o})\nr = {size}, j = {jump}, start = {start}",
                     fontsize=8)
        ax.axis("off")
    fig.suptitle("receptive field of the centre unit (cyan) over |∂y/∂x| (orange): LeNet-5")
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return viz._save(fig, path)


def output_size(n, k, padding, stride, dilation):
    return (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def plot_padding_stride(path, n=7, k=3):
    """The 7×7 input (padding in grey), the taps output pixel (1, 1) reads, and the output size."""
    plt = viz._plt()
    fig, axes = plt.subplots(1, len(CASES), figsize=(3.4 * len(CASES), 3.8))
    for ax, case in zip(axes, CASES):
        p, s, d = case["padding"], case["stride"], case["dilation"]
        out = F.conv2d(mc.Tensor(np.zeros((1, 1, n, n), np.float32)), mc.Tensor(np.zeros((1, 1, k, k), np.float32)),
                       None, s, p, d).shape[2]
        assert out == output_size(n, k, p, s, d), (case, out)
        m = n + 2 * p
        grid = np.full((m, m), 0.85)
        grid[p:p + n, p:p + n] = 1.0
        for u in range(k):
            for v in range(k):
                grid[1 * s + u * d, 1 * s + v * d] = 0.35      # padded coordinates of output (1, 1)'s taps
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks(np.arange(-0.5, m), minor=True), ax.set_yticks(np.arange(-0.5, m), minor=True)
        ax.grid(which="minor", color="0.6", lw=0.5), ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"k={k}, p={p}, s={s}, d={d}\noutput {out}×{out}", fontsize=9)
    fig.suptitle(f"a 3×3 convolution over a {n}×{n} input (grey ring: padding; dark: output (1, 1)'s taps)")
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    return viz._save(fig, path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=OUT, help="output folder")
    a = p.parse_args()
    mc.manual_seed(0)
    model = models.lenet5().eval()   # untrained weights: the windows depend only on the layout
    images, _ = data.digits_arrays("test")
    image = (images[0][None] / 255.0).astype(np.float32)
    plot_receptive_fields(model, image, os.path.join(a.out, "receptive_field.png"))
    plot_padding_stride(os.path.join(a.out, "padding_stride.png"))
    sizes = ", ".join(f"p={c['padding']} s={c['stride']} d={c['dilation']}: "
                      f"{output_size(7, 3, c['padding'], c['stride'], c['dilation'])}" for c in CASES)
    print(f"3×3 convolution of a 7×7 input, output sizes {sizes}; pictures (receptive_field.png, "
          f"padding_stride.png) in {a.out}/")


if __name__ == "__main__":
    main()
