"""CycleGAN: sneakers into ankle boots and back, with no pairs to learn from.

CycleGAN (Zhu et al., 2017) learns two generators, G_ab: sneakers → boots and G_ba: boots →
sneakers (ResNet generators: reflection padding, instance norm, residual blocks), each with a
PatchGAN discriminator and a least-squares GAN loss. No image has a partner in the other domain,
so a cycle-consistency loss (λ = 10) asks G_ba(G_ab(a)) ≈ a: a translation must keep enough of
the input to be undone. An identity loss (G_ab(b) ≈ b) and a pool of 50 past fakes for the
discriminators, as the paper.

    python examples/15_cyclegan_sneakers_boots.py [--epochs E] [--limit N]

Needs Fashion-MNIST (Debian's dataset-fashion-mnist). Writes runs/15_cyclegan_sneaker-boot/:
translations.png (held-out sneakers → boots → back, boots → sneakers → back), losses.png,
samples/, summary.json with the domain rate: the fraction of translated held-out images that a
frozen sneaker-vs-boot classifier, trained here on the real training images, puts in the target
domain (and the same classifier's rate on real test images of each domain, its ceiling).
"""
import os

from minicnn.cli_gan import run_example

if __name__ == "__main__":
    summary, _ = run_example(__doc__.splitlines()[0], "cyclegan", "sneaker-boot",
                             os.path.join("runs", "15_cyclegan_sneaker-boot"))
    print(f"sneakers → boots judged boots: {summary['domain_rate_ab']:.3f} (real boots: {summary['real_rate_b']:.3f}); "
          f"boots → sneakers judged sneakers: {summary['domain_rate_ba']:.3f} (real sneakers: {summary['real_rate_a']:.3f})")
