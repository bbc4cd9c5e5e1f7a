"""``python -m minicnn train --task gan``: generative models on real images, their recipes and pictures.

Models and datasets (real pixels, nothing downloaded; 28×28 images are padded with −1 to 32×32):

* ``dcgan``, ``stylegan`` (unconditional): ``fashion-mnist`` (Debian's package) or ``digits``
  (the embedded MNIST digits).
* ``pix2pix`` (paired translation): ``edges-fashion`` (Canny edges written here → the Fashion-MNIST
  item) or ``nuclei`` (binary nucleus mask → the fluorescence image, the embedded image's tiles,
  the fourth quadrant held out).
* ``cyclegan`` (unpaired translation): ``sneaker-boot`` (Fashion-MNIST sneakers ↔ ankle boots) or
  ``digits-fashion`` (digits ↔ Fashion items).

Evaluation (honest, and not comparable with published figures): a Fréchet distance on the
penultimate features of a small classifier trained here on the real training images (not
Inception's: not an FID), read against the floor of real test vs real training images with the
same number of images; for CycleGAN the fraction of translated test images that a frozen
domain classifier assigns to the target domain; for Pix2Pix the mean |G(a) − b| on held-out pairs.

Pictures in the output folder: ``samples/epoch_XXX.png`` (the same latents or held-out inputs each
epoch), ``across_epochs.png``, ``losses.png``, and per model ``interpolation.png`` (DCGAN,
StyleGAN), ``style_mixing.png`` and ``truncation.png`` (StyleGAN), ``translations.png``
(Pix2Pix: input / output / truth; CycleGAN: a → G_ab(a) → back, and b → G_ba(b) → back).
"""
import json
import os
import sys
import time

import numpy as np

from .autograd import no_grad

GAN_MODELS = ("dcgan", "stylegan", "pix2pix", "cyclegan")
GAN_MODEL_DATASETS = {"dcgan": ("fashion-mnist", "digits"), "stylegan": ("fashion-mnist", "digits"),
                      "pix2pix": ("edges-fashion", "nuclei"), "cyclegan": ("sneaker-boot", "digits-fashion")}
GAN_DATASETS = tuple(dict.fromkeys(d for ds in GAN_MODEL_DATASETS.values() for d in ds))
# the small configuration of each model for 2 cores (the same classes as the papers' sizes)
GAN_MODEL_KWARGS = {
    "dcgan": dict(latent_dim=100, width=32),
    "stylegan": dict(z_dim=64, w_dim=64, channel_base=1024, max_channels=64, mapping_layers=4),
    "pix2pix": dict(generator=dict(num_downs=5, ngf=32), discriminator=dict(ndf=32, n_layers=2)),
    "cyclegan": dict(generator=dict(ngf=16, n_blocks=3), discriminator=dict(ndf=16, n_layers=2, norm="instance")),
}
# GANTrainer settings of the unconditional models per (model, dataset). StyleGAN on Fashion-MNIST: the
# paper's non-saturating loss, Adam β = (0, 0.99), style-mixing regularisation 0.9. On digits that set-up
# collapsed to one digit (without R1: the autograd has no second derivatives, and its finite-difference
# estimate, GANTrainer(r1_gamma=), did not prevent the collapse at γ = 1); there: least squares, no mixing
# regularisation, and the samples and the evaluation from G_ema, the moving average of G's weights (β 0.995).
# DCGAN on Fashion-MNIST samples from G_ema too (β 0.999, its batch-norm statistics its own): at 20 epochs
# its distance was 3.7 against G's 5.2 (a wider G, width 64, was worse at equal time: 6.3 against 5.5)
GAN_TRAINER_KWARGS = {
    ("dcgan", "fashion-mnist"): dict(loss="bce", betas=(0.5, 0.999), ema_decay=0.999),
    ("dcgan", "digits"): dict(loss="bce", betas=(0.5, 0.999)),
    ("stylegan", "fashion-mnist"): dict(loss="bce", betas=(0.0, 0.99), mixing_prob=0.9),
    ("stylegan", "digits"): dict(loss="lsgan", betas=(0.0, 0.99), mixing_prob=0.0, ema_decay=0.995),
}
# (epochs, batch size, learning rate, training images (None: all)) per model and dataset, chosen so a run
# takes <= 20 minutes on 2 cores
GAN_RECIPES = {
    ("dcgan", "fashion-mnist"): (20, 64, 2e-4, None), ("dcgan", "digits"): (60, 64, 2e-4, None),
    ("stylegan", "fashion-mnist"): (3, 32, 2e-3, 30000), ("stylegan", "digits"): (12, 32, 5e-4, None),
    ("pix2pix", "edges-fashion"): (4, 16, 2e-4, 8000), ("pix2pix", "nuclei"): (60, 4, 2e-4, None),
    ("cyclegan", "sneaker-boot"): (4, 4, 2e-4, 2000), ("cyclegan", "digits-fashion"): (4, 4, 2e-4, 2000),
}
FRECHET_N = 5000            # images per side of every Fréchet distance (the floor uses the same number)
_SAMPLES = 16               # images in the per-epoch sample grids


