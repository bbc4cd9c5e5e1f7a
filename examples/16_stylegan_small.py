"""A small StyleGAN: styles, noise and truncation on 32×32 Fashion-MNIST items.

StyleGAN (Karras et al., 2019; the modulation of StyleGAN2, 2020) does not feed the latent z to
the first layer. A mapping network (an MLP with pixel norm) turns z into a style w; the synthesis
network starts from a learned constant 4×4 input, and every 3×3 convolution's weights are scaled
per input channel by an affine map of w (modulation), then renormalised per output channel
(demodulation): one grouped convolution over the batch. Per-pixel noise with a learned strength
adds the stochastic detail. Two latents can share the work (style mixing: coarse layers from
one, fine from the other), and w can be pulled to its running mean (truncation ψ) for typical,
less varied samples. Equalised learning rate, Adam lr 2e-3, β = (0, 0.99), style-mixing
regularisation 0.9 (on digits the command line trains differently: see minicnn.cli_gan).

    python examples/16_stylegan_small.py [--epochs E] [--limit N]

Needs Fashion-MNIST (Debian's dataset-fashion-mnist). Writes runs/16_stylegan_fashion-mnist/:
samples/, across_epochs.png, style_mixing.png, truncation.png, interpolation.png, losses.png and
summary.json (Fréchet distance on a classifier's features, with its floor).
"""
import os

from minicnn.cli_gan import run_example

if __name__ == "__main__":
    summary, _ = run_example(__doc__.splitlines()[0], "stylegan", "fashion-mnist",
                             os.path.join("runs", "16_stylegan_fashion-mnist"))
    print(f"Fréchet distance (classifier features, {summary['frechet_n']} images) {summary['frechet_distance']:.3f}; "
          f"floor {summary['real_floor']:.3f}; ratio {summary['ratio_to_floor']:.2f}")
