"""Pix2Pix: from an edge map to a Fashion-MNIST item, and from a nucleus mask to a microscope image.

Pix2Pix (Isola et al., 2017) is a conditional GAN: the generator is a U-Net (encoder-decoder
with skips, dropout as its noise) that maps an input image a to an output G(a); the
discriminator is a PatchGAN that judges each patch of the pair (a, b) as real or fake, so it
cares about texture, and an L1 term (λ = 100) pulls G(a) to the true b, so the output keeps the
layout of the input. The pairs are built here from real images: Canny edges (written in
minicnn.data.generative) of Fashion-MNIST items → the items, or, with ``--dataset nuclei``, the
nucleus mask of the embedded fluorescence image → the image (three quadrants train, the fourth
is held out).

    python examples/14_pix2pix_edges_fashion.py [--dataset nuclei] [--epochs E]

Writes runs/14_pix2pix_<dataset>/: translations.png (held-out input / output / truth),
samples/epoch_XXX.png, across_epochs.png, losses.png, summary.json (held-out L1; for Fashion
items also the Fréchet distance on a classifier's features and its floor).
"""
import os
import sys

from minicnn.cli_gan import run_example

if __name__ == "__main__":
    argv = sys.argv[1:]
    dataset = "edges-fashion"
    if "--dataset" in argv:
        i = argv.index("--dataset")
        dataset = argv[i + 1]
        del argv[i:i + 2]
    summary, _ = run_example(__doc__.splitlines()[0], "pix2pix", dataset, os.path.join("runs", f"14_pix2pix_{dataset}"),
                             argv=argv)
    print(f"held-out L1 {summary['test_l1']:.4f} on {summary['test_pairs']} pairs"
          + (f"; Fréchet distance {summary['frechet_distance']:.3f} (floor {summary['real_floor']:.3f})"
             if "frechet_distance" in summary else ""))
