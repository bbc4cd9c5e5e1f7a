"""Neural style transfer (Gatys et al., 2016): repaint Fashion-MNIST items with a texture.

Nothing is trained during the transfer: a small VGG-style CNN, trained here once to classify
Fashion-MNIST (about a minute; cached in runs/), is frozen, and the *pixels* of an image are
optimised by Adam. The content loss keeps its feature maps at relu2_2 close to those of the
content image (where things are); the style loss matches Gram matrices G = F Fᵀ / (C·H·W) of
relu1_1, relu2_1 and relu3_1 to those of the style image (which features occur together,
wherever they are: texture); a total-variation term keeps the result smooth.

    python examples/17_neural_style_transfer.py [--steps 300]

Writes runs/17_neural_style_transfer/: transfer.png (the content items and each repainted in each
style), styles.png (the style images) and losses.png (content and style losses over the steps).
"""
import argparse
import os

import numpy as np

from minicnn import viz
from minicnn.data.generative import gan_images, nuclei_mask_to_image
from minicnn.models.generative import StyleTransfer, train_style_net
from minicnn.viz.generative import plot_rows

OUT = os.path.join("runs", "17_neural_style_transfer")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300, help="Adam steps on the pixels (300)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "cuda-emu"))
    a = p.parse_args(argv)
    os.makedirs(OUT, exist_ok=True)
    net = train_style_net(os.path.join("runs", "style_net_fashion.npz"), device=a.device)
    test = gan_images("fashion-mnist", "test")
    # one item each of: t-shirt, trouser, dress, sneaker, bag, ankle boot
    content = np.stack([test.images[np.flatnonzero(test.labels == c)[0]] for c in (0, 1, 3, 7, 8, 9)])
    nuclei = nuclei_mask_to_image("test").targets[:1]                # a 64×64 tile of the fluorescence image
    shirt = test.images[np.flatnonzero(test.labels == 6)[3]][None]   # a patterned shirt
    rows, labels, curves = [content], ["content"], {}
    with StyleTransfer(net) as st:
        for name, style in (("nuclei", nuclei), ("shirt", shirt)):
            image, history = st.run(content, style, steps=a.steps)
            rows.append(image), labels.append(f"style: {name}")
            curves[name] = history
            print(f"style {name}: total loss {history[0]['total']:.4f} -> {history[-1]['total']:.4f} "
                  f"in {a.steps} steps")
    plot_rows(rows, os.path.join(OUT, "transfer.png"), labels, "neural style transfer (the network is frozen; "
              "the pixels are optimised)")
    plot_rows([nuclei[:, :, 16:48, 16:48], shirt], os.path.join(OUT, "styles.png"),
              ["nuclei (centre)", "shirt"], "the style images")
    plt = viz._plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, history in curves.items():
        for key in ("content", "style"):
            ax.semilogy([h[key] for h in history], label=f"{name}: {key}")
    ax.set_xlabel("Adam step"), ax.set_ylabel("loss"), ax.legend(fontsize=8)
    fig.tight_layout()
    viz._save(fig, os.path.join(OUT, "losses.png"))
    print(f"pictures in {OUT}/")


if __name__ == "__main__":
    main()
