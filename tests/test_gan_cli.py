"""python -m minicnn train --task gan: flags, recipes, errors, and short runs of every model that write
their pictures and a summary whose figures are recomputed here from the saved checkpoints."""
import json
import os

import numpy as np
import pytest

import minicnn.cli_gan as cli_gan
from minicnn.__main__ import build_parser, main
from minicnn.cli_gan import GAN_MODEL_DATASETS, GAN_RECIPES, build_gan, resolve_gan_defaults
from minicnn.data.datasets import FASHION_MNIST_ROOT

HAS_FASHION = os.path.exists(os.path.join(FASHION_MNIST_ROOT, "t10k-images-idx3-ubyte.gz"))


def _parse(*argv):
    return build_parser("gan").parse_args(["train", "--task", "gan", *argv])


def test_recipe_fills_what_the_command_line_leaves_out():
    a = resolve_gan_defaults(_parse("--model", "pix2pix", "--epochs", "2"))
    assert a.dataset == "edges-fashion"                            # the model's first dataset
    epochs, batch, lr, limit = GAN_RECIPES[("pix2pix", "edges-fashion")]
    assert (a.epochs, a.batch_size, a.lr, a.limit) == (2, batch, lr, limit)
    b = resolve_gan_defaults(_parse("--model", "cyclegan", "--dataset", "digits-fashion", "--lr", "1e-3"))
    assert b.lr == 1e-3 and b.epochs == GAN_RECIPES[("cyclegan", "digits-fashion")][0]
    for model, datasets in GAN_MODEL_DATASETS.items():            # every pair has a recipe
        assert all((model, d) in GAN_RECIPES for d in datasets)


def test_bad_flags_are_refused(capsys):
    with pytest.raises(SystemExit):
        _parse("--model", "unet")                                 # not a generative model
    with pytest.raises(SystemExit):
        main(["train", "--task", "gan", "--model", "pix2pix", "--dataset", "digits"])
    assert "pix2pix trains on edges-fashion, nuclei, got 'digits'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--task", "gan", "--distributed"])
    with pytest.raises(SystemExit):
        _parse("--optimizer", "sgd")                              # the GAN recipes fix Adam


def _run(tmp_path, monkeypatch, *argv):
    monkeypatch.setattr(cli_gan, "FRECHET_N", 48)
    out = str(tmp_path / "run")
    lines = []
    import minicnn.__main__ as cli
    summary = cli.train(_parse(*argv, "--epochs", "2", "--batch-size", "8", "--out", out, "--no-progress"),
                        log=lines.append)
    assert len(lines) == 4                                         # header, two epochs, the result
    with open(os.path.join(out, "summary.json")) as f:
        assert json.load(f) == json.loads(json.dumps(summary))
    for name in ("losses.png", "across_epochs.png", "samples/epoch_001.png", "samples/epoch_002.png",
                 "history.json"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    return summary, out


def _load(net, path):
    with np.load(path) as f:
        net.load_state_dict({k: f[k] for k in f.files})
    return net.eval()


def _frechet_numpy(a, b):
    """Fréchet distance of two feature sets by the textbook formula, with a plain eigen square root."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r @ s2 @ r
    tr = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr)


@pytest.mark.parametrize("model", ["dcgan", "stylegan"])
def test_unconditional_run_and_its_frechet_distance(tmp_path, monkeypatch, model):
    from minicnn.gan_metrics import classifier_features, train_feature_classifier

    summary, out = _run(tmp_path, monkeypatch, "--model", model, "--dataset", "digits", "--limit", "48")
    for name in ("interpolation.png", "generator.npz", "discriminator.npz", "eval_classifier.npz") + \
            (("style_mixing.png", "truncation.png", "generator_ema.npz") if model == "stylegan" else ()):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert summary["frechet_n"] == 48 and summary["ratio_to_floor"] == pytest.approx(
        summary["frechet_distance"] / summary["real_floor"])
    # recompute the distance: the generator that samples (StyleGAN: the moving average G_ema) from its
    # checkpoint, the same latents, features of the saved classifier, the formula in NumPy
    args = resolve_gan_defaults(_parse("--model", model, "--dataset", "digits", "--limit", "48"))
    train, _ = cli_gan.load_gan_data(model, "digits", 48)
    G = _load(build_gan(model, 1)["generator"],
              os.path.join(out, "generator_ema.npz" if model == "stylegan" else "generator.npz"))
    clf = train_feature_classifier(train[0], train[1], path=os.path.join(out, "eval_classifier.npz"))
    z = np.random.default_rng(args.seed + 1).standard_normal((48, G.latent_dim)).astype(np.float32)
    import minicnn as mc
    mc.manual_seed(args.seed + 1)                                 # StyleGAN's noise inputs
    with mc.no_grad():
        fake = G(mc.tensor(z)).numpy()
    real = train[0][np.sort(np.random.default_rng(args.seed).choice(48, 48, replace=False))]
    expected = _frechet_numpy(classifier_features(clf, real).astype(np.float64),
                              classifier_features(clf, fake).astype(np.float64))
    assert summary["frechet_distance"] == pytest.approx(expected, rel=1e-4)


def test_pix2pix_run_and_its_held_out_l1(tmp_path, monkeypatch):
    summary, out = _run(tmp_path, monkeypatch, "--model", "pix2pix", "--dataset", "nuclei", "--limit", "16")
    assert os.path.getsize(os.path.join(out, "translations.png")) > 0
    _, test = cli_gan.load_gan_data("pix2pix", "nuclei")
    G = _load(build_gan("pix2pix", 1, in_channels=1)["generator"], os.path.join(out, "generator.npz"))
    import minicnn as mc
    with mc.no_grad():
        fake = G(mc.tensor(test.sources)).numpy()
    assert summary["test_pairs"] == len(test) == 16
    assert summary["test_l1"] == pytest.approx(float(np.abs(fake.astype(np.float64) - test.targets).mean()), rel=1e-5)


@pytest.mark.skipif(not HAS_FASHION, reason="Fashion-MNIST (apt-get install dataset-fashion-mnist) is not installed")
def test_cyclegan_run_and_its_domain_rates(tmp_path, monkeypatch):
    from minicnn.gan_metrics import predict, train_feature_classifier

    summary, out = _run(tmp_path, monkeypatch, "--model", "cyclegan", "--dataset", "sneaker-boot", "--limit", "16")
    assert os.path.getsize(os.path.join(out, "translations.png")) > 0
    train, test = cli_gan.load_gan_data("cyclegan", "sneaker-boot", 16)
    nets = build_gan("cyclegan", 1)
    g_ab = _load(nets["g_ab"], os.path.join(out, "g_ab.npz"))
    both = np.concatenate([train.a, train.b])
    labels = np.repeat([0, 1], [len(train.a), len(train.b)])
    clf = train_feature_classifier(both, labels, path=os.path.join(out, "eval_classifier.npz"))
    import minicnn as mc
    with mc.no_grad():
        ab = np.concatenate([g_ab(mc.tensor(test.a[i:i + 100])).numpy() for i in range(0, len(test.a), 100)])
    logits = predict(clf, ab)
    assert summary["domain_rate_ab"] == pytest.approx(float((np.argmax(logits, 1) == 1).mean()))
    assert 0.0 <= summary["domain_rate_ba"] <= 1.0 and summary["test_images"] == [len(test.a), len(test.b)]
