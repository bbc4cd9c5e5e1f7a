"""DeepLab v3+ on digit canvases: atrous (dilated) convolutions, spatial pyramid pooling, a decoder.

DeepLab v3 (Chen et al., 2017) keeps the feature map large: the last ResNet stage trades its
stride for dilation (a 3×3 filter with taps ``d`` pixels apart sees a ``2d + 1`` window at the
same cost). Atrous spatial pyramid pooling (ASPP) then looks at each position at several rates at
once (1×1, three 3×3 at growing rates, and the image's mean) and fuses them. v3+ (Chen et al.,
2018) adds a decoder: ASPP's output, upsampled, is concatenated with early (layer1) features and
refined by two 3×3 convolutions, which brings back thin structures a strided map loses. Here a
small configuration of the same code (ResNet-50 layout at width 8, one bottleneck per stage,
ResNet's stride-1 stem for small images, ASPP rates 2/4/6 on the 16×16 map) on 64×64 canvases of
1-3 real MNIST digits. ``python -m minicnn train --task segmentation --model deeplabv3_resnet50
--dataset digits`` trains plain DeepLab v3 (output stride 8, no decoder) for comparison.

    python examples/10_deeplabv3_digit_canvases.py [--epochs 12]

Writes runs/10_deeplabv3_digits/: atrous.png (where a 3×3 filter samples at rates 1, 2, 6, 12),
predictions.png, class_iou.png, learning_curves.png.
"""
import os

import numpy as np

from minicnn import viz
from minicnn.cli_segmentation import run_example

OUT = os.path.join("runs", "10_deeplabv3_digits")


def plot_atrous(path, rates=(1, 2, 6, 12), size=29):
    """The 9 taps of a 3×3 convolution at each dilation rate, on a ``size × size`` grid."""
    plt = viz._plt()
    fig, axes = plt.subplots(1, len(rates), figsize=(3.2 * len(rates), 3.4))
    c = size // 2
    for ax, r in zip(axes, rates):
        grid = np.zeros((size, size))
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if 0 <= c + r * dy < size and 0 <= c + r * dx < size:
                    grid[c + r * dy, c + r * dx] = 1
        ax.imshow(grid, cmap="Blues", vmin=0, vmax=1.2)
        ax.set_title(f"rate {r}: sees {2 * r + 1}×{2 * r + 1}", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("atrous 3×3 convolution: 9 weights, a wider window")
    fig.tight_layout()
    return viz._save(fig, path)


def main():
    summary, _ = run_example(__doc__.split("\n\n")[0], "deeplabv3plus_resnet50", "digits", epochs=12, out=OUT)
    plot_atrous(os.path.join(OUT, "atrous.png"))
    print(f"held-out canvases: mean IoU {summary['test_mean_iou']:.4f} over {summary['classes']} classes; "
          f"pictures in {OUT}/")


if __name__ == "__main__":
    main()