def add_gan_flags(flag):
    """The flags of ``--task gan`` (``flag`` = ``__main__._add_flags``'s helper)."""
    from .__main__ import positive_float, positive_int

    flag("--model", default="dcgan", choices=GAN_MODELS, help="generative architecture (a small configuration), "
         "from minicnn.models.generative")
    flag("--dataset", choices=GAN_DATASETS, help="per model: " + "; ".join(f"{m}: {', '.join(d)}" for m, d in GAN_MODEL_DATASETS.items())
         + " (default: the first)")
    for name, i, what in (("--epochs", 0, "passes over the training images"), ("--batch-size", 1, "images per step")):
        flag(name, type=positive_int, help=f"{what} (per model and dataset: " +
             ", ".join(f"{m}/{d} {v[i]}" for (m, d), v in GAN_RECIPES.items()) + ")")
    flag("--lr", type=positive_float, help="Adam's learning rate, both networks (2e-4; StyleGAN 2e-3 on "
         "Fashion-MNIST, 5e-4 on digits, with its equalised learning rate)")


def resolve_gan_defaults(args):
    """Fill the dataset, epochs, batch size, lr and limit left out from :data:`GAN_RECIPES`."""
    allowed = GAN_MODEL_DATASETS[args.model]
    if getattr(args, "dataset", None) is None:
        args.dataset = allowed[0]
    if args.dataset not in allowed:
        raise ValueError(f"--dataset: {args.model} trains on {', '.join(allowed)}, got {args.dataset!r}")
    epochs, batch, lr, limit = GAN_RECIPES[(args.model, args.dataset)]
    for key, value in (("epochs", epochs), ("batch_size", batch), ("lr", lr), ("limit", limit)):
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def load_gan_data(model, dataset, limit=None):
    """``(train, test)``: arrays ``(N, C, 32, 32)`` in [−1, 1] with labels (dcgan, stylegan), a
    :class:`~minicnn.data.generative.PairedSet` each (pix2pix) or an ``UnpairedSet`` each (cyclegan)."""
    from .data import generative as gd

    if model in ("dcgan", "stylegan"):
        train, test = gd.gan_images(dataset, "train", n=limit), gd.gan_images(dataset, "test")
        return (train.images, train.labels), (test.images, test.labels)
    if model == "pix2pix":
        if dataset == "edges-fashion":
            return gd.edges_to_fashion("train", n=limit), gd.edges_to_fashion("test", n=2000)
        train, test = gd.nuclei_mask_to_image("train"), gd.nuclei_mask_to_image("test")
        if limit is not None:
            train = gd.PairedSet(train.sources[:limit], train.targets[:limit], origins=train.origins[:limit])
        return train, test
    train, test = gd.domain_pair(dataset, "train", n=limit), gd.domain_pair(dataset, "test")
    return train, test


