"""SegNet on digit canvases: every pixel gets a class, background or one of the ten digits.

SegNet (Badrinarayanan et al., 2017) upsamples without learning to: each encoder stage ends in
a 2×2 max pool that remembers *where* each maximum came from, and the mirrored decoder stage puts
each value back at exactly that position (``max_unpool2d``), zeros elsewhere; its convolutions
then fill the sparse map in. Here a small configuration of the same code (VGG-16 layout at
width 16) on 64×64 canvases of 1-3 real MNIST digits; test canvases use held-out digits.

    python examples/09_segnet_digit_canvases.py [--epochs 20]

Writes runs/09_segnet_digits/: unpooling.png (a feature map, its pooled map, the unpooled sparse
map), predictions.png, class_iou.png, learning_curves.png.
"""
import os

import minicnn as mc
from minicnn import viz
from minicnn.autograd import no_grad
from minicnn.cli_segmentation import run_example

OUT = os.path.join("runs", "09_segnet_digits")


def plot_unpooling(model, image, path):
    """The first encoder stage's strongest feature map for ``image``, the map after the 2×2 max pool,
    and after max-unpooling with the pool's indices: each maximum back at its own position."""
    plt = viz._plt()
    model.eval()
    with no_grad():
        x = model.encoder[0](mc.Tensor(image[None]))
        pooled, idx = model.pool(x)
        unpooled = model.unpool(pooled, idx, output_size=tuple(x.shape[-2:]))
    c = int(x.numpy()[0].reshape(x.shape[1], -1).max(1).argmax())
    maps = [(image[0], "input"), (x.numpy()[0, c], f"encoder[0] channel {c}"),
            (pooled.numpy()[0, c], "2×2 max pool (indices kept)"), (unpooled.numpy()[0, c], "max-unpool: sparse")]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for ax, (m, name) in zip(axes, maps):
        ax.imshow(m, cmap="gray" if name == "input" else "magma", interpolation="nearest")
        ax.set_title(name, fontsize=9), ax.axis("off")
    fig.tight_layout()
    return viz._save(fig, path)


def main():
    summary, keep = run_example(__doc__.split("\n\n")[0], "segnet", "digits", epochs=20, out=OUT)
    plot_unpooling(keep["model"].to("cpu"), keep["test"][0][0], os.path.join(OUT, "unpooling.png"))
    print(f"held-out canvases: mean IoU {summary['test_mean_iou']:.4f} over {summary['classes']} classes; "
          f"pictures in {OUT}/")


if __name__ == "__main__":
    main()
