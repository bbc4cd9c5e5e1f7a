"""Neural style transfer (minicnn.models.generative.style_transfer): Gram matrices against NumPy loops,
the loss against a layer-by-layer NumPy recomputation, its gradient against finite differences."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
from minicnn.models.generative.style_transfer import (LAYER_NAMES, StyleNet, StyleTransfer, gram_matrix,
                                                      train_style_net)
from minicnn.testing import gradcheck

STYLE = ("features.1", "features.6")
CONTENT = ("features.3",)


def ref_gram(f):
    n, c, h, w = f.shape
    g = np.zeros((n, c, c))
    for k in range(n):
        for a in range(c):
            for b in range(c):
                g[k, a, b] = sum(f[k, a, i, j] * f[k, b, i, j] for i in range(h) for j in range(w)) / (c * h * w)
    return g


def tiny_net(seed=0):
    mc.manual_seed(seed)
    return StyleNet(1, 3, channels=(3, 4, 4)).to(dtype=np.float64)


def ref_layer_outputs(net, x):
    """Outputs of every module of net.features, run one after the other (no hooks)."""
    out, h = {}, mc.Tensor(x)
    with mc.no_grad():
        for i, layer in enumerate(net.features):
            h = layer(h)
            out[f"features.{i}"] = h.numpy().astype(np.float64)
    return out


@given(n=st.integers(1, 2), c=st.integers(1, 4), h=st.integers(1, 4), w=st.integers(1, 4), seed=st.integers(0, 999))
def test_gram_matrix_matches_loops(n, c, h, w, seed):
    f = np.random.default_rng(seed).normal(size=(n, c, h, w))
    got = gram_matrix(mc.Tensor(f))
    assert got.shape == (n, c, c)
    np.testing.assert_allclose(got.numpy(), ref_gram(f), rtol=1e-12, atol=1e-12)


def test_gram_matrix_gradcheck_and_errors():
    f = mc.Tensor(np.random.default_rng(0).normal(size=(2, 3, 2, 3)), requires_grad=True)
    gradcheck(gram_matrix, [f])
    with pytest.raises(ValueError, match=r"gram_matrix: features must be a Tensor \(N, C, H, W\)"):
        gram_matrix(mc.Tensor(np.zeros((3, 4))))


@pytest.fixture
def problem():
    rng = np.random.default_rng(1)
    content = rng.uniform(-1, 1, (2, 1, 8, 8))
    style = rng.uniform(-1, 1, (1, 1, 12, 12))
    image = rng.uniform(-1, 1, (2, 1, 8, 8))
    return content, style, image


def test_losses_match_numpy_recomputation(problem):
    content, style, image = problem
    net = tiny_net()
    st_ = StyleTransfer(net, CONTENT, STYLE, style_weight=7.0, content_weight=0.5, tv_weight=0.3,
                        style_layer_weights=(1.0, 2.0))
    st_.set_targets(content, style)
    got = {k: float(v.item()) for k, v in st_.losses(image).items()}
    fx, fc, fs = (ref_layer_outputs(net, a) for a in (image, content, style))
    want_content = np.mean((fx["features.3"] - fc["features.3"]) ** 2)
    want_style = sum(w * np.mean((ref_gram(fx[n]) - ref_gram(fs[n])) ** 2)   # one style image for both
                     for n, w in zip(STYLE, (1.0, 2.0)))
    want_tv = np.mean((image[:, :, 1:] - image[:, :, :-1]) ** 2) + np.mean((image[..., 1:] - image[..., :-1]) ** 2)
    np.testing.assert_allclose(got["content"], 0.5 * want_content, rtol=1e-10)
    np.testing.assert_allclose(got["style"], 7.0 * want_style, rtol=1e-10)
    np.testing.assert_allclose(got["tv"], 0.3 * want_tv, rtol=1e-10)
    np.testing.assert_allclose(got["total"], got["content"] + got["style"] + got["tv"], rtol=1e-12)


def test_style_loss_gradient_matches_finite_differences(problem):
    content, style, image = problem
    st_ = StyleTransfer(tiny_net(), (), STYLE, style_weight=10.0, content_weight=0.0, tv_weight=0.0)
    st_.set_targets(content, style)
    gradcheck(lambda x: st_.losses(x)["style"], [mc.Tensor(image, requires_grad=True)], name="style loss")


def test_total_loss_gradient_matches_finite_differences(problem):
    content, style, image = problem
    st_ = StyleTransfer(tiny_net(2), CONTENT, STYLE, style_weight=5.0, content_weight=1.0, tv_weight=0.1)
    st_.set_targets(content, style)
    gradcheck(st_.loss, [mc.Tensor(image, requires_grad=True)], name="style transfer loss")
    assert all(p.grad is None and not p.requires_grad for p in st_.net.parameters())   # the net is frozen


@pytest.mark.parametrize("init", ["content", "noise"])
def test_run_decreases_the_loss_and_stays_in_range(problem, init):
    content, style, _ = problem
    kept = content.copy()
    seen = []
    with StyleTransfer(tiny_net(), CONTENT, STYLE, style_weight=100.0) as st_:
        image, history = st_.run(content, style, steps=15, lr=0.05, init=init,
                                 callback=lambda step, x, row: seen.append(step))
    assert image.shape == content.shape and image.min() >= -1 and image.max() <= 1
    np.testing.assert_array_equal(content, kept)                                 # the input is not modified
    assert len(history) == 15 and seen == list(range(1, 16))
    assert history[-1]["total"] < 0.7 * history[0]["total"]
    assert all(not layer._forward_hooks for layer in st_.net.features)          # hooks removed on exit


def test_style_transfer_errors(problem):
    content, style, image = problem
    net = tiny_net()
    with pytest.raises(ValueError, match="no module named 'features.99'"):
        StyleTransfer(net, ("features.99",), STYLE)
    st_ = StyleTransfer(net, CONTENT, STYLE)
    with pytest.raises(RuntimeError, match="set_targets"):
        st_.loss(image)
    with pytest.raises(ValueError, match="style must hold 1 image or as many as content"):
        st_.set_targets(content, np.concatenate([style] * 3))
    with pytest.raises(ValueError, match="style_layer_weights"):
        StyleTransfer(net, CONTENT, STYLE, style_layer_weights=(1.0,))
    with pytest.raises(ValueError, match="init must be"):
        st_.run(content, style, steps=1, init="photo")


def test_layer_names_point_at_relus():
    net = StyleNet()
    modules = dict(net.named_modules())
    assert all(type(modules[v]).__name__ == "ReLU" for v in LAYER_NAMES.values())
    x = np.random.default_rng(0).normal(size=(2, 1, 32, 32)).astype(np.float32)
    with mc.no_grad():
        assert net(mc.Tensor(x)).shape == (2, 10)


def test_train_style_net_learns_and_caches(tmp_path):
    path = str(tmp_path / "style.npz")
    net = train_style_net(path, dataset="digits", epochs=2, n=400, channels=(4, 8, 8), batch_size=32, lr=5e-3)
    assert len(net.history) == 2 and net.history[1]["train_loss"] < net.history[0]["train_loss"]
    again = train_style_net(path, dataset="digits", channels=(4, 8, 8), seed=5)
    assert again.history == []
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k].numpy(), v.numpy())