def build_gan(model, channels, image_size=32, in_channels=None):
    """The networks of ``model`` in their small configuration: a dict name → module."""
    from .models import generative as g

    kw = GAN_MODEL_KWARGS[model]
    if model == "dcgan":
        nets = dict(generator=g.DCGANGenerator(kw["latent_dim"], image_size, channels, kw["width"]),
                    discriminator=g.DCGANDiscriminator(image_size, channels, kw["width"]))
        for net in nets.values():
            g.dcgan_init(net)
        return nets
    if model == "stylegan":
        common = dict(image_size=image_size, channels=channels, channel_base=kw["channel_base"],
                      max_channels=kw["max_channels"])
        return dict(generator=g.StyleGANGenerator(z_dim=kw["z_dim"], w_dim=kw["w_dim"],
                                                  mapping_layers=kw["mapping_layers"], **common),
                    discriminator=g.StyleGANDiscriminator(**common))
    if model == "pix2pix":
        src = in_channels or channels
        return dict(generator=g.UnetGenerator(src, channels, **kw["generator"]),
                    discriminator=g.NLayerDiscriminator(src + channels, **kw["discriminator"]))
    return dict(g_ab=g.ResnetGenerator(channels, channels, **kw["generator"]),
                g_ba=g.ResnetGenerator(channels, channels, **kw["generator"]),
                d_a=g.NLayerDiscriminator(channels, **kw["discriminator"]),
                d_b=g.NLayerDiscriminator(channels, **kw["discriminator"]))


def _classifier(images, labels, path, device, seed):
    """The frozen feature/domain classifier of the evaluation (trained on real training images, cached)."""
    from .gan_metrics import train_feature_classifier

    return train_feature_classifier(images, labels, epochs=2, device=device, seed=seed, path=path)


def _subsample(images, n, seed):
    rng = np.random.default_rng(seed)
    return images[np.sort(rng.choice(len(images), min(n, len(images)), replace=False))]


