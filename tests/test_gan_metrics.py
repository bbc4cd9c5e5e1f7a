"""Evaluation of the generative models (minicnn.gan_metrics): the Fréchet distance against closed forms
and scipy.linalg.sqrtm, and the classifier-feature helpers against features computed here."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
from minicnn.data import digits_arrays
from minicnn.gan_metrics import (FeatureClassifier, classifier_features, classifier_frechet_distance, domain_rate,
                                 feature_statistics, frechet_distance, paired_l1, real_floor,
                                 train_feature_classifier)

TINY = dict(channels=(4, 8), hidden=16)


def random_spd(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d + 2))
    return a @ a.T / a.shape[1]


def ref_statistics(f):
    """Mean and unbiased covariance, one entry at a time."""
    n, d = f.shape
    mu = np.array([sum(f[k, i] for k in range(n)) / n for i in range(d)])
    cov = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            cov[i, j] = sum((f[k, i] - mu[i]) * (f[k, j] - mu[j]) for k in range(n)) / (n - 1)
    return mu, cov


def fd_scipy(mu1, s1, mu2, s2):
    linalg = pytest.importorskip("scipy.linalg")
    live = (np.diag(s1) > 0) | (np.diag(s2) > 0) | (mu1 != mu2)     # constant, equal features add 0: drop them
    mu1, mu2, s1, s2 = mu1[live], mu2[live], s1[np.ix_(live, live)], s2[np.ix_(live, live)]
    covmean = linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


# ---------------------------------------------------------------- Fréchet distance

@given(d=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_frechet_matches_scipy_sqrtm(d, seed):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    got = frechet_distance(mu1, s1, mu2, s2)
    np.testing.assert_allclose(got, fd_scipy(mu1, s1, mu2, s2), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(frechet_distance(mu2, s2, mu1, s1), got, rtol=1e-7, atol=1e-9)   # symmetric


@given(d=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_frechet_diagonal_closed_form(d, seed):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0, 3, d), rng.uniform(0, 3, d)
    want = sum((mu1[i] - mu2[i]) ** 2 + (np.sqrt(a[i]) - np.sqrt(b[i])) ** 2 for i in range(d))
    np.testing.assert_allclose(frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), want, rtol=1e-9, atol=1e-12)


def test_frechet_one_dimensional_and_identical():
    # (μ1 − μ2)² + (σ1 − σ2)² with variances σ²
    assert frechet_distance([1.5], 4.0, [-0.5], 0.25) == pytest.approx(2.0 ** 2 + (2.0 - 0.5) ** 2, rel=1e-12)
    rng = np.random.default_rng(0)
    mu, s = rng.normal(size=12), random_spd(rng, 12)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)
    # a singular covariance (rank 3 of 10): tr((S^½ S S^½)^½) = tr S; the square roots of round-off
    # eigenvalues (~1e-16) leave an error near 1e-7
    s = random_spd(rng, 10, rank=3)
    assert frechet_distance(mu[:10], s, mu[:10] + 1.0, s) == pytest.approx(10.0, abs=1e-6)


def test_frechet_bad_shapes():
    with pytest.raises(ValueError, match="mu1 and mu2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match=r"sigma2 must be \(3, 3\)"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="finite"):
        frechet_distance(np.zeros(2), np.eye(2), np.array([0, np.nan]), np.eye(2))


@given(n=st.integers(2, 6), d=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_feature_statistics_matches_loops(n, d, seed):
    f = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    mu, cov = feature_statistics(f)
    ref_mu, ref_cov = ref_statistics(f.astype(np.float64))
    np.testing.assert_allclose(mu, ref_mu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(f[:1])


def test_paired_l1():
    a, b = np.zeros((2, 1, 2, 2)), np.arange(8.0).reshape(2, 1, 2, 2)
    assert paired_l1(a, b) == pytest.approx(3.5)
    with pytest.raises(ValueError, match="paired_l1"):
        paired_l1(a, b[:1])


# ---------------------------------------------------------------- classifier features

@pytest.fixture(scope="module")
def digits32():
    x, y = digits_arrays("train")
    x = np.pad(x.astype(np.float32) / 127.5 - 1, ((0, 0), (2, 2), (2, 2)), constant_values=-1)[:, None]
    xt, yt = digits_arrays("test")
    xt = np.pad(xt.astype(np.float32) / 127.5 - 1, ((0, 0), (2, 2), (2, 2)), constant_values=-1)[:, None]
    i, j = np.random.default_rng(0).permutation(len(x))[:800], np.random.default_rng(1).permutation(len(xt))[:300]
    return x[i], y[i], xt[j], yt[j]


@pytest.fixture(scope="module")
def tiny_classifier(digits32):
    x, y, _, _ = digits32
    return train_feature_classifier(x, y, epochs=4, seed=0, batch_size=64, lr=1e-2, **TINY)


def ref_features(model, x):
    """hidden ReLU activations, computed by running the layers one after the other here."""
    model.eval()
    with mc.no_grad():
        h = model.features(mc.Tensor(x))
        h = h.reshape(len(x), -1).numpy().astype(np.float64)
    lin = model.classifier[1]
    return np.maximum(h @ lin.weight.numpy().T.astype(np.float64) + lin.bias.numpy(), 0.0)


def test_classifier_learns_and_features_are_the_hidden_layer(tiny_classifier, digits32):
    _, _, xt, yt = digits32
    model = tiny_classifier
    assert len(model.history) == 4 and model.history[-1]["train_loss"] < model.history[0]["train_loss"]
    f = classifier_features(model, xt, batch_size=128)
    assert f.shape == (len(xt), 16)
    np.testing.assert_allclose(f, ref_features(model, xt), rtol=1e-4, atol=1e-4)
    with mc.no_grad():
        logits = model(mc.Tensor(xt)).numpy()
    assert (logits.argmax(1) == yt).mean() > 0.6               # a classifier, not noise


def test_classifier_frechet_distance_and_floor(tiny_classifier, digits32):
    x, _, xt, _ = digits32
    model = tiny_classifier
    assert classifier_frechet_distance(model, xt, xt) == pytest.approx(0.0, abs=1e-6)
    fake = np.clip(xt + np.random.default_rng(0).normal(0, 0.5, xt.shape), -1, 1).astype(np.float32)
    f_real, f_fake = ref_features(model, xt), ref_features(model, fake)
    want = fd_scipy(*ref_statistics(f_real), *ref_statistics(f_fake))
    np.testing.assert_allclose(classifier_frechet_distance(model, xt, fake), want, rtol=1e-3)
    floor = real_floor(model, x, xt, n=200, seed=1)
    rng = np.random.default_rng(1)
    a = x[np.sort(rng.choice(len(x), 200, replace=False))]
    b = xt[np.sort(rng.choice(len(xt), 200, replace=False))]
    want = fd_scipy(*ref_statistics(ref_features(model, b)), *ref_statistics(ref_features(model, a)))
    np.testing.assert_allclose(floor, want, rtol=1e-3)
    assert 0 < floor < classifier_frechet_distance(model, xt, fake)
    with pytest.raises(ValueError, match="real_floor: n"):
        real_floor(model, x, xt, n=1000)


def test_domain_rate(tiny_classifier, digits32):
    _, _, xt, _ = digits32
    with mc.no_grad():
        pred = tiny_classifier(mc.Tensor(xt)).numpy().argmax(1)
    for c in (0, 3, 7):
        assert domain_rate(tiny_classifier, xt, c, batch_size=100) == pytest.approx(float(np.mean(pred == c)))
    with pytest.raises(ValueError, match="target_class"):
        domain_rate(tiny_classifier, xt, 10)


def test_checkpoint_round_trip(tiny_classifier, digits32, tmp_path):
    x, y, xt, _ = digits32
    path = str(tmp_path / "fc.npz")
    a = train_feature_classifier(x[:64], y[:64], epochs=1, seed=3, batch_size=32, path=path, **TINY)
    b = train_feature_classifier(x[:64], y[:64], epochs=1, seed=4, batch_size=32, path=path, **TINY)
    assert b.history == []                                     # loaded, not trained
    np.testing.assert_array_equal(classifier_features(a, xt[:20]), classifier_features(b, xt[:20]))
    with pytest.raises(ValueError, match="labels must be"):
        train_feature_classifier(x[:10], y[:9])
    with pytest.raises(ValueError, match="no module named"):
        classifier_features(a, xt[:2], layer="head")
    assert isinstance(a, FeatureClassifier) and a.config["hidden"] == 16
