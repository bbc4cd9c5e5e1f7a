"""FCN-8s on digit canvases: a classifier turned fully convolutional, upsampled with skips.

Long, Shelhamer & Darrell (2015) turn VGG-16 into a segmenter: its fully connected layers become
convolutions (fc6 a 7×7 conv, fc7 a 1×1 conv), a 1×1 ``score_fr`` gives class scores on a map 32×
smaller than the image, and transposed convolutions initialised to bilinear interpolation
upsample them. The coarse map alone (FCN-32s) blurs the edges; FCN-8s adds scores from pool4
(stride 16) and pool3 (stride 8), so finer layers sharpen the result. Here a small configuration
of the same code (width 16, fc layers of 128) on 64×64 canvases of 1-3 real MNIST digits.

    python examples/07_fcn8s_digit_canvases.py [--epochs 20]

Writes runs/07_fcn8s_digits/: skips.png (the stride-32 scores upsampled alone vs FCN-8s's output),
predictions.png, class_iou.png, learning_curves.png.
"""
import os

import minicnn as mc
import minicnn.functional as F
from minicnn import viz
from minicnn.autograd import no_grad
from minicnn.cli_segmentation import run_example

OUT = os.path.join("runs", "07_fcn8s_digits")


def coarse_scores(model, x):
    """``score_fr``: class scores at stride 32 (VGG features, fc6, fc7 as convolutions)."""
    h = x
    for layer in model.features:
        h = layer(h)
    h = model.drop6(model.relu6(model.fc6(h)))
    h = model.drop7(model.relu7(model.fc7(h)))
    return model.score_fr(h)


def plot_skips(model, images, truth, num_classes, path, n=4):
    """Per image: truth, the stride-32 scores upsampled bilinearly (no skips), FCN-8s's output."""
    plt = viz._plt()
    model.eval()
    with no_grad():
        x = mc.Tensor(images[:n])
        coarse = F.interpolate(coarse_scores(model, x), size=tuple(x.shape[-2:]), mode="bilinear",
                               align_corners=False).numpy().argmax(1)
        fine = model(x).numpy().argmax(1)
    fig, axes = plt.subplots(n, 3, figsize=(8, 2.7 * n), squeeze=False)
    for i in range(n):
        for ax, labels, name in zip(axes[i], (truth[i], coarse[i], fine[i]),
                                    ("truth", "score_fr upsampled ×32 (no skips)", "FCN-8s (pool4 + pool3 skips)")):
            ax.imshow(viz.overlay_labels(images[i], labels, num_classes), interpolation="nearest")
            ax.set_title(name, fontsize=9), ax.axis("off")
    fig.tight_layout()
    return viz._save(fig, path)


def main():
    summary, keep = run_example(__doc__.split("\n\n")[0], "fcn8s", "digits", epochs=20, out=OUT)
    images, truth, _ = keep["test"]
    plot_skips(keep["model"].to("cpu"), images, truth, summary["classes"], os.path.join(OUT, "skips.png"))
    print(f"held-out canvases: mean IoU {summary['test_mean_iou']:.4f} over {summary['classes']} classes; "
          f"pictures in {OUT}/")


if __name__ == "__main__":
    main()