def train_gan(args, log=print, keep=None):
    """Train ``args.model`` on ``args.dataset``; pictures, metrics and ``summary.json`` in the output folder.
    Returns the summary; a dict ``keep`` receives the trainer and data (the examples draw more pictures)."""
    from . import gan_metrics
    from .random import manual_seed
    from .viz import generative as gv

    resolve_gan_defaults(args)
    manual_seed(args.seed)
    train, test = load_gan_data(args.model, args.dataset, args.limit)
    out = args.out or os.path.join("runs", f"{args.model}-{args.dataset}")
    os.makedirs(os.path.join(out, "samples"), exist_ok=True)
    progress = not args.no_progress and sys.stderr.isatty()
    rows, row_labels = [], []
    title = f"{args.model} on {args.dataset}"

    if args.model in ("dcgan", "stylegan"):
        trainer, fit = _unconditional(args, train, progress)
        fixed = trainer.fixed_z[:_SAMPLES]

        def samples(tr):
            tr.sampler.eval()
            with no_grad():
                images = tr.generate(fixed).numpy()
            tr.sampler.train()
            return images
    elif args.model == "pix2pix":
        trainer, fit = _pix2pix(args, train, progress)
        held = test.sources[:_SAMPLES]

        def samples(tr):
            return tr.translate(held)
    else:
        trainer, fit = _cyclegan(args, train, progress)
        held = test.a[:_SAMPLES]

        def samples(tr):
            return tr.translate(held, "ab")

    n_params = {k: sum(p.size for p in net.parameters()) for k, net in trainer.networks.items()}
    log(f"minicnn: {title}: " + ", ".join(f"{k} {v:,}" for k, v in n_params.items()) + f" parameters; "
        f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, device {args.device}")

    def on_epoch(tr, epoch, row):
        images = samples(tr)
        gv.plot_image_grid(images, os.path.join(out, "samples", f"epoch_{epoch:03d}.png"), ncols=8,
                           title=f"{title}: epoch {epoch}")
        rows.append(images[:8]), row_labels.append(f"epoch {epoch}")

    t0 = time.perf_counter()
    history = fit(trainer, out, on_epoch, log)
    seconds = time.perf_counter() - t0
    shown = [i for i in range(len(rows)) if len(rows) <= 8 or i % -(-len(rows) // 8) == 0 or i == len(rows) - 1]
    gv.plot_rows([rows[i] for i in shown], os.path.join(out, "across_epochs.png"), [row_labels[i] for i in shown],
                 f"{title}: the same inputs across epochs")
    keys = [k for k in history[0] if k.startswith("loss_") or k in ("cycle_a", "cycle_b", "l1")]
    gv.plot_gan_losses(history, os.path.join(out, "losses.png"), f"{title}: losses", keys)
    summary = dict(task="gan", model=args.model, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
                   lr=args.lr, parameters=n_params, seconds=seconds, device=args.device, seed=args.seed,
                   loss_d=history[-1]["loss_d"], loss_g=history[-1]["loss_g"])
    summary.update(_evaluate(args, trainer, train, test, out, gan_metrics, gv, title))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if keep is not None:
        keep.update(trainer=trainer, train=train, test=test, out=out)
    figures = ", ".join(f"{k} {v:.4g}" for k, v in summary.items() if k.startswith(("frechet", "real_floor", "ratio",
                                                                                      "domain_rate", "test_l1")))
    log(f"{title}: {figures}; {seconds:.0f} s of training; pictures in {out}/")
    return summary


def _unconditional(args, train, progress):
    from .train_gan import GANTrainer

    images = train[0]
    nets = build_gan(args.model, images.shape[1], images.shape[2])
    kw = dict(GAN_TRAINER_KWARGS[(args.model, args.dataset)])
    if "ema_decay" in kw:
        kw["ema_generator"] = build_gan(args.model, images.shape[1], images.shape[2])["generator"]
    trainer = GANTrainer(nets["generator"], nets["discriminator"], lr=args.lr, device=args.device, seed=args.seed,
                         progress=progress, **kw)

    def fit(tr, out, cb, log):
        return tr.fit(images, args.epochs, args.batch_size, out_dir=out, callbacks=cb, log=log)
    return trainer, fit


def _pix2pix(args, train, progress):
    from .train_gan import Pix2PixTrainer

    nets = build_gan("pix2pix", train.targets.shape[1], train.targets.shape[2], train.sources.shape[1])
    trainer = Pix2PixTrainer(nets["generator"], nets["discriminator"], lr=args.lr, device=args.device,
                             seed=args.seed, progress=progress)

    def fit(tr, out, cb, log):
        return tr.fit(train.sources, train.targets, args.epochs, args.batch_size, out_dir=out, callbacks=cb, log=log)
    return trainer, fit


def _cyclegan(args, train, progress):
    from .train_gan import CycleGANTrainer

    nets = build_gan("cyclegan", train.a.shape[1], train.a.shape[2])
    trainer = CycleGANTrainer(nets["g_ab"], nets["g_ba"], nets["d_a"], nets["d_b"], lr=args.lr, device=args.device,
                              seed=args.seed, progress=progress)

    def fit(tr, out, cb, log):
        return tr.fit(train.a, train.b, args.epochs, args.batch_size, out_dir=out, callbacks=cb, log=log,
                      lr_decay_epochs=args.epochs // 2)
    return trainer, fit


def _evaluate(args, trainer, train, test, out, gm, gv, title):
    """The held-out figures of the module docstring, and the model's last pictures."""
    seed, dev = args.seed, args.device
    cache = os.path.join(out, "eval_classifier.npz")
    if args.model in ("dcgan", "stylegan"):
        (x_train, y_train), (x_test, _) = train, test
        clf = _classifier(x_train, y_train, cache, dev, seed)
        n = min(FRECHET_N, len(x_train), len(x_test))
        real = _subsample(x_train, n, seed)
        fakes = _generate(trainer, n, seed)
        floor = gm.real_floor(clf, x_train, x_test, n=n, seed=seed)
        dist = gm.classifier_frechet_distance(clf, real, fakes)
        _latent_pictures(args, trainer, out, gv, title)
        return dict(frechet_distance=dist, real_floor=floor, ratio_to_floor=dist / floor, frechet_n=n)
    if args.model == "pix2pix":
        fake = trainer.translate(test.sources)
        row = dict(test_l1=gm.paired_l1(fake, test.targets), test_pairs=len(test))
        k = min(8, len(test))
        gv.plot_rows([test.sources[:k], fake[:k], test.targets[:k]], os.path.join(out, "translations.png"),
                     ["input", "Pix2Pix", "truth"], f"{title}: held-out pairs")
        if args.dataset == "edges-fashion":
            clf = _classifier(train.targets, train.labels, cache, dev, seed)
            n = min(FRECHET_N, len(test), len(train))
            row.update(frechet_distance=gm.classifier_frechet_distance(clf, _subsample(train.targets, n, seed),
                                                                       fake[:n]),
                       real_floor=gm.real_floor(clf, train.targets, test.targets, n=n, seed=seed), frechet_n=n)
            row["ratio_to_floor"] = row["frechet_distance"] / row["real_floor"]
        return row
    # cyclegan: a frozen classifier of the two domains (0 = A, 1 = B) trained on the real training images
    both = np.concatenate([train.a, train.b])
    labels = np.concatenate([np.zeros(len(train.a), np.int64), np.ones(len(train.b), np.int64)])
    clf = _classifier(both, labels, cache, dev, seed)
    ab, ba = trainer.translate(test.a, "ab"), trainer.translate(test.b, "ba")
    k = 8
    gv.plot_rows([test.a[:k], ab[:k], trainer.translate(ab[:k], "ba"), test.b[:k], ba[:k],
                  trainer.translate(ba[:k], "ab")], os.path.join(out, "translations.png"),
                 [f"{test.names[0]}", "→ B", "→ back", f"{test.names[1]}", "→ A", "→ back"],
                 f"{title}: held-out images")
    return dict(domain_rate_ab=gm.domain_rate(clf, ab, 1), domain_rate_ba=gm.domain_rate(clf, ba, 0),
                real_rate_b=gm.domain_rate(clf, test.b, 1), real_rate_a=gm.domain_rate(clf, test.a, 0),
                test_images=[len(test.a), len(test.b)])


def _generate(trainer, n, seed, batch=256, **kwargs):
    """``n`` images of the trainer's sampler (G, or G_ema where there is one) in eval mode from latents
    drawn by ``default_rng(seed + 1)`` (and per-layer noise, where the model has it, after
    ``minicnn.manual_seed(seed + 1)``), 256 at a time."""
    from .random import manual_seed

    rng = np.random.default_rng(seed + 1)
    manual_seed(seed + 1)                 # StyleGAN's noise inputs come from minicnn's generator
    trainer.sampler.eval()
    out = []
    with no_grad():
        for i in range(0, n, batch):
            z = rng.standard_normal((min(batch, n - i), trainer.generator.latent_dim)).astype(np.float32)
            out.append(trainer.generate(z, **kwargs).numpy())
    return np.concatenate(out)


def _latent_pictures(args, trainer, out, gv, title):
    """Interpolation between latents (both models); style mixing and truncation (StyleGAN)."""
    rng = np.random.default_rng(args.seed + 2)
    d = trainer.generator.latent_dim
    ends = rng.standard_normal((4, 2, d)).astype(np.float32)
    t = np.linspace(0.0, 1.0, 8, dtype=np.float32)[:, None]
    G = trainer.sampler
    G.eval()
    with no_grad():
        rows = [trainer.generate(a[None] * (1 - t) + b[None] * t).numpy() for a, b in ends]
        gv.plot_rows(rows, os.path.join(out, "interpolation.png"), [f"z{i}" for i in range(len(rows))],
                     f"{title}: straight lines between latents")
        if args.model == "stylegan":
            z = rng.standard_normal((6, d)).astype(np.float32)
            mix = trainer._tensor(rng.standard_normal((1, d)).astype(np.float32).repeat(6, 0))
            rows = [trainer.generate(z).numpy()]
            labels = ["source"]
            for layer in (G.num_ws - 2, G.num_ws // 2, 2):
                rows.append(trainer.generate(z, mix_z=mix, mix_layer=layer).numpy())
                labels.append(f"mix from {layer}")
            rows.append(trainer.generate(mix).numpy())  # the mixing source itself
            labels.append("mix source")
            gv.plot_rows(rows, os.path.join(out, "style_mixing.png"), labels,
                         f"{title}: styles of the last row from layer k on")
            zs = rng.standard_normal((8, d)).astype(np.float32)
            psis = (1.0, 0.7, 0.5, 0.0)
            gv.plot_rows([trainer.generate(zs, truncation_psi=p).numpy() for p in psis],
                         os.path.join(out, "truncation.png"), [f"ψ = {p}" for p in psis],
                         f"{title}: truncation toward the mean w")
    G.train()


def run_example(description, model, dataset, out, argv=None, extra=()):
    """What the GAN examples share: ``--epochs``, ``--device``, ``--limit`` flags
    (:func:`~minicnn.__main__.example_args`) and a :func:`train_gan` run. Returns ``(summary, keep)``."""
    from .__main__ import example_args

    args = example_args("gan", description, model, dataset, out, argv, extra)
    keep = {}
    return train_gan(args, keep=keep), keep
