"""DCGAN on Fashion-MNIST: a generator of clothes from noise, trained against a discriminator.

DCGAN (Radford, Metz & Chintala, 2016) is two CNNs playing a game. The generator G maps a
100-dimensional Gaussian z through transposed convolutions (4×4, stride 2: each doubles the
image side) with batch norm and ReLU to a 32×32 image in (−1, 1) (tanh); the discriminator D
mirrors it with strided convolutions and LeakyReLU(0.2) down to one logit "real or fake". Each
step D learns to tell real images from G's (``fake.detach()``: G is not trained by D's loss),
then G learns to make D say "real" (D frozen). Adam, lr 2e-4, β1 = 0.5, N(0, 0.02) init: the
paper's recipe. Here a small width (32 channels at the widest layer of D's first stage), and the
samples come from G_ema, the moving average of G's weights (β 0.999, its batch-norm statistics
recomputed from its own outputs after each epoch): less noisy than the last G.

    python examples/13_dcgan_fashion_mnist.py [--epochs 20] [--limit N]

Needs Fashion-MNIST from Debian's package (apt-get install dataset-fashion-mnist). Writes
runs/13_dcgan_fashion_mnist/: samples/epoch_XXX.png (the same 16 latents every epoch),
across_epochs.png, losses.png, interpolation.png (straight lines between latents), summary.json
with the Fréchet distance on a classifier's features and its real-vs-real floor.
"""
import os

from minicnn.cli_gan import run_example

OUT = os.path.join("runs", "13_dcgan_fashion_mnist")

if __name__ == "__main__":
    summary, _ = run_example(__doc__.splitlines()[0], "dcgan", "fashion-mnist", OUT)
    print(f"Fréchet distance (classifier features, {summary['frechet_n']} images) {summary['frechet_distance']:.3f}; "
          f"real test vs real train {summary['real_floor']:.3f}; ratio {summary['ratio_to_floor']:.2f}")
